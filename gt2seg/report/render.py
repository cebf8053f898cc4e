"""The dataset report as a static page: `write_dataset_report(report, out)` -> path of index.html."""
from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np
from PIL import Image

from gt2seg import layout, storage
from gt2seg.errors import Gt2SegError
from gt2seg.report import page
from gt2seg.report.dataset import DatasetReport
from gt2seg.render import mask_image
from gt2seg.report.panels import blend, open_thumbnail, panel, thumbnail

DEFAULT_FOLDER = "report"


def _item_panel(root: Path, image: str, mask: str, classes: list) -> bytes:
    """image | mask | blend thumbnails of one layout item; Gt2SegError names a file that cannot be read."""
    try:
        rgb = open_thumbnail((root / image).read_bytes())
    except (OSError, ValueError):
        raise Gt2SegError(f"{image} is not a readable image") from None
    try:
        with Image.open(root / mask) as m:
            colored = thumbnail(mask_image(np.asarray(m), classes), rgb.height)
    except (OSError, ValueError):
        raise Gt2SegError(f"{mask} is not a readable mask") from None
    return panel([rgb, colored, blend(rgb, colored)])


def _gallery(report: DatasetReport, folder: page.ReportFolder) -> str:
    root, made, groups = Path(report.layout), {}, {}
    for pick in report.picks:
        if pick.name not in made:
            target = folder.image_path(f"{pick.split}-{pick.name}.jpg")
            try:
                folder.put(target, _item_panel(root, pick.image, pick.mask, report.classes))
                made[pick.name] = (target, "")
            except Gt2SegError as exc:
                made[pick.name] = (None, f"no picture: {exc}")
        image, note = made[pick.name]
        groups.setdefault(pick.group, []).append(page.Card(image, f"{pick.name} ({pick.split}): {pick.why}", note))
    if not groups:
        return '<p class="muted">no items</p>'
    return "".join(f"<h3>{escape(g)}</h3>{page.cards(cards)}" for g, cards in groups.items())


def _classes_table(report: DatasetReport) -> str:
    rows, marks = [], []
    for c in report.classes:
        i, name = c["index"], c["name"]
        cells = [page.swatch(c["color"]) + escape(f"{i} {name}")]
        for what, per_split in (("pixels", report.pixels), ("images", report.images)):
            total = report.totals.get(what)
            cells.append(page.num(total[i] if total else None, f"{what}/total/{name}"))
            cells += [page.num(per_split[s][i], f"{what}/{s}/{name}") for s in layout.SIDES]
        total = sum(report.images[s][i] for s in layout.SIDES)
        cells.append("n/a" if not total else f"{report.images[layout.SIDES[1]][i] / total:.0%}")
        missing = [s for s in layout.SIDES if name in report.missing_from[s]]
        cells.append(escape(", ".join(f"absent from {s}" for s in missing)))
        rows.append(cells)
        marks.append("missing" if missing else "")
    headers = ["class"] + [f"{what} {s}" for what in ("pixels", "images") for s in ("total", *layout.SIDES)] + \
        ["validation share of images", "balance"]
    return page.table(headers, rows, marks)


def _skipped(report: DatasetReport, folder: page.ReportFolder, limit: int) -> str:
    rows = []
    for n, s in enumerate(report.skipped):
        picture = '<span class="muted">no file</span>'
        if s.get("source") and n < limit:
            try:
                target = folder.image_path(f"skipped-line-{s['line']}.jpg")
                folder.put(target, panel([open_thumbnail(storage.read_bytes(s["source"]), 64)]))
                picture = f'<img src="{escape(target)}" alt="line {s["line"]}">'
            except (Gt2SegError, OSError, ValueError):
                pass
        rows.append([page.num(s["line"], f"skipped/{n}/line", "{}"), escape(s["reason"]),
                     escape(s.get("detail") or ""), picture])
    return page.table(["line", "reason", "detail", "image"], rows) if rows else '<p class="muted">none</p>'


def write_dataset_report(report: DatasetReport, out=None, skipped_thumbnails: int = 50) -> str:
    """Write index.html and its pictures into `out` (default LAYOUT/report; or an s3:// prefix)."""
    out = out or str(Path(report.layout) / DEFAULT_FOLDER)
    folder = page.ReportFolder(out)
    summary = page.table(["split", "items"], [[s, page.num(report.items[s], f"items/{s}")] for s in layout.SIDES])
    flagged = "".join(f"<p>{escape(f)}: {page.num(len(names), f'flagged/{f}')} "
                      f"<span class='muted'>{escape(', '.join(names))}</span></p>"
                      for f, names in (report.flagged or {}).items()) or \
        '<p class="muted">unknown: the layout has no conversion cache (.gt2seg/items/) to say</p>'
    sections = [
        ("Summary", summary + (page.notes(report.problems, "warn problem") if report.problems else "")),
        ("Classes and split balance", _classes_table(report)),
        ("Charts", page.figures(report.figures())),
        ("Gallery (image | mask | blend)", _gallery(report, folder)),
        ("Items changed in conversion", flagged),
        ("Skipped or rejected lines", _skipped(report, folder, skipped_thumbnails)),
        ("Conversion warnings", page.notes(report.warnings)),
    ]
    return folder.finish(page.render("Dataset report", report.layout, sections))
