"""Evaluation report and training curves, on the dataset report's page and charts (gt2seg.report).

Library calls return figures as data (gt2seg.report.figures: SVG, shown inline by a notebook); the CLIs
write pages. Per-image figures come from one pass of evaluate_layout; only the worst k images keep a
picture (small panels), so memory and page size do not grow with the split.
"""
from __future__ import annotations

import heapq
import io
import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import numpy as np
from PIL import Image

from gt2seg.classes import CLASSES_JSON, IGNORE
from gt2seg.report import page
from gt2seg.report.figures import BarChart, Heatmap, Histogram, LineChart
from gt2seg.report.panels import panel, thumbnail
from seg.errors import DataError
from seg.metrics import SegMetrics, summarize

CURVES_PNG = "curves.png"
ERROR_COLOR, RIGHT_COLOR = (214, 39, 40), (225, 225, 225)


@dataclass(frozen=True)
class ImageScore:
    name: str
    miou: float
    pixel_accuracy: float


@dataclass
class EvaluationReport:
    model: str
    data: str
    split: str
    classes: list
    summary: SegMetrics
    confusion: list  # rows: ground truth, columns: prediction
    images: list  # ImageScore per image, in layout order
    worst: list = field(default_factory=list)  # (ImageScore, JPEG panel: image | truth | prediction | errors)
    training: dict = field(default_factory=dict)  # MODEL/metrics.json, when the model folder has one

    def to_dict(self) -> dict:
        names = [c["name"] for c in self.classes]
        return {"model": self.model, "data": self.data, "split": self.split,
                **self.summary.to_json(names), "per_class_pixel_accuracy": dict(zip(names, self.class_accuracy())),
                "confusion": self.confusion, "images": [vars(s) for s in self.images],
                "worst": [s.name for s, _ in self.worst]}

    def class_accuracy(self) -> list:
        """Share of each class's labelled pixels predicted as that class (None where it has none)."""
        matrix = np.asarray(self.confusion, dtype=np.float64)
        rows = matrix.sum(1)
        return [float(matrix[i, i] / rows[i]) if rows[i] else None for i in range(len(rows))]

    def figures(self) -> list:
        names = [c["name"] for c in self.classes]
        colors = [c["color"] for c in self.classes]
        matrix = np.asarray(self.confusion, dtype=np.float64)
        rows = np.maximum(matrix.sum(1, keepdims=True), 1)
        peak = max(matrix.max(), 1)
        normalised = (matrix / rows).tolist()
        return [
            Heatmap("Confusion matrix (pixels)", names, names, self.confusion, (matrix / peak).tolist(),
                    row_title="truth", column_title="prediction"),
            Heatmap("Confusion matrix (row-normalised)", names, names, normalised, normalised, "{:.2f}",
                    row_title="truth", column_title="prediction"),
            BarChart("IoU per class", names, {"IoU": self.summary.per_class_iou}, colors, "{:.3f}", 1.0),
            BarChart("Pixel accuracy per class", names, {"accuracy": self.class_accuracy()}, colors, "{:.3f}", 1.0),
            Histogram("Per-image mIOU", [s.miou for s in self.images]),
        ] + training_curves(self.training)


def training_curves(metrics: dict) -> list:
    """Loss and validation mIOU / pixel accuracy per epoch from a model's metrics.json (all epochs, resumed
    ones included); the best epoch and an early stop are marked."""
    epochs = metrics.get("epochs") or []
    if not epochs:
        return []
    x = [e["epoch"] for e in epochs]
    marks = {metrics["best_epoch"]: "best"} if metrics.get("best_epoch") else {}
    if metrics.get("stopped_early"):
        marks[x[-1]] = "stopped early" if x[-1] not in marks else "best, stopped early"
    return [LineChart("Training loss", x, {"train:loss": [e["train:loss"] for e in epochs]}, marks),
            LineChart("Validation", x, {k: [e[k] for e in epochs] for k in ("validation:mIOU",
                                                                             "validation:pixel_accuracy")}, marks)]


