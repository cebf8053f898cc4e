"""Label Studio's JSON export (Export -> JSON): a list of tasks, each with its image URL in `data` and its
annotations, whose results hold brush strokes (`brushlabels`: Label Studio's RLE of the RGBA stroke picture)
and polygons (`polygonlabels`: points in percent of the image's width and height).

Masks are drawn by the pool workers (gt2seg.drawing): brush RLE with the decoder there (Label Studio's own
format; alpha >= --alpha-threshold is the stroke), polygons with pycocotools' polygon fill after percent ->
pixels (x * original_width / 100), so they are COCO's pixels for the same outline. Results are painted in the
annotation's order and overlaps follow --overlap, as for COCO. Other result types (rectangles, choices, text)
are not masks and are left out.

Which annotation: cancelled ones never count; of the rest, `--annotation ground-truth` (the default) takes the
one flagged ground truth (the latest such), else the latest (by `updated_at`, then `created_at`, then id);
`--annotation latest` takes the latest whatever the flags. A task without an annotation is skipped as
unlabeled (counted).

Image URLs: `--ref-root PREFIX=DIR` rewrites a URL's prefix to a local folder or an s3:// prefix, exactly as
`gt2seg convert --ref-root` rewrites manifest refs (first match wins). Without a match, Label Studio's upload
URLs `/data/upload/<project>/<file>` are read from SRC's `upload/<project>/<file>` (its media folder's layout),
`/data/local-files/?d=<path>` is read as `/data/local-files/<path>` (map that prefix with --ref-root),
s3:// URLs as they are, and relative paths under SRC; any other URL maps to nothing, and its task is refused
(or skipped under --on-error skip). Classes: BACKGROUND, then the labels used, by name (or a --class-list).
"""
from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote, urlsplit

from gt2seg import storage
from gt2seg.classes import BACKGROUND, IGNORE, IGNORE_NAME, is_background
from gt2seg.drawing import OVERLAPS, Drawing, Shape, brush_problem, polygon_problem
from gt2seg.errors import Gt2SegError, SourceError
from gt2seg.importers.base import Importer, Items, Param, Source, class_table, list_rows
from gt2seg.manifest import ColorEntry

LAYOUT = "Label Studio's JSON export: a .json file listing tasks (data, annotations, results)"
KINDS = {"brushlabels": "brush", "polygonlabels": "polygons"}
UPLOAD, LOCAL_FILES = "/data/upload/", "/data/local-files/"


def _tasks_file(source: Source, given: str | None) -> str:
    if given:
        return source.relative(given)
    found = sorted(f for f in source.files if "/" not in f and f.endswith(".json") and f != "result.json")
    if len(found) != 1:
        what = "none" if not found else ", ".join(found)
        raise SourceError(f"{source.root}: cannot tell the export file among the top-level .json files ({what}); "
                          "name it with --tasks FILE")
    return found[0]


def _load(source: Source, relative: str) -> list:
    try:
        tasks = json.loads(source.read_text(relative, LAYOUT))
    except ValueError as exc:
        raise SourceError(f"{relative}: not JSON ({exc}); expected {LAYOUT}") from None
    if isinstance(tasks, dict):  # one task exported alone
        tasks = [tasks]
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise SourceError(f"{relative}: not a list of task objects; expected {LAYOUT}")
    return tasks


def _chosen(annotations: list, rule: str) -> dict | None:
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if rule == "ground-truth" and any(a.get("ground_truth") for a in usable):
        usable = [a for a in usable if a.get("ground_truth")]
    key = (lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), str(a.get("created_at") or ""),
                      a.get("id") if isinstance(a.get("id"), int) else -1))
    return max(usable, key=key, default=None)


