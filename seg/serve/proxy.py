"""nginx in front of the workers, as SageMaker's own model containers run it.

A gunicorn sync worker reads its request itself, with no deadline: two clients that dribble headers or
stall a body hold two workers, and /ping waits behind them. nginx reads every request first, in one
event loop (header deadline, body read timeout, bounded body), and hands a worker only complete requests
over a unix socket, then buffers the answer; a slow or stalled client costs a connection slot, never a
worker. Nothing here knows the model runtime: the upstream is any WSGI server on the socket.

``GET /ping``: sync workers take one request at a time, so a proxied ping waits behind every queued
inference (8 clients on 2 workers: about 4 inference times, past SageMaker's 2 s). Once a worker has
loaded the model it creates ``ready_file``, and from then on nginx answers GET /ping itself (200, empty);
before that the workers answer it (503 while loading).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from seg.errors import ServeConfigError
from seg.serve.protocol import _TEXT, payload_too_large

NGINX_ENV = "SEG_NGINX"  # the nginx binary, a name on PATH or a path [nginx]

_SBIN = ("/usr/sbin", "/sbin")  # Debian installs nginx there, off a non-root user's PATH


def find_nginx() -> str:
    """The nginx binary, or ServeConfigError saying what to install."""
    name = os.environ.get(NGINX_ENV) or "nginx"
    found = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", os.defpath), *_SBIN]))
    if found is None:
        raise ServeConfigError(f"{name!r} was not found (PATH, /usr/sbin; ${NGINX_ENV}): seg serve runs nginx in "
                               f"front of gunicorn against slow clients; install it (Debian/Ubuntu: apt-get "
                               f"install nginx) or serve unprotected with --no-proxy")
    return found


@dataclass(frozen=True)
class ProxySettings:
    """What nginx enforces before a worker sees a request."""

    host: str
    port: int
    upstream: Path  # the workers' unix socket
    read_timeout: int  # seconds: the whole header; between two reads of the body; between two writes
    max_body_bytes: int  # 413 above, with the app's message
    response_timeout: int  # seconds nginx waits for a worker's answer
    ready_file: Path  # exists once a worker has loaded the model


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '\\n"'


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def nginx_conf(settings: ProxySettings, rundir: Path) -> str:
    """nginx.conf for one run: everything nginx writes stays in ``rundir``; errors go to stderr."""
    s = settings
    return f"""# written by seg serve (seg/serve/proxy.py) for this run only
daemon off;
worker_processes 1;
pid {rundir}/nginx.pid;
error_log stderr warn;
worker_shutdown_timeout {s.read_timeout}s;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {rundir}/client_body;
    proxy_temp_path {rundir}/proxy;
    fastcgi_temp_path {rundir}/fastcgi;
    uwsgi_temp_path {rundir}/uwsgi;
    scgi_temp_path {rundir}/scgi;
    client_header_timeout {s.read_timeout}s;
    client_body_timeout {s.read_timeout}s;
    send_timeout {s.read_timeout}s;
    keepalive_timeout {s.read_timeout}s;
    lingering_timeout {s.read_timeout}s;
    client_max_body_size {s.max_body_bytes};
    client_body_buffer_size {min(s.max_body_bytes, 1 << 20)};
    map $content_length $seg_payload_too_large {{
        "" {_quoted(payload_too_large(s.max_body_bytes))};
        default {_quoted(payload_too_large(s.max_body_bytes, "$content_length"))};
    }}
    upstream seg_workers {{ server unix:{s.upstream}; }}
    server {{
        listen {_listen(s.host, s.port)};
        error_page 413 @payload_too_large;
        error_page 502 504 @workers_unavailable;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_read_timeout {s.response_timeout}s;
        proxy_buffer_size 64k;
        proxy_buffers 16 64k;
        location / {{
            proxy_pass http://seg_workers;
        }}
        location = /ping {{
            default_type "{_TEXT}";
            set $seg_ping "";
            if (-f {s.ready_file}) {{ set $seg_ping "ready"; }}
            if ($request_method = GET) {{ set $seg_ping "${{seg_ping}}+GET"; }}
            if ($seg_ping = "ready+GET") {{ return 200 ""; }}
            proxy_pass http://seg_workers;
        }}
        location @payload_too_large {{
            default_type "{_TEXT}";
            return 413 $seg_payload_too_large;
        }}
        location @workers_unavailable {{
            default_type "{_TEXT}";
            return 502 {_quoted("no worker answered (restarting, or over --timeout); retry")};
        }}
    }}
}}
"""


def nginx_argv(nginx: str, conf: Path, rundir: Path) -> list:
    """``-e stderr``: nginx would otherwise open /var/log/nginx/error.log before reading the config."""
    return [nginx, "-p", str(rundir), "-c", str(conf), "-e", "stderr"]
