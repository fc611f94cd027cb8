"""Programmatic entry points for the harness: cached searches.

``ensure_searched`` runs a search only when no genotype file of that name carries the same
config hash in its metadata, so ``bench run`` pays for each search once. The Table 5 variants
are in :mod:`racl_search.variants`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from core.data import load_split
from core.distributed import resolve_device
from racl_search.config import SearchConfig, make_config

Loader = Callable[[str, str, "str | Path | None"], tuple[Tensor, Tensor]]


def default_out_dir() -> Path:
    """Where searched genotypes go: the first folder of ``genotypes.genotype_dirs()``."""
    from genotypes import genotype_dirs

    return genotype_dirs()[0]


def default_run_dir(name: str) -> Path:
    """``$RACL_SEARCH_RUNS`` (default ``runs/search``) / name."""
    return Path(os.environ.get("RACL_SEARCH_RUNS") or "runs/search") / name


def existing_hash(name: str) -> str | None:
    """The config hash recorded in genotype ``name``'s metadata, or None."""
    from genotypes import GenotypeError, read_genotype_file

    try:
        return read_genotype_file(name).metadata.get("config_hash")
    except GenotypeError:
        return None


def train_split(dataset: str, data_dir: str | Path | None, loader: Loader | None) -> tuple:
    """The train split through ``loader`` (default: :func:`core.data.load_split`)."""
    return (loader or load_split)(dataset, "train", data_dir)


def ensure_searched(
    name: str,
    *,
    method: str,
    eta: float,
    rho: float,
    preset: str,
    dataset: str,
    seed: int = 0,
    device: str = "cpu",
    data_dir: str | Path | None = None,
    loader: Loader | None = None,
    progress: bool = False,
) -> str:
    """Run the search for ``name`` unless a genotype with the same config hash exists."""
    config = make_config(
        preset, method=method, eta=eta, rho=rho, dataset=str(getattr(dataset, "value", dataset)),
        seed=seed,
    )  # fmt: skip
    if existing_hash(name) == config.config_hash():
        return name
    from racl_search.run_state import run_dir_hash

    run_dir = default_run_dir(name)
    resume = run_dir_hash(run_dir) == config.config_hash()  # else the old state is stale
    search(
        config, name, device=device, data_dir=data_dir, loader=loader, run_dir=run_dir,
        resume=resume, progress=progress,
    )  # fmt: skip
    return name


def search(
    config: SearchConfig,
    name: str,
    *,
    device: str = "cpu",
    data_dir: str | Path | None = None,
    loader: Loader | None = None,
    out_dir: Path | None = None,
    run_dir: Path | None = None,
    resume: bool = True,
    progress: bool = True,
    log: Callable[[str], None] = print,
    compile: bool = False,
):
    """Load the train split and run :func:`racl_search.search.run_search`."""
    from racl_search.search import run_search

    x, y = train_split(config.dataset, data_dir, loader)
    return run_search(
        config, x, y, name=name, out_dir=out_dir or default_out_dir(),
        run_dir=run_dir or default_run_dir(name), device=resolve_device(device),
        resume=resume, progress=progress, log=log, compile=compile,
    )  # fmt: skip
