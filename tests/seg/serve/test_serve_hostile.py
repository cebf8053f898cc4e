"""`seg serve` under hostile clients (hostile.py: raw sockets on 127.0.0.1) and its process tree.

Behind nginx (the default) a slow client costs a connection until --read-timeout, never a worker: /ping
and valid requests go on while the clients hang. With --no-proxy, gunicorn's sync workers read requests
themselves and two stalled clients take the endpoint down: that test shows what the proxy is for, and
that the harness sees it. Add a hostile client in hostile.py; the parametrized test picks it up.
"""
import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor, wait

import pytest
import requests

from hostile import HOSTILE, run_load, stalled_body, status_of
from test_serve_http import (Server, encode, free_port, model_dir, proc_status,  # noqa: F401 (model_dir: fixture)
                             random_image, run_cli)

pytestmark = pytest.mark.mxnet

READ_TIMEOUT = 2  # seconds; short so that every hostile client is cut quickly
PING_BOUND = 1.0  # seconds /ping may take while hostile clients hang
CUT_BOUND = READ_TIMEOUT + 3  # seconds within which nginx must have cut a hostile client


@pytest.fixture(scope="module")
def server(model_dir):
    srv = Server(model_dir, workers=2, extra_args=["--read-timeout", str(READ_TIMEOUT)],
                 env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"})
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def bare(model_dir):
    """gunicorn alone (--no-proxy), two workers."""
    srv = Server(model_dir, workers=2, extra_args=["--no-proxy"])
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def jpeg():
    return encode(random_image(7), "JPEG")


def ping_ok(server, bound=PING_BOUND):
    try:
        return requests.get(f"{server.url}/ping", timeout=bound).status_code == 200
    except requests.RequestException:
        return False


def raw_post(port, head, body, half_close):
    """POST over a raw socket; what the server answered, b"" when it closed without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=CUT_BOUND + 5) as sock:
        sock.sendall(head + body)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_clients_are_cut_at_the_read_deadline_while_ping_and_invocations_go_on(server, jpeg, kind):
    workers = server.worker_pids()
    assert len(workers) == server.workers == 2, workers
    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:  # twice as many hostile clients as workers
        clients = [pool.submit(HOSTILE[kind], server.port, start + CUT_BOUND + 5) for _ in range(4)]
        response = requests.post(f"{server.url}/invocations", data=jpeg, timeout=PING_BOUND * 5,
                                 headers={"Content-Type": "image/jpeg"})
        assert response.status_code == 200
        while True:  # poll while they hang, until nginx has cut them all
            assert ping_ok(server), f"/ping failed while {kind} clients hung"
            if not wait(clients, timeout=0.2).not_done:
                break
        cut_after = time.monotonic() - start
    statuses = [status_of(client.result()) for client in clients]
    assert cut_after < CUT_BOUND, f"{kind}: held for {cut_after:.1f} s"
    assert all(status == 0 or 400 <= status < 500 for status in statuses), statuses
    assert server.worker_pids() == workers, "a worker was replaced"


def test_without_the_proxy_two_stalled_clients_hold_both_workers_and_ping_fails(bare):
    until = time.monotonic() + 10  # the clients hang up then, which frees the workers
    with ThreadPoolExecutor(2) as pool:
        clients = [pool.submit(stalled_body, bare.port, until) for _ in range(2)]
        while ping_ok(bare) and time.monotonic() < until - 4:  # until both workers have taken a stalled client
            pass
        assert time.monotonic() < until - 4, "/ping kept answering: the sync workers were not held"
        assert not ping_ok(bare, bound=2.0)
        wait(clients)
    deadline = time.monotonic() + 30
    while not ping_ok(bare):
        assert time.monotonic() < deadline, "the workers stayed held after the clients hung up"


def test_a_body_shorter_than_its_content_length_is_never_answered_200(server, bare, jpeg):
    head = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(jpeg) + 100}\r\nConnection: close\r\n\r\n").encode()
    answer = raw_post(bare.port, head, jpeg, half_close=True)  # gunicorn alone: the app sees the short body
    assert status_of(answer) == 400, answer[:200]
    assert f"after {len(jpeg)} bytes, short of its Content-Length of {len(jpeg) + 100}".encode() in answer
    start = time.monotonic()
    assert raw_post(server.port, head, jpeg, half_close=False) == b""  # nginx: cut at the read deadline
    assert time.monotonic() - start < CUT_BOUND
    assert raw_post(server.port, head, jpeg, half_close=True) == b""  # nginx: premature close, nothing sent on
    assert ping_ok(server)


def test_two_slow_clients_and_four_valid_threads_leave_ping_at_100_percent_and_no_5xx(server, jpeg):
    figures = run_load(server.url, slow_clients=2, valid_threads=4, seconds=2 * READ_TIMEOUT + 2, body=jpeg)
    summary = figures.summary()
    assert summary["pings"] >= 10 and summary["ping_success_rate"] == 1.0, summary
    assert summary["responses_5xx"] == 0, summary
    assert summary["valid_requests"] > 0 and summary["valid_ok"] == summary["valid_requests"], summary
    assert summary["hostile_connections"] >= 4, "slow clients must have been cut and come back"


def test_once_loaded_ping_is_answered_by_nginx_even_while_every_worker_is_busy(server):
    workers = server.worker_pids()
    assert len(workers) == server.workers == 2, workers
    for pid in workers:
        os.kill(pid, signal.SIGSTOP)  # busier than any inference: a proxied request could not be answered
    try:
        response = requests.get(f"{server.url}/ping", timeout=PING_BOUND)
        assert response.status_code == 200 and response.content == b""
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    response = requests.post(f"{server.url}/ping", timeout=5)  # any other method still reaches the workers
    assert response.status_code == 405 and response.headers["Allow"] == "GET"


def test_missing_nginx_is_a_one_line_error_naming_the_package(model_dir):
    result = run_cli("serve", str(model_dir), "--port", str(free_port()), env={"SEG_NGINX": "nginx-not-installed"})
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "'nginx-not-installed' was not found" in result.stderr and "apt-get install nginx" in result.stderr


def test_a_taken_port_stops_the_workers_with_a_clear_error(model_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    assert f"could not listen on 127.0.0.1:{port}" in result.stderr and "Address already in use" in result.stderr


def test_when_nginx_dies_seg_serve_stops_the_workers_and_exits_with_the_reason(model_dir):
    srv = Server(model_dir, workers=1).wait_ready()
    try:
        workers = srv.worker_pids()
        assert len(workers) == 1, workers
        (nginx,) = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                    if proc_status(pid).get("PPid") == str(srv.proc.pid) and proc_status(pid).get("Name") == "nginx"]
        nginx_workers = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc")))
                         if proc_status(pid).get("PPid") == str(nginx)]
        assert nginx_workers
        os.kill(nginx, signal.SIGKILL)  # its workers outlive it, holding the port, unless seg serve ends them
        assert srv.proc.wait(60) == 1
        assert "the server stopped (nginx exit -9)" in "".join(srv.lines)
        left = [pid for pid in workers + nginx_workers if proc_status(pid).get("State", "Z")[:1] in "RSD"]
        assert left == []
    finally:
        srv.stop()

