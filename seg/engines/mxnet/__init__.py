"""The MXNet 1.9.1 + GluonCV engine: the built-in algorithm's own framework (seg.engines.mxnet.nets holds its networks)."""
