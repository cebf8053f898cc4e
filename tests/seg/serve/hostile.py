"""Hostile HTTP clients on raw sockets, and a bounded load run that mixes them with valid clients.

A hostile client is a function ``(port, until) -> bytes``: it connects to 127.0.0.1:port, misbehaves
until the server cuts it or the monotonic time ``until`` passes, and returns what the server answered
(b"" for a close without an answer). Add one to HOSTILE (SLOW when it holds its connection) and
test_serve_hostile.py and benchmarks/bench_serve_hostile.py pick it up.
"""
from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import requests

TICK = 0.1  # seconds between two bytes of a dribbler


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.settimeout(TICK)
    return sock


def _answer(sock: socket.socket, until: float) -> bytes:
    """Read until the server closes or ``until``; b"" when it closed (or reset) without answering."""
    data = b""
    while time.monotonic() < until:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _dribble(sock: socket.socket, data: bytes, until: float) -> None:
    """Send ``data`` one byte per TICK until ``until``, or until the server answers or cuts the connection."""
    for byte in data:
        if time.monotonic() >= until:
            return
        try:
            sock.send(bytes([byte]))
            sock.recv(1, socket.MSG_PEEK)  # waits TICK for an answer or a close
            return
        except socket.timeout:
            continue
        except OSError:
            return


def header_dribbler(port: int, until: float) -> bytes:
    """A GET whose header arrives one byte per TICK and never ends."""
    with _connect(port) as sock:
        _dribble(sock, b"GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: 1\r\n" * 10_000, until)
        return _answer(sock, until)


def _stalled_post(port: int, until: float, length: int, sent: bytes) -> bytes:
    with _connect(port) as sock:
        sock.sendall(f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode() + sent)
        return _answer(sock, until)


def stalled_body(port: int, until: float) -> bytes:
    """A POST that declares 100 kB (within any payload limit), sends 10 bytes and stalls."""
    return _stalled_post(port, until, 100_000, b"\xff\xd8" + bytes(8))


def stalled_gigabyte(port: int, until: float) -> bytes:
    """A POST that declares 1 GiB, sends 1 kB and stalls."""
    return _stalled_post(port, until, 1 << 30, bytes(1024))


def garbage(port: int, until: float) -> bytes:
    """Random bytes that end like a header, then waits for the answer."""
    with _connect(port) as sock:
        sock.sendall(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes() + b"\r\n\r\n")
        return _answer(sock, until)


HOSTILE = {client.__name__: client for client in (header_dribbler, stalled_body, stalled_gigabyte, garbage)}

SLOW = ("header_dribbler", "stalled_body")  # the ones that hold a connection as long as they are let


def status_of(answer: bytes) -> int:
    """The HTTP status of a raw answer; 0 for none."""
    parts = answer.split(b" ", 2)
    return int(parts[1]) if answer.startswith(b"HTTP/") and len(parts) > 1 and parts[1].isdigit() else 0


@dataclass
class LoadFigures:
    """What a load run saw; every list is one entry per request."""

    pings: list = field(default_factory=list)  # (ok, seconds)
    valid: list = field(default_factory=list)  # (status, seconds)
    hostile: list = field(default_factory=list)  # status of each hostile answer (0: closed without one)

    def summary(self) -> dict:
        ping_ok = [ok for ok, _ in self.pings]
        valid_s = [s for status, s in self.valid if status == 200]
        statuses = [status for status, _ in self.valid] + self.hostile
        return {"pings": len(self.pings),
                "ping_success_rate": sum(ping_ok) / len(ping_ok) if ping_ok else 0.0,
                "ping_p95_ms": _p95_ms([s for _, s in self.pings]),
                "valid_requests": len(self.valid), "valid_ok": len(valid_s), "valid_p95_ms": _p95_ms(valid_s),
                "hostile_connections": len(self.hostile),
                "responses_5xx": sum(status >= 500 for status in statuses)}


def _p95_ms(seconds: list) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000, 95)) if seconds else float("nan")


def run_load(url: str, slow_clients: int, valid_threads: int, seconds: float, body: bytes,
             ping_timeout: float = 2.0, kinds=SLOW) -> LoadFigures:
    """``slow_clients`` hostile clients (cycling through ``kinds``, reconnecting when cut) and ``valid_threads``
    threads posting ``body`` (a JPEG) for ``seconds``, while one thread GETs /ping every TICK."""
    port = int(url.rsplit(":", 1)[1])
    until = time.monotonic() + seconds
    figures, lock = LoadFigures(), threading.Lock()

    def hostile(index):
        while time.monotonic() < until:
            status = status_of(HOSTILE[kinds[index % len(kinds)]](port, until))
            with lock:
                figures.hostile.append(status)

    def valid(_):
        with requests.Session() as session:
            while time.monotonic() < until:
                start = time.monotonic()
                try:
                    status = session.post(f"{url}/invocations", data=body, timeout=60,
                                          headers={"Content-Type": "image/jpeg"}).status_code
                except requests.RequestException:
                    status = 599  # no answer counts as a server fault
                with lock:
                    figures.valid.append((status, time.monotonic() - start))

    def ping(_):
        while time.monotonic() < until:
            start = time.monotonic()
            try:
                ok = requests.get(f"{url}/ping", timeout=ping_timeout).status_code == 200
            except requests.RequestException:
                ok = False
            figures.pings.append((ok, time.monotonic() - start))
            time.sleep(TICK)  # the ping rate, not a wait for a condition

    with ThreadPoolExecutor(slow_clients + valid_threads + 1) as pool:
        futures = [pool.submit(hostile, i) for i in range(slow_clients)]
        futures += [pool.submit(valid, i) for i in range(valid_threads)] + [pool.submit(ping, 0)]
        for future in futures:
            future.result()
    return figures
