"""docs/PROTOCOL.md, generated from the recipes (``bench recipes --markdown``): the tables of
``bench.training.recipes`` with sources, and how the smoke and demo presets scale them."""

from __future__ import annotations

from typing import Any

from bench.training.recipes import RACL, RECIPES, Recipe, recipe_for

INTRO = """# Training protocol (generated)

Generated from `bench/training/recipes.py` by
`python -m bench.cli recipes --markdown > docs/PROTOCOL.md`; `tests/test_recipes.py` fails when
this file and the recipes differ. Do not edit by hand.

## What the paper states and what we chose

The RACL paper (3.1) states only the adversarial budget of training: PGD adversarial training
(Madry et al.) with eps 8/255, 7 steps of 2/255 on CIFAR-10/100, and eps 76.5/255 with a step
of 20/255 on MNIST; it says the searched cells are retrained "following" DARTS/PC-DARTS and
trained "in an adversarial manner" following Madry et al. Every other setting comes from a
public recipe, named per row below (`published`), or is our choice (`chosen`, with the reason).
Origins: `racl` = stated by the RACL paper; `published` = stated by the source named;
`chosen` = ours.

Where sources disagree we picked one:

- drop path 0.2 (DARTS) rather than 0.3 (PC-DARTS): one value for every cell network, so the
  cell is the only thing that differs between the rows of Table 1; DARTS's protocol is the one
  the compared cells (NASNet, AmoebaNet, DARTS) were re-evaluated under in the DARTS paper.
- Adversarial training of cell networks: AdvRush's `adv_train.py` defaults (200 epochs of
  PGD-7, SGD lr 0.1 at batch 64, x0.1 from epoch 99 and x0.01 from 149, weight decay 1e-4,
  clipping at 5, no drop path), which the RACL authors' group's Wsr-NAS retraining script
  (`retrain/train_adv_mgpu_cifar.py`) keeps as its defaults; rather than RobNet's 150 epochs
  after 20 warm-up epochs at lr 1.2 over a global batch of 1,536 (32 GPUs). Until this check
  (issue 11, item 4) the recipe had batch 128, a cosine schedule and weight decay 5e-4, our
  choices while AdvRush's file was not at hand; they are AdvRush's values now.
- ResNet-18, DenseNet-121 and VGG: the PGD-AT schedule of Rice et al. (200 epochs, lr 0.1 with
  x0.1 at epochs 100 and 150, weight decay 5e-4, batch 128), the robust-training literature's
  standard; their natural training uses the same schedule without the adversary.
- TRADES: beta 6 and its CIFAR schedule (76 epochs, batch 128, lr 0.1, weight decay 2e-4, x0.1
  from its 1-based epoch 75, i.e. our 0-based milestone 74: it was 75, one epoch late, before the
  check); the adversary is the paper's (7 steps of 2/255 at 8/255) instead of TRADES's 10 steps
  of 0.007 at 0.031, so every adversarial training of the benchmark shares one threat model.
- MNIST and Fashion-MNIST: Madry et al.'s MNIST training (Adam 1e-4, batch 50, 100k steps) for
  every model, with the paper's budget (their adversary is 40 steps of 0.01).

## Sources

Checked against the public files (issue 11, item 4) in a stored index of public GitHub
repositories; each row cites `file:line` of the stored commit named here (a later commit may
move a line):

| source | repository | path | commit |
|---|---|---|---|
| PC-DARTS | yuhuixu1993/PC-DARTS | train.py | 0bf477a |
| AdvRush | nutellamok/advrush | advrush/adv_train.py | e6fcb7b |
| Wsr-NAS (RACL's group) | zhicheng2T0/Wsr-NAS | retrain/train_adv_mgpu_cifar.py | 885af4c |
| RobNet | gmh14/RobNets | experiments/RobNet_large_cifar10/config.py | 195a41f |
| TRADES | yaodongyu/TRADES | train_trades_cifar10.py | e20f7b9 |
| Rice et al. | locuslab/robust_overfitting | train_cifar.py | 263b826 |
| Madry et al. | MadryLab/mnist_challenge | config.json, train.py | 41a60df, 6f91f83 |

Not in the index, so "not checked against the source": DARTS's own `cnn/train.py`
(quark0/darts holds only `cnn/train_imagenet.py` there); its rows cite the PC-DARTS line with
the same default, except drop path (PC-DARTS 0.3; DARTS's 0.2 as issue 11 quotes it). Rice et
al.'s `generate_validation.py` (the 1,000 held-out images). Another stored commit of TRADES
(10753d3) has 80 epochs and beta 1.0 as defaults; e20f7b9's 76 and 6.0 are the values of its
README's CIFAR-10 runs. Wsr-NAS's own launch script (`retrain/script/train_wsrnet_basic.sh`)
overrides the defaults with batch 400 and weight decay 5e-4 for its 8-GPU runs.

## Which recipe a checkpoint gets

`bench.training.recipes.recipe_for(model, training, dataset)`: family `cell` for genotype networks
(models with `init_channels`: DARTS, PC-DARTS, NASNet, AmoebaNet, RobNet, RACL, Table 5), `cnn`
otherwise (ResNet-18, DenseNet-121, VGG). The paper preset trains every checkpoint by its
recipe; `bench train --recipe NAME` trains one. Settings not listed take the `TrainConfig`
defaults.

## Model selection

Cell networks are retrained on the entire training set and keep their final weights: RACL 3.1
says the searched architecture is "retrained with the entire training set". The CNN recipes
(no such statement) follow Rice et al.: 1,000 training images held out (the last ones; never the
test set), PGD-10 at the training budget on them after every epoch, and the weights of the best
robust epoch kept. Every epoch's held-out clean and PGD accuracy is in the checkpoint sidecar
(`metrics.epochs`), and the kept epoch in `metrics.selection`.

## Resuming

`bench train` and `bench run` save the whole training state after every epoch into
`<checkpoint dir>/<config hash>.partial/` (model, optimizer, schedule, the RNG streams of torch,
numpy, Python and of the loader's shuffling and augmentation, the finished epochs' metrics, the
best weights so far) as safetensors + JSON, atomically; a killed run started again resumes
there, prints `resumed from epoch K` and ends with the weights of an uninterrupted run
(bit-identical on a CPU, tested with a real SIGKILL). The folder is removed once the checkpoint
is written.

Long epochs are also saved within the epoch, after the first batch that ends 10 minutes or more
after the previous save (`bench train --save-every-min M`; 0 saves after every batch; the
interval is not part of the config hash, it does not change the weights). Such a state adds the
loader position: the epoch's whole batch order (indices), the batches done, the running loss and
accuracy sums, and the states the shuffling generators reach at the end of the pass (a
`RandomSampler` draws once more when its pass runs out, so a resumed epoch sets them rather than
replaying the pass). A resumed run prints `resumed from epoch K, batch B` (K epochs and B
batches of the next done) and replays exactly the rest of that epoch; tested with a real SIGKILL
within an epoch, bit-identical weights and per-epoch metrics.

Under torchrun every rank's random streams and its place in the epoch (each rank has its own
share of the batches) are gathered to rank 0, which writes the one state; each rank restores its
own on resume, and a state saved by another number of processes is refused. Rank 0 decides when
a within-epoch save is due (one broadcast per batch). Tested with a 2-process gloo torchrun on a
CPU whose two workers are SIGKILLed within an epoch: the resumed run ends bit-identical to an
uninterrupted 2-process one. The GradScaler of fp16 autocast (CUDA only) is saved with the state
(its scale and growth tracker, as JSON) and restored on resume.

## Rehearsal

Preset `rehearsal` is the paper preset (every experiment, the recipes, full model size) on
one epoch of 256 training images (two batches of the largest recipe batch), 16 held-out images
and 32 test images (16 for the sweeps), step checkpoints 1 and 2, two sweep budgets:
`bench run --preset rehearsal --dataset cifar10` finds shape, memory and code-path errors in
minutes; its numbers mean nothing. Its search runs at the smoke search size. Every run logs
each checkpoint's peak memory (`checkpoint ...: <hash> (train, peak N MiB (rss))`), prints it
after the summary (`peak memory <model/training/dataset>: N MiB`) and keeps it in the run's
JSON (`memory`): on CUDA `torch.cuda.max_memory_allocated`, on a CPU the process's peak
resident set size over that checkpoint's search, training or loading (`VmHWM`, reset at its
start through `/proc/self/clear_refs`; an upper bound, as memory freed before but kept by the
allocator counts), or the process's lifetime peak, labelled `rss-lifetime`, where the reset is
refused. Its submission stage, `bench submit MODEL --run-autoattack --preset rehearsal`, runs
the original AutoAttack's four members at full size capped at two iterations each
(`autoattack(iters=2)`, Square two queries) and writes an entry whose name and footnote say
"REHEARSAL, NOT A RESULT"; no other preset accepts a capped AutoAttack.
"""


