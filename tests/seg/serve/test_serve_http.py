"""`seg serve` over real HTTP on 127.0.0.1: gunicorn in a subprocess, a random-weight model, every status code.

The server runs on the torch engine (the default; the MXNet engine's serving: test_serve_builtin, test_serve_app)
with SAGEMAKER_MAX_PAYLOAD_IN_MB=1 and --max-pixels 10000 so the 413 paths cost little; the test images are 64x48.
Protobuf responses are unframed with seg's RecordIO reader (and, where MXNet is installed, with MXNet's own, as the
AWS notebook does) and decoded with the independent wire reader of test_serve_records.
"""
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from PIL import Image

from ci_skips import require_nginx
from test_serve_protocol import png_header_only
from test_serve_records import decode_features

CLASSES = [{"index": 0, "name": "BACKGROUND", "color": "#ffffff"}, {"index": 1, "name": "road", "color": "#ff0000"},
           {"index": 2, "name": "car", "color": "#0000ff"}]
ENV = {"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1", "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "3",
       "SAGEMAKER_BATCH_STRATEGY": "SINGLE_RECORD"}
MAX_PIXELS = 10_000
STARTUP_DEADLINE = 180  # seconds; two workers each import the engine and load the model on a shared CPU


def encode(array, fmt):
    out = io.BytesIO()
    Image.fromarray(array).save(out, format=fmt)
    return out.getvalue()


def random_image(seed, height=48, width=64):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`seg serve` in its own session; stderr is collected by a thread so the pipe never fills."""

    def __init__(self, model_dir, workers, extra_args=(), env=None):
        if "--no-proxy" not in extra_args:
            require_nginx()
        self.port, self.workers = free_port(), workers
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-c", "import sys; from seg.cli import main; sys.exit(main())", "serve",
               *([str(model_dir)] if model_dir else []), "--host", "127.0.0.1", "--port", str(self.port),
               *extra_args]
        # the worker count as SageMaker's hosting settings pass it
        full_env = {**os.environ, "OMP_NUM_THREADS": "1", "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers), **(env or {})}
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self.lines, self.stdout = [], []
        threading.Thread(target=self._collect, args=(self.proc.stderr, self.lines), daemon=True).start()
        threading.Thread(target=self._collect, args=(self.proc.stdout, self.stdout), daemon=True).start()

    @staticmethod
    def _collect(stream, sink):
        for line in iter(stream.readline, b""):
            sink.append(line.decode(errors="replace"))

    def wait_ready(self):
        """Poll (bounded) until every worker logged 'model loaded' and /ping answers 200."""
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"seg serve exited {self.proc.returncode}:\n{''.join(self.lines)}")
            if sum("model loaded" in line for line in self.lines) >= self.workers:
                try:  # a model that loads fast (ONNX) can be ready before nginx listens
                    if requests.get(f"{self.url}/ping", timeout=5).status_code == 200:
                        return self
                except requests.ConnectionError:
                    pass
            time.sleep(0.05)
        raise AssertionError(f"seg serve not ready in {STARTUP_DEADLINE} s:\n{''.join(self.lines)}")

    def worker_pids(self):
        """gunicorn's workers: the Python processes under `seg serve` with no children (nginx's are not Python)."""
        parents, names = {}, {}
        for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
            status = proc_status(pid)
            if status:
                parents[pid], names[pid] = int(status["PPid"]), status["Name"]
        tree, grew = {self.proc.pid}, True
        while grew:
            below = {pid for pid, parent in parents.items() if parent in tree} - tree
            tree, grew = tree | below, bool(below)
        has_children = set(parents.values())
        return sorted(pid for pid in tree - {self.proc.pid}
                      if names[pid].startswith("python") and pid not in has_children)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def proc_status(pid):
    """/proc/PID/status as a dict; {} once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            return dict(line.split(":\t", 1) for line in fh.read().splitlines() if ":\t" in line)
    except OSError:
        return {}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.fixture(scope="module")
def model_dir(module_tmp):
    from artifacts import save_random_artifact

    return save_random_artifact(module_tmp("opt-ml") / "model", num_classes=3, classes=CLASSES, seed=3)


