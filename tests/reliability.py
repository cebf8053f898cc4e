"""The reliability table of `gt2seg convert`: bad inputs, and kill -9 points.

Shared by tests/test_reliability_convert.py and benchmarks/reliability_gt2seg.py (`make bench-reliability`).
Every case runs the real CLI in a subprocess on a small job under `root`: root/job (output.manifest with
four good lines, images/img00..03.jpg, masks/, and images/extra.jpg that no line uses yet: `line()`'s
default source) and OUT = root/out.

To add a bad input, add a Case to CASES: what to break (extra manifest `lines`, job `files` to write,
CLI `args`, or a `prepare(root)` for anything else) and a substring of the one error line expected.
The run must then exit non-zero with exactly one line on stderr (progress bars aside), "Error: ...",
no traceback, and the job's files unchanged.
"""
from __future__ import annotations

import errno
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from PIL import Image

from gtjob import SEG, Job, blocks, color_map, color_png, jpeg, palette_png, same_layout, standard_job, tree

GT2SEG = [sys.executable, "-m", "gt2seg.cli", "convert"]
MASK = "masks/0_2022-02-10T17:41:00.724225.png"  # the first good line's mask


def line(source="images/extra.jpg", mask=MASK, cmap=None, **meta) -> str:
    """A labeled manifest line (as text) for the standard job's `city-ref` attribute."""
    return json.dumps({"source-ref": source, "city-ref": mask, "city-ref-metadata": {
        "internal-color-map": cmap if cmap is not None else color_map(), "type": SEG, **meta}})


def _two_keys(first: str, second: str) -> dict:
    return {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"},
            first: {"class-name": "building", "hex-color": "#2ca02c"},
            second: {"class-name": "car", "hex-color": "#ff7f0e"}}


@dataclass(frozen=True)
class Case:
    name: str
    expect: str  # substring of the one error line
    lines: tuple[str, ...] = ()  # appended to the manifest: the first is line 5
    files: dict = field(default_factory=dict)  # job-relative path -> bytes (written before the run)
    args: tuple[str, ...] = ()  # extra CLI arguments
    prepare: Callable[[Path], object] | None = None  # anything else; a returned handle is closed after the run
    out: str = "out"  # relative to root
    manifest: str = "job/output.manifest"  # relative to root
    images: int = 4  # good lines in the job
    only_if: str = ""  # "root" or "mount" (root, allowed to mount): who can run the case
    unprivileged: bool = False  # run the CLI as a user whom file modes stop (under root: root without capabilities)


def _symlink_out_of_job(root: Path) -> None:
    secret = root / "elsewhere" / "secret.jpg"
    secret.parent.mkdir()
    secret.write_bytes(jpeg(seed=7))
    (root / "job" / "images" / "link.jpg").symlink_to(secret)


def _file_in_path(root: Path) -> None:
    (root / "afile").write_text("a file, not a folder")


def _foreign_out(root: Path) -> None:
    (root / "out").mkdir()
    (root / "out" / "notes.txt").write_text("mine")


def _convert_once(root: Path) -> None:
    """A finished earlier run into OUT."""
    assert subprocess.run([*GT2SEG, root / "job" / "output.manifest", root / "out"],
                          capture_output=True).returncode == 0


class _Immutable:
    """`chattr +i` on a folder; close() undoes it so that the folder can be removed."""

    def __init__(self, path: Path):
        self.path = str(path)
        subprocess.run(["chattr", "+i", self.path], check=True)

    def close(self):
        subprocess.run(["chattr", "-i", self.path], check=True)


def _immutable_out(root: Path) -> _Immutable:
    (root / "out").mkdir()
    return _Immutable(root / "out")


def _immutable_after_a_run(root: Path) -> _Immutable:
    _convert_once(root)
    (root / "out" / "train.manifest").unlink()  # the next run must create a file in OUT
    return _Immutable(root / "out")


def _read_only_parent(root: Path) -> None:
    (root / "ro").mkdir()
    (root / "ro").chmod(0o555)


