"""Install cost per engine: `pip install '.[torch]'` vs `pip install '.[cpu]'` (MXNet), each into a fresh venv.

    python3 benchmarks/bench_install.py [--extras torch,cpu] [--python python3.11] [--torch-spec torch==2.13.0]
                                        [--json]

For each extra: a new venv (`PYTHON -m venv`, not timed), then one timed `pip install --no-cache-dir` of this
project with the extra (for `torch`, the --torch-spec requirement, default $TORCH_SPEC, in the same command, as
`make venv TORCH_SPEC=...` installs it first), then the venv's size on disk (`du -sk`). The project is installed
from a copy of its git-tracked files in a temp folder, so nothing is written into the checkout; the venvs are
removed at the end. pip reads its usual configuration (index, find-links): where the wheels come from decides the
time, so the table says what this machine's pip was set up with. MXNet's extra needs Python <= 3.11.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def _du_mib(path: Path) -> float:
    kib = subprocess.run(["du", "-sk", str(path)], check=True, capture_output=True, text=True).stdout.split()[0]
    return int(kib) / 1024


def measure(extra: str, python: str, torch_spec: str, source: Path, tmp: Path) -> dict:
    venv = tmp / f"venv-{extra}"
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir"]
    extra_specs = [torch_spec] if extra == "torch" and torch_spec else []
    command = [*pip, *extra_specs, f"{source}[{extra}]"]
    empty = _du_mib(venv)
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        sys.exit(f"bench_install: pip install .[{extra}] failed on {python}:\n{run.stderr[-2000:]}")
    version = subprocess.run([str(venv / "bin" / "python"), "-c", "import sys; print(sys.version.split()[0])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    frameworks = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"], check=True, capture_output=True,
        text=True).stdout
    wanted = {"torch", "mxnet", "gluoncv", "numpy", "onnxruntime"}
    packages = {p["name"].lower(): p["version"] for p in json.loads(frameworks) if p["name"].lower() in wanted}
    row = {"extra": extra, "python": version, "requirements": " ".join([*extra_specs, f".[{extra}]"]),
           "install_s": round(seconds, 1), "venv_mib": round(_du_mib(venv), 1),
           "empty_venv_mib": round(empty, 1), "packages": packages}
    shutil.rmtree(venv)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extras", default="torch,cpu", help="comma-separated extras, one fresh venv each")
    parser.add_argument("--python", default="python3.11", help="interpreter of the venvs [python3.11]")
    parser.add_argument("--torch-spec", default=os.environ.get("TORCH_SPEC", ""),
                        help="requirement installed with [torch], e.g. torch==2.13.0 [$TORCH_SPEC]")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args()
    if shutil.which(args.python) is None and not Path(args.python).exists():
        sys.exit(f"bench_install: --python {args.python} is not an interpreter on PATH; give its path")
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-install-") as name:
        tmp = Path(name)
        source = _tracked_copy(tmp / "src")
        rows = [measure(e, args.python, args.torch_spec, source, tmp) for e in args.extras.split(",")]
    pip_config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                                text=True).stdout.strip().splitlines()
    pip_config = [line for line in pip_config if "index" in line or "find-links" in line]  # where wheels come from
    setup = {"cpus": os.cpu_count(), "pip_config": pip_config, "load_1min_at_start": load_at_start,
             "load_1min_at_end": os.getloadavg()[0]}
    if args.json:
        print(json.dumps({"setup": setup, "rows": rows}, indent=2))
        return
    print("| extra | Python | pip install | install time | venv size | framework, numpy |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        versions = ", ".join(f"{k} {v}" for k, v in sorted(r["packages"].items()))
        print(f"| `{r['extra']}` | {r['python']} | `{r['requirements']}` | {r['install_s']:.0f} s "
              f"| {r['venv_mib']:.0f} MiB | {versions} |")
    print(f"\nfresh venv per extra, pip --no-cache-dir; {setup['cpus']} CPUs; load average (1 min) "
          f"{load_at_start:.2f} at the start, {setup['load_1min_at_end']:.2f} at the end; wheels from: "
          + ("; ".join(pip_config) or "PyPI (pip's defaults)"))


if __name__ == "__main__":
    main()
