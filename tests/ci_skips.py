"""Skips that CI does not take: a test that needs something absent skips, with the reason, on a developer's
machine, and fails where $CI is set, because CI provides everything and a skip there would hide a regression."""
import importlib
import os

import pytest


def skip_off_ci(reason: str, ci_fix: str = "CI must provide it") -> None:
    """Skip the test (or the module, at module level) saying `reason`; under $CI fail saying it and `ci_fix`."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}; {ci_fix}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require(module: str, ci_fix: str = "the extras CI installs provide it"):
    """`module` imported, or skip_off_ci when it is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:
        skip_off_ci(f"{module} is not installed", ci_fix)


SYSTEM_INSTALL = "make test installs it as root on Debian/Ubuntu; or sudo make system-deps"


def require_program(found: bool, what: str, package: str) -> None:
    """A system program beyond .venv: skip_off_ci unless `found`; `package` names its Debian package(s)."""
    if not found:
        skip_off_ci(f"{what} is not installed (apt-get install {package}; {SYSTEM_INSTALL})", ".ci/run installs it")


def require_nginx() -> None:
    """`seg serve` puts nginx in front of gunicorn; find it as seg serve does (PATH, /usr/sbin, $SEG_NGINX)."""
    from seg.errors import ServeConfigError
    from seg.serve.proxy import find_nginx

    try:
        find_nginx()
    except ServeConfigError:
        require_program(False, "nginx", "nginx")


def require_engine(name: str) -> None:
    """The `name` engine's framework importable, else a skip: MXNet (the cpu extra) may be missing off CI and on the
    CI runs meant to lack it (SEG_TESTS_WITHOUT_MXNET); the torch extra is always installed for the tests."""
    if name == "mxnet" and (not os.environ.get("CI") or os.environ.get("SEG_TESTS_WITHOUT_MXNET")):
        pytest.importorskip("mxnet", reason="the mxnet engine needs the cpu extra (Python <= 3.11)")