def _url_ref(url: str) -> str:
    """The URL as a ref: Label Studio's own /data/ URLs decoded (host dropped), local-files' ?d= made a path."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.path.startswith("/data/"):
        parts = urlsplit(parts.path + ("?" + parts.query if parts.query else ""))
    if parts.path.startswith(LOCAL_FILES) and not parts.scheme:
        d = parse_qs(parts.query).get("d")
        return LOCAL_FILES + d[0].lstrip("/") if d else unquote(parts.path)
    if parts.path.startswith(UPLOAD) and not parts.scheme:
        return unquote(parts.path)
    return url


def _source_ref(source: Source, url: str, ref_roots) -> tuple[str | None, str, str]:
    """(ref or None, skip reason, why not) of a task's image URL."""
    ref = _url_ref(url)
    if any(ref.startswith(prefix) for prefix, _ in ref_roots):
        return ref, "", ""
    if storage.is_s3(ref):
        return ref, "", ""
    if ref.startswith(UPLOAD):
        ref = "upload/" + ref[len(UPLOAD):]
    elif "://" in ref or ref.startswith("/") or not ref:
        return None, "unmapped-url", (f"image URL {url!r} maps to no folder; map it with --ref-root "
                                      "PREFIX=DIR (a local folder or s3:// prefix)")
    try:
        relative = source.relative(ref)
    except SourceError as exc:
        return None, "unmapped-url", f"image URL {url!r}: {exc}"
    if relative not in source.files:
        return None, "missing-object", f"image URL {url!r}: {storage.join(source.root, relative)} does not exist"
    return relative, "", ""


def _label(result: dict, kind: str) -> str | None:
    labels = (result.get("value") or {}).get(kind)
    return labels[0] if isinstance(labels, list) and len(labels) == 1 and isinstance(labels[0], str) else None


def _shape(result: dict, kind: str, key: int, width: int, height: int, what: str) -> Shape | str:
    value = result.get("value") or {}
    if KINDS[kind] == "brush":
        rle = value.get("rle", result.get("rle"))
        if not (isinstance(rle, list) and all(isinstance(b, int) and 0 <= b < 256 for b in rle)):
            return "brush result without an RLE list of bytes"
        problem = brush_problem(bytes(rle), width, height)
        return problem or Shape(key, "brush", bytes(rle), what)
    points = value.get("points")
    if not (isinstance(points, list) and all(isinstance(p, list) and len(p) == 2 for p in points)):
        return "polygon result without a list of [x, y] points"
    flat = [c for x, y in points for c in (x, y)]
    problem = polygon_problem(flat)
    if problem:
        return problem
    return Shape(key, "polygons", (tuple(c * (width if i % 2 == 0 else height) / 100 for i, c in enumerate(flat)),),
                 what)


def _classes(source: Source, settings: dict, tasks: list) -> list[str]:
    if settings["class_list"]:
        rows = list_rows(source, settings["class_list"], "a class list: one label per line")
        names = [" ".join(fields) for _, fields in rows]
        return names if any(is_background(n) for n in names) else [BACKGROUND, *names]
    used = set()
    for task in tasks:
        for annotation in task.get("annotations") or ():
            for result in (annotation.get("result") or ()) if isinstance(annotation, dict) else ():
                kind = str(result.get("type", "")).lower() if isinstance(result, dict) else ""
                if kind in KINDS and _label(result, kind) is not None:
                    used.add(_label(result, kind))
    return [BACKGROUND, *sorted(n for n in used if not is_background(n))]


def _task_shapes(task: dict, annotation: dict, key_of: dict, overlap: str, where: str):
    """The annotation's Drawing, or (reason, why not)."""
    shapes, size = [], None
    for n, result in enumerate(annotation.get("result") or ()):
        kind = str(result.get("type", "")).lower() if isinstance(result, dict) else ""
        if kind not in KINDS:
            continue
        what = f"result {result.get('id', n)!r}"
        label = _label(result, kind)
        if label is None:
            return "invalid-result", f"{where} {what}: expected one label in value.{kind}"
        if label not in key_of and not is_background(label):
            return "unknown-label", f"{where} {what}: label {label!r} is not in --class-list"
        width, height = result.get("original_width"), result.get("original_height")
        if not (isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0):
            return "invalid-result", f"{where} {what}: no original_width / original_height"
        if size not in (None, (width, height)):
            return "invalid-result", (f"{where} {what}: original size {width} x {height} differs from the task's "
                                      f"other results ({size[0]} x {size[1]})")
        size = (width, height)
        shape = _shape(result, kind, 0 if is_background(label) else key_of[label], width, height, what)
        if isinstance(shape, str):
            return "invalid-result", f"{where} {what}: {shape}"
        shapes.append(shape)
    width, height = size or (1, 1)  # no mask result: all background, spread over the image (see gt2seg.masks)
    return Drawing(width, height, tuple(shapes), overlap, where)


