"""The PyTorch engine: GluonCV's networks rebuilt module for module, on any current Python and GPU."""