BUDGETS = ("eps", "attack_step_size")


def fmt(value: Any, key: str = "") -> str:
    """A setting's value as the doc shows it (budgets as k/255)."""
    if key in BUDGETS and isinstance(value, float) and 0 < value < 1:
        k = value * 255
        if abs(k - round(k, 1)) < 1e-9 and k >= 1:
            return f"{round(k, 1):g}/255"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) or "-"
    return str(value)


def recipe_table(recipe: Recipe) -> list[str]:
    lines = [f"### `{recipe.name}`", ""]
    if recipe.note:
        lines += [recipe.note + ".", ""]
    lines += ["| setting | value | origin | source |", "|---|---|---|---|"]
    lines.append(f"| training | {recipe.training.value} | {RACL} | RACL paper 3.1 |")
    for key, s in recipe.settings.items():
        lines.append(f"| {key} | {fmt(s.value, key)} | {s.origin} | {s.source} |")
    for key, s in recipe.model.items():
        lines.append(f"| model: {key} | {fmt(s.value)} | {s.origin} | {s.source} |")
    return [*lines, ""]


def scaling_table() -> list[str]:
    """Field by field: the paper recipe vs what smoke and demo train (DARTS on MNIST)."""
    from bench.plan.presets import PRESETS
    from core.enums import Dataset, Training

    lines = [
        "## How smoke and demo scale the recipes",
        "",
        "Smoke keeps each recipe's adversarial budget (RACL 3.1) and replaces its schedule by a",
        "short one (`bench/plan/presets.py`, field `train`). The demo trains and attacks at eps",
        "0.1 on MNIST (one short epoch reaches robustness there, not at 0.3), with 3 steps of",
        "2.5 eps / 3 (Madry et al. 2018's step rule), and its adversarial trainings fine-tune the",
        "natural checkpoint of the same architecture (`warm_start`; that checkpoint's hash is part",
        'of their key): docs/decisions/planner.md, "The demo\'s robust models". Models are',
        "narrower and shallower (`cell_overrides`, `width_overrides`). Their config hashes are",
        "pinned in `tests/test_recipes.py`. Every field where they differ from the paper recipe,",
        "for a cell network on MNIST:",
        "",
    ]
    for training in Training:
        recipe = recipe_for("darts", training, Dataset.MNIST)
        paper = recipe.config().to_dict()
        rows = {}
        for name in ("smoke", "demo"):
            cfg, _, _ = PRESETS[name].train_config("darts", training, Dataset.MNIST)
            for key, value in cfg.to_dict().items():
                if value != paper[key] and key != "seed":
                    rows.setdefault(key, {})[name] = value
        lines += [f"**{training.value}** (paper: `{recipe.name}`)", ""]
        lines += ["| field | paper | smoke | demo |", "|---|---|---|---|"]
        for key, by in sorted(rows.items()):
            cells = [fmt(_tuple(by.get(n, paper[key])), key) for n in ("smoke", "demo")]
            lines.append(f"| {key} | {fmt(_tuple(paper[key]), key)} | {cells[0]} | {cells[1]} |")
        lines.append("")
    model = [f"{n}: cells {PRESETS[n].cell_overrides}, CNN {PRESETS[n].width_overrides}"
             for n in ("smoke", "demo")]  # fmt: skip
    return [*lines, "Model sizes - " + "; ".join(model) + ".", ""]


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def render() -> str:
    """The whole of docs/PROTOCOL.md."""
    lines = [INTRO, "## The recipes", ""]
    for recipe in RECIPES.values():
        lines += recipe_table(recipe)
    lines += scaling_table()
    return "\n".join(lines).rstrip() + "\n"
