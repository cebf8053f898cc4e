"""Learning is real: a small network learns the synthetic set; ResNet-50 networks overfit one batch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

mx = pytest.importorskip("mxnet")

from seg.config import parse_hyperparameters
from seg.data.transforms import normalize
from seg.engines.mxnet.nets import build_network
from seg.engines.mxnet.engine import loss as seg_loss
from synthdata import make_pair, write_layout  # noqa: E402

pytestmark = [pytest.mark.mxnet, pytest.mark.slow]
SEG = str(Path(sys.executable).parent / "seg")


def test_fcn_resnet18_learns_the_synthetic_set_far_above_the_background_baseline(tmp_path):
    """Why 0.7 holds: with OMP_NUM_THREADS=1 MXNet runs bit-identically, and seeded data (layout seed 1,
    per-sample augmentation RNG from (seed 0, epoch, index)) makes this exact run reproducible: measured
    validation mIOU 0.757 after 10 epochs (0.739 after 9; 0.67–0.69 at epochs 6–8), against ≈0.29 for
    predicting background everywhere. 0.7 leaves room for other CPUs' float rounding, not for broken
    learning."""
    data = write_layout(tmp_path / "data", n_train=64, n_val=16, size=64, seed=1)
    hps = {"backbone": "resnet-18", "algorithm": "fcn", "use_pretrained_model": "False", "crop_size": 64,
           "base_size": 64, "mini_batch_size": 8, "validation_mini_batch_size": 8, "optimizer": "adam",
           "learning_rate": 0.003, "epochs": 3, "data_workers": 1}
    (tmp_path / "hp.json").write_text(json.dumps(hps))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [SEG, "train", "--data", str(data), "--model-dir", str(tmp_path / "model"), "--no-progress",
            "--hp-file", str(tmp_path / "hp.json"), "--hp", "epochs=10"]  # --hp wins over the file
    run = subprocess.run(args, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout)["validation:mIOU"] >= 0.7
    assert json.loads((tmp_path / "model" / "hyperparameters.json").read_text())["epochs"] == 10
    evaluation = subprocess.run([SEG, "evaluate", str(tmp_path / "model"), str(data), "--json"],
                                capture_output=True, text=True, env=env)
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    report = json.loads(evaluation.stdout)
    assert report["mIOU"] >= 0.7 and report["pixel_accuracy"] >= 0.85
    assert set(report["per_class_iou"]) == {"BACKGROUND", "disc", "rectangle"}


@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_resnet50_network_overfits_one_batch(algorithm):
    """From scratch, 40 Adam steps on one batch of two 48×48 images: measured first/last loss fcn 0.91/0.038,
    psp 1.03/0.050, deeplab 1.38/0.064. A network that cannot fit one batch (wrong loss, labels, or
    gradients not reaching the weights) stays near its first loss."""
    mx.random.seed(0)
    rng = np.random.default_rng(0)
    pairs = [make_pair(rng, 48, 48) for _ in range(2)]
    data = mx.nd.array(np.stack([normalize(rgb) for rgb, _ in pairs]))
    label = mx.nd.array(np.stack([mask for _, mask in pairs]))
    hp = parse_hyperparameters({"num_classes": 3, "num_training_samples": 2, "backbone": "resnet-50",
                                "algorithm": algorithm, "use_pretrained_model": False, "crop_size": 48})
    net = build_network(hp)
    net.hybridize(static_alloc=True)
    trainer = mx.gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.001})
    losses = []
    for _ in range(40):
        with mx.autograd.record():
            loss = seg_loss(net(data), label)
        loss.backward()
        trainer.step(1)
        losses.append(float(loss.asscalar()))
    assert losses[0] > 0.7
    assert losses[-1] < 0.1 and losses[-1] < losses[0] / 8
