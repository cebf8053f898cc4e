"""CPU training throughput: the torch engine vs the MXNet engine, each through its own `TrainingSession` (the step
`seg train` runs), on the same network, batch, initial weights and thread count.

    python benchmarks/bench_train.py [--algorithms fcn] [--backbone resnet-50] [--crop 128] [--batch 4]
                                     [--steps 5] [--warmup 2] [--threads N] [--engines torch,mxnet] [--json]

Each engine runs in a process of its own (MXNet loaded into a process drops torch to one thread), with
OMP_NUM_THREADS=N and, on torch, torch.set_num_threads(N) (N: --threads, default all cores). Both start from
the same random weights (tests/artifacts.random_weights: He-normal convolutions, GluonCV's names) and take the
same synthetic batches (tests/synthdata.training_batches, normalised as seg's loader does); the built-in's SGD, the
auxiliary loss where the network has one, MXNet hybridized as `seg train` runs it. The engines take turns
(benchmarks/engine_rounds.py), one step each per round, so load from other processes hits both alike:
`--warmup` rounds untimed, then `--steps` timed ones, each step ended by `epoch_loss()` (which waits for
MXNet's asynchronous engine). images/s = batch x steps / the engine's summed step seconds. The machine's
1-minute load average is printed with the table.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # artifacts (random weights), synthdata (images and masks)

from engine_rounds import Worker, interleaved, serve_units  # noqa: E402


def _hyperparameters(args):
    from seg.config import parse_hyperparameters

    return parse_hyperparameters({
        "num_classes": args.classes, "num_training_samples": args.batch * (args.steps + args.warmup),
        "backbone": args.backbone, "algorithm": args.algorithm, "use_pretrained_model": False,
        "crop_size": args.crop, "base_size": args.crop, "mini_batch_size": args.batch, "epochs": 1,
        "optimizer": "sgd", "learning_rate": 0.001,
    })


def worker(args) -> None:
    """One engine in this process: one training step per `go` (engine_rounds' protocol), each ended by
    `epoch_loss()`, which waits for MXNet's asynchronous engine."""
    if args.engine == "torch":
        import torch

        torch.set_num_threads(args.threads)
    from artifacts import random_weights
    from seg.engines import load_engine
    from seg.models.arch import architecture_for
    from synthdata import training_batches

    hp = _hyperparameters(args)
    arch = architecture_for(hp)
    weights = random_weights(arch, seed=3)
    batches = training_batches(2, args.crop, args.batch)  # two batches, taken in turn: data costs nothing here
    session = load_engine(args.engine).TrainingSession(hp, arch, per_epoch=args.steps + args.warmup,
                                                       weights=weights, device="cpu")
    losses, steps = [], [0]

    def step() -> None:
        session.step(*batches[steps[0] % 2])
        steps[0] += 1
        losses.append(session.epoch_loss())

    def facts() -> dict:
        threads = None
        if args.engine == "torch":
            import torch

            threads = torch.get_num_threads()
        return {"model": f"{hp.algorithm} {hp.backbone}", "losses": losses, "torch_threads": threads,
                "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}

    serve_units(step, facts)


def run_engines(args, algorithm: str) -> list:
    """Each engine's row: the engines step in turn (engine_rounds.interleaved)."""
    workers = [Worker(e, [sys.executable, __file__, "--worker", e, "--algorithms", algorithm, "--backbone",
                          args.backbone, "--crop", str(args.crop), "--batch", str(args.batch), "--steps",
                          str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
                          "--classes", str(args.classes)], args.threads)
               for e in args.engines.split(",")]
    times = interleaved(workers, args.warmup, args.steps)
    rows = []
    for w in workers:
        seconds = sum(times[w.name])
        rows.append({"engine": w.name, **w.finish(), "crop": args.crop, "batch": args.batch, "steps": args.steps,
                     "seconds": round(seconds, 3), "step_s": round(seconds / args.steps, 3),
                     "step_s_each": [round(t, 3) for t in times[w.name]],
                     "img_s": round(args.batch * args.steps / seconds, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", default="fcn", help="comma-separated: fcn, psp, deeplab [fcn]")
    parser.add_argument("--backbone", default="resnet-50")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=5, help="timed steps [5]")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first [2]")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of each engine [all cores]")
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--engines", default="torch,mxnet")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one engine in this process
    args = parser.parse_args()
    if args.worker:
        args.engine, args.algorithm = args.worker, args.algorithms
        worker(args)
        return

    load_at_start = os.getloadavg()[0]
    rows = []
    for algorithm in args.algorithms.split(","):
        by_engine = {r["engine"]: r for r in run_engines(args, algorithm)}
        if "torch" in by_engine and "mxnet" in by_engine:
            by_engine["torch"]["torch_over_mxnet"] = round(by_engine["torch"]["img_s"] / by_engine["mxnet"]["img_s"], 2)
        rows.extend(by_engine.values())
    setup = {"cpus": os.cpu_count(), "threads": args.threads, "load_1min_at_start": load_at_start,
             "load_1min_at_end": os.getloadavg()[0]}
    if args.json:
        print(json.dumps({"setup": setup, "rows": rows}, indent=2))
        return
    head = ["engine", "model", "crop", "batch", "threads", "s/step", "img/s", "torch ÷ MXNet", "peak RSS"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for r in rows:
        ratio = f"{r['torch_over_mxnet']:.2f}×" if "torch_over_mxnet" in r else ""
        print(f"| {r['engine']} | {r['model']} | {r['crop']} | {r['batch']} | {args.threads} | {r['step_s']:.2f} "
              f"| {r['img_s']:.2f} | {ratio} | {r['peak_rss_gib']:.2f} GiB |")
    print(f"\n{setup['cpus']} CPUs, {args.threads} threads per engine, {args.steps} interleaved timed steps after "
          f"{args.warmup}; "
          f"load average (1 min) {setup['load_1min_at_start']:.2f} at the start, {setup['load_1min_at_end']:.2f} "
          "at the end")


if __name__ == "__main__":
    main()
