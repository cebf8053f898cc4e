"""docs/examples' notebook runs top to bottom in a real Jupyter kernel (jupytext + nbclient + ipykernel)."""
import json

import pytest
from repo import ROOT

NOTEBOOK = ROOT / "docs" / "examples" / "labeling_job_to_model.py"


@pytest.mark.slow
@pytest.mark.mxnet
def test_notebook_runs_top_to_bottom_and_writes_model_metrics_and_predictions(tmp_path, monkeypatch):
    import jupytext
    from nbclient import NotebookClient

    monkeypatch.setenv("SEG_EXAMPLE_OUT", str(tmp_path))
    monkeypatch.setenv("SEG_EXAMPLE_EPOCHS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = jupytext.read(NOTEBOOK)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()

    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if o.output_type == "display_data" and "image/png" in o.get("data", {})]
    assert len(images) == 6  # three training overlays, three predicted overlays
    charts = [o for o in outputs if o.output_type == "display_data" and "image/svg+xml" in o.get("data", {})]
    assert len(charts) == 2 + 5 + 2  # dataset bars; confusion x2, IoU, accuracy, per-image mIOU; loss, validation
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "13 labeled, 1 unlabeled, 1 failed" in text and "'train': 10, 'validation': 3" in text
    assert json.loads((tmp_path / "model" / "hyperparameters.json").read_text())["epochs"] == 2
    assert len(list((tmp_path / "predictions").glob("*_overlay.png"))) == 3
