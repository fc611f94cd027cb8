"""Which store rows answer a table cell (bench.report.selection.pool)."""

from __future__ import annotations

import pandas as pd

from bench.report.selection import pool


def _row(key: str, run_id: int, correct: int, source_checkpoint: str, n: int = 100) -> dict:
    return {
        "key": key,
        "kind": "transfer",
        "model": "darts",
        "attack_key": "pgd-10",
        "eps": 0.3,
        "steps": 10,
        "step_size": 0.01,
        "training": "natural",
        "source": "vgg19",
        "source_checkpoint": source_checkpoint,
        "data_slice": f"test[:{n}]",
        "n": n,
        "correct": correct,
        "accuracy": 100.0 * correct / n,
        "seed": 0,
        "run_id": run_id,
        "per_sample": None,
    }


def test_a_retrained_source_gives_way_to_the_newest_run_whatever_its_hash():
    # The source checkpoint hashes sort in both orders against the run ids: the newest run wins.
    for old_hash, new_hash in (("aaaa", "ffff"), ("ffff", "aaaa")):
        rows = pd.DataFrame([_row("k1", 1, 40, old_hash), _row("k2", 2, 70, new_hash)])
        measure = pool(rows)
        assert measure.accuracy == 70.0
        assert measure.rows == 1


def test_more_images_win_over_a_newer_run():
    rows = pd.DataFrame([_row("k1", 1, 400, "aaaa", n=1000), _row("k2", 2, 70, "ffff")])
    measure = pool(rows)
    assert (measure.n, measure.accuracy) == (1000, 40.0)


def test_the_plain_attack_wins_over_its_variants_of_the_same_name():
    plain = _row("k1", 1, 40, "aaaa")
    variants = []
    for i, key in enumerate(
        ("pgd(eps=0.3,steps=10,eot=10)", "pgd(eps=0.3,steps=10,best_iterate=1)")
    ):
        row = _row(f"v{i}", 5 + i, 20, "aaaa", n=1000)  # more images and a newer run
        row["attack_key"] = key
        variants.append(row)
    measure = pool(pd.DataFrame([plain, *variants]))
    assert (measure.accuracy, measure.attack_key) == (40.0, "pgd-10")
    only_variants = pool(pd.DataFrame(variants))  # without a plain row, a variant answers
    assert only_variants.n == 1000


def test_one_row_per_seed_the_newest_run_and_seeds_ascending():
    rows = [_row("k1", 1, 40, "aaaa"), _row("k2", 3, 50, "aaaa"), _row("k3", 2, 60, "aaaa")]
    rows[0]["seed"], rows[1]["seed"], rows[2]["seed"] = 2, 2, 0
    measure = pool(pd.DataFrame(rows))
    assert [(s.seed, s.correct) for s in measure.seeds] == [(0, 60), (2, 50)]
    assert (measure.accuracy, measure.rows) == (60.0, 3)  # the first (lowest) seed's


def test_rows_without_counts_pool_to_their_image_weighted_mean():
    rows = [_row("k1", 1, 0, "aaaa", n=100), _row("k2", 1, 0, "aaaa", n=300)]
    rows[0]["seed"] = 1
    for row, acc in zip(rows, (20.0, 60.0), strict=True):
        row["correct"], row["accuracy"], row["steps"] = None, acc, None
        row["data_slice"] = "test[:400]"
    measure = pool(pd.DataFrame(rows))
    assert measure.seeds == () and measure.steps is None
    assert (measure.accuracy, measure.n) == (50.0, 400)


def test_a_random_models_plain_white_box_cells_are_marked():
    from bench.report.selection import FlagBook

    indicators = pd.DataFrame(
        [
            {"model": "noisy", "training": "natural", "dataset": "mnist",
             "counts_json": '{"random_forward": [16, 16]}'},
            {"model": "small", "training": "natural", "dataset": "mnist",
             "counts_json": '{"random_forward": [0, 16]}'},
        ]
    )  # fmt: skip
    empty = pd.DataFrame(columns=["run_id", "check_name", "model", "dataset", "training",
                                  "detail", "passed"])  # fmt: skip
    flags = FlagBook(empty, pd.DataFrame(columns=["kind", "model"]), "mnist", indicators)
    mark = flags.random_plain("noisy", "natural", "pgd(eps=0.1,steps=20)")
    assert mark is not None and "no EoT" in flags.text(mark)
    assert flags.random_plain("noisy", "natural", "pgd(eps=0.1,steps=20,eot=10)") is None
    assert flags.random_plain("noisy", "natural", "autoattack(version='rand')") is None
    assert flags.random_plain("small", "natural", "pgd(eps=0.1,steps=20)") is None
    assert flags.random_plain("noisy", "pgd_at", "pgd(eps=0.1,steps=20)") is None
