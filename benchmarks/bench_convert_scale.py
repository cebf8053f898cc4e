"""The S3-scale parts of `make bench-convert` (imported by bench_convert.py): latency hiding through a proxy,
peak memory of the whole process tree as the number of items grows, and the per-mask cost against the
fast bound (libspng decode + level-1 encode) and Datumaro, both run in their own venv (never .venv)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The repository before tests/: tests/gt2seg (no __init__) would otherwise shadow gt2seg as a namespace package.
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from s3proxy import S3Proxy  # noqa: E402

BUCKET = "bench"
FAST_BOUND = """
import sys, time, io, json
from pathlib import Path
import numpy as np, pyspng
from PIL import Image
masks = [Path(p) for p in json.load(open(sys.argv[1]))]
start, cpu = time.perf_counter(), time.process_time()
for path in masks:
    arr = pyspng.load(path.read_bytes())
    single = arr if arr.ndim == 2 else np.ascontiguousarray(arr[..., 0])
    out = io.BytesIO()
    Image.fromarray(single, "L").save(out, "PNG", compress_level=1)
print(json.dumps({"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}))
"""
DATUMARO = """
import sys, time, json
import datumaro as dm
start = time.perf_counter()
dataset = dm.Dataset.import_from(sys.argv[1], "voc_segmentation")
dataset.export(sys.argv[2], "voc_segmentation", save_media=True)
print(json.dumps({"seconds": time.perf_counter() - start, "items": len(dataset)}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto's S3 server in its own process (its CPU cost is paid equally by both latency runs)."""

    def __init__(self, root: Path):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "moto_server"), "-H", "127.0.0.1", "-p",
                                      str(self.port)], stdout=subprocess.DEVNULL, stderr=open(root / "moto.log", "wb"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("bench: moto_server did not start; see moto.log")

    def env(self, endpoint: str | None = None) -> dict:
        return {**os.environ, "AWS_ENDPOINT_URL": endpoint or self.endpoint, "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}

    def close(self):
        self.proc.terminate()
        self.proc.wait()


def upload_job(server: S3Server, job: Path) -> str:
    """Copy the job folder into the bucket; returns its manifest URI."""
    import boto3
    from boto3.s3.transfer import TransferConfig

    env = server.env()
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                          aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])
    client.create_bucket(Bucket=BUCKET)
    files = [p for p in sorted(job.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    config = TransferConfig(max_concurrency=8)
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: client.upload_file(str(p), BUCKET, f"{job.name}/{p.relative_to(job)}", Config=config),
                      files))
    return f"s3://{BUCKET}/{job.name}/output.manifest"


def timed_convert(gt2seg: str, manifest: str, out: Path, workers: int, env: dict, logs: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    with open(logs / "stderr.log", "wb") as stderr:
        code = subprocess.call([gt2seg, "convert", manifest, str(out), "--workers", str(workers), "--json"],
                               env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    seconds = time.perf_counter() - start
    if code:
        raise SystemExit(f"bench: convert of {manifest} exited {code}; see {logs}/stderr.log")
    shutil.rmtree(out)
    return seconds


def latency(job: Path, root: Path, gt2seg: str, workers: int, added_ms: float) -> dict:
    """The same job from the same S3 server through a proxy adding 0 ms and one adding `added_ms`,
    alternately, twice each: the best of each (the machine is shared; the first run also warms the server)."""
    server = S3Server(root)
    try:
        manifest = upload_job(server, job)
        seconds: dict = {}
        for _ in range(2):
            for ms in (0.0, added_ms):
                with S3Proxy(server.endpoint, latency_s=ms / 1000) as proxy:
                    took = timed_convert(gt2seg, manifest, root / "s3-out", workers, server.env(proxy.endpoint), root)
                seconds[ms] = min(seconds.get(ms, took), took)
    finally:
        server.close()
    return {"n": sum(1 for _ in (job / "output.manifest").open()), "workers": workers, "added_ms": added_ms,
            "seconds_0ms": seconds[0.0], "seconds_added": seconds[added_ms],
            "ratio": seconds[added_ms] / seconds[0.0]}


def fast_bound(python: str, masks: list[Path], root: Path) -> dict:
    listing = root / "masks.json"
    listing.write_text(json.dumps([str(m) for m in masks]))
    out = subprocess.run([python, "-c", FAST_BOUND, str(listing)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"bench: the fast bound failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def voc_copy(job: Path, target: Path) -> Path:
    """The job's images and masks as a VOC segmentation dataset (palette masks, class indices), for Datumaro."""
    import numpy as np
    from PIL import Image

    from make_synthetic_job import CLASSES, RGB

    root = target / "VOC2012"
    if (target / ".complete").exists():
        return root
    shutil.rmtree(target, ignore_errors=True)
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    palette = RGB.flatten().tolist() + [0] * (3 * (256 - len(CLASSES)))
    names = []
    lookup = {tuple(c): i for i, c in enumerate(RGB.tolist())}
    for line in (job / "output.manifest").read_text().splitlines():
        obj = json.loads(line)
        stem = Path(obj["source-ref"]).stem
        names.append(stem)
        shutil.copyfile(job / obj["source-ref"], root / "JPEGImages" / f"{stem}.jpg")
        with Image.open(job / obj["bench-ref"]) as img:
            if img.mode == "P":
                indices = np.asarray(img)
            else:
                arr = np.asarray(img.convert("RGB")).reshape(-1, 3)
                keys = arr[:, 0].astype(np.int32) << 16 | arr[:, 1].astype(np.int32) << 8 | arr[:, 2]
                table = {r << 16 | g << 8 | b: i for (r, g, b), i in lookup.items()}
                uniq, inverse = np.unique(keys, return_inverse=True)
                indices = np.array([table[int(k)] for k in uniq], np.uint8)[inverse].reshape(img.height, img.width)
        mask = Image.fromarray(indices.astype(np.uint8), "P")
        mask.putpalette(palette)
        mask.save(root / "SegmentationClass" / f"{stem}.png")
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(names) + "\n")
    (root / "labelmap.txt").write_text("# label:color_rgb:parts:actions\n" + "".join(
        f"{name.lower()}:{r},{g},{b}::\n" for (name, _), (r, g, b) in zip(CLASSES, RGB.tolist())))
    (target / ".complete").write_text("")
    return root


def datumaro(python: str, job: Path, root: Path) -> dict:
    src = voc_copy(job, root / f"voc-{job.name}")
    out = root / "datumaro-out"
    shutil.rmtree(out, ignore_errors=True)
    result = subprocess.run([python, "-c", DATUMARO, str(src), str(out)], capture_output=True, text=True)
    shutil.rmtree(out, ignore_errors=True)
    if result.returncode:
        raise SystemExit(f"bench: Datumaro failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def tree_peak(gt2seg: str, manifest: Path, out: Path, workers: int, sample_kb) -> float:
    """Peak summed memory (MB) of the convert's whole process tree, sampled every 0.1 s."""
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.Popen([gt2seg, "convert", str(manifest), str(out), "--workers", str(workers), "--json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak, done = [0], threading.Event()

    def sample():
        while not done.wait(0.1):
            peak[0] = max(peak[0], sample_kb(proc.pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    code = proc.wait()
    done.set()
    thread.join()
    if code:
        raise SystemExit(f"bench: convert of {manifest} exited {code}")
    shutil.rmtree(out)
    return peak[0] / 1024
