"""The paper's numbers and how store model names map onto the paper's rows.

Numbers: ``bench/report/paper_results.json``, copied from the tables and Section 3.4 of
"Adversarially Robust Neural Architecture Search with Confidence Learning" (RACL). Names: the zoo's
``racl_published`` (and a bare ``racl``) is the paper's ``racl`` row; a searched genotype can be
mapped explicitly (``--map NAME=racl``); ablation models are named ``racl_table5_<variant>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from core.errors import UserError
from genotypes.names import ALIASES
from racl_search.variants import TABLE5_PREFIX

PAPER_RESULTS = Path(__file__).with_name("paper_results.json")
RACL = "racl"
DEFAULT_ALIASES: dict[str, str] = {**{zoo: paper for paper, zoo in ALIASES.items()}, RACL: RACL}
NAS_MODELS = ("amoebanet", "nasnet", "darts", "pc_darts", "racl")
TRANSFER_SOURCE = "vgg19"


@lru_cache(maxsize=1)
def load_paper_results() -> dict:
    """The paper's numbers (parsed once)."""
    with PAPER_RESULTS.open(encoding="utf-8") as fh:
        return json.load(fh)


def parse_model_map(items: list[str] | None) -> dict[str, str]:
    """``["NAME=ROW", ...]`` from the CLI into a mapping; a malformed item raises UserError."""
    mapping: dict[str, str] = {}
    for item in items or []:
        name, sep, row = item.partition("=")
        if not sep or not name.strip() or not row.strip():
            raise UserError(f"--map expects NAME=PAPER_ROW, got {item!r}")
        mapping[name.strip()] = row.strip()
    return mapping


class NameMap:
    """Maps store model names to paper row names (None when the paper has no such row)."""

    def __init__(self, explicit: Mapping[str, str] | None = None) -> None:
        self.aliases = {**DEFAULT_ALIASES, **dict(explicit or {})}

    def paper_row(self, model: str) -> str:
        """The paper's name for ``model`` (the name itself when no alias applies)."""
        return self.aliases.get(model, model)

    def is_racl(self, model: str) -> bool:
        return self.paper_row(model) == RACL

    def table5_variant(self, model: str, variants: list[str]) -> str | None:
        """The Table 5 row for ``racl_table5_<variant>`` (punctuation-insensitive), else None."""
        explicit = self.aliases.get(model)
        if explicit in variants:
            return explicit
        if not model.startswith(TABLE5_PREFIX):
            return None
        wanted = _squash(model[len(TABLE5_PREFIX) :])
        for variant in variants:
            if _squash(variant) == wanted:
                return variant
        return None


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def model_order(paper_rows: list[str]) -> dict[str, int]:
    """Sort rank of each paper row, in the paper's own order."""
    return {row: i for i, row in enumerate(paper_rows)}
