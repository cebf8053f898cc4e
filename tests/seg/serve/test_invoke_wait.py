"""`seg invoke --wait` never waits on a dead server: with --server-pid it stops the moment `seg serve` exits, and
names the server's own error from --server-log, instead of polling a closed port until the timeout."""
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

SEG = [sys.executable, "-m", "seg.cli"]
WAIT = 120  # what the Makefile's invoke stage waits: the test must end long before it


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "street.jpg"
    Image.fromarray(np.full((24, 32, 3), 120, np.uint8)).save(path)
    return path


def start_server(tmp_path, model, env=None):
    port, log = free_port(), tmp_path / "serve.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen([*SEG, "serve", str(model), "--host", "127.0.0.1", "--port", str(port)],
                                stderr=sink, env={**os.environ, **(env or {})}, start_new_session=True)
    return proc, port, log


def invoke(port, image, out, *extra):
    started = time.monotonic()
    result = subprocess.run([*SEG, "invoke", f"http://127.0.0.1:{port}", str(image), "--out", str(out),
                             "--wait", str(WAIT), *map(str, extra)], capture_output=True, text=True, timeout=WAIT)
    return result, time.monotonic() - started


def test_invoke_stops_when_the_server_exits_and_prints_the_servers_own_error(tmp_path, image):
    model = tmp_path / "model"
    model.mkdir()
    # the server's own start-up error: no nginx under that name (what a bare machine gives)
    proc, port, log = start_server(tmp_path, model, {"SEG_NGINX": "nginx-not-installed-here"})
    result, seconds = invoke(port, image, tmp_path / "out", "--server-pid", proc.pid, "--server-log", log)
    proc.wait(30)
    assert result.returncode == 1 and seconds < 30, (seconds, result.stderr)
    assert f"the server (pid {proc.pid}) exited" in result.stderr
    assert "'nginx-not-installed-here' was not found" in result.stderr, result.stderr
    assert f"waiting up to {WAIT} s for http://127.0.0.1:{port}/ping" in result.stderr  # says what it waits for
    assert not (tmp_path / "out").exists()


def test_invoke_stops_within_seconds_when_the_server_is_killed_at_start_up(tmp_path, image):
    proc, port, log = start_server(tmp_path, tmp_path / "anything")
    os.killpg(proc.pid, signal.SIGKILL)  # killed while it starts: no error line of its own
    proc.wait(30)  # reaped, as a shell reaps its background job
    result, seconds = invoke(port, image, tmp_path / "out", "--server-pid", proc.pid, "--server-log", log)
    assert result.returncode == 1 and seconds < 30, (seconds, result.stderr)
    assert f"the server (pid {proc.pid}) exited before http://127.0.0.1:{port}/ping answered 200" in result.stderr


def test_a_server_log_without_its_pid_is_a_usage_error(tmp_path, image):
    result = subprocess.run([*SEG, "invoke", "http://127.0.0.1:9", str(image), "--out", str(tmp_path / "out"),
                             "--wait", "5", "--server-log", str(tmp_path / "serve.log")], capture_output=True, text=True)
    assert result.returncode == 2 and "--server-log goes with --server-pid" in result.stderr