class _ReadOnlyMount:
    """A folder bind-mounted read-only onto itself: read-only even for root, whom modes do not stop."""

    def __init__(self, path: Path):
        path.mkdir()
        self.path = str(path)
        subprocess.run(["mount", "--bind", self.path, self.path], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", self.path], check=True, capture_output=True)

    def close(self):
        subprocess.run(["umount", self.path], check=True)


def _user_files_in_the_way(root: Path) -> None:
    (root / "out" / ".gt2seg").mkdir(parents=True)  # looks like gt2seg's OUT, but these files are not
    for side in ("train", "validation"):
        (root / "out" / side).mkdir()
        (root / "out" / side / "img00.jpg").write_bytes(b"the user's own file")


def _damaged_placed_json(root: Path) -> None:
    _convert_once(root)
    (root / "out" / ".gt2seg" / "placed.json").write_text('["train/img00.jpg", ')


def _locked_out(root: Path):
    from gt2seg import layout

    return layout.claim(root / "out", [])


CASES = [
    # the manifest's lines
    Case("not JSON", "line 5: not valid JSON", lines=('{"source-ref": ',)),
    Case("duplicate key", "line 5: duplicate key 'source-ref'",
         lines=('{"source-ref": "images/img00.jpg", "source-ref": "images/img01.jpg"}',)),
    Case("duplicate key in a colour map", "line 5: duplicate key 'class-name'",
         lines=(line().replace('"class-name": "road"', '"class-name": "road", "class-name": "car"'),)),
    Case("NaN", "line 5: NaN is not valid JSON", lines=('{"source-ref": "images/img00.jpg", "score": NaN}',)),
    Case("-Infinity", "line 5: -Infinity is not valid JSON", lines=('{"a": -Infinity}',)),
    Case("lone surrogate escape", "line 5: '\\ud800' is a lone surrogate escape", lines=(line("images/\ud800.jpg"),)),
    Case("lone surrogate in a class name", "line 5: '\\udc00' is a lone surrogate escape",
         lines=(line().replace('"road"', '"ro\\udc00ad"'),)),
    Case("nested too deeply", "line 5: nested too deeply", lines=("[" * 100_000 + "]" * 100_000,)),
    Case("a list, not an object", "line 5: a JSON object is expected, got list", lines=("[1, 2]",)),
    Case("not UTF-8", "is not UTF-8 text", files={"output.manifest": b"\xff\xfe{\x00}\x00"}),
    Case("empty manifest", "has no usable line", images=0, files={"output.manifest": b""}),
    Case("only unlabeled lines", "no semantic-segmentation label attribute", images=0, lines=('{"source-ref": "images/a.jpg"}',)),
    Case("classification job", "no semantic-segmentation label attribute", images=0,
         lines=('{"source-ref": "a.jpg", "c": 1, "c-metadata": {"type": "groundtruth/image-classification"}}',)),
    Case("two segmentation attributes", "several semantic-segmentation label attributes",
         lines=(line().replace("city-ref", "other-ref"),)),
    Case("unknown --label-attribute", "'nope' is not in the manifest", args=("--label-attribute", "nope")),
    # colour maps
    Case("non-ASCII digit key", "line 5: internal-color-map entry '¹'", lines=(line(cmap=_two_keys("1", "¹")),)),
    Case("keys 1 and 01", "line 5: internal-color-map keys '1' and '01' are both mask value 1",
         lines=(line(cmap=_two_keys("1", "01")),)),
    Case("key above 255", "line 5: color-map key 256 does not fit", lines=(line(cmap=_two_keys("1", "256")),)),
    Case("bad hex-color", "line 5: hex-color 'green'",
         lines=(line(cmap={"0": {"class-name": "BACKGROUND", "hex-color": "green"}}),)),
    Case("no internal-color-map", "line 5: the segmentation metadata has no 'internal-color-map'",
         lines=(line(cmap={}),)),
    Case("mask ref not a string", "line 5: 'city-ref' must be the mask's URI",
         lines=(line().replace(f'"{MASK}"', "5"),)),
    # refs
    Case("ref outside the job", "line 5: '../secret.jpg' points outside", lines=(line("../secret.jpg"),)),
    Case("absolute ref", "line 5: '/etc/hostname' is an absolute local path", lines=(line("/etc/hostname"),)),
    Case("http ref", "line 5: 'http://example.com/a.jpg': only s3:// URIs", lines=(line("http://example.com/a.jpg"),)),
    Case("NUL in a ref", "line 5: 'images/a\\x00b.jpg' holds a NUL", lines=(line("images/a\u0000b.jpg"),)),

    Case("symlink leaving the job", "line 5: 'images/link.jpg' leads outside", lines=(line("images/link.jpg"),),
         prepare=_symlink_out_of_job),
    # images and masks
    Case("image not an image", "line 5: image", files={"images/bad.jpg": b"<html>not an image</html>"},
         lines=(line("images/bad.jpg"),)),
    Case("empty image", "is empty (0 bytes)", files={"images/empty.jpg": b""}, lines=(line("images/empty.jpg"),)),
    Case("truncated image", "damaged or truncated", files={"images/cut.jpg": jpeg(seed=5)[:300]},
         lines=(line("images/cut.jpg"),)),
    Case("truncated mask", "line 5: mask", files={"masks/cut.png": palette_png(blocks())[:60]},
         lines=(line(mask="masks/cut.png"),)),
    Case("image ref is a folder", "is a folder, not a file", lines=(line("images"),)),
    Case("mask of another size", "pass --resize-masks", files={"masks/big.png": palette_png(blocks(64, 48))},
         lines=(line(mask="masks/big.png"),)),
    Case("colour not in the colour map", "has colours that are not in the line's internal-color-map",
         files={"masks/odd.png": color_png(blocks(), {0: "#ffffff", 1: "#2ca02c", 2: "#123456"})},
         lines=(line(mask="masks/odd.png"),)),
    Case("decompression bomb", "too large to decode safely", files={"images/bomb.jpg": jpeg(64, 64)},
         lines=(line("images/bomb.jpg"),), args=("--max-pixels", "1000")),
    # options
    Case("--max-pixels -5", "max_pixels must be a positive number", args=("--max-pixels", "-5")),
    Case("--workers 0", "--workers must be at least 1", args=("--workers", "0")),
    Case("--validation-fraction 1.5", "validation fraction must be between 0 and 1",
         args=("--validation-fraction", "1.5")),
    Case("--shard 3/2", "--shard I/N needs 0 <= I < N", args=("--shard", "3/2")),
    Case("--ref-root without =", "expected PREFIX=DIR", args=("--ref-root", "nope")),
    Case("--alpha-threshold 999", "--alpha-threshold must be between", args=("--alpha-threshold", "999")),
    Case("one image only", "at least 2 distinct images", images=1),
    Case("manifest missing", "does not exist", manifest="job/absent.manifest"),
    Case("manifest is a folder", "is a folder, not a file", manifest="job/images"),
    # the output folder
    Case("OUT is a file", "is a file", out="afile", prepare=_file_in_path),
    Case("OUT passes through a file", "Not a directory", out="afile/out", prepare=_file_in_path),
    Case("OUT holds someone else's files", "is not empty and was not written by gt2seg", prepare=_foreign_out),
    Case("OUT holds the inputs", "contains the input", out="."),
    Case("OUT locked by another run", "is being written by another gt2seg run (pid", prepare=_locked_out),
    Case("user files where gt2seg writes", "was not written by gt2seg, which would replace it",
         prepare=_user_files_in_the_way),
    Case("damaged OUT/.gt2seg/placed.json", "placed.json is not gt2seg's JSON", args=("--seed", "3"),
         prepare=_damaged_placed_json),
    Case("OUT immutable", "Operation not permitted", prepare=_immutable_out, only_if="root"),
    Case("OUT immutable after a run", "Operation not permitted", prepare=_immutable_after_a_run, only_if="root"),
    Case("OUT under a read-only folder", "Permission denied", out="ro/out", prepare=_read_only_parent,
         unprivileged=True),
    Case("OUT under a read-only mount", "Read-only file system", out="ro/out",
         prepare=lambda root: _ReadOnlyMount(root / "ro"), only_if="mount"),
]


def runnable(case: Case) -> bool:
    is_root = os.geteuid() == 0
    if case.only_if == "mount":
        return is_root and _can_mount()
    return case.only_if == "" or is_root


# Root passes every file-mode check (CAP_DAC_OVERRIDE), so a read-only folder does not stop it. Without its
# capabilities (none inherited, none in the bounding set, so none after exec) a uid-0 process is held to the
# owner's mode bits like any user, and can still reach the test's own 0700 temporary folders.
WITHOUT_ROOT_CAPABILITIES = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"]


def unprivileged(command: list) -> list:
    """`command` run so that file modes stop it: as is for a user, without capabilities for root."""
    return [*WITHOUT_ROOT_CAPABILITIES, *command] if os.geteuid() == 0 else list(command)


@functools.lru_cache(maxsize=None)
def _can_mount() -> bool:
    with tempfile.TemporaryDirectory() as folder:
        try:
            _ReadOnlyMount(Path(folder) / "probe").close()
        except (OSError, subprocess.CalledProcessError):
            return False
    return True


@dataclass
class Outcome:
    returncode: int
    errors: list[str]  # stderr lines, progress bars left out
    inputs_unchanged: bool

    def ok(self, expect: str) -> bool:
        return (self.returncode != 0 and self.inputs_unchanged and len(self.errors) == 1
                and self.errors[0].startswith("Error: ") and expect in self.errors[0])


def build_job(root: Path, case: Case) -> None:
    job = standard_job(root / "job", n=case.images)
    job.lines += case.lines
    job.write()
    job.put("images/extra.jpg", jpeg(seed=99))
    for relative, data in case.files.items():
        (root / "job" / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / "job" / relative).write_bytes(data)


def run_case(case: Case, root: Path) -> Outcome:
    build_job(root, case)
    handle = case.prepare(root) if case.prepare else None
    before = tree(root / "job")
    try:
        command = [*GT2SEG, str(root / case.manifest), str(root / case.out), *case.args]
        result = subprocess.run(unprivileged(command) if case.unprivileged else command,
                                capture_output=True, text=True, timeout=300)
    finally:
        if handle is not None:
            handle.close()
    errors = [x for x in result.stderr.split("\n") if x.strip() and not _progress(x) and not _usage(x)]
    return Outcome(result.returncode, errors, tree(root / "job") == before)


def _progress(text: str) -> bool:
    return text.lstrip("\r").startswith("convert:") or "\rconvert:" in text


def _usage(text: str) -> bool:
    """Click's two-line frame around a usage error's one Error line."""
    return text.startswith(("Usage: ", "Try '"))


# ---------------------------------------------------------------- kill -9 points


class Fifo:
    """An image turned into a named pipe: the convert that reads it blocks there, deterministically."""

    def __init__(self, path: Path):
        self.path, self.data, self.fd = path, path.read_bytes(), None
        path.unlink()
        os.mkfifo(path)

    def wait_for_reader(self, proc, timeout=120) -> None:
        """Return once `proc` (or its worker) has opened the pipe; the held write end keeps it blocked."""
        deadline = time.monotonic() + timeout
        while self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO or proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"the convert never opened {self.path}: {exc}") from None
                time.sleep(0.002)

    def release(self) -> None:
        """Let the reader go on: the image's bytes, then end of file."""
        os.set_blocking(self.fd, True)
        os.write(self.fd, self.data)
        os.close(self.fd)
        self.fd = None

    def restore(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.path.unlink()
        self.path.write_bytes(self.data)


@dataclass(frozen=True)
class KillPoint:
    name: str
    workers: int = 1
    block_at: int | None = None  # the item whose image is a pipe: the run is killed blocked reading it
    appears: str | None = None  # or: killed as soon as this path under OUT is (re)written
    items: int = 12
    first_seed: int | None = None  # a finished run with this seed first; the killed run uses seed 2


KILL_POINTS = [
    KillPoint("OUT claimed, no item converted yet", block_at=0),
    KillPoint("5 of 12 items converted", block_at=5),
    KillPoint("pool of 2 workers busy", workers=2, block_at=6),
    KillPoint("placing the layout", appears="train", items=300),
    KillPoint("re-placing after a seed change", appears=".gt2seg/placed.json", items=300, first_seed=1),
]


@dataclass
class KillOutcome:
    killed: bool  # SIGKILL landed before the run finished
    orphans: list[int]  # processes of the run still alive after it
    complete_files: bool  # every file left in OUT reads whole
    rerun_ok: bool  # the re-run exits 0, equals a clean run, and kept the user's file

    @property
    def ok(self) -> bool:
        return self.killed and not self.orphans and self.complete_files and self.rerun_ok


def _session(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def _wait_gone(sid: int, timeout=60) -> list[int]:
    deadline = time.monotonic() + timeout
    while _session(sid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return _session(sid)


def _complete(out: Path) -> bool:
    for path in out.rglob("*"):
        if not path.is_file() or path.name.endswith(".tmp"):
            continue
        try:
            if path.suffix in (".png", ".jpg"):
                Image.open(path).load()
            elif path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".manifest":
                [json.loads(text) for text in path.read_text().splitlines()]
        except Exception:
            return False
    return True


def _identity(path: Path):
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns


def run_kill_point(point: KillPoint, root: Path) -> KillOutcome:
    job = Job(root / "job")
    for i in range(point.items):
        job.add(f"k{i:03d}", blocks(classes=(0, 1, 2) if i % 3 else (0, 2), seed=i))
    manifest = job.write()
    out = root / "out"
    args = [manifest, str(out), "--workers", str(point.workers), "--seed", "2"]
    if point.first_seed is not None:
        first = subprocess.run([*GT2SEG, manifest, out, "--seed", str(point.first_seed)], capture_output=True)
        assert first.returncode == 0, first.stderr
        (out / "train" / "mine.txt").write_text("the user's own file")
    report_before = _identity(out / "report.json")
    fifo = Fifo(root / "job" / "images" / f"k{point.block_at:03d}.jpg") if point.block_at is not None else None
    proc = subprocess.Popen([*GT2SEG, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        if fifo is not None:
            fifo.wait_for_reader(proc)
        else:
            target, before = out / point.appears, _identity(out / point.appears)
            deadline = time.monotonic() + 120
            while _identity(target) == before and proc.poll() is None:
                if time.monotonic() > deadline:  # busy-poll (the window is a few milliseconds), never forever
                    raise AssertionError(f"{target} did not change within 120 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    killed = proc.returncode == -signal.SIGKILL and _identity(out / "report.json") == report_before
    orphans = _wait_gone(proc.pid)
    for pid in orphans:
        os.kill(pid, signal.SIGKILL)
    complete = _complete(out)
    if fifo is not None:
        fifo.restore()
    rerun = subprocess.run([*GT2SEG, *args], capture_output=True, text=True)
    clean = subprocess.run([*GT2SEG, manifest, str(root / "clean"), "--seed", "2"], capture_output=True)
    kept = point.first_seed is None or (out / "train" / "mine.txt").exists()
    if point.first_seed is not None and kept:
        (out / "train" / "mine.txt").unlink()  # the user's, so not in a clean run
    rerun_ok = rerun.returncode == 0 and clean.returncode == 0 and kept and same_layout(out, root / "clean")
    return KillOutcome(killed, orphans, complete, rerun_ok)
