"""System programs some tests need beyond .venv (nginx, Debian's chromium + chromedriver): where one is missing
the test skips naming it and how to install it, except under CI, where a skip would hide the test: it fails."""
from __future__ import annotations

import os

import pytest

INSTALL = "make test installs it as root on Debian/Ubuntu; or sudo make system-deps"


def require(found: bool, what: str, package: str) -> None:
    """Skip (fail under $CI) unless `found`; `what` names the missing program, `package` its Debian package(s)."""
    if found:
        return
    reason = f"{what} is not installed (apt-get install {package}; {INSTALL})"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def require_nginx() -> None:
    """`seg serve` puts nginx in front of gunicorn; find it as seg serve does (PATH, /usr/sbin, $SEG_NGINX)."""
    from seg.errors import ServeConfigError
    from seg.serve.proxy import find_nginx

    try:
        find_nginx()
        found = True
    except ServeConfigError:
        found = False
    require(found, "nginx", "nginx")
