"""Training throughput: `seg`'s training step vs a bare Gluon forward+backward+update of the same network and
batch (target: <= 10% overhead), and File-mode loader throughput vs step throughput (target: >= 3x).

    python benchmarks/bench_train.py [--backbone resnet-18] [--algorithm fcn] [--crop 128] [--batch 8] [--json]

Prints an MMSegmentation-style table (device, crop, batch, img/s, peak memory). Data is the synthetic set
from tests/synthdata.py written to a temp folder; CPU unless a GPU is visible.
"""
import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from synthdata import write_layout  # noqa: E402

from seg.config import parse_hyperparameters
from seg.data.files import FileSource
from seg.data.transforms import train_transform
from seg.engines.mxnet.nets import build_network
from seg.train.loop import _train_epoch, contexts, make_optimizer


class _Repeat:
    """The first `steps` batches of a FileSource, for a fixed-length timed run of seg's epoch loop."""

    def __init__(self, source, steps):
        self.source, self.steps = source, steps
        self.num_batches = steps

    def epoch(self, epoch):
        produced = 0
        while produced < self.steps:
            for batch in self.source.epoch(epoch + produced):
                yield batch
                produced += 1
                if produced == self.steps:
                    return


def bench(args):
    ctx = contexts()
    scratch = tempfile.TemporaryDirectory(prefix="bench-train-")  # removed when it is collected, at exit at the latest
    root = write_layout(scratch.name, n_train=max(64, args.batch * 4), n_val=2,
                        size=args.crop * 2, seed=0)
    hp = parse_hyperparameters({
        "num_classes": 3, "num_training_samples": args.batch * args.steps, "backbone": args.backbone,
        "algorithm": args.algorithm, "use_pretrained_model": False, "crop_size": args.crop,
        "base_size": args.crop * 2, "mini_batch_size": args.batch, "optimizer": "sgd", "learning_rate": 0.001,
        "data_workers": args.workers,
    })
    source = FileSource(root, "train", train_transform(hp), hp.mini_batch_size, shuffle=True, workers=args.workers)

    # loader alone
    started, images = time.perf_counter(), 0
    for epoch in range(3):
        for data, _ in source.epoch(epoch):
            images += data.shape[0]
    loader_ips = images / (time.perf_counter() - started)

    # bare Gluon: one batch already on the device, plain cross-entropy, no data pipeline
    net = build_network(hp, ctx)
    net.hybridize(static_alloc=True)
    trainer = gluon.Trainer(net.collect_params(), make_optimizer(hp, args.steps), kvstore=hp.kvstore)
    data, label = next(source.epoch(0))
    data_parts = gluon.utils.split_and_load(data, ctx, even_split=False)
    label_parts = gluon.utils.split_and_load(label.astype(np.float32), ctx, even_split=False)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss(axis=1)

    def bare_steps(count):
        for _ in range(count):
            with autograd.record():
                losses = [loss_fn(net(d), l) for d, l in zip(data_parts, label_parts)]
            autograd.backward(losses)
            trainer.step(hp.mini_batch_size)
        mx.nd.waitall()

    bare_steps(args.warmup)
    started = time.perf_counter()
    bare_steps(args.steps)
    bare_s = (time.perf_counter() - started) / args.steps

    # seg: the real epoch loop (loader threads, IGNORE-aware loss, one-step lag) on the same network
    _train_epoch(net, trainer, _Repeat(source, args.warmup), ctx, 0, hp, progress=False)
    mx.nd.waitall()
    started = time.perf_counter()
    _train_epoch(net, trainer, _Repeat(source, args.steps), ctx, 1, hp, progress=False)
    mx.nd.waitall()
    seg_s = (time.perf_counter() - started) / args.steps

    if ctx[0].device_type == "gpu":
        free, total = mx.context.gpu_memory_info(ctx[0].device_id)
        memory = f"{(total - free) / 2**30:.2f} GiB GPU in use"
    else:
        memory = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB peak RSS"
    step_ips = args.batch / seg_s
    return {
        "device": ", ".join(str(c) for c in ctx), "model": f"{hp.algorithm} {hp.backbone}", "crop": hp.crop_size,
        "batch": hp.mini_batch_size, "bare_step_s": round(bare_s, 4), "seg_step_s": round(seg_s, 4),
        "bare_img_s": round(args.batch / bare_s, 2), "seg_img_s": round(step_ips, 2),
        "overhead_pct": round(100 * (seg_s - bare_s) / bare_s, 1), "loader_img_s": round(loader_ips, 1),
        "loader_vs_step": round(loader_ips / step_ips, 1), "loader_workers": args.workers, "memory": memory,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet-18")
    parser.add_argument("--algorithm", default="fcn")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="loader threads (the data_workers hyperparameter)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    row = bench(args)
    if args.json:
        print(json.dumps(row, indent=2))
        return
    head = ["device", "model", "crop", "batch", "bare img/s", "seg img/s", "overhead", "loader img/s",
            "loader/step", "memory"]
    cells = [row["device"], row["model"], str(row["crop"]), str(row["batch"]), str(row["bare_img_s"]),
             str(row["seg_img_s"]), f"{row['overhead_pct']}%", str(row["loader_img_s"]),
             f"{row['loader_vs_step']}x", row["memory"]]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
