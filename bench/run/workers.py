"""``bench run --workers N``: N processes of one machine share a run through the store's leases.

The first process is the run the user started; it starts N - 1 helper processes of the same
command line, which plan the same cells against the same store. Each process trains the first
checkpoint and computes the first group that no other holds (``bench.run.leases``): a checkpoint,
a cell group or an indicator row is done once between them, and whatever a helper leaves
undone (it died, it was killed) the first process does itself, since it waits for every lease
before it ends. The CPU threads are split between the processes: on a small CPU the zoo's
cell networks are overhead-bound, and two one-thread processes do more than one two-thread
process (docs/decisions/speed.md, "Workers").

A helper is the same ``bench run`` with ``RACL_BENCH_WORKER`` set in its environment: it never
deletes cells (``--fresh`` is the first process's), prints no progress bars, no JSON and no
summary table, runs only the first process's current seed, and its log lines reach the first
process's standard error prefixed ``[worker K]``. The first process waits for its helpers
when its run ends and terminates them when its run raises; killed outright, it takes them
with it on Linux (the parent-death signal), while elsewhere they finish the run on their own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from core.errors import UserError

ENV = "RACL_BENCH_WORKER"  # "K:THREADS:SEED" in a helper's environment


@dataclass(frozen=True)
class WorkerRole:
    """What the environment says this process is: ``index`` 0 for the first process."""

    index: int = 0
    threads: int | None = None
    seed: int | None = None

    @property
    def helper(self) -> bool:
        return self.index > 0


def role(environ: os._Environ | dict | None = None) -> WorkerRole:
    """This process's role, read from ``RACL_BENCH_WORKER`` (absent: the first process)."""
    text = (environ if environ is not None else os.environ).get(ENV)
    if not text:
        return WorkerRole()
    try:
        index, threads, seed = (int(x) for x in text.split(":"))
    except ValueError:
        raise UserError(f"{ENV} must be K:THREADS:SEED, got {text!r}") from None
    return WorkerRole(index, threads, seed)


def check_workers(workers: int, distributed_run: bool) -> None:
    """``--workers`` must be >= 1, and 1 under torchrun (its ranks already split the plan)."""
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    cores = os.cpu_count() or 1
    if workers > cores:
        raise UserError(f"--workers {workers} is above this machine's {cores} cores")
    if workers > 1 and distributed_run:
        raise UserError("--workers is for one process per machine; under torchrun the ranks share")


def threads_each(workers: int, threads: int | None) -> int:
    """Each process's torch threads: the run's (``--threads``, else torch's) split evenly."""
    total = threads if threads is not None else torch.get_num_threads()
    return max(1, total // workers)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


@dataclass
class Helpers:
    """The helper processes of one seed's run and the threads that relay their output."""

    procs: list[subprocess.Popen] = field(default_factory=list)
    relays: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, count: int, threads: int, seed: int, argv: Sequence[str]) -> Helpers:
        """Start ``count`` helpers running ``bench`` with ``argv`` at ``threads`` each."""
        out = cls()
        linux = sys.platform.startswith("linux")
        for k in range(1, count + 1):
            env = {**os.environ, ENV: f"{k}:{threads}:{seed}", "OMP_NUM_THREADS": str(threads)}
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.cli", *argv],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                preexec_fn=_die_with_parent if linux else None,  # noqa: PLW1509
            )
            relay = threading.Thread(target=_relay, args=(proc, k), daemon=True)
            relay.start()
            out.procs.append(proc)
            out.relays.append(relay)
        return out

    def finish(self, log) -> None:  # noqa: ANN001 - a print-like callable
        """Wait for every helper (they end soon after the first process: its run waited for
        their leases); say which ended abnormally (their work was redone by the first)."""
        for k, (proc, relay) in enumerate(zip(self.procs, self.relays, strict=True), start=1):
            code = proc.wait()
            relay.join(timeout=5)
            if code not in (0, 1, 3):  # 1: failed cells, 3: --strict checks (both stored)
                log(f"warning: worker {k} exited with status {code}")

    def stop(self) -> None:
        """Terminate the helpers still running (the first process is ending early)."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _relay(proc: subprocess.Popen, k: int) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        text = line.rstrip("\n")
        if text:
            print(f"[worker {k}] {text}", file=sys.stderr, flush=True)
