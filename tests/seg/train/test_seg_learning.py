"""Learning is real: a small network learns the synthetic set on each engine, both engines to the same mIOU within
2 points; ResNet-50 networks overfit one batch on each engine."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ci_skips import require_engine
from seg.config import parse_hyperparameters
from seg.data.transforms import normalize
from seg.engines import ENGINES
from synthdata import make_pair, write_layout

pytestmark = pytest.mark.slow
SEG = str(Path(sys.executable).parent / "seg")
HPS = {"backbone": "resnet-18", "algorithm": "fcn", "use_pretrained_model": "False", "crop_size": 64, "base_size": 64,
       "mini_batch_size": 8, "validation_mini_batch_size": 8, "optimizer": "adam", "learning_rate": 0.003, "epochs": 3,
       "data_workers": 1}


@pytest.fixture(scope="module")
def learn(module_tmp):
    """engine → (what `seg train` printed, the stored hyperparameters, `seg evaluate`'s report): FCN ResNet-18
    trained 10 epochs on 64 synthetic 64×64 images, each engine once per module, in its own processes."""
    root = module_tmp("learning")
    data = write_layout(root / "data", n_train=64, n_val=16, size=64, seed=1)
    (root / "hp.json").write_text(json.dumps(HPS))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: each engine's run is then bit-reproducible
    done = {}

    def run(engine):
        require_engine(engine)
        if engine not in done:
            model = root / f"model-{engine}"
            args = [SEG, "train", "--engine", engine, "--data", str(data), "--model-dir", str(model), "--no-progress",
                    "--hp-file", str(root / "hp.json"), "--hp", "epochs=10"]  # --hp wins over the file
            trained = subprocess.run(args, capture_output=True, text=True, env=env)
            assert trained.returncode == 0, trained.stderr[-3000:]
            evaluation = subprocess.run([SEG, "evaluate", "--engine", engine, str(model), str(data), "--json"],
                                        capture_output=True, text=True, env=env)
            assert evaluation.returncode == 0, evaluation.stderr[-3000:]
            done[engine] = (json.loads(trained.stdout), json.loads((model / "hyperparameters.json").read_text()),
                            json.loads(evaluation.stdout))
        return done[engine]

    return run


@pytest.mark.parametrize("engine", ENGINES)
def test_fcn_resnet18_learns_the_synthetic_set_far_above_the_background_baseline(learn, engine):
    """Why 0.7 holds: with OMP_NUM_THREADS=1 each engine runs bit-identically, and seeded data (layout seed 1,
    per-sample augmentation RNG from (seed 0, epoch, index)) makes this exact run reproducible. Measured validation
    mIOU by epoch, MXNet: 0.26 0.14 0.38 0.41 0.47 0.64 0.67 0.68 0.74 0.756; torch: 0.09 0.28 0.30 0.53 0.65 0.68
    0.73 0.74 0.74 0.745; against ≈0.29 for predicting background everywhere. 0.7 leaves room for other CPUs'
    float rounding, not for broken learning. About 35 s of training per engine on one thread."""
    summary, stored, report = learn(engine)
    assert summary["validation:mIOU"] >= 0.7
    assert stored["epochs"] == 10
    assert report["mIOU"] >= 0.7 and report["pixel_accuracy"] >= 0.85
    assert set(report["per_class_iou"]) == {"BACKGROUND", "disc", "rectangle"}


@pytest.mark.mxnet
def test_both_engines_learn_the_synthetic_set_to_the_same_miou_within_two_points(learn):
    """The engines draw the same batches and initialise alike (He-normal, fan-in) but from each framework's own random
    numbers, so their runs differ in detail: measured best validation mIOU 0.756 (MXNet) vs 0.745 (torch), 1.1 points
    apart."""
    miou = {engine: learn(engine)[0]["validation:mIOU"] for engine in ENGINES}
    assert abs(miou["torch"] - miou["mxnet"]) <= 0.02, miou


@pytest.mark.parametrize("seg_engine", ENGINES, indirect=True)
@pytest.mark.parametrize("algorithm", ["fcn", "psp", "deeplab"])
def test_resnet50_network_overfits_one_batch(algorithm, seg_engine):
    """From scratch, 40 Adam steps (constant learning rate, heads at the engine's head multiple) on one batch of two
    48×48 images, through the engine's own training step: measured first/last loss MXNet fcn 0.93/0.037, psp
    1.61/0.052, deeplab 1.54/0.052; torch fcn 1.37/0.039, psp 2.21/0.040, deeplab 0.90/0.061. A network that cannot
    fit one batch (wrong loss, labels, or gradients not reaching the weights) stays near its first loss."""
    from seg.engines import load_engine
    from seg.models.arch import architecture_for

    rng = np.random.default_rng(0)
    pairs = [make_pair(rng, 48, 48) for _ in range(2)]
    data = np.stack([normalize(rgb) for rgb, _ in pairs]).astype(np.float32)
    label = np.stack([mask for _, mask in pairs])
    hp = parse_hyperparameters({"num_classes": 3, "num_training_samples": 2, "backbone": "resnet-50",
                                "algorithm": algorithm, "use_pretrained_model": False, "crop_size": 48,
                                "optimizer": "adam", "learning_rate": 0.001, "lr_scheduler": "step",
                                "lr_scheduler_step": "1000", "aux_loss_weight": 0, "epochs": 1, "mini_batch_size": 2})
    session = load_engine(seg_engine).TrainingSession(hp, architecture_for(hp), 40, device="cpu")
    losses = []
    for _ in range(40):
        session.step(data, label)
        losses.append(session.epoch_loss())
    assert losses[0] > 0.7
    assert losses[-1] < 0.1 and losses[-1] < losses[0] / 8
