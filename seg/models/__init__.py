"""Networks (FCN / PSP / DeepLabV3 on GluonCV ResNets), pretrained backbones and the model artifact (MXNet)."""
