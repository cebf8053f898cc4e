"""Shared fixtures.

S3: a real S3-compatible HTTP server (moto's server mode) on 127.0.0.1. The code
under test only sees the standard AWS environment variables, exactly as it would
in production; subprocesses (CLIs run by tests) inherit them. boto3 itself is
never patched.

Pretrained weights: GluonCV's model store is pointed at a temp MXNET_HOME and a closed
local port, so no test reads ~/.mxnet or downloads from the internet.
"""
import gc
import logging
import os
import shutil
import socket
import uuid

import pytest

# Everything the AWS config chain reads that could point a test at a real
# account or change addressing: cleared for the session, restored afterwards.
_AWS_VARS_CLEARED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def _mxnet_missing() -> str:
    """Why the MXNet engine's tests cannot run here, in one line; "" when MXNet imports."""
    import importlib.util
    import sys

    if importlib.util.find_spec("mxnet") is not None:
        return ""
    if sys.version_info >= (3, 12):
        return (f"MXNet 1.9.1 has no wheels for Python 3.{sys.version_info[1]}: run make test PYTHON=python3.11 "
                "to include the MXNet engine's tests")
    return "MXNet is not installed: pip install -e '.[cpu]' (make test does on Python <= 3.11) to include its tests"


MXNET_MISSING = _mxnet_missing()


@pytest.fixture(scope="session", autouse=True)
def mxnet_on_ci():
    """Tests that need MXNet skip where it is missing (`pytest.importorskip`); on CI that would hide them.
    SEG_TESTS_WITHOUT_MXNET=1: the run is meant to lack it (`make test-serve-onnx`, `make test-demo-py312plus`)."""
    if os.environ.get("CI") and not os.environ.get("SEG_TESTS_WITHOUT_MXNET") and MXNET_MISSING:
        pytest.fail(f"CI is set but {MXNET_MISSING}", pytrace=False)


def pytest_collection_modifyitems(config, items):
    """Tests marked `mxnet` skip, with the one reason, where MXNet is missing (under CI `mxnet_on_ci` fails first)."""
    if MXNET_MISSING:
        for item in items:
            if item.get_closest_marker("mxnet"):
                item.add_marker(pytest.mark.skip(reason=MXNET_MISSING))


def pytest_report_header(config):
    return [f"MXNet engine tests skip: {MXNET_MISSING}"] if MXNET_MISSING else []


def _one_mxnet_reason(report) -> None:
    """Every skip for a missing MXNet reads as one line of `-ra` (one location, one reason), not one per module."""
    if MXNET_MISSING and report.skipped and isinstance(report.longrepr, tuple) and "mxnet" in report.longrepr[2]:
        report.longrepr = (__file__, 0, f"Skipped: {MXNET_MISSING}")


def pytest_collectreport(report):
    _one_mxnet_reason(report)


def pytest_runtest_logreport(report):
    _one_mxnet_reason(report)


@pytest.fixture(autouse=True)
def _engine_of_the_test(request, monkeypatch):
    """Tests marked `mxnet` run on the MXNet engine (SEG_ENGINE, which CLIs they start inherit); the rest on the
    default engine unless they choose one (fixture `seg_engine`)."""
    if request.node.get_closest_marker("mxnet") and "seg_engine" not in request.fixturenames:
        monkeypatch.setenv("SEG_ENGINE", "mxnet")
    else:
        monkeypatch.delenv("SEG_ENGINE", raising=False)


@pytest.fixture
def seg_engine(request, monkeypatch):
    """Run a test on each engine: `pytestmark = [pytest.mark.usefixtures("seg_engine"), pytest.mark.parametrize(
    "seg_engine", ENGINES, indirect=True)]`; SEG_ENGINE is set for the test and the CLIs it starts."""
    from ci_skips import require_engine

    name = getattr(request, "param", "torch")
    require_engine(name)
    monkeypatch.setenv("SEG_ENGINE", name)
    return name


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory):
    """mktemp for a module's shared files, removed when the module ends: the model modules' artifacts
    (ResNet-50 built-in models, trained jobs) would otherwise stay on disk until the whole run ends."""
    made = []

    def mktemp(name: str):
        made.append(tmp_path_factory.mktemp(name))
        return made[-1]

    yield mktemp
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def no_internet_weights(tmp_path_factory):
    """MXNET_HOME in a temp folder, MXNET_GLUON_REPO on a port nothing listens on; the SEG_* switches unset."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    env = {"MXNET_HOME": str(tmp_path_factory.mktemp("mxnet_home")),
           "MXNET_GLUON_REPO": f"http://127.0.0.1:{closed}/"}
    saved = {name: os.environ.get(name) for name in (*env, "SEG_MODEL_STORE", "SEG_OFFLINE")}
    for name in ("SEG_MODEL_STORE", "SEG_OFFLINE"):
        os.environ.pop(name, None)
    os.environ.update(env)
    yield
    _restore(saved)


@pytest.fixture(autouse=True)
def _free_networks_after_mxnet_tests(request):
    """Gluon blocks sit in reference cycles that only the cyclic collector frees, and it seldom runs: without
    this, each test's networks stayed alive under the next test's and one pytest process reached 6.8 GB."""
    yield
    if request.node.get_closest_marker("mxnet"):
        gc.collect()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """Endpoint URL of a moto S3 server; AWS_* variables point at it for the session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    nowhere = tmp_path_factory.mktemp("aws") / "absent"  # no ~/.aws profile leaks in
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(nowhere),
        "AWS_SHARED_CREDENTIALS_FILE": str(nowhere),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {name: os.environ.get(name) for name in (*env, *_AWS_VARS_CLEARED)}
    for name in _AWS_VARS_CLEARED:
        os.environ.pop(name, None)
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        server.stop()
        _restore(saved)


def _restore(saved: dict) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def s3(s3_server):
    """A plain boto3 S3 client on the test server, for seeding and checking buckets."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3):
    """A fresh, uniquely named, empty bucket on the test server."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    return name
