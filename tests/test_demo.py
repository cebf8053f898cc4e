"""`make demo` as a newcomer runs it: a fresh clone, no nginx anywhere, and it ends with the metrics and the pictures.

The venv is the one running this test (VENV=..., which the Makefile checks and never installs into), so the test
costs the demo's few minutes of work and no install; the engine is whichever that venv's `seg` runs by default.
"""
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from repo import ROOT

pytestmark = pytest.mark.slow


def _path_without(program: str) -> str:
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if d and not os.access(os.path.join(d, program), os.X_OK))


def test_make_demo_on_a_fresh_clone_without_nginx_ends_with_the_metrics_and_the_pictures(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "PATH": _path_without("nginx"),
           "SEG_NGINX": "nginx-not-installed-here",  # seg also looks in /usr/sbin: hide it there too
           "PYTHONPATH": str(clone)}  # the clone's code, whatever the venv's editable install points at
    for inherited in ("MAKEFLAGS", "MAKELEVEL"):  # under `make test` these would make make print its directory
        env.pop(inherited, None)
    with socket.socket() as probe:  # a free port rather than the default 8080, which may be taken here
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = subprocess.run(["make", "--no-print-directory", "demo", f"VENV={venv}", f"PORT={port}"], cwd=clone,
                            env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "nginx is not installed: serving on 127.0.0.1 without it" in result.stderr

    out = clone / "demo-out"
    metrics = json.loads((out / "metrics.json").read_text())
    tail = result.stdout.strip().splitlines()[-(1 + len(metrics["per_class_iou"])):]
    assert tail[0] == f"validation mIOU {metrics['mIOU']:.3f}, pixel accuracy {metrics['pixel_accuracy']:.3f}", tail
    for line, (name, iou) in zip(tail[1:], metrics["per_class_iou"].items()):
        assert re.fullmatch(rf"IoU {re.escape(name)}\s+{'n/a' if iou is None else f'{iou:.3f}'}", line.strip())
    overlays = sorted((out / "invoke").glob("*_overlay.png"))
    assert overlays and (out / "invoke" / overlays[0].name.replace("_overlay", "_mask")).is_file()
    assert f"  demo-out/invoke/{overlays[0].name}" in result.stdout
    assert sorted((out / "predictions").glob("*_overlay.png"))
    for page in (out / "data" / "report" / "index.html", out / "evaluation-report" / "index.html"):
        assert page.is_file() and str(page.relative_to(clone)) in result.stdout
