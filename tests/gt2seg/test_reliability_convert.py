"""Reliability of `gt2seg convert` as a user meets it: the real CLI in a subprocess.

The tables live in tests/reliability.py (add a bad input there); `make bench-reliability` counts them.
"""
import subprocess

import pytest

from ci_skips import skip_off_ci
from gtjob import Job, blocks
from reliability import CASES, GT2SEG, KILL_POINTS, Fifo, run_case, run_kill_point, runnable


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_ends_in_one_clear_error_line(case, tmp_path):
    if not runnable(case):
        skip_off_ci(f"this case needs {case.only_if}", "CI runs as root, allowed to mount")
    outcome = run_case(case, tmp_path)
    assert outcome.ok(case.expect), outcome


@pytest.mark.parametrize("point", KILL_POINTS, ids=[p.name for p in KILL_POINTS])
def test_kill_9_then_rerun_gives_the_clean_layout(point, tmp_path):
    outcome = run_kill_point(point, tmp_path)
    assert outcome.ok, outcome


def test_a_second_writer_of_the_same_out_fails_at_once_and_the_first_finishes(tmp_path):
    first, second = Job(tmp_path / "a"), Job(tmp_path / "b")
    for i in range(3):
        first.add(f"a{i}", blocks(seed=i))
        second.add(f"b{i}", blocks(seed=i + 5))
    fifo = Fifo(tmp_path / "a" / "images" / "a1.jpg")
    out = tmp_path / "out"
    proc = subprocess.Popen([*GT2SEG, first.write(), out, "--workers", "1"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        fifo.wait_for_reader(proc)
        late = subprocess.run([*GT2SEG, second.write(), out], capture_output=True, text=True)
        fifo.release()
    finally:
        proc.wait()
    assert late.returncode == 1 and f"being written by another gt2seg run (pid {proc.pid})" in late.stderr
    assert proc.returncode == 0, proc.stderr.read()
    assert sorted(p.stem for p in out.glob("*/*.jpg")) == ["a0", "a1", "a2"]
