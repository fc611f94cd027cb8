"""The paper's short names for zoo genotypes (``racl`` is the published RACL cell)."""

from __future__ import annotations

ALIASES: dict[str, str] = {"racl": "racl_published"}


def zoo_name(name: str) -> str:
    """The zoo's name for a paper name (``racl`` -> ``racl_published``); others unchanged."""
    return ALIASES.get(name, name)


def paper_name(name: str) -> str:
    """The paper's name for a zoo name (``racl_published`` -> ``racl``); others unchanged."""
    return next((alias for alias, target in ALIASES.items() if target == name), name)
