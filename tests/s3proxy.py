"""A small real HTTP proxy in front of the tests' S3 server: adds latency per request and injects the
faults S3 shows under load (503 SlowDown, a connection dropped in the middle of a body). No mocks: boto3
talks HTTP to it exactly as to S3. Used by the fault tests and by benchmarks/bench_convert.py."""
from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")


class S3Proxy:
    """Forwards every request to `upstream`. `fault(method, path, n)` (n: how many times this method and
    path were asked, from 1) returns None, "slowdown" (a 503 SlowDown) or "drop" (headers, half the body,
    then the connection closed). Use as a context manager; `endpoint` is its URL."""

    def __init__(self, upstream: str, latency_s: float = 0.0, fault=None):
        self.upstream, self.latency_s, self.fault = urlsplit(upstream), latency_s, fault
        self.asked: Counter = Counter()
        self.injected: Counter = Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                proxy._handle(self)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, handler):
        if self.latency_s:
            time.sleep(self.latency_s)  # the injected round trip, not a test waiting for something
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        path = urlsplit(handler.path).path
        with self._lock:
            self.asked[(handler.command, path)] += 1
            n = self.asked[(handler.command, path)]
        fault = self.fault(handler.command, path, n) if self.fault else None
        if fault:
            with self._lock:
                self.injected[fault] += 1
        if fault == "slowdown":
            handler.send_response(503)
            handler.send_header("Content-Type", "application/xml")
            handler.send_header("Content-Length", str(len(SLOWDOWN)))
            handler.end_headers()
            handler.wfile.write(SLOWDOWN)
            return
        upstream = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() != "connection"}
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("connection", "transfer-encoding", "content-length", "date", "server"):
                handler.send_header(key, value)
        length = response.getheader("Content-Length") if handler.command == "HEAD" else None
        handler.send_header("Content-Length", length or str(len(data)))
        if fault == "drop":
            handler.send_header("Connection", "close")
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
