"""The PyTorch engine: GluonCV's networks in torch modules, with GluonCV's parameter names."""
