"""Which store rows answer a table cell, pooled into one :class:`Measure`, and the footnote marks
beside it (failed trust checks, failed cells). Pooling and flag rules: docs/decisions/report.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.report.outcomes import SeedResult, decode_bits
from bench.results.names import ANY_ITERATE_KEY, EOT_KEY, uses_eot
from bench.trust.paired_checks import indicator_triggered

EPS_TOL = 1e-6
MAX_DETAIL = 160
EXACT_FIELDS = ("training", "attack", "steps", "source", "source_checkpoint")  # matched exactly


@dataclass(frozen=True)
class Query:
    """What a table cell asks of the store; ``None`` means "any"."""

    kind: str
    attack: str | None = None
    steps: int | None = None
    training: str | None = None
    source: str | None = None
    eps: float | None = None
    source_checkpoint: str | None = None


@dataclass(frozen=True)
class Measure:
    """A cell's measurement: accuracy in percent over ``n`` images, of the first seed; ``seeds``
    holds every seed's result (the first seed first), ``rows`` the store rows behind them."""

    accuracy: float
    n: int
    rows: int
    eps: float | None
    steps: int | None
    step_size: float | None
    attack_key: str | None
    training: str | None
    seeds: tuple[SeedResult, ...] = ()
    data_slice: str | None = None
    params: int | None = None  # the model's parameters, when the rows carry them (schema 5)
    flops: float | None = None  # its forward FLOPs per image at the run's input size
    forward_passes: float | None = None  # the effort the first seed's row spent per image
    backward_passes: float | None = None


class ResultIndex:
    """Successful result rows of one dataset and preset, grouped by (kind, model)."""

    def __init__(self, results: pd.DataFrame) -> None:
        self.frame = results
        self._groups = {key: sub for key, sub in results.groupby(["kind", "model"], sort=True)}
        self._arrays: dict[tuple, dict[str, np.ndarray]] = {}

    def models(self, kind: str) -> list[str]:
        return sorted(model for k, model in self._groups if k == kind)

    def rows(self, model: str, query: Query) -> pd.DataFrame:
        """The rows of ``model`` that match ``query`` (masks over the group's NumPy columns:
        a table asks a few hundred queries of groups of a few hundred rows)."""
        sub = self._groups.get((query.kind, model))
        if sub is None:
            return self.frame.iloc[0:0]
        arrays = self._arrays.get((query.kind, model))
        if arrays is None:
            arrays = {c: sub[c].to_numpy() for c in EXACT_FIELDS}
            arrays["eps"] = sub["eps"].to_numpy(dtype=float, na_value=np.nan)
            self._arrays[(query.kind, model)] = arrays
        mask = np.ones(len(sub), dtype=bool)
        for col in EXACT_FIELDS:
            value = getattr(query, col)
            if value is not None:
                mask &= arrays[col] == value
        if query.eps is not None:
            mask &= np.abs(arrays["eps"] - query.eps) <= EPS_TOL * max(1.0, abs(query.eps))
        return sub[mask]

    def measure(self, model: str, query: Query) -> Measure | None:
        """The pooled measurement for ``model`` under ``query``, or None when nothing matches."""
        rows = self.rows(model, query)
        if rows.empty:
            return None
        return pool(rows)


CONFIG_FIELDS = (
    "attack_key", "eps", "steps", "training", "source", "source_checkpoint", "data_slice"
)  # fmt: skip


def _config_keys(cols: dict[str, list]) -> list[str]:
    """One configuration key per row: the attack key and every field that tells runs apart."""
    columns = [cols[f] for f in CONFIG_FIELDS]
    return ["|".join(str(v) for v in values) for values in zip(*columns, strict=True)]


def _is_plain(key: object) -> bool:
    """Whether an attack key is the plain attack a paper column names: not an EoT variant
    (``eot=N``) nor early-stopping PGD (``best_iterate``), which share its name and steps."""
    return not (bool(EOT_KEY.search(str(key))) or ANY_ITERATE_KEY in str(key))


