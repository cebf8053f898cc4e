"""The one page layout and look shared by the dataset report (gt2seg) and the evaluation report (seg).

A report folder is index.html plus img/*.jpg|png, referenced by relative paths, so it opens from disk
or from an S3 prefix with no server. No script runs in the page. Files are written under a temp name
then renamed, index.html last; images of an earlier run that this one does not use are removed.
"""
from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from html import escape
from pathlib import Path

from gt2seg import storage
from gt2seg.layout import atomic_write

IMG_DIR = "img"
STYLE = """
body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ccc;padding-bottom:3px;margin-top:28px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
td:first-child,th:first-child{text-align:left}tr.missing td{background:#fde2e1}
.swatch{display:inline-block;width:12px;height:12px;border:1px solid #555;vertical-align:middle;margin-right:5px}
.figs{display:flex;flex-wrap:wrap;gap:18px}.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;padding:4px;font-size:12px;min-width:160px;max-width:100%;box-sizing:border-box}
.card img{display:block;max-width:100%;height:auto}.card .cap{width:0;min-width:100%}
.warn{background:#fff4d6;padding:4px 8px;margin:3px 0;font-size:13px}.problem{background:#fde2e1}
.muted{color:#777;font-size:12px}
"""


@dataclass(frozen=True)
class Card:
    """One gallery entry: a panel image (relative path under the report folder, or None: say why in note)."""

    image: str | None
    caption: str
    note: str = ""


def swatch(color: str) -> str:
    return f'<span class="swatch" style="background:{escape(color)}"></span>'


def table(headers: list, rows: list, row_classes: list | None = None) -> str:
    """Cells are HTML already (numbers via `num`); row_classes mark rows (e.g. 'missing')."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def num(value, key: str, spec: str = "{:,}") -> str:
    """A number with its data-key, so a test (or a person) can match the page against the JSON."""
    text = "n/a" if value is None else spec.format(value)
    return f'<span data-key="{escape(key)}">{text}</span>'


def figures(figs) -> str:
    return '<div class="figs">' + "".join(f"<div>{f.svg()}</div>" for f in figs) + "</div>"


def cards(items: list[Card]) -> str:
    out = []
    for c in items:
        picture = f'<img src="{escape(c.image)}" alt="{escape(c.caption)}">' if c.image else ""
        note = f'<div class="muted cap">{escape(c.note)}</div>' if c.note else ""
        # captions take the picture's width (.cap), so a card is as wide as its panel, never wider than the page
        out.append(f'<div class="card">{picture}<div class="cap">{escape(c.caption)}</div>{note}</div>')
    return '<div class="cards">' + "".join(out) + "</div>" if out else '<p class="muted">none</p>'


def notes(lines: list[str], cls: str = "warn") -> str:
    return "".join(f'<div class="{cls}">{escape(line)}</div>' for line in lines) or '<p class="muted">none</p>'


def render(title: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{escape(name)}</h2>{html}" for name, html in sections)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{escape(title)}</h1>"
            f'<p class="muted">{escape(subtitle)}</p>{body}</body></html>\n')


class ReportFolder:
    """Where a report is written: a local folder, or an s3:// prefix (written locally first, then put)."""

    def __init__(self, out):
        self.out = str(out)
        self.written: list[str] = []

    def image_path(self, name: str) -> str:
        return f"{IMG_DIR}/{name}"

    def put(self, relative: str, data: bytes) -> None:
        if storage.is_s3(self.out):
            storage.write_bytes(storage.join(self.out, relative), data, mimetypes.guess_type(relative)[0])
        else:
            atomic_write(Path(self.out) / relative, data)
        self.written.append(relative)

    def finish(self, html: str) -> str:
        """Write index.html last; drop images of an earlier report that this one does not use."""
        self.put("index.html", html.encode())
        if not storage.is_s3(self.out):
            folder = Path(self.out) / IMG_DIR
            for path in folder.glob("*") if folder.is_dir() else ():
                if f"{IMG_DIR}/{path.name}" not in self.written and path.is_file():
                    path.unlink()
            return str(Path(self.out).resolve() / "index.html")
        return storage.join(self.out, "index.html")
