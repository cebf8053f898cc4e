#!/usr/bin/env python3
"""Reliability figures of `gt2seg convert` (`make bench-reliability`; the README quotes them).

Runs every bad input of tests/reliability.py's CASES and every kill -9 point of its KILL_POINTS through
the real CLI, as tests/test_reliability_convert.py does, and counts:
  bad inputs tried, how many end in one clear error line (exit non-zero, one 'Error: ...' line holding the
  expected words, inputs unchanged), how many printed a traceback;
  kill points tried, how many leave no orphan process and no partial file and re-run byte-identical to a
  clean run. Cases that need (or cannot run as) root are counted as not tried.

    python benchmarks/reliability_gt2seg.py [--json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from reliability import CASES, KILL_POINTS, run_case, run_kill_point, runnable  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    bad, kills = [], []
    for case in CASES:
        if not runnable(case):
            bad.append({"case": case.name, "tried": False})
            continue
        with tempfile.TemporaryDirectory(prefix="gt2seg-rel-") as root:
            outcome = run_case(case, Path(root))
        bad.append({"case": case.name, "tried": True, "one_line": outcome.ok(case.expect),
                    "traceback": any(x.startswith("Traceback") for x in outcome.errors),
                    "stderr": outcome.errors[-3:]})
    for point in KILL_POINTS:
        with tempfile.TemporaryDirectory(prefix="gt2seg-kill-") as root:
            outcome = run_kill_point(point, Path(root))
        kills.append({"point": point.name, "ok": outcome.ok, **vars(outcome)})

    tried = [b for b in bad if b["tried"]]
    figures = {
        "bad_inputs": len(CASES), "bad_inputs_tried": len(tried),
        "one_line_errors": sum(b["one_line"] for b in tried), "tracebacks": sum(b["traceback"] for b in tried),
        "kill_points_tried": len(kills), "reruns_identical": sum(k["ok"] for k in kills),
    }
    if args.json:
        print(json.dumps({"figures": figures, "bad_inputs": bad, "kill_points": kills}, indent=2))
    else:
        print(f"bad inputs: {figures['one_line_errors']} of {figures['bad_inputs_tried']} tried end in one clear "
              f"error line, {figures['tracebacks']} tracebacks ({figures['bad_inputs']} in the table; "
              f"{figures['bad_inputs'] - figures['bad_inputs_tried']} not tried as this user)")
        print(f"kill -9 points: {figures['reruns_identical']} of {figures['kill_points_tried']} leave no orphan "
              "and re-run byte-identical to a clean run")
        for b in tried:
            if not b["one_line"]:
                print(f"  FAILED bad input {b['case']!r}: {b['stderr']}")
        for k in kills:
            if not k["ok"]:
                print(f"  FAILED kill point {k['point']!r}: {k}")
    ok = figures["one_line_errors"] == len(tried) and figures["reruns_identical"] == len(kills)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
