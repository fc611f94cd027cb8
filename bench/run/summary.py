"""What a run did (:class:`RunSummary`): counts, failures, trust verdicts, indicator rows, timings,
its exit codes and its JSON (``bench run --json``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.run.memory import PhaseMemory
from bench.trust.row_checks import TrustResult


@dataclass
class RunSummary:
    """What a run did: counts, failures, trust verdicts and per-stage timings (seconds)."""

    run_id: int
    computed: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    trust: list[TrustResult] = field(default_factory=list)
    indicators: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    world_size: int = 1  # processes under torchrun (recorded in the JSON when more than one)
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)  # checkpoint -> its peak

    def start_phase(self, device: Any) -> PhaseMemory:
        """Begin measuring a checkpoint's peak memory (``bench.run.memory``)."""
        return PhaseMemory(device).start()

    def end_phase(self, label: str, phase: PhaseMemory) -> str:
        """Record the phase's peak under ``label``; returns it as text for the log."""
        peak = phase.peak()
        self.memory[label] = {"peak_mib": round(peak.mib, 1), "kind": peak.kind}
        return peak.text()

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    @property
    def trust_failed(self) -> int:
        return sum(not t.passed for t in self.trust)

    def strict_exit_code(self) -> int:
        """``bench run --strict``: 1 for failed cells, else 3 when a trust check failed."""
        return self.exit_code or (3 if self.trust_failed else 0)

    def failed_by_model(self) -> dict[str, list[str]]:
        """``model/training/dataset`` -> the checks (and indicators) it failed."""
        out: dict[str, list[str]] = {}
        for t in self.trust:
            if not t.passed:
                out.setdefault(f"{t.model}/{t.training}/{t.dataset}", []).append(t.check)
        return out

    def to_json(self) -> dict[str, Any]:
        world = {"world_size": self.world_size} if self.world_size > 1 else {}
        return {
            "run_id": self.run_id,
            "computed": self.computed,
            "cached": self.cached,
            "failed": self.failed,
            "skipped": self.skipped,
            "failures": self.failures,
            "trust": [
                {
                    "check": t.check,
                    "model": t.model,
                    "training": t.training,
                    "dataset": t.dataset,
                    "passed": t.passed,
                    "detail": t.detail,
                }
                for t in self.trust
            ],
            "trust_failed": self.trust_failed,
            "trust_failed_by_model": self.failed_by_model(),
            "indicators": [_indicator_json(r) for r in self.indicators],
            "timings": {k: round(v, 2) for k, v in sorted(self.timings.items())},
            "memory": self.memory,
            **world,
        }


def _indicator_json(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("model", "training", "dataset", "label", "eps", "data_slice", "n", "counts")
    return {k: row.get(k) for k in keep}