def read(source: Source, settings: dict):
    relative = _tasks_file(source, settings["tasks"])
    tasks = _load(source, relative)
    from gt2seg.convert import parse_ref_root  # numpy, Pillow: only once a dataset is read

    try:
        ref_roots = tuple(parse_ref_root(value) for value in settings["ref_root"])
    except Gt2SegError as exc:
        raise SourceError(f"--ref-root {exc}") from None
    names = _classes(source, settings, tasks)
    table, color_map = class_table([(name, None) for name in names])
    color_map = (*color_map, ColorEntry(IGNORE, IGNORE_NAME, None))
    key_of = {name: key for key, name in enumerate(names)}
    items = Items("label-studio")
    for n, task in enumerate(tasks):
        line, where = n + 1, f"{relative} task {task.get('id', n)!r}"
        url = (task.get("data") or {}).get(settings["data_key"]) if isinstance(task.get("data"), dict) else None
        if not isinstance(url, str):
            items.invalid(line, "no-image-url", f"{where}: data has no {settings['data_key']!r} URL "
                                                "(name the image's data key with --data-key)")
            continue
        annotation = _chosen(task.get("annotations") or [], settings["annotation"])
        if annotation is None:
            items.skip(line, "unlabeled", f"{where} has no annotation (or only cancelled ones)")
            continue
        drawing = _task_shapes(task, annotation, key_of, settings["overlap"], where)
        if isinstance(drawing, tuple):
            items.invalid(line, *drawing)
            continue
        ref, reason, problem = _source_ref(source, url, ref_roots)
        if ref is None:
            items.invalid(line, reason, f"{where}: {problem}")
            continue
        items.add(line, ref, f"{relative}#task-{task.get('id', n)}", color_map, drawing=drawing)
    return items.job(source, table, official=False, ref_roots=ref_roots)


def detect(source: Source) -> bool:
    """One top-level .json file (other than COCO's result.json) holding a list of tasks with `data`."""
    found = [f for f in source.files if "/" not in f and f.endswith(".json") and f != "result.json"]
    if len(found) != 1:
        return False
    try:
        head = source.read_text(found[0], LAYOUT).lstrip()[:4096]
    except SourceError:
        return False
    return head.startswith("[") and '"data"' in head


IMPORTER = Importer(
    name="label-studio",
    help="Import a Label Studio JSON export (brush RLE and polygons, drawn as Label Studio and pycocotools draw "
         "them) from SRC into OUT.",
    params=(
        Param("tasks", "The export JSON, relative to SRC [default: the one top-level .json].", None, (), "FILE"),
        Param("data_key", "The task data key holding the image URL.", "image", (), "KEY"),
        Param("ref_root", "Rewrite image URLs starting with PREFIX to DIR (a local folder or s3:// prefix), as "
                          "convert's --ref-root does; repeatable, first match wins.", None, (), "PREFIX=DIR", True),
        Param("annotation", "Which annotation of a task: the ground-truth-flagged one (else the latest), or the "
                            "latest.", "ground-truth", ("ground-truth", "latest")),
        Param("overlap", "Where shapes overlap: the later result wins, the smaller, the larger, or the ignore "
                         "label 255 where their classes differ.", "later", OVERLAPS),
        Param("class_list", "A text file (relative to SRC) naming the classes in order, one per line "
                            "[default: the labels used, by name].", None, (), "FILE"),
    ),
    read=read,
    detect=detect,
)
