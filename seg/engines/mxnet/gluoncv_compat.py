"""Import GluonCV beside PyTorch.

GluonCV 0.10.5 checks at import that any installed PyTorch is older than 2.0 (for its own optional PyTorch
models, which seg never uses) and refuses to import otherwise, so the MXNet engine could not share a venv with
the torch engine. Importing it while `torch` reads as absent skips that check only; its MXNet half loads as usual.
Import this module before anything from `gluoncv`.
"""
import sys

_missing = object()
_torch = sys.modules.get("torch", _missing)
sys.modules["torch"] = None  # `import torch` raises ImportError: GluonCV then skips its PyTorch half
try:
    import gluoncv  # noqa: F401,E402
finally:
    if _torch is _missing:
        del sys.modules["torch"]
    else:
        sys.modules["torch"] = _torch
