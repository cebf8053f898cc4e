"""A small HTTP client for a running `seg serve` (or SageMaker-compatible) endpoint: image in, mask out.

No MXNet: the overlay is drawn from the colours in the returned PNG's palette (the server puts each class's
colour at its index), so the client needs nothing but the response.
"""
from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from gt2seg.atomic import atomic_write
from gt2seg.errors import ImageError
from gt2seg.images import decode_rgb, load_strict, open_strict
from gt2seg.render import overlay
from seg.errors import InvokeError

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}


@dataclass
class InvokeResult:
    image: str
    mask: str
    overlay: str
    class_pixels: dict  # class index → pixel count in the returned mask
    seconds: float

    def to_json(self) -> dict:
        return {"image": self.image, "mask": self.mask, "overlay": self.overlay,
                "class_pixels": {str(k): v for k, v in self.class_pixels.items()}, "seconds": self.seconds}


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def last_error_line(log_path) -> Optional[str]:
    """The line of a server's log that says why it stopped: the last `Error: ...` line (seg's one-line
    errors), else the last line naming an error, else the last line; None for a missing or empty log."""
    try:
        lines = [line.strip() for line in Path(log_path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return None
    for wanted in (lambda line: line.startswith("Error:"), lambda line: "error" in line.lower()):
        found = [line for line in lines if wanted(line)]
        if found:
            return found[-1]
    return lines[-1] if lines else None


def wait_ready(url: str, timeout: float, server_pid: Optional[int] = None, server_log=None) -> None:
    """Poll GET /ping until it answers 200 (the model is loaded) or `timeout` seconds pass.

    With `server_pid` (the `seg serve` that will answer) the wait stops the moment that process exits, with
    the last error line of `server_log` when given, instead of polling a dead port until the timeout.
    """
    import requests

    ping = f"{url.rstrip('/')}/ping"
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if server_pid is not None and not process_alive(server_pid):
            why = last_error_line(server_log) if server_log else None
            why = why[len("Error:"):].strip() if why and why.startswith("Error:") else why
            raise InvokeError(f"the server (pid {server_pid}) exited before {ping} answered 200: "
                              + (why if why else f"see its log{f' {server_log}' if server_log else ''}"))
        try:
            response = requests.get(ping, timeout=2)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        if time.monotonic() > deadline:
            where = f"; its log: {server_log}" if server_log else "; its log says why it is not ready"
            raise InvokeError(f"{ping} did not answer 200 within {timeout:g} s (last: {last}); is `seg serve` "
                              f"running on that port?{where}")
        time.sleep(0.2)


def invoke(url: str, image_path, out_dir, timeout: float = 60.0) -> InvokeResult:
    """POST the image to `<url>/invocations`, write `<stem>_mask.png` (as returned) and `<stem>_overlay.png`."""
    import requests

    image_path, out_dir = Path(image_path), Path(out_dir)
    content_type = CONTENT_TYPES.get(image_path.suffix.lower())
    if content_type is None:
        raise InvokeError(f"{image_path}: send a .jpg, .jpeg or .png image")
    body = image_path.read_bytes()
    started = time.perf_counter()
    try:
        response = requests.post(f"{url.rstrip('/')}/invocations", data=body, timeout=timeout,
                                 headers={"Content-Type": content_type, "Accept": "image/png"})
    except requests.RequestException as exc:
        raise InvokeError(f"cannot reach {url}/invocations: {exc}") from None
    seconds = round(time.perf_counter() - started, 3)
    if response.status_code != 200:
        raise InvokeError(f"{url}/invocations answered {response.status_code}: {response.text.strip()[:300]}")
    try:
        mask = load_strict(open_strict(response.content, what="the answer", formats=("PNG",)), what="the answer")
    except ImageError as exc:
        raise InvokeError(f"{url}/invocations did not answer a PNG ({exc})") from None
    if mask.mode != "P":
        raise InvokeError(f"{url}/invocations answered a {mask.mode} image; expected a class-index palette PNG")
    try:
        rgb = decode_rgb(body, what=str(image_path))  # the pixels the server saw, for the overlay
    except ImageError as exc:
        raise InvokeError(str(exc)) from None
    if rgb.shape[:2] != (mask.height, mask.width):
        raise InvokeError(f"the mask is {mask.width}x{mask.height} but the image is {rgb.shape[1]}x{rgb.shape[0]}")
    mask_path, overlay_path = out_dir / f"{image_path.stem}_mask.png", out_dir / f"{image_path.stem}_overlay.png"
    atomic_write(mask_path, response.content)
    buffer = io.BytesIO()
    Image.fromarray(overlay(rgb, mask)).save(buffer, format="PNG")
    atomic_write(overlay_path, buffer.getvalue())
    values, counts = np.unique(np.asarray(mask), return_counts=True)
    return InvokeResult(str(image_path), str(mask_path), str(overlay_path),
                        {int(v): int(c) for v, c in zip(values, counts)}, seconds)