def _null(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _columns(rows: pd.DataFrame, names: tuple[str, ...]) -> dict[str, list]:
    """The named columns as Python lists (``None`` for a column the rows lack)."""
    return {c: rows[c].tolist() if c in rows else [None] * len(rows) for c in names}


POOL_COLUMNS = (*CONFIG_FIELDS, "run_id", "n", "correct", "accuracy", "seed", "key", "per_sample",
                "step_size", "params", "flops", "forward_passes", "backward_passes")  # fmt: skip


def pool(rows: pd.DataFrame) -> Measure:
    """Pick one configuration (the plain attack before its EoT or best-iterate variants, then
    most images, most steps, the newest run) of the matching rows; one row per seed.

    The accuracy and ``n`` are the first (lowest) seed's; several rows of one seed (e.g. an
    older checkpoint of the model) give way to the newest run's row. Configurations that differ
    only in their source checkpoint (a transfer source retrained since) also give way to the
    newest run's. Plain Python over the rows' columns: the report pools a few hundred cells of
    a few dozen rows each, where pandas' per-call overhead would be most of the time.
    """
    cols = _columns(rows, POOL_COLUMNS)
    keys = _config_keys(cols)
    totals: dict[str, list] = {}  # cfg -> [plain, images, steps, run]
    for i, cfg in enumerate(keys):
        n, steps, run = cols["n"][i], cols["steps"][i], cols["run_id"][i]
        t = totals.setdefault(cfg, [False, 0, -1, -1])
        t[0] = t[0] or _is_plain(cols["attack_key"][i])
        t[1] += 0 if _null(n) else n
        t[2] = t[2] if _null(steps) else max(t[2], steps)
        t[3] = t[3] if _null(run) else max(t[3], run)
    best = min(totals, key=lambda c: (not totals[c][0], -totals[c][1], -totals[c][2],
                                      -totals[c][3], c))  # fmt: skip
    chosen = {c: [v for v, k in zip(values, keys, strict=True) if k == best]
              for c, values in cols.items()}  # fmt: skip
    seeds = _per_seed(chosen)
    if seeds:
        accuracy, n = seeds[0].accuracy, seeds[0].n
    else:  # rows without counts: the image-weighted mean of their accuracies
        weights = [1 if _null(w) else max(w, 1) for w in chosen["n"]]
        accs = chosen["accuracy"]
        accuracy = sum(a * w for a, w in zip(accs, weights, strict=True) if not _null(a))
        accuracy /= sum(weights)
        n = int(sum(0 if _null(v) else v for v in chosen["n"]))
    attack_key = chosen["attack_key"][0]
    return Measure(
        accuracy=float(accuracy),
        n=n,
        rows=len(chosen["key"]),
        eps=_opt_float(chosen["eps"][0]),
        steps=_opt_int(chosen["steps"][0]),
        step_size=_opt_float(chosen["step_size"][0]),
        attack_key=None if attack_key is None else str(attack_key),
        training=chosen["training"][0],
        seeds=seeds,
        data_slice=seeds[0].data_slice if seeds else None,
        params=_opt_int(_first_known(chosen["params"])),
        flops=_opt_float(_first_known(chosen["flops"])),
        forward_passes=_opt_float(_first_known(chosen["forward_passes"])),
        backward_passes=_opt_float(_first_known(chosen["backward_passes"])),
    )


def _first_known(values: list):
    """The first non-null value (None when none is)."""
    return next((v for v in values if not _null(v)), None)


def _per_seed(cols: dict[str, list]) -> tuple[SeedResult, ...]:
    """One :class:`SeedResult` per seed (newest run's row), ascending seeds; () without counts."""
    rows = range(len(cols["key"]))
    pairs = zip(cols["correct"], cols["n"], strict=True)
    if not rows or not all(not _null(c) and not _null(n) and n > 0 for c, n in pairs):
        return ()
    seed = [0 if _null(s) else int(s) for s in cols["seed"]]
    run = [-1 if _null(r) else r for r in cols["run_id"]]
    order = sorted(rows, key=lambda i: str(cols["key"][i]), reverse=True)  # ties: highest key
    order.sort(key=lambda i: (seed[i], -run[i]))  # stable: ascending seed, newest run first
    out, seen = [], set()
    for i in order:
        if seed[i] in seen:
            continue
        seen.add(seed[i])
        n, correct = int(cols["n"][i]), int(cols["correct"][i])
        bits = decode_bits(cols["per_sample"][i], n, correct)
        out.append(SeedResult(seed[i], correct, n, _opt_str(cols["data_slice"][i]), bits))
    return tuple(out)


def _opt_str(value: object) -> str | None:
    return None if _null(value) else str(value)


def _opt_float(value: object) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _opt_int(value: object) -> int | None:
    value = _opt_float(value)
    return None if value is None else int(value)


# -- footnote marks ----------------------------------------------------------------------------


def _short(text: object) -> str:
    line = str(text or "").strip().splitlines()[0] if str(text or "").strip() else ""
    return line if len(line) <= MAX_DETAIL else line[: MAX_DETAIL - 3] + "..."


def latest_failures(trust: pd.DataFrame) -> pd.DataFrame:
    """Failed checks whose latest run (highest run_id) still fails, sorted deterministically."""
    if trust.empty:
        return trust
    keys = ["check_name", "model", "dataset", "training"]
    frame = trust.copy()
    frame["run_id"] = pd.to_numeric(frame["run_id"], errors="coerce").fillna(-1)
    frame["passed"] = pd.to_numeric(frame["passed"], errors="coerce").fillna(0).astype(int)
    filled = frame[keys].astype(object).where(frame[keys].notna(), "")
    frame[keys] = filled.astype(str)
    last_run = frame.groupby(keys)["run_id"].transform("max")
    latest = frame[frame["run_id"] == last_run]
    failing = latest[latest["passed"] == 0]
    failing = failing.drop_duplicates(keys + ["detail"])
    return failing.sort_values(keys + ["detail"], key=lambda s: s.astype(str))


INDICATOR_PREFIX = "indicator:"


def indicator_counts(indicators: pd.DataFrame | None) -> dict[tuple, dict]:
    """``(model, training, dataset, attack_key)`` -> that white-box cell's indicator counts
    (``counts_json``; the latest row where a cell has several)."""
    if indicators is None or indicators.empty or "counts_json" not in indicators:
        return {}
    out: dict[tuple, dict] = {}
    rows = indicators
    if "run_id" in rows:
        rows = rows.sort_values("run_id", kind="stable", key=lambda s: pd.to_numeric(s, "coerce"))
    for _, row in rows.iterrows():
        try:
            counts = json.loads(str(row["counts_json"]))
        except ValueError:
            continue
        if isinstance(counts, dict):
            ident = [row.get(c) for c in ("model", "training", "dataset", "attack_key")]
            ident[1] = ident[1] or ""
            key = tuple(str(x) for x in ident)
            out[key] = counts
    return out


def random_models(indicators: pd.DataFrame | None, dataset: str) -> set[tuple[str, str]]:
    """``(model, training)`` pairs whose stored indicator rows on ``dataset`` saw a random
    eval forward (``counts_json``'s ``random_forward``: :mod:`bench.trust.randomness`)."""
    if indicators is None or indicators.empty or "counts_json" not in indicators:
        return set()
    out = set()
    for _, row in indicators[indicators["dataset"] == dataset].iterrows():
        try:
            seen = json.loads(str(row["counts_json"])).get("random_forward")
        except (TypeError, ValueError, AttributeError):
            continue
        if seen and int(seen[0]) > 0:
            out.add((str(row["model"]), str(row["training"])))
    return out


class FlagBook:
    """Hands out footnote numbers for trust failures and failed cells of one scope."""

    def __init__(
        self,
        trust: pd.DataFrame,
        failed: pd.DataFrame,
        dataset: str,
        indicators: pd.DataFrame | None = None,
    ) -> None:
        self.failures = latest_failures(trust)
        self.failed = ResultIndex(failed)
        self.dataset = dataset
        self.notes: dict[str, int] = {}
        self.random = random_models(indicators, dataset)
        self.indicator_counts = indicator_counts(indicators)

    def random_plain(self, model: str, training: str | None, attack_key: str | None) -> int | None:
        """A mark for a white-box cell of a model whose eval forward is random (its indicator
        rows' ``random_forward``) when the cell's attack takes one gradient sample per step
        (no EoT): its number is an upper bound an EoT attack may lower. None otherwise."""
        if (model, training) not in self.random or attack_key is None or uses_eot(attack_key):
            return None
        return self._number(
            f"{model} ({training}): its eval forward is random, and this attack takes one "
            "gradient sample per step (no EoT): an upper bound an EoT attack may lower"
        )

    def _number(self, text: str) -> int:
        if text not in self.notes:
            self.notes[text] = len(self.notes) + 1
        return self.notes[text]

    def text(self, number: int) -> str:
        for text, num in self.notes.items():
            if num == number:
                return text
        raise KeyError(number)

    def for_model(
        self,
        model: str,
        training: str | None,
        dataset: str | None = None,
        attack_key: str | None = None,
    ) -> tuple[int, ...]:
        """Marks for the failed trust checks that concern ``model`` trained with ``training``.

        An indicator of attack failure belongs to the cell whose attack it read (issue 28): its
        mark goes only on the white-box cell of ``attack_key`` when that cell's own indicator row
        triggered it (the check's rule, ``bench.trust.paired_checks.indicator_triggered``); the
        other checks concern the model and mark every cell of it."""
        if self.failures.empty:
            return ()
        dataset = dataset or self.dataset
        f = self.failures
        hit = (
            f["model"].isin(["", model])
            & f["dataset"].isin(["", dataset])
            & (f["training"].isin(["", training]) if training else True)
        )
        marks = []
        for _, row in f[hit].iterrows():
            name = str(row["check_name"])
            if name.startswith(INDICATOR_PREFIX):
                counts = self.indicator_counts.get((model, training or "", dataset, attack_key))
                value = (counts or {}).get(name[len(INDICATOR_PREFIX) :])
                if attack_key is None or not indicator_triggered(value):
                    continue
            scope = ", ".join(x for x in (row["model"], row["dataset"], row["training"]) if x)
            text = f"trust check '{row['check_name']}' failed ({scope}): {_short(row['detail'])}"
            marks.append(self._number(text))
        return tuple(sorted(set(marks)))

    def failed_cell(self, model: str, query: Query) -> int | None:
        """A mark for a failed cell matching ``query``, or None."""
        rows = self.failed.rows(model, query) if not self.failed.frame.empty else None
        if rows is None or rows.empty:
            return None
        row = rows.sort_values("key", key=lambda s: s.astype(str)).iloc[0]
        what = row["attack"] or row["kind"]
        text = f"cell failed: {model} / {what} ({row['kind']}): {_short(row['error'])}"
        return self._number(text)

    def footnotes(self, marks: set[int]) -> list[str]:
        """``[n] text`` lines for the given marks, in number order."""
        return [f"[{n}] {self.text(n)}" for n in sorted(marks)]
