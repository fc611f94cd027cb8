"""The bundle's documents: ``ISSUE.md`` (RobustBench's new-model issue form, filled in) and
``README.md`` (a model card: how it was trained and evaluated, the trust checks, intervals).

Written from a :class:`~bench.report.submission.Submission` and plain facts about the bundle's
files (``facts``: ``zoo_name``, ``entry_path``, ``stanza``, ``files`` {path: sha256},
``adversarial``, ``n``, ``agree_robust``, ``model_kind``, ``training``, ``versions``).
"""

from __future__ import annotations

import json
from typing import Any

from bench.report.stats import wilson
from bench.report.submission import Submission
from core.datasets import DATASETS

FORM = "https://github.com/RobustBench/robustbench/issues/new?template=new-model.md"


def _interval(correct: int, n: int) -> str:
    low, high = wilson(correct, n)
    return f"[{100 * low:.2f}, {100 * high:.2f}]"


def _test_size(dataset: str) -> int | None:
    return next((d.test_size for d in DATASETS.values() if d.name == dataset), None)


def warnings_for(sub: Submission) -> list[str]:
    """What a maintainer would question, one sentence each (also in the entry's footnote)."""
    out = list(sub.marks)
    if sub.entry["unreliable"]:
        out.append(
            f"Failing trust checks: {', '.join(sub.failing)} (the entry is marked unreliable)."
        )
    if sub.reported.ours:
        out.append("'reported' repeats our own AutoAttack number: give the paper's (--reported).")
    if sub.entry["dataset"] not in ("cifar10", "cifar100", "imagenet"):
        out.append(f"RobustBench has no {sub.entry['dataset']} leaderboard.")
    return out


def issue_markdown(sub: Submission, facts: dict[str, Any]) -> str:
    """RobustBench's ``new-model.md`` form with the entry's answers."""
    e, warn = sub.entry, warnings_for(sub)
    robust = e["external"] if "external" in e else e["autoattack_acc"]
    lines = [
        f"<!-- paste into {FORM} ; title: [New Model] {facts['zoo_name']} -->",
        "",
        "# Paper Information",
        "",
        f"- **Paper Title**: {e['name'] or '(fill in)'}",
        f"- **Paper URL**: {e['link'] or '(fill in)'}",
        f"- **Paper authors**: {e['authors'] or '(fill in)'}",
        "",
        "# Leaderboard Claim(s)",
        "",
        "## Model 1",
        "",
        f"- **Architecture**: {e['architecture']}",
        f"- **Threat Model**: {sub.threat_model}",
        f"- **eps**: {e['eps']}",
        f"- **Clean accuracy**: {e['clean_acc']}%",
        f"- **Robust accuracy**: {robust}% (AutoAttack {e['autoattack_acc']}%; reported "
        f"{e['reported']}%)",
        f"- **Additional data**: {str(e['additional_data']).lower()}",
        f"- **Evaluation method**: standard AutoAttack (pyautoattack "
        f"{facts['versions'].get('pyautoattack', '?')}) on {sub.aa.n} test images; log in "
        "`autoattack.log`"
        + (
            f", adversarial images in `{facts['adversarial']}`" if facts.get("adversarial") else ""
        ),  # fmt: skip
        "- **Checkpoint and code**: (upload `model.py` and `weights.safetensors` and link them "
        f"here; sha256 of the weights {facts['files'].get('weights.safetensors', '?')})",
        "",
    ]
    if warn:
        lines += ["> **Warning**: this entry would not be merged as it stands:", ">"]
        lines += [f"> - {w}" for w in warn] + [""]
    lines += [
        "# Model Zoo:",
        "",
        "- [ ] I want to add my models to the Model Zoo (check if true)",
        "- [ ] I use an architecture that is included among those in "
        "`robustbench/model_zoo/architectures` or in `timm`. If not, I added the link to the "
        "architecture implementation so that it can be added. (`model.py` of this bundle is that "
        "implementation; the zoo entry below builds it.)",
        "- [ ] I agree to release my model(s) under MIT license (check if true)",
        "",
        "```python",
        facts["stanza"].rstrip(),
        "```",
        "",
        f"model_info: `{facts['entry_path']}`",
        "",
    ]
    return "\n".join(lines)


def model_card(sub: Submission, facts: dict[str, Any]) -> str:
    """``README.md`` of the bundle (a Hugging Face model card body)."""
    e, row, n = sub.entry, sub.row, sub.aa.n
    clean_n = round(sub.clean.accuracy * sub.clean.n / 100)
    aa_n = round(sub.aa.accuracy * n / 100)
    full = _test_size(e["dataset"])
    training = json.dumps(facts.get("training") or {}, sort_keys=True)
    checks = ", ".join(sub.failing) if sub.failing else "none failed"
    lines = [
        "---",
        "library_name: pytorch",
        "tags: [adversarial-robustness, robustbench, racl-bench]",
        "---",
        "",
        f"# {facts['zoo_name']}: {e['architecture']} on {e['dataset']}",
        "",
        f"{e['name']}" + (f" ({e['link']})" if e["link"] else ""),
        "",
        "## How it was trained",
        "",
        f"- model: {sub.model} ({facts['model_kind']} model); code: `model.py` (standalone, only "
        "torch needed)",
        f"- training: {row['training']}; settings as stored with the checkpoint: `{training}`",
        f"- checkpoint {row['checkpoint']}; weights `weights.safetensors` (sha256 "
        f"{facts['files'].get('weights.safetensors', '?')}) and `weights.pt` (a plain state dict)",
        "",
        "## How it was evaluated",
        "",
        f"- standard AutoAttack ({sub.threat_model}, eps {e['eps']}), seed and batching as "
        f"stored (`{row['attack_key']}`), on {n} of the {full or '?'} {e['dataset']} test images "
        f"({row['data_slice']})",
        f"- clean accuracy {e['clean_acc']}% (95% Wilson interval {_interval(clean_n, n)})",
        f"- AutoAttack accuracy {e['autoattack_acc']}% (95% Wilson interval {_interval(aa_n, n)})",
    ]
    if sub.external is not None:
        lines.append(f"- strongest attack on the same images: {e['external']}% "
                     f"({', '.join(sub.external.attacks)} with AutoAttack)")  # fmt: skip
    lines += [
        f"- reported: {e['reported']}% ({sub.reported.source})",
        f"- AutoAttack run again for this bundle: same verdict on {facts['agree_robust']} of "
        f"{facts['n']} images; its log is `autoattack.log`",
        f"- versions: {', '.join(f'{k} {v}' for k, v in sorted(facts['versions'].items()))}",
        "",
        "## Trust checks",
        "",
        f"Trust checks and indicators of attack failure for this model: {checks}; "
        f"`unreliable` is {str(e['unreliable']).lower()}.",
        "",
        "## Files",
        "",
        *[f"- `{path}` sha256 {digest}" for path, digest in sorted(facts["files"].items())],
        "",
    ]
    return "\n".join(lines)