@pytest.fixture(scope="module")
def server(model_dir):
    srv = Server(model_dir, workers=2, extra_args=["--max-pixels", str(MAX_PIXELS)], env={**ENV, "SEG_ENGINE": "torch"})
    try:
        yield srv.wait_ready()
    finally:
        srv.stop()


def invoke(server, body, content_type="image/jpeg", accept=None, timeout=60):
    headers = {"Content-Type": content_type} if content_type else {}
    if accept:
        headers["Accept"] = accept
    return requests.post(f"{server.url}/invocations", data=body, headers=headers, timeout=timeout)


def one_record(body):
    """The payload of the response's one RecordIO record, unframed by seg's reader."""
    from seg.pipe.recordio import iter_records

    records = list(iter_records(io.BytesIO(body), source="response"))
    assert len(records) == 1, "the response must hold exactly one record"
    return records[0]


def one_record_like_the_notebook(body):
    """Buffer to a file and read one record with mx.recordio.MXRecordIO, as the AWS notebook does."""
    import mxnet as mx

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "response.rec")
        with open(path, "wb") as fh:
            fh.write(body)
        reader = mx.recordio.MXRecordIO(path, "r")
        payload = reader.read()
        assert reader.read() is None, "the response must hold exactly one record"
        reader.close()
    return payload


def probabilities(payload):
    """Decode the Record, squeeze the batch axis: (shape, C×H×W probabilities)."""
    features = decode_features(payload)
    shape = features["shape"][1].tolist()
    return shape, features["target"][1].reshape(shape).squeeze(axis=0)


def test_ping_is_200_with_an_empty_body_once_loaded(server):
    response = requests.get(f"{server.url}/ping", timeout=5)
    assert response.status_code == 200 and response.content == b""


def test_workers_run_the_torch_engine(server):
    for pid in server.worker_pids():
        with open(f"/proc/{pid}/maps") as fh:
            libraries = {line.split()[-1].rsplit("/", 1)[-1] for line in fh if "/" in line}
        assert any(name.startswith("libtorch_cpu") for name in libraries), sorted(libraries)
        assert not any(name.startswith("libmxnet") for name in libraries)


def test_execution_parameters_report_the_sagemaker_variables(server):
    response = requests.get(f"{server.url}/execution-parameters", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"MaxConcurrentTransforms": 3, "BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 1}


@pytest.mark.parametrize("accept", [None, "*/*", "image/png"])
@pytest.mark.parametrize("fmt, content_type", [("JPEG", "image/jpeg"), ("PNG", "image/png"),
                                               ("JPEG", "application/x-image")])
def test_png_response_is_a_class_index_mask_of_the_input_size(server, accept, fmt, content_type):
    response = invoke(server, encode(random_image(1), fmt), content_type, accept)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    mask = Image.open(io.BytesIO(response.content))
    assert mask.mode == "P" and mask.size == (64, 48)
    assert mask.getpalette()[:9] == [255, 255, 255, 255, 0, 0, 0, 0, 255]
    assert set(np.unique(np.asarray(mask))) <= {0, 1, 2}


def test_protobuf_response_holds_the_models_probabilities_and_agrees_with_the_png(server, model_dir):
    from seg.serve.predictor import Predictor

    rgb = random_image(2)
    body = encode(rgb, "PNG")  # lossless, so the in-process reference sees the same pixels
    response = invoke(server, body, "image/png", "application/x-protobuf")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/x-protobuf"
    shape, probs = probabilities(one_record(response.content))
    assert shape == [1, 3, 48, 64] and probs.dtype == np.float32
    assert probs.min() >= 0.0 and probs.max() <= 1.0
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-5)
    png = invoke(server, body, "image/png", "image/png")
    np.testing.assert_array_equal(probs.argmax(axis=0), np.asarray(Image.open(io.BytesIO(png.content))))
    recordio = invoke(server, body, "image/png", "application/x-recordio-protobuf")
    assert recordio.headers["Content-Type"] == "application/x-recordio-protobuf"
    assert recordio.content == response.content
    reference = Predictor.load(model_dir, engine="torch").probabilities(rgb)  # the served numbers are the model's
    np.testing.assert_allclose(probs, reference, atol=1e-4)


