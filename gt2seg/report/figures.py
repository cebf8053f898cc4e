"""Charts as data: each figure is a dataclass of the numbers it shows and renders itself as SVG.

SVG written by hand keeps gt2seg free of plotting libraries, embeds in the static page without extra
files, and shows inline in a notebook (`_repr_svg_`). Numbers appear as text, so a page can be checked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

FONT = 'font-family="sans-serif" font-size="11"'
SERIES_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3")


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else spec.format(value)


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" {FONT}>'
            f'<text x="4" y="14" font-size="13" font-weight="bold">{escape(title)}</text>')
    return head + "".join(body) + "</svg>"


def _legend(names, colors, x: float, y: float) -> list[str]:
    out = []
    for i, (name, color) in enumerate(zip(names, colors)):
        out.append(f'<rect x="{x + i * 110}" y="{y - 9}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + i * 110 + 14}" y="{y}">{escape(name)}</text>')
    return out


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars: one row per category, one bar per series (e.g. per split)."""

    title: str
    categories: list
    series: dict  # series name -> one value (or None) per category
    category_colors: list | None = None  # a swatch before each category label
    value_format: str = "{:,.0f}"
    maximum: float | None = None  # fixed axis end (e.g. 1.0 for IoU)

    def svg(self) -> str:
        names = list(self.series)
        colors = SERIES_COLORS[: len(names)]
        label_w, bar_w, bar_h = 150, 360, 12
        row_h = bar_h * len(names) + 6
        top = 34
        values = [v for vs in self.series.values() for v in vs if v is not None]
        peak = self.maximum or max(values + [0]) or 1
        body = _legend(names, colors, label_w, 28) if len(names) > 1 else []
        for row, category in enumerate(self.categories):
            y = top + row * row_h
            if self.category_colors:
                body.append(f'<rect x="4" y="{y + 2}" width="10" height="10" fill="{self.category_colors[row]}" '
                            'stroke="#444" stroke-width="0.5"/>')
            body.append(f'<text x="18" y="{y + 11}">{escape(str(category))[:24]}</text>')
            for s, name in enumerate(names):
                value = self.series[name][row]
                width = 0 if value is None else bar_w * value / peak
                by = y + s * bar_h
                body.append(f'<rect x="{label_w}" y="{by}" width="{width:.1f}" height="{bar_h - 2}" '
                            f'fill="{colors[s]}"/><text x="{label_w + width + 4:.1f}" y="{by + 9}">'
                            f'{_fmt(value, self.value_format)}</text>')
        return _svg(label_w + bar_w + 90, top + row_h * len(self.categories) + 6, self.title, body)

    _repr_svg_ = svg


