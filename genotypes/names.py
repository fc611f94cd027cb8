"""The paper's short names for zoo genotypes (``racl`` is the published RACL cell)."""

from __future__ import annotations

ALIASES: dict[str, str] = {"racl": "racl_published"}


def zoo_name(name: str) -> str:
    """The zoo's name for a paper name (``racl`` -> ``racl_published``); others unchanged."""
    return ALIASES.get(name, name)
