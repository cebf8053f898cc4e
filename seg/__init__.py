"""seg: train and serve FCN / PSP / DeepLabV3 on the SageMaker segmentation layout.

Only the modules that train or serve import MXNet/GluonCV; importing `seg` itself
(or its config, contract and recordio modules) needs neither.
"""
__version__ = "0.1.0"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # every seg process logs to stderr alike
