"""The evaluation page as a person sees it at a 1280-px-wide window: the worst-image cards hold their four
panels, and 100 epochs of training curves keep a readable epoch axis. No MXNet: the report is built from data."""
import numpy as np

from browser import browser, look  # noqa: F401 (fixture)
from synthdata import CLASSES

WORST = 8
EPOCHS = 100

_CARDS = """return Array.from(document.querySelectorAll('.card')).map(card => {
    const c = card.getBoundingClientRect(), img = card.querySelector('img'), i = img.getBoundingClientRect();
    return {card: [c.left, c.right], img: [i.left, i.right], shown: i.width, natural: img.naturalWidth,
            page: document.documentElement.clientWidth};
})"""
_TICKS = """return Array.from(document.querySelectorAll('svg')).map(svg =>
    Array.from(svg.querySelectorAll('text.tick')).map(t => {
        const b = t.getBBox(); return [b.x, b.x + b.width, t.textContent];
    })).filter(labels => labels.length)"""


def _report(tmp_path):
    from seg.metrics import summarize
    from seg.report import EvaluationReport, ImageScore, _panel, write_evaluation_report

    rng = np.random.default_rng(5)
    confusion = rng.integers(1, 1000, (len(CLASSES), len(CLASSES))).tolist()
    worst = []
    for n in range(WORST):  # 4:3 images, as a camera writes them: four 128-px-high tiles make a 696-px panel
        rgb = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        truth, prediction = (rng.integers(0, len(CLASSES), (120, 160)).astype(np.uint8) for _ in range(2))
        worst.append((ImageScore(f"img{n:02d}", 0.1 * n, 0.5), _panel(rgb, truth, prediction, CLASSES)))
    training = {"best_epoch": 80, "epochs": [{"epoch": e, "train:loss": 1 / e, "validation:mIOU": e / 200,
                                              "validation:pixel_accuracy": 0.5 + e / 400} for e in range(1, EPOCHS + 1)]}
    report = EvaluationReport("model/", "data/", "validation", CLASSES, summarize(np.asarray(confusion)), confusion,
                              [s for s, _ in worst], worst, training)
    return write_evaluation_report(report, tmp_path / "page")


def test_worst_cards_hold_their_four_panels_and_100_epochs_keep_a_readable_axis(tmp_path, browser):  # noqa: F811
    index = _report(tmp_path)
    seen = look(browser, f"file://{index}", "seg-evaluation-layout-1280.png")
    assert seen.console == [] and seen.broken == []
    cards = browser.execute_script(_CARDS)
    assert len(cards) == WORST
    for card in cards:
        (left, right), (img_left, img_right) = card["card"], card["img"]
        assert left <= img_left and img_right <= right, f"a panel spills out of its card: {card}"
        assert right <= card["page"], f"a card spills out of the page: {card}"
        assert card["natural"] > 600 and card["shown"] == card["natural"], f"the panel is squeezed: {card}"
    charts = browser.execute_script(_TICKS)
    assert len(charts) == 2  # training loss, validation
    for labels in charts:
        assert 2 <= len(labels) <= 10 and labels[-1][2] == str(EPOCHS), labels
        for (_, right, text), (left, _, following) in zip(labels, labels[1:]):
            assert right + 4 <= left, f"epoch labels {text} and {following} overlap"
