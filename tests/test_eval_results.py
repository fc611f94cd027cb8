"""Hugging Face eval results (.eval_results/*.yaml): the written file parses as YAML into the
format's field names and types (kept as data with their sources), and the check fires."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.report import build_entry
from bench.report.eval_results import (
    check_eval_results,
    eval_results,
    eval_results_fields,
    to_yaml,
)
from core.errors import UserError

STORE = Path(__file__).parent / "fixtures" / "report_store.sqlite"


def _results() -> list[dict]:
    entry = {**build_entry(STORE, "racl_published"), "link": "https://arxiv.org/abs/1"}
    return eval_results(entry, "Linf", 100, 1.7e9)


def test_the_written_yaml_reads_back_as_the_format():
    yaml = pytest.importorskip("yaml")
    results = yaml.safe_load(to_yaml(_results()))
    assert results == _results()
    check_eval_results(results)
    assert results[1]["dataset"] == {"id": "ylecun/mnist", "task_id": "autoattack_linf_0.3",
                                     "split": "test"}  # fmt: skip
    assert results[1]["value"] == 86.0 and results[0]["source"]["url"] == "https://arxiv.org/abs/1"
    assert results[0]["date"] == "2023-11-14T22:13:20Z"


def test_the_field_spec_names_its_sources():
    spec = eval_results_fields()
    assert any("huggingface.co/docs/hub/eval-results" in s for s in spec["sources"])
    assert spec["entry"]["value"] == {"type": "number", "required": True}
    assert spec["dataset"]["task_id"]["required"] and spec["source"]["url"]["required"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("value"), "missing \\['value'\\]"),
        (lambda r: r.update(value="86.00"), "value must be number"),
        (lambda r: r["dataset"].pop("task_id"), "missing \\['task_id'\\]"),
        (lambda r: r.update(date="yesterday"), "date must be iso-8601"),
        (lambda r: r["source"].pop("url"), "source: missing \\['url'\\]"),
        (lambda r: r.update(score=1), "unknown \\['score'\\]"),
    ],
)
def test_the_check_fires_on_what_the_format_does_not_hold(change, message):
    results = _results()
    check_eval_results(results)  # the control
    change(results[0])
    with pytest.raises(UserError, match=message):
        check_eval_results(results)
