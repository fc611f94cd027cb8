"""Evidence over seeds: does the Lipschitz constraint change the searched cell beyond seed noise?

For each variant (RACL with the operator bound, RACL with the paper's bound, RACL without
confidence learning, PC-DARTS from the same code) and seed: search at demo scale, train the
derived network with the demo's PGD-AT, measure its clean and PGD-20 accuracy on demo test
images and its operator-mode Lipschitz upper bound (:func:`racl_search.network_bound`). Every
stage is cached (search run folders and genotype config hashes, checkpoints by config hash,
rows in ``results.json``), so a killed study resumes. Reading the table: docs/SEARCH.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.enums import Dataset, Training
from core.errors import UserError
from core.jsonfile import read_json

VARIANTS: dict[str, dict[str, Any]] = {
    "racl": {"method": "racl", "bound": "operator"},
    "racl_no_cl": {"method": "racl_no_cl", "bound": "operator"},
    "pc_darts": {"method": "pc_darts", "bound": "operator"},
    "racl_rho0": {"method": "racl", "bound": "operator", "rho": 0.0},  # sampling, no constraint
    "random": {},  # no search: a random cell with racl's parameter count (same seed)
    "racl_paper_bound": {"method": "racl", "bound": "paper"},
}
DEFAULT_VARIANTS = ("racl", "racl_no_cl", "pc_darts", "racl_rho0", "random")
RANDOM_DRAWS = 400  # random genotypes tried per seed for the parameter-count match
RANDOM_MATCH = 0.05  # relative parameter-count tolerance of the random baseline
PARAMETER_FREE = ("max_pool_3x3", "avg_pool_3x3", "skip_connect")  # DARTS's usual reading


@dataclass(frozen=True)
class StudyConfig:
    """What the study runs; ``search`` / ``train`` override the demo presets' fields."""

    out_dir: Path
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    preset: str = "demo"
    search: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    n_eval: int = 200
    device: str = "cpu"
    data_dir: str | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.variants) - set(VARIANTS))
        if unknown:
            choices = ", ".join(VARIANTS)
            raise UserError(f"unknown variant(s) {', '.join(unknown)}; choose from {choices}")
        if not self.seeds:
            raise UserError("the study needs at least one seed")
        if self.n_eval < 1:
            raise UserError(f"--n-eval must be >= 1, got {self.n_eval}")