def write_curves_png(model_dir, metrics: dict) -> Path | None:
    """MODEL/curves.png from the training metrics (matplotlib: the torch and cpu extras install it)."""
    charts = training_curves(metrics)
    if not charts:
        return None
    from matplotlib.figure import Figure  # no pyplot: no global backend switch inside a notebook's kernel
    from matplotlib.ticker import MaxNLocator

    from gt2seg.atomic import atomic_write

    fig = Figure(figsize=(5 * len(charts), 3.4))
    axes = fig.subplots(1, len(charts))
    for ax, chart in zip(axes, charts):
        for name, values in chart.series.items():
            ax.plot(chart.x, values, marker="o", label=name)
        for x, label in chart.marks.items():
            ax.axvline(x, color="#c44e52", linestyle="--", linewidth=1)
            ax.annotate(label, (x, 1), xycoords=("data", "axes fraction"), color="#c44e52", va="top")
        ax.set_title(chart.title)
        ax.set_xlabel(chart.x_label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    path = Path(model_dir) / CURVES_PNG
    atomic_write(path, out.getvalue())
    return path


def check_classes(model_classes: list, data) -> None:
    """DataError when DATA/classes.json names other classes than the model was trained on."""
    path = Path(data) / CLASSES_JSON
    if not path.is_file():
        return
    from gt2seg.classes import read_classes

    ours, theirs = [c["name"] for c in model_classes], [c["name"] for c in read_classes(path)]
    if ours != theirs:
        raise DataError(f"the model's classes {ours} differ from {path}'s {theirs}; evaluate with the data "
                        "the model was trained for")


def _panel(rgb: np.ndarray, truth: np.ndarray, prediction: np.ndarray, classes: list) -> bytes:
    from gt2seg.render import mask_image

    errors = np.where((prediction != truth)[..., None], ERROR_COLOR, RIGHT_COLOR).astype(np.uint8)
    errors[truth == IGNORE] = 0
    image = thumbnail(Image.fromarray(rgb))
    tiles = [mask_image(truth, classes), mask_image(prediction, classes), Image.fromarray(errors)]
    return panel([image] + [thumbnail(t, image.height) for t in tiles])


def build_evaluation_report(predictor, model, data, split: str = "validation", worst: int = 8,
                            progress: bool = False) -> EvaluationReport:
    """Metrics, confusion, per-image mIOU and the `worst` images of the predictor on a layout split."""
    from seg.evaluate import evaluate_layout

    check_classes(predictor.classes, data)
    size = predictor.num_classes
    scores, kept, total = [], [], np.zeros((size, size), dtype=np.int64)  # kept: max-heap on mIOU of the worst

    def on_image(pair, rgb, mask, prediction, confusion):
        total[...] += confusion
        m = summarize(confusion)
        score = ImageScore(pair.stem, m.miou, m.pixel_accuracy)
        scores.append(score)
        if len(kept) < worst or score.miou < -kept[0][0]:
            item = (-score.miou, len(scores), score, _panel(rgb, mask, prediction, predictor.classes))
            (heapq.heappush if len(kept) < worst else heapq.heapreplace)(kept, item)

    summary = evaluate_layout(predictor, data, split, progress, on_image=on_image)
    metrics_json = Path(model) / "metrics.json"
    training = json.loads(metrics_json.read_text()) if metrics_json.is_file() else {}
    return EvaluationReport(str(model), str(data), split, list(predictor.classes), summary, total.tolist(), scores,
                            [(s, p) for _, _, s, p in sorted(kept, reverse=True)], training)


def write_evaluation_report(report: EvaluationReport, out) -> str:
    """index.html, its panels and metrics.json (the numbers the page shows) into `out`."""
    folder = page.ReportFolder(out)
    rows = [[page.swatch(c["color"]) + escape(c["name"]), page.num(iou, f"iou/{c['name']}", "{:.4f}"),
             page.num(acc, f"accuracy/{c['name']}", "{:.4f}"), page.num(int(sum(row)), f"pixels/{c['name']}")]
            for c, iou, acc, row in zip(report.classes, report.summary.per_class_iou, report.class_accuracy(),
                                        report.confusion)]
    summary = (f"<p>mIOU {page.num(report.summary.miou, 'mIOU', '{:.4f}')}, pixel accuracy "
               f"{page.num(report.summary.pixel_accuracy, 'pixel_accuracy', '{:.4f}')}, "
               f"{page.num(len(report.images), 'images')} images</p>"
               + page.table(["class", "IoU", "pixel accuracy", "labelled pixels"], rows))
    cards = []
    for n, (score, jpeg) in enumerate(report.worst):
        target = folder.image_path(f"worst-{n:02d}.jpg")
        folder.put(target, jpeg)
        cards.append(page.Card(target, f"{score.name}: mIOU {score.miou:.3f}, pixel accuracy "
                                       f"{score.pixel_accuracy:.3f}"))
    figs = report.figures()
    curves = figs[5:]
    sections = [("Summary", summary), ("Charts", page.figures(figs[:5])),
                (f"Worst {len(cards)} images (image | truth | prediction | errors in red)", page.cards(cards)),
                ("Training curves", page.figures(curves) if curves else
                 '<p class="muted">the model folder has no metrics.json with epochs</p>')]
    folder.put("metrics.json", (json.dumps(report.to_dict(), indent=2) + "\n").encode())
    return folder.finish(page.render(f"Evaluation on {report.split}", f"{report.model} on {report.data}", sections))
