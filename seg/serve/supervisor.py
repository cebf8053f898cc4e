"""`seg serve`'s process tree: children that live and die together, stopped in order.

The supervisor blocks SIGTERM, SIGINT and SIGCHLD and waits for them with sigwaitinfo, so a stop request
and a child's death are both plain events (no handler runs in the middle of a stop). Children start with
those signals unblocked, a parent-death signal and a process group of their own: a killed supervisor
leaves no port held, and when a child dies its leftovers (nginx's workers outlive a killed master) are
killed with its group.
"""
from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Callable, List, Optional

log = logging.getLogger(__name__)

_EVENTS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}

_PR_SET_PDEATHSIG = 1


class Stopped(Exception):
    """SIGTERM or SIGINT arrived: stop the children in order."""


@dataclass
class Child:
    """One process and the signal that stops it gracefully (also sent should the supervisor die)."""

    name: str
    argv: List[str]
    stop_signal: int = signal.SIGTERM
    proc: Optional[subprocess.Popen] = None


class Supervisor:
    """Start children; ``wait`` returns the first to exit, or raises Stopped; ``stop`` ends them last-first."""

    def __init__(self):
        self.children: List[Child] = []
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, _EVENTS)
        self._prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before any fork

    def start(self, child: Child) -> Child:
        def in_child():
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            self._prctl(_PR_SET_PDEATHSIG, int(child.stop_signal))

        child.proc = subprocess.Popen(child.argv, preexec_fn=in_child, start_new_session=True)
        self.children.append(child)
        return child

    def _exited(self) -> Optional[Child]:
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def wait(self, until: Callable[[], bool] = lambda: False, deadline: float = float("inf")) -> Optional[Child]:
        """Block until a child exits (returned), ``until()`` holds or ``deadline`` passes (None)."""
        while not until() and time.monotonic() < deadline:
            exited = self._exited()
            if exited is not None:
                return exited
            info = signal.sigtimedwait(_EVENTS, min(0.05, max(0.0, deadline - time.monotonic())))
            if info is not None and info.si_signo != signal.SIGCHLD:
                raise Stopped(signal.Signals(info.si_signo).name)
        return self._exited()

    def stop(self, budget: float) -> None:
        """Stop the children last-started first, each gracefully, all within ``budget`` seconds."""
        end = time.monotonic() + budget
        for child in reversed(self.children):
            if child.proc.poll() is None:
                child.proc.send_signal(child.stop_signal)
                try:
                    child.proc.wait(max(1.0, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in time; killing it", child.name)
                    child.proc.kill()
                    child.proc.wait()
            try:
                os.killpg(child.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Drop signals that arrived during the stop (a second SIGTERM must not kill the exit), then unblock."""
        while signal.sigtimedwait(_EVENTS, 0) is not None:
            pass
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