def run_study(config: StudyConfig, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every (variant, seed) row, computing what ``results.json`` does not hold yet."""
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = _load_rows(out / "results.json")
    rows = []
    with _genotype_path(out / "genotypes"):
        for variant, seed in itertools.product(config.variants, config.seeds):
            key = _row_key(config, variant, seed)
            row = done.get(key) or _one_row(config, variant, seed, log)
            row["key"] = key
            done[key] = row
            rows.append(row)
            _save_rows(out / "results.json", done)
            log(_row_line(row))
    return rows


def search_config(config: StudyConfig, variant: str, seed: int):
    """The search config of one row (the demo preset with the study's overrides); the random
    baseline's is racl's, whose parameter count it matches."""
    from racl_search.config import make_config

    settings = VARIANTS["racl" if variant == "random" else variant]
    clash = sorted(set(settings) & set(config.search))
    if clash:  # a study-wide override would silently undo what makes the variant
        raise UserError(f"the study's search settings {clash} clash with variant {variant}")
    return make_config(config.preset, seed=seed, **config.search, **settings)


def cell_parameters(genotype, config: StudyConfig) -> int:
    """Parameters of the study's evaluation network (the preset's cell size) of ``genotype``."""
    from bench.plan.presets import get_preset
    from models.datasets import model_dataset
    from models.genotype_network import GenotypeNetwork
    from models.params import count_parameters

    overrides = dict(get_preset(config.preset).cell_overrides)
    return count_parameters(GenotypeNetwork(genotype, model_dataset("mnist"), **overrides))


def random_genotype(rng: random.Random, steps: int = 4):
    """A uniformly random DARTS genotype: per node two distinct inputs, each a random op."""
    from genotypes import PRIMITIVES, Genotype

    ops = [p for p in PRIMITIVES if p != "none"]

    def cell() -> list[tuple[str, int]]:
        pairs = []
        for j in range(steps):
            for i in sorted(rng.sample(range(j + 2), 2)):
                pairs.append((rng.choice(ops), i))
        return pairs

    concat = tuple(range(2, 2 + steps))
    return Genotype(normal=cell(), normal_concat=concat, reduce=cell(), reduce_concat=concat)


def _change_one_edge(genotype, rng: random.Random):
    """``genotype`` with one random edge (either cell) given a random other op."""
    import dataclasses as dc

    from genotypes import PRIMITIVES

    cell = rng.choice(("normal", "reduce"))
    pairs = list(getattr(genotype, cell))
    k = rng.randrange(len(pairs))
    op, i = pairs[k]
    pairs[k] = (rng.choice([p for p in PRIMITIVES if p not in ("none", op)]), i)
    return dc.replace(genotype, **{cell: pairs})


def _random_cell(config: StudyConfig, seed: int, log) -> str:
    """The random baseline of ``seed``: random genotypes (seeded) until one lies within
    :data:`RANDOM_MATCH` of racl's parameter count (same seed); if :data:`RANDOM_DRAWS` draws
    miss (a pool-heavy racl cell is rare under uniform ops), random one-edge changes of the
    closest draw, each kept when it brings the count closer."""
    from genotypes import load_genotype, save_genotype
    from racl_search.api import existing_hash

    name = f"seeds_random_s{seed}"
    racl = _ensure_search(config, "racl", seed, log)
    target = cell_parameters(load_genotype(racl), config)
    key = f"random:{seed}:{target}:{RANDOM_DRAWS}:{RANDOM_MATCH}"
    if existing_hash(name) == key:
        return name
    rng = random.Random(seed)

    def gap_of(genotype) -> tuple[float, int]:
        count = cell_parameters(genotype, config)
        return abs(count - target) / target, count

    best = random_genotype(rng)
    (best_gap, best_count), draws = gap_of(best), 1
    while best_gap > RANDOM_MATCH and draws < RANDOM_DRAWS:
        draws += 1
        genotype = random_genotype(rng)
        gap, count = gap_of(genotype)
        if gap < best_gap:
            best, best_gap, best_count = genotype, gap, count
    changes = 0
    while best_gap > RANDOM_MATCH and changes < RANDOM_DRAWS:
        changes += 1
        genotype = _change_one_edge(best, rng)
        gap, count = gap_of(genotype)
        if gap < best_gap:
            best, best_gap, best_count = genotype, gap, count
    meta = {"config_hash": key, "target_params": target, "params": best_count, "draws": draws,
            "edge_changes": changes, "within": best_gap <= RANDOM_MATCH}  # fmt: skip
    if best_gap > RANDOM_MATCH:
        log(f"{name}: no random cell within {RANDOM_MATCH:.0%} of {target} parameters; the "
            f"closest has {best_count} ({best_gap:.1%} off)")  # fmt: skip
    save_genotype(best, Path(config.out_dir) / "genotypes", name=name,
                  source="seed study: random cell", metadata=meta)  # fmt: skip
    return name


def train_config(config: StudyConfig, seed: int):
    """The demo preset's PGD-AT training (bench/plan/presets.py) with the study's overrides."""
    from bench.plan.presets import get_preset
    from bench.training.config import TrainConfig

    preset = get_preset(config.preset)
    changes = {**preset.train.get(Training.PGD_AT.value, {}), "seed": seed, **config.train}
    return dataclasses.replace(TrainConfig.paper(Training.PGD_AT, Dataset.MNIST), **changes)


def _ensure_search(config: StudyConfig, variant: str, seed: int, log) -> str:
    from racl_search.api import existing_hash, search

    name = f"seeds_{variant}_s{seed}"
    search_cfg = search_config(config, variant, seed)
    if existing_hash(name) != search_cfg.config_hash():
        search(search_cfg, name, device=config.device, data_dir=config.data_dir,
               out_dir=Path(config.out_dir) / "genotypes",
               run_dir=Path(config.out_dir) / "runs" / name, progress=False, log=log)  # fmt: skip
    return name


def _one_row(config: StudyConfig, variant: str, seed: int, log) -> dict[str, Any]:
    t0 = time.perf_counter()
    if variant == "random":
        name = _random_cell(config, seed, log)
    else:
        name = _ensure_search(config, variant, seed, log)
    search_s = time.perf_counter() - t0
    return {
        "variant": variant,
        "seed": seed,
        "name": name,
        "search_s": round(search_s, 1),
        **_train_and_measure(config, name, seed),
    }


def _train_and_measure(config: StudyConfig, name: str, seed: int) -> dict[str, Any]:
    """Demo PGD-AT training, then clean / PGD-20 accuracy and the network's log bound."""
    from bench.evaluate import clean_correct, whitebox_correct
    from bench.plan.experiments import PGD20
    from bench.plan.presets import get_preset
    from bench.training.trainer import ensure_trained
    from core.data import eval_tensors
    from genotypes import load_genotype
    from racl_search.network_bound import log_network_bound

    overrides = dict(get_preset(config.preset).cell_overrides)
    t0 = time.perf_counter()
    model, meta = ensure_trained(
        name, Dataset.MNIST, train_config(config, seed), model_overrides=overrides,
        checkpoint_dir=Path(config.out_dir) / "checkpoints", device=config.device,
        data_dir=config.data_dir, progress=False,
    )  # fmt: skip
    train_s = time.perf_counter() - t0
    x, y = eval_tensors(Dataset.MNIST, config.n_eval, config.data_dir)
    t0 = time.perf_counter()
    clean = clean_correct(model, x, y, batch_size=100)
    robust = whitebox_correct(model, x, y, PGD20.spec(Dataset.MNIST), batch_size=100,
                              clean=clean, seed=seed)  # fmt: skip
    eval_s = time.perf_counter() - t0
    genotype = load_genotype(name)
    return {
        "genotype": {"normal": genotype.normal, "reduce": genotype.reduce},
        "parameter_free": parameter_free_fraction(genotype),
        "log_bound": log_network_bound(model, (1, 1, 28, 28)),
        "clean_correct": int(clean.sum()),
        "pgd20_correct": int(robust.sum()),
        "clean_bits": _bits(clean),
        "pgd20_bits": _bits(robust),
        "params": sum(p.numel() for p in model.parameters()),
        "n_eval": len(y),
        "checkpoint": meta["config_hash"],
        "train_s": round(train_s, 1),
        "eval_s": round(eval_s, 1),
    }


def _bits(correct) -> str:
    """Per-image outcomes as a string of 0/1 (test image order): paired comparisons read it."""
    return "".join("1" if bool(v) else "0" for v in correct.reshape(-1).tolist())


def parameter_free_fraction(genotype) -> float:
    """Share of the 16 chosen edges (both cells) whose op is a pool or skip_connect."""
    ops = [op for op, _ in (*genotype.normal, *genotype.reduce)]
    return sum(op in PARAMETER_FREE for op in ops) / len(ops)


def edit_distance(a: dict[str, list], b: dict[str, list]) -> int:
    """Edges to change (op or input) to turn one genotype into the other, node by node.

    Per node the two ``(op, input)`` pairs are compared as multisets, in both cells: 0 .. 16.
    """
    total = 0
    for cell in ("normal", "reduce"):
        pairs_a, pairs_b = a[cell], b[cell]
        for node in range(0, len(pairs_a), 2):
            left = Counter(tuple(p) for p in pairs_a[node : node + 2])
            right = Counter(tuple(p) for p in pairs_b[node : node + 2])
            total += 2 - sum((left & right).values())
    return total


def _row_key(config: StudyConfig, variant: str, seed: int) -> str:
    """Everything a row depends on: the search config, the training config, the test images
    (``n_eval``), the device and the data folder (a row of 20 images never answers for 40)."""
    search = search_config(config, variant, seed).config_hash()
    where = f"n_eval={config.n_eval}:device={config.device}:data={config.data_dir or '-'}"
    if variant == "random":  # the matching rule makes the cell
        variant = f"random({RANDOM_DRAWS},{RANDOM_MATCH})"
    return f"{variant}:{search}:{train_config(config, seed)}:{where}"


def _row_line(row: dict[str, Any]) -> str:
    return (
        f"{row['variant']} seed {row['seed']}: parameter-free {row['parameter_free']:.2f}, "
        f"ln bound {row['log_bound']:.2f}, clean {row['clean_correct']}/{row['n_eval']}, "
        f"PGD-20 {row['pgd20_correct']}/{row['n_eval']} (search {row['search_s']:.0f} s, "
        f"train {row['train_s']:.0f} s, eval {row['eval_s']:.0f} s)"
    )


def _load_rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    rows = read_json(path, "seed-study results")
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "key" in r for r in rows):
        raise UserError(f"seed-study results {path}: not a list of result rows; delete it to rerun")
    return {row["key"]: row for row in rows}


def _save_rows(path: Path, rows: dict[str, dict[str, Any]]) -> None:
    from core.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(list(rows.values()), indent=1))


@contextmanager
def _genotype_path(folder: Path):
    """``folder`` first in ``RACL_GENOTYPES_PATH`` for the block (the study's genotypes)."""
    old = os.environ.get("RACL_GENOTYPES_PATH")
    folder.mkdir(parents=True, exist_ok=True)
    os.environ["RACL_GENOTYPES_PATH"] = os.pathsep.join(filter(None, [str(folder), old]))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("RACL_GENOTYPES_PATH", None)
        else:
            os.environ["RACL_GENOTYPES_PATH"] = old
