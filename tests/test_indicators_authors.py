"""The suite's unstable-predictions score and incomplete-optimisation rule against values
computed once with a port of the authors' code (tests/fixtures/ioaf_port.py, after
pralab/IndicatorsOfAttackFailure ``src/indicators/indicators.py``), stored here, on a fixed
small model and the first 8 MNIST test images."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench.attacks import build_attack, parse_attack
from bench.trust.indicators import UNSTABLE_THRESHOLD, UNSTABLE_WIDTH, still_rising, unstable_scores
from core.data import eval_tensors
from core.enums import Norm

# printed by `python tests/fixtures/ioaf_port.py` (image i draws from a generator seeded 1000 + i)
AUTHORS_UNSTABLE = {
    "mlp": [0.000789, 0.000974, 0.000692, 0.000699, 0.000657, 0.000736, 0.000757, 0.000937],
    "wavy": [0.264883, 0.699745, 0.409236, 0.395816, 0.192032, 0.601533, 0.211484, 0.369792],
}
AUTHORS_INCOMPLETE = {  # (eps, step, steps) -> per image
    (0.1, 0.01, 20): [False, False, False, False, False, False, True, False],
    (0.1, 0.1, 20): [False] * 8,
    (0.3, 0.05, 24): [False, False, False, False, True, False, False, False],
}


def _port():  # noqa: ANN202 - the fixture module, imported from its file
    path = Path(__file__).parent / "fixtures" / "ioaf_port.py"
    spec = importlib.util.spec_from_file_location("ioaf_port", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def data():
    return eval_tensors("mnist", 8)


@pytest.mark.parametrize("name", ["mlp", "wavy"])
def test_unstable_scores_equal_the_authors(data, name):
    port = _port()
    model = port.fixed_model() if name == "mlp" else port.Wavy().eval()
    x, y = data
    everyone = torch.ones(len(y), dtype=torch.bool)
    ours = unstable_scores(model, x, y, UNSTABLE_WIDTH, Norm.LINF, everyone, seed=1000)
    assert ours.tolist() == pytest.approx(AUTHORS_UNSTABLE[name], abs=2e-5)
    triggered = [s > UNSTABLE_THRESHOLD for s in AUTHORS_UNSTABLE[name]]
    assert (ours > UNSTABLE_THRESHOLD).tolist() == triggered
    assert any(triggered) != (name == "mlp")  # the wavy model triggers, the plain one does not
    only_some = unstable_scores(model, x, y, UNSTABLE_WIDTH, Norm.LINF, everyone & False, seed=0)
    assert only_some.tolist() == [0.0] * 8  # images not asked for are not scored


@pytest.mark.parametrize(("eps", "step", "steps"), list(AUTHORS_INCOMPLETE))
def test_incomplete_optimisation_follows_the_authors_window(data, eps, step, steps):
    model = _port().fixed_model()
    x, y = data
    spec = parse_attack(f"pgd{steps}", eps=eps, step_size=step, dataset="mnist")
    attack = build_attack(dataclasses.replace(spec, random_start=False))
    with torch.no_grad():
        path = [F.cross_entropy(model(x), y, reduction="none")]
    for x_adv in attack.run(model, x, y):
        with torch.no_grad():
            path.append(F.cross_entropy(model(x_adv), y, reduction="none"))
    assert still_rising(torch.stack(path)).tolist() == AUTHORS_INCOMPLETE[(eps, step, steps)]


def test_a_short_path_reads_its_last_half():
    # PGD-10's path has 11 points: the authors' 10 would be the whole run, so any loss that rose
    # at all would trigger; the suite reads the last 5 points there (docs/decisions/trust.md)
    rose_early = torch.cat([torch.linspace(0.0, 1.0, 4), torch.ones(7)])[:, None]
    rose_late = torch.cat([torch.zeros(8), torch.linspace(0.3, 1.0, 3)])[:, None]
    assert still_rising(torch.cat([rose_early, rose_late], dim=1)).tolist() == [False, True]


def test_the_window_is_the_last_ten_points_not_a_tenth_of_the_steps():
    # PGD-20's path has 21 points; a rise that ends 4 points before the end is inside the
    # authors' window of 10 (a last tenth of the steps, 2 of them, would miss it)
    recent = torch.zeros(21, 1)
    recent[12:17] = torch.linspace(0.2, 1.0, 5)[:, None]
    recent[17:] = 1.0
    settled = torch.zeros(21, 1)
    settled[:11] = torch.linspace(0.0, 1.0, 11)[:, None]  # its best is 10 points old at the end
    settled[11:] = 0.5
    assert still_rising(torch.cat([recent, settled], dim=1)).tolist() == [True, False]