@pytest.mark.mxnet
def test_protobuf_response_unframes_with_mxnets_recordio_as_the_notebook_does(server):
    from ci_skips import require_engine

    require_engine("mxnet")
    response = invoke(server, encode(random_image(2), "PNG"), "image/png", "application/x-protobuf")
    assert response.status_code == 200
    assert one_record_like_the_notebook(response.content) == one_record(response.content)


def chunked(body):
    for start in range(0, len(body), 65536):
        yield body[start:start + 65536]


BAD_REQUESTS = {
    "unsupported content type": (lambda: ({"Content-Type": "text/csv"}, encode(random_image(0), "JPEG")),
                                 415, "Content-Type 'text/csv' is not supported"),
    "missing content type": (lambda: ({}, encode(random_image(0), "JPEG")), 415, "Content-Type missing"),
    "unsupported accept": (lambda: ({"Content-Type": "image/jpeg", "Accept": "application/json"},
                                    encode(random_image(0), "JPEG")), 406, "Accept 'application/json'"),
    "empty body": (lambda: ({"Content-Type": "image/jpeg"}, b""), 400, "body is empty"),
    "not an image": (lambda: ({"Content-Type": "image/jpeg"}, b"hello" * 100), 400, "not a decodable"),
    "truncated png": (lambda: ({"Content-Type": "image/png"}, encode(random_image(0), "PNG")[:3000]), 400,
                      "corrupt or truncated"),
    "body over the payload limit": (lambda: ({"Content-Type": "image/jpeg"}, bytes(1024 * 1024 + 1)), 413,
                                    "over the 1048576-byte payload limit"),
    "chunked body over the payload limit": (lambda: ({"Content-Type": "image/jpeg"}, chunked(bytes(1536 * 1024))),
                                            413, "over the 1048576-byte payload limit"),
    "image over the pixel limit": (lambda: ({"Content-Type": "image/png"}, encode(random_image(0, 96, 128), "PNG")),
                                   413, "128x96 = 12288 pixels, over the limit of 10000"),
    "header claiming a huge image": (lambda: ({"Content-Type": "image/png"}, png_header_only(100_000, 100_000)),
                                     413, "pixel limit"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_client_faults_are_4xx_with_a_message_and_leave_the_workers_alive(server, case):
    make, status, message = BAD_REQUESTS[case]
    workers = server.worker_pids()
    assert len(workers) == server.workers == 2, workers
    headers, body = make()
    response = requests.post(f"{server.url}/invocations", data=body, headers=headers, timeout=60)
    assert response.status_code == status, response.text
    assert message in response.text and response.headers["Content-Type"].startswith("text/plain")
    assert requests.get(f"{server.url}/ping", timeout=5).status_code == 200
    assert server.worker_pids() == workers


def test_unknown_paths_are_404_and_wrong_methods_405(server):
    assert requests.get(f"{server.url}/predict", timeout=5).status_code == 404
    response = requests.get(f"{server.url}/invocations", timeout=5)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert requests.post(f"{server.url}/ping", timeout=5).status_code == 405


def test_eight_clients_mixing_valid_and_invalid_requests_get_no_5xx_and_exact_answers(server):
    valid = {}  # name -> (body, content type, accept); references come from the server, one request each
    for seed, (height, width) in enumerate([(48, 64), (40, 40), (64, 48)]):
        rgb = random_image(10 + seed, height, width)
        valid[f"jpeg-png-{seed}"] = (encode(rgb, "JPEG"), "image/jpeg", "image/png")
        valid[f"png-protobuf-{seed}"] = (encode(rgb, "PNG"), "image/png", "application/x-recordio-protobuf")
    reference = {}
    for name, (body, content_type, accept) in valid.items():
        response = invoke(server, body, content_type, accept)
        assert response.status_code == 200
        reference[name] = response.content
    invalid = {name: case for name, case in BAD_REQUESTS.items() if not name.startswith("chunked")}

    def client(seed, count):
        rng = np.random.default_rng(seed)
        outcomes = []
        for _ in range(count):
            if rng.random() < 0.5:
                name = sorted(valid)[rng.integers(len(valid))]
                body, content_type, accept = valid[name]
                response = invoke(server, body, content_type, accept)
                outcomes.append((name, response.status_code, response.content == reference[name]))
            else:
                name = sorted(invalid)[rng.integers(len(invalid))]
                make, status, _ = invalid[name]
                headers, body = make()
                response = requests.post(f"{server.url}/invocations", data=body, headers=headers, timeout=60)
                outcomes.append((name, response.status_code, response.status_code == status))
        return outcomes

    workers = server.worker_pids()
    assert len(workers) == 2
    rounds = []
    for round_index in range(2):  # round 0 warms every worker up on every shape; round 1 must not grow
        with ThreadPoolExecutor(8) as pool:
            outcomes = [o for batch in pool.map(client, range(8 * round_index, 8 * round_index + 8), [25] * 8)
                        for o in batch]
        rounds.append({pid: rss_kib(pid) for pid in workers})
        assert len(outcomes) == 200
        assert [o for o in outcomes if o[1] >= 500] == []
        assert [o for o in outcomes if not o[2]] == []
        assert sum(o[0] in valid for o in outcomes) > 50
    assert server.worker_pids() == workers, "a worker was replaced"
    for pid in workers:
        growth = rounds[1][pid] - rounds[0][pid]
        assert growth < 32 * 1024, f"worker {pid} grew {growth} KiB over 200 requests: {rounds}"


def wait_accepted(server_port, client):
    """Bounded poll of /proc/net/tcp until the server side of `client` belongs to a process (was accepted)."""
    client_port = client.getsockname()[1]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], int(fields[9])
                if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
                    if inode:
                        return
        time.sleep(0.01)
    raise AssertionError("the server never accepted the connection")


def test_container_entry_serves_opt_ml_model_and_sigterm_lets_the_request_in_flight_finish(model_dir):
    server = Server(None, workers=1, env={"SEG_OPT_ML": str(model_dir.parent)}).wait_ready()
    try:
        body = encode(random_image(5), "JPEG")
        head = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as client:
            client.sendall(head + body[:100])
            wait_accepted(server.port, client)
            server.proc.send_signal(signal.SIGTERM)
            client.sendall(body[100:])
            response = b""
            while chunk := client.recv(65536):
                response += chunk
        status_line, _, rest = response.partition(b"\r\n")
        assert status_line == b"HTTP/1.1 200 OK", response[:300]
        png = Image.open(io.BytesIO(rest.partition(b"\r\n\r\n")[2]))
        assert png.size == (64, 48)
        assert server.proc.wait(60) == 0
        assert server.stdout == [], "stdout must stay empty (logs go to stderr)"
    finally:
        server.stop()


def run_cli(*args, env=None):
    cmd = [sys.executable, "-c", "import sys; from seg.cli import main; sys.exit(main())", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


def test_missing_model_folder_is_a_clear_error_without_starting_a_server(tmp_path):
    result = run_cli("serve", str(tmp_path / "nowhere"), "--port", str(free_port()))
    assert result.returncode == 1 and "nowhere does not exist" in result.stderr
    result = run_cli("serve", "--port", str(free_port()), env={"SEG_OPT_ML": str(tmp_path / "root")})
    assert result.returncode == 1 and f"{tmp_path / 'root' / 'model'} does not exist" in result.stderr


def test_folder_without_a_model_stops_the_server_with_the_load_error(tmp_path):
    result = run_cli("serve", str(tmp_path), "--host", "127.0.0.1", "--port", str(free_port()))
    assert result.returncode == 1
    assert "holds no model: expected model.params" in result.stderr
    assert "could not load the model" in result.stderr


def test_bad_batch_variable_is_rejected_before_starting(model_dir):
    result = run_cli("serve", str(model_dir), "--port", str(free_port()), env={"SAGEMAKER_BATCH_STRATEGY": "ALL"})
    assert result.returncode == 1 and "SAGEMAKER_BATCH_STRATEGY='ALL'" in result.stderr
