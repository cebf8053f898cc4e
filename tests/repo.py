"""Where the tests find the repository and, beside it, ../shared (present only beside CI's checkout)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
