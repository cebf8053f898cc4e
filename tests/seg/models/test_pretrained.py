"""Pretrained weights through GluonCV's model store, downloaded from a real HTTP server on 127.0.0.1.

seg pins the SHA-1 GluonCV pins for each backbone (`seg.models.pretrained.GLUON_SHA1`), and the real ImageNet
files are not here. So the tests register the SHA-1 of a file they made under the backbone's name
(monkeypatch.setitem on that table; the network is real): the lookup, download, unzip and SHA-1 check run
exactly as in production.
"""
import hashlib
import http.server
import re
import socket
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

import seg.engines.mxnet.gluoncv_compat  # noqa: F401,E402  (before gluoncv: it refuses torch>=2 otherwise)
from gluoncv.model_zoo.resnetv1b import resnet18_v1b  # noqa: E402

from seg.config import parse_hyperparameters  # noqa: E402
from seg.errors import PretrainedWeightsError  # noqa: E402
from seg.engines.mxnet.nets import build_network  # noqa: E402
from seg.models.pretrained import GLUON_SHA1, resolve_pretrained  # noqa: E402

NAME = "resnet18_v1b"  # GluonCV's name for backbone resnet-18


def _hp(**overrides):
    return parse_hyperparameters({"num_classes": 3, "num_training_samples": 4, "backbone": "resnet-18",
                                  "crop_size": 32, **overrides})


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A GluonCV model repo served over HTTP from a temp folder; MXNET_* point at it and a fresh home."""
    root = tmp_path / "repo"
    (root / "gluon" / "models").mkdir(parents=True)
    asked = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self):
            asked.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("MXNET_GLUON_REPO", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("MXNET_HOME", str(tmp_path / "mxnet"))
    yield SimpleNamespace(root=root, asked=asked, home=tmp_path / "mxnet", url=f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    server.server_close()


def _publish(repo, monkeypatch, pinned: bytes, served: bytes) -> str:
    """Pin SHA-1(pinned) for NAME in GluonCV's table and serve `served` as its zip; the stem GluonCV asks for."""
    sha1 = hashlib.sha1(pinned).hexdigest()
    monkeypatch.setitem(GLUON_SHA1, NAME, sha1)
    stem = f"{NAME}-{sha1[:8]}"
    with zipfile.ZipFile(repo.root / "gluon" / "models" / f"{stem}.zip", "w") as zf:
        zf.writestr(f"{stem}.params", served)
    return stem


def _weights(path: Path) -> bytes:
    backbone = resnet18_v1b(pretrained=False)
    backbone.initialize(mx.init.Uniform(0.5))
    backbone(mx.nd.zeros((1, 3, 32, 32)))
    backbone.save_parameters(str(path))
    return path.read_bytes()


def test_missing_weights_are_downloaded_over_http_verified_cached_and_loaded(tmp_path, repo, monkeypatch, capfd):
    weights = _weights(tmp_path / "made.params")
    stem = _publish(repo, monkeypatch, weights, weights)
    hp = _hp(use_pretrained_model=True)  # model store: $MXNET_HOME/models, empty so far

    path = resolve_pretrained(hp, tmp_path / "cache")

    assert Path(path) == repo.home / "models" / f"{stem}.params"
    assert Path(path).read_bytes() == weights
    assert repo.asked == [f"/gluon/models/{stem}.zip"]
    out, err = capfd.readouterr()
    assert re.search(r"100%\|.*B/s", err) and f"{stem}.zip" in err and "Downloading" not in out  # tqdm on stderr
    net = build_network(hp, pretrained_path=path)
    expected = mx.nd.load(str(tmp_path / "made.params"))["conv1.weight"].asnumpy()
    assert np.array_equal(net.conv1.weight.data().asnumpy(), expected)
    assert resolve_pretrained(hp, tmp_path / "cache") == path and len(repo.asked) == 1  # cached: no second GET


def test_a_download_with_another_sha1_is_refused_and_deleted(tmp_path, repo, monkeypatch):
    stem = _publish(repo, monkeypatch, pinned=b"the weights GluonCV pins", served=b"other weights")
    with pytest.raises(PretrainedWeightsError, match="SHA-1 is not the one GluonCV pins for resnet18_v1b") as info:
        resolve_pretrained(_hp(use_pretrained_model=True), tmp_path)
    assert f"{repo.url}/gluon/models/{stem}.zip" in str(info.value)
    assert repo.asked == [f"/gluon/models/{stem}.zip"]
    assert not list((repo.home / "models").glob("*.params"))  # a later run cannot pick it up


def test_an_unreachable_repo_fails_saying_where_it_looked(tmp_path, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("MXNET_GLUON_REPO", f"http://127.0.0.1:{closed}/")
    hp = _hp(use_pretrained_model=True, model_store=str(tmp_path / "store"))
    with pytest.raises(PretrainedWeightsError) as info:
        resolve_pretrained(hp, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    for place in (f"{tmp_path / 'store'}/{NAME}.params", f"{tmp_path / 'store'}/{NAME}-*.params",
                  f"http://127.0.0.1:{closed}/gluon/models/{NAME}-{GLUON_SHA1[NAME][:8]}.zip"):
        assert place in message
    assert "Connection refused" in message and "use_pretrained_model=False" in message


def test_seg_offline_never_downloads(tmp_path, repo, monkeypatch):
    weights = b"weights that must stay on the server"
    stem = _publish(repo, monkeypatch, weights, weights)
    monkeypatch.setenv("SEG_OFFLINE", "1")
    with pytest.raises(PretrainedWeightsError, match="because SEG_OFFLINE=1") as info:
        resolve_pretrained(_hp(use_pretrained_model=True), tmp_path)
    assert f"{stem}.zip" in str(info.value) and repo.asked == []


def test_the_model_store_comes_before_gluoncv(tmp_path, repo, monkeypatch):
    weights = b"weights on the server"
    _publish(repo, monkeypatch, weights, weights)
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / f"{NAME}.params").write_bytes(b"weights in the store")
    path = resolve_pretrained(_hp(use_pretrained_model=True, model_store=str(tmp_path / "store")), tmp_path)
    assert Path(path).read_bytes() == b"weights in the store" and repo.asked == []
