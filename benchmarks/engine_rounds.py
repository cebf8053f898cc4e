"""Timing engines side by side, each in a process of its own, in interleaved rounds.

MXNet loaded into a process drops torch to one thread, so each engine runs in its own worker process. On a
shared machine, load comes and goes within seconds, and a multi-threaded engine that loses a core waits at every
barrier, so timing one engine after the other measures the load as much as the engine. The workers therefore
take turns: each round asks every worker for one timed unit (a training step, an image), so a busy spell hits
all engines alike. Protocol: a worker sets itself up, prints `ready`, then for every `go` line on stdin runs one
unit and prints its seconds; at end of input it prints one JSON line of facts about itself and exits.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def serve_units(unit, facts) -> None:
    """The worker's side: `unit()` per `go` line, its seconds printed; `facts()` (a dict) at end of input."""
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "go":
            started = time.perf_counter()
            unit()
            print(time.perf_counter() - started, flush=True)
    print(json.dumps(facts()), flush=True)


class Worker:
    """One engine's process (`command`, with OMP_NUM_THREADS=threads and this checkout on PYTHONPATH)."""

    def __init__(self, name: str, command: list, threads: int):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads),
               "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        self.name = name
        self.stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: a chatty worker never blocks
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True)
        self._expect("ready")

    def _line(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            self.stderr.seek(0)
            sys.exit(f"{Path(sys.argv[0]).name}: the {self.name} worker stopped:\n{self.stderr.read()[-2000:]}")
        return line.strip()

    def _expect(self, word: str) -> None:
        while self._line() != word:
            pass

    def unit(self) -> float:
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        while True:  # skip anything else a library printed on stdout
            try:
                return float(self._line())
            except ValueError:
                continue

    def finish(self) -> dict:
        self.process.stdin.close()
        facts = None
        while not isinstance(facts, dict):
            try:
                facts = json.loads(self._line())
            except ValueError:
                continue
        self.process.wait()
        return facts


def interleaved(workers: list, warmup: int, rounds: int) -> dict:
    """name → the seconds of each timed unit, after `warmup` untimed rounds; every round runs each worker once,
    starting with a different one each round."""
    times = {w.name: [] for w in workers}
    for i in range(warmup + rounds):
        turn = workers[i % len(workers):] + workers[:i % len(workers)]
        for worker in turn:
            seconds = worker.unit()
            if i >= warmup:
                times[worker.name].append(seconds)
    return times