@dataclass(frozen=True)
class Heatmap:
    """A matrix of cells shaded by `shade` (0..1) and labelled with `values` (e.g. a confusion matrix)."""

    title: str
    rows: list
    columns: list
    values: list  # rows x columns numbers shown in the cells
    shade: list  # rows x columns in 0..1
    value_format: str = "{:,.0f}"
    row_title: str = ""
    column_title: str = ""

    def svg(self) -> str:
        cell = max(26, min(60, 480 // max(1, len(self.columns))))
        left, top = 120, 110
        body = [f'<text x="{left}" y="30">{escape(self.column_title)}</text>',
                f'<text x="4" y="{top - 6}">{escape(self.row_title)}</text>']
        for j, name in enumerate(self.columns):
            x = left + j * cell + cell / 2
            body.append(f'<text transform="translate({x:.0f},{top - 6}) rotate(-60)">{escape(str(name))[:16]}</text>')
        for i, name in enumerate(self.rows):
            y = top + i * cell
            body.append(f'<text x="4" y="{y + cell / 2 + 4:.0f}">{escape(str(name))[:18]}</text>')
            for j, value in enumerate(self.values[i]):
                level = max(0.0, min(1.0, float(self.shade[i][j])))
                fill = f"rgb({int(255 - 200 * level)},{int(255 - 150 * level)},{int(255 - 60 * level)})"
                ink = "#fff" if level > 0.6 else "#000"
                x = left + j * cell
                body.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#fff"/>'
                            f'<text x="{x + cell / 2:.0f}" y="{y + cell / 2 + 4:.0f}" text-anchor="middle" '
                            f'fill="{ink}" font-size="9">{_fmt(value, self.value_format)}</text>')
        return _svg(left + cell * len(self.columns) + 10, top + cell * len(self.rows) + 10, self.title, body)

    _repr_svg_ = svg


@dataclass(frozen=True)
class Histogram:
    """Counts of values in equal bins over [low, high] (e.g. per-image mIOU)."""

    title: str
    values: list
    bins: int = 10
    low: float = 0.0
    high: float = 1.0

    @property
    def counts(self) -> list[int]:
        counts = [0] * self.bins
        for v in self.values:
            k = int((v - self.low) / (self.high - self.low) * self.bins)
            counts[min(self.bins - 1, max(0, k))] += 1
        return counts

    def svg(self) -> str:
        counts, width, height, left, top = self.counts, 400, 160, 30, 30
        peak, step = max(counts + [1]), width / self.bins
        body = []
        for k, n in enumerate(counts):
            h = height * n / peak
            x = left + k * step
            body.append(f'<rect x="{x + 1:.1f}" y="{top + height - h:.1f}" width="{step - 2:.1f}" height="{h:.1f}" '
                        f'fill="{SERIES_COLORS[0]}"/><text x="{x + step / 2:.1f}" y="{top + height - h - 3:.1f}" '
                        f'text-anchor="middle">{n}</text>')
        for k in range(self.bins + 1):
            value = self.low + (self.high - self.low) * k / self.bins
            body.append(f'<text x="{left + k * step:.1f}" y="{top + height + 14}" text-anchor="middle">'
                        f'{value:.1f}</text>')
        return _svg(left + width + 20, top + height + 24, self.title, body)

    _repr_svg_ = svg


def ticks(low: float, high: float, most: int = 10, integer: bool = False) -> list:
    """At most `most` round tick positions (steps of 1, 2, 2.5 or 5 times a power of ten; whole steps when
    `integer`) between low and high, so labels never crowd whatever the range: 100 epochs get 10, 20, ... 100."""
    if high <= low:
        return [low]
    scale = 10.0 ** math.floor(math.log10((high - low) / most))
    for step in (k * scale for k in (1, 2, 2.5, 5, 10, 20, 25, 50)):
        if integer and step != int(step):
            continue
        first, last = math.ceil(low / step - 1e-9), math.floor(high / step + 1e-9)
        if last - first + 1 <= most:
            break
    values = [round(k * step, 10) for k in range(first, last + 1)]
    return [int(v) for v in values] if integer else values


@dataclass(frozen=True)
class LineChart:
    """Series over a shared x axis (e.g. loss and mIOU per epoch); `marks` label single x positions."""

    title: str
    x: list
    series: dict  # name -> values (None for gaps)
    marks: dict = field(default_factory=dict)  # x -> label, e.g. {4: "resumed"}
    x_label: str = "epoch"

    def svg(self) -> str:
        width, height, left, top = 420, 170, 46, 40
        values = [v for vs in self.series.values() for v in vs if v is not None]
        low, high = min(values + [0.0]), max(values + [1e-9])
        span = high - low or 1.0
        x0, x1 = (min(self.x), max(self.x)) if self.x else (0, 1)

        def px(x):
            return left + width * (x - x0) / ((x1 - x0) or 1)

        def py(v):
            return top + height - height * (v - low) / span

        names = list(self.series)
        body = _legend(names, SERIES_COLORS, left, 28)
        body += [f'<line x1="{left}" y1="{top + height}" x2="{left + width}" y2="{top + height}" stroke="#888"/>',
                 f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{high:.3g}</text>',
                 f'<text x="{left - 4}" y="{top + height}" text-anchor="end">{low:.3g}</text>',
                 f'<text x="{left + width / 2}" y="{top + height + 28}">{escape(self.x_label)}</text>']
        whole = all(isinstance(x, int) for x in self.x)
        for x in ticks(x0, x1, integer=whole) if self.x else ():
            body.append(f'<text class="tick" x="{px(x):.1f}" y="{top + height + 13}" text-anchor="middle">{x:g}'
                        '</text>')
        for x, label in self.marks.items():
            anchor, dx = ("end", -3) if px(x) > left + width / 2 else ("start", 3)
            body.append(f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{top + height}" stroke="#c44e52" '
                        f'stroke-dasharray="3,3"/><text x="{px(x) + dx:.1f}" y="{top + 10}" fill="#c44e52" '
                        f'text-anchor="{anchor}">{escape(label)}</text>')
        for name, color in zip(names, SERIES_COLORS):
            points = [(px(x), py(v)) for x, v in zip(self.x, self.series[name]) if v is not None]
            body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                        + " ".join(f"{a:.1f},{b:.1f}" for a, b in points) + '"/>')
            body += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.5" fill="{color}"/>' for a, b in points]
        return _svg(left + width + 20, top + height + 34, self.title, body)

    _repr_svg_ = svg

