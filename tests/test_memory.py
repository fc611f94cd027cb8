"""Per-phase peak memory (bench.run.memory): the peak follows what the phase allocated."""

from __future__ import annotations

import torch

from bench.run import memory
from bench.run.summary import RunSummary


def test_cpu_phase_peak_grows_with_an_allocation_and_resets_after():
    before = memory.PhaseMemory("cpu").start()
    small = before.peak()
    big = memory.PhaseMemory("cpu").start()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    grown = big.peak()
    del block
    after = memory.PhaseMemory("cpu").start().peak()
    assert small.kind == grown.kind == "rss"  # Linux: the reset works here
    assert grown.mib - small.mib > 50  # the allocation shows in the phase's peak
    assert after.mib < grown.mib - 50  # a new phase starts from the current size, not the peak


def test_refused_reset_falls_back_to_the_lifetime_peak(monkeypatch, tmp_path):
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "no" / "clear_refs")
    peak = memory.PhaseMemory("cpu").start().peak()
    assert peak.kind == "rss-lifetime" and peak.mib > 0


def test_run_summary_records_each_phase_in_its_json():
    summary = RunSummary(run_id=1)
    text = summary.end_phase("darts/natural/cifar10", summary.start_phase("cpu"))
    row = summary.to_json()["memory"]["darts/natural/cifar10"]
    assert text.endswith("(rss)") and row["kind"] == "rss" and row["peak_mib"] > 0
