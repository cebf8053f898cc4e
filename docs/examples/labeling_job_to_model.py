# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From a Ground Truth labeling job to a trained segmentation model
#
# The `make pipeline` stages as library calls: inspect the labeling job, convert it to the SageMaker layout,
# look at a few masks, train, evaluate, predict. It runs on the bundled fixture job (`fixtures/bucket/`);
# point `MANIFEST` (and `REF_ROOTS`, `LABEL_ATTRIBUTES`) at your own job, local or `s3://`.
# Open it in Jupyter with jupytext (`jupyter lab docs/examples/labeling_job_to_model.py`).

# %%
import json
import os
from pathlib import Path

import numpy as np
from IPython.display import display
from PIL import Image

ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "fixtures" / "bucket").is_dir())
MANIFEST = str(ROOT / "fixtures/bucket/labeling/city-blocks/manifests/output/output.manifest")
REF_ROOTS = (("s3://gt2seg-fixtures/", str(ROOT / "fixtures/bucket")),)  # the job's bucket, mirrored locally
LABEL_ATTRIBUTES = ("city-blocks-adjusted-ref", "city-blocks-ref")  # adjusted masks first
OUT = Path(os.environ.get("SEG_EXAMPLE_OUT", ROOT / "build" / "notebook"))
HYPERPARAMETERS = json.loads((ROOT / "fixtures/demo-hyperparameters.json").read_text())
HYPERPARAMETERS["epochs"] = os.environ.get("SEG_EXAMPLE_EPOCHS", HYPERPARAMETERS["epochs"])

# %% [markdown]
# ## 1. Inspect the job
# Counts usable, unlabeled and failed lines, and the classes, before anything is written.

# %%
from gt2seg.inspect import inspect_manifest

job = inspect_manifest(MANIFEST, LABEL_ATTRIBUTES)
print(f"{job.lines} lines: {job.labeled} labeled, {job.unlabeled} unlabeled, {job.failed} failed")
print("classes:", [c["name"] for c in job.classes])
assert not job.problems, job.problems

# %% [markdown]
# ## 2. Convert to the SageMaker layout

# %%
from gt2seg.convert import ConvertOptions, convert

DATA = OUT / "data"
report = convert(MANIFEST, DATA, ConvertOptions(ref_roots=REF_ROOTS, label_attributes=LABEL_ATTRIBUTES))
print(f"{report.converted} images: {report.splits}; skipped {report.skipped_by_reason}")
classes = json.loads((DATA / "classes.json").read_text())

# %% [markdown]
# The dataset report's charts, as data that draws itself (`gt2seg report DATA` writes the whole page).

# %%
from gt2seg.report import build_dataset_report

display(*build_dataset_report(DATA).figures())

# %% [markdown]
# ## 3. A few masks over their images
# The masks hold class indices; the colours come from `classes.json`.

# %%
def overlay(image_path, mask_path, alpha=0.5):
    rgb = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32)
    mask = np.asarray(Image.open(mask_path))
    colours = np.array([[int(c["color"][i:i + 2], 16) for i in (1, 3, 5)] for c in classes], dtype=np.float32)
    weight = np.where(mask[..., None] == 0, 0.0, alpha)
    return Image.fromarray((rgb * (1 - weight) + colours[mask] * weight).astype(np.uint8))


samples = sorted((DATA / "train").glob("*.jpg"))[:3]
display(*(overlay(p, DATA / "train_annotation" / f"{p.stem}.png") for p in samples))

# %% [markdown]
# ## 4. Train
# A small CPU model (ResNet-18 FCN, no pretrained weights) so this runs in minutes; for real jobs use the
# built-in's defaults on a GPU, or `seg sagemaker-job` to train on SageMaker.

# %%
from seg.train.entry import train_layout

MODEL = OUT / "model"
result = train_layout(DATA, MODEL, HYPERPARAMETERS, progress=False)
print(f"best validation mIOU {result.best_miou:.3f} at epoch {result.best_epoch} of {result.epochs_run}")

# %% [markdown]
# ## 5. Evaluate on the validation split, at full image size

# %%
from seg.serve.predictor import Predictor
from seg.report import build_evaluation_report

predictor = Predictor.load(MODEL)
evaluation = build_evaluation_report(predictor, MODEL, DATA, "validation")
print(json.dumps(evaluation.summary.to_json([c["name"] for c in classes]), indent=2))
# confusion matrices, per-class bars, per-image mIOU, training curves (`seg evaluate --report DIR` writes the page)
display(*evaluation.figures())

# %% [markdown]
# ## 6. Predict
# Writes `<stem>.png` (class indices) and `<stem>_overlay.png` for each image.

# %%
from seg.serve.batch import predict_files

written = predict_files(predictor, DATA / "validation", OUT / "predictions")
display(*(Image.open(item["overlay"]) for item in written))
