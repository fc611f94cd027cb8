"""Peak memory of one phase of a run (a model's training or loading), for the rehearsal's table.

On CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (the tensors the
caching allocator handed out). On CPU (Linux): the process's peak resident set size (``VmHWM`` in
``/proc/self/status``), reset at the phase's start by writing ``5`` to ``/proc/self/clear_refs``,
so the figure is the phase's own peak of the whole process (data and the models loaded before it
included) and covers torch's allocations, which ``tracemalloc`` does not see. Where the reset is
refused the figure is the process's lifetime peak (``ru_maxrss``) and is labelled so.
The reset sets the peak to the current size; glibc's ``malloc_trim(0)`` first hands freed heap
back to the system where it can, but what the allocator still keeps counts: a phase's figure is
an upper bound of what it needed itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class Peak:
    """A phase's peak in MiB and what was measured (``cuda``, ``rss`` or ``rss-lifetime``)."""

    mib: float
    kind: str

    def text(self) -> str:
        return f"{self.mib:.0f} MiB ({self.kind})"


class PhaseMemory:
    """``start()`` at a phase's beginning, ``peak()`` at its end."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.cuda = torch.device(device).type == "cuda"
        self.reset_ok = False

    def start(self) -> PhaseMemory:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            return self
        _trim()
        try:
            _CLEAR_REFS.write_text("5")
            self.reset_ok = _vm_hwm_kib() is not None
        except OSError:
            self.reset_ok = False
        return self

    def peak(self) -> Peak:
        if self.cuda:
            return Peak(torch.cuda.max_memory_allocated() / 2**20, "cuda")
        hwm = _vm_hwm_kib() if self.reset_ok else None
        if hwm is not None:
            return Peak(hwm / 1024, "rss")
        return Peak(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss-lifetime")


def _trim() -> None:
    """Return freed heap to the system (glibc ``malloc_trim``); nothing elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        trim = None
    if trim is not None:
        trim(0)


def _vm_hwm_kib() -> int | None:
    """``VmHWM`` (peak resident set size since the last reset) in KiB, or None off Linux."""
    try:
        lines = _STATUS.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None
