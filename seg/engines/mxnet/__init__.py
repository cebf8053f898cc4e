"""The MXNet 1.9.1 + GluonCV engine: the built-in algorithm's own framework (seg.models.nets holds its networks)."""
