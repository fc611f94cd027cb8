"""Bad input, table-driven: each case is a real ``bench`` invocation that must end in ONE line
``bench: error: ...`` naming the fault, the right exit code, no traceback, and a watched file
(a results store, or a store path that must stay absent) unchanged. Validation refuses before
any work, so no case trains or attacks (the whole table runs in seconds). Rules:
docs/decisions/errors.md.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_STORE = Path(__file__).parent / "fixtures" / "report_store.sqlite"
USER_MODELS = Path(__file__).parent / "fixtures" / "user_models.py"
# warning categories Python hides by default (a user never sees them)
HIDDEN = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


class Payload:
    """A pickle that would create a file if anything unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def _dry(attack: str) -> list[str]:
    return ["run", "--dry-run", "--models", "resnet18", "--attacks", attack, "--store", "{absent}"]


def _run(attack: str) -> list[str]:  # a real run: refused before the store opens
    return ["run", "--models", "resnet18", "--attacks", attack, "--store", "{store}",
            "--threads", "1", "--no-progress"]  # fmt: skip


# (id, exit code, keyword the one line must contain, watched file, argv with {placeholders})
CASES = [
    (
        "seed-2**70",
        2,
        "--seed",
        "store",
        ["run", "--dry-run", "--seed", "1180591620717411303424", "--store", "{store}"],
    ),
    ("seed-negative", 2, "--seed", "store", ["run", "--seed", "-1", "--store", "{store}"]),
    (
        "run-save-every-negative",
        2,
        "--save-every-min",
        "store",
        ["run", "--save-every-min", "-1", "--store", "{store}"],
    ),  # fmt: skip
    (
        "train-save-every-nan",
        2,
        "--save-every-min",
        "absent",
        ["train", "resnet18", "--save-every-min", "nan", "--checkpoint-dir", "{absent}"],
    ),  # fmt: skip
    (
        "seeds-too-big",
        2,
        "--seeds",
        "store",
        ["run", "--seeds", "0,1099511627776", "--store", "{store}"],
    ),
    (
        "train-seed-2**70",
        2,
        "--seed",
        "store",
        ["train", "resnet18", "--seed", "1180591620717411303424"],
    ),
    ("search-seed-negative", 2, "--seed", "store", ["search", "--name", "x", "--seed", "-3"]),
    ("search-seeds-negative", 2, "--seeds", "store", ["search-seeds", "--seeds", "-1"]),
    ("n-not-int", 2, "--n", "store", ["run", "--n", "abc", "--store", "{store}"]),
    ("ta-steps-str", 2, "steps must be an integer", "store", _run("torchattacks:PGD(steps='abc')")),
    ("ta-steps-list", 2, "steps must be an integer", "store", _run("torchattacks:PGD(steps=[1])")),
    ("ta-steps-float", 2, "got 2.7", "store", _run("torchattacks:PGD(steps=2.7)")),
    ("ta-alpha-str", 2, "alpha must be a number", "store", _run("torchattacks:PGD(alpha='x')")),
    ("ta-cw-c-str", 2, "c must be a number", "store", _run("torchattacks:CW(c='x')")),
    ("ta-unknown-kw", 2, "does not take foo", "store", _run("torchattacks:PGD(foo=1)")),
    ("ta-eps-kw", 2, "model/eps", "absent", _dry("torchattacks:PGD(eps=0.1)")),
    ("ta-loss-choice", 2, "'ce', 'dlr'", "absent", _dry("torchattacks:APGD(loss='xyz')")),
    ("ta-bool", 2, "random_start", "absent", _dry("torchattacks:PGD(random_start='yes')")),
    ("ta-unknown-class", 2, "unknown torchattacks attack", "absent", _dry("torchattacks:Nope")),
    ("aa-version", 2, "version must be one of", "store", _run("autoattack(version='nope')")),
    ("aa-unknown-kw", 2, "autoattack accepts only", "absent", _dry("autoattack(foo=1)")),
    ("aa-seed-negative", 2, "autoattack: seed", "absent", _dry("autoattack(seed=-1)")),
    ("aa-seed-str", 2, "seed must be an integer", "absent", _dry("autoattack(seed='a')")),
    ("aa-custom-alone", 2, "version='custom'", "absent", _dry("autoattack(version='custom')")),
    ("pgd-kwargs", 2, "pgd does not take steps", "absent", _dry("pgd20(steps=3)")),
    ("attack-not-literal", 2, "must be a literal", "absent", _dry("torchattacks:PGD(steps=abc)")),
    ("attack-unknown", 2, "unknown attack", "store", _run("xyz")),
    (
        "eps-above-1",
        2,
        "eps must lie",
        "absent",
        ["run", "--dry-run", "--attacks", "pgd20", "--eps", "2", "--store", "{absent}"],
    ),
    (
        "n-above-test-set",
        2,
        "test set size (10000)",
        "store",
        ["run", "--attacks", "pgd20", "--n", "10001", "--store", "{store}"],
    ),
    (
        "n-zero",
        2,
        "--n: must lie in [1,",
        "absent",
        ["run", "--dry-run", "--attacks", "pgd20", "--n", "0", "--store", "{absent}"],
    ),
    ("device-unknown", 2, "tpu", "store", ["run", "--device", "tpu", "--store", "{store}"]),
    ("threads-zero", 2, "--threads", "store", ["run", "--threads", "0", "--store", "{store}"]),
    (
        "model-unknown",
        2,
        "unknown model",
        "absent",
        ["run", "--dry-run", "--models", "nosuch", "--store", "{absent}"],
    ),
    (
        "model-broken-genotype",
        2,
        "broken.json",
        "absent",
        ["run", "--dry-run", "--models", "broken", "--attacks", "pgd20", "--store", "{absent}"],
    ),
    (
        "model-genotype-path",
        2,
        "RACL_GENOTYPES_PATH",
        "absent",
        ["run", "--dry-run", "--models", "{geno}", "--attacks", "pgd20", "--store", "{absent}"],
    ),
    (
        "model-missing-path",
        2,
        "no such genotype file",
        "absent",
        ["run", "--dry-run", "--models", "{tmp}/none.json", "--store", "{absent}"],
    ),
    (
        "model-pickle-path",
        2,
        "cannot read",
        "absent",
        ["run", "--dry-run", "--models", "{pickle_json}", "--store", "{absent}"],
    ),
    (
        "weights-pickle",
        2,
        "weights_only",
        "absent",
        [
            "run",
            "--dry-run",
            "--model-file",
            "{models}:small",
            "--dataset",
            "mnist",
            "--weights",
            "{evil}",
            "--store",
            "{absent}",
        ],
    ),
    (
        "store-is-pickle",
        2,
        "not a results store",
        "evil",
        ["run", "--dry-run", "--store", "{evil}"],
    ),
    ("results-store-pickle", 2, "not a results store", "evil", ["results", "--store", "{evil}"]),
    ("results-no-store", 2, "no results store", "absent", ["results", "--store", "{absent}"]),
    (
        "report-store-pickle",
        2,
        "SQLite",
        "evil",
        ["report", "--store", "{evil}", "--out", "{tmp}/rep"],
    ),
    (
        "report-out-file",
        2,
        "existing file",
        "store",
        ["report", "--store", "{store}", "--out", "{plain}"],
    ),
    (
        "report-out-under-file",
        2,
        "is a file, not a folder",
        "store",
        ["report", "--store", "{store}", "--out", "{plain}/sub"],
    ),
    (
        "submit-out-dir",
        2,
        "would overwrite or hold --store",
        "store",
        ["submit", "racl_published", "--store", "{store}", "--out", "{tmp}"],
    ),
    (
        "submit-out-under-file",
        2,
        "is a file, not a folder",
        "store",
        ["submit", "racl_published", "--store", "{store}", "--out", "{plain}/e.json"],
    ),
    (
        "submit-dev-full",
        1,
        "No space left",
        "store",
        ["submit", "racl_published", "--store", "{store}", "--out", "/dev/full"],
    ),
    ("search-name-path", 2, "not a valid genotype name", "store", ["search", "--name", "../x y"]),
    ("search-name-dotdot", 2, "not a valid genotype name", "store", ["search", "--name", ".."]),
    (
        "search-out-dir-file",
        2,
        "existing file",
        "store",
        ["search", "--name", "ok", "--out-dir", "{plain}", "--run-dir", "{tmp}/r"],
    ),
    (
        "search-corrupt-state",
        2,
        "corrupt search state",
        "store",
        ["search", "--name", "ok", "--out-dir", "{tmp}/g", "--run-dir", "{bad_run}"],
    ),
    (
        "train-checkpoint-dir-file",
        2,
        "--checkpoint-dir",
        "store",
        ["train", "resnet18", "--checkpoint-dir", "{plain}"],
    ),
    (
        "run-checkpoint-dir-file",
        2,
        "--checkpoint-dir",
        "store",
        ["run", "--attacks", "pgd20", "--checkpoint-dir", "{plain}", "--store", "{store}"],
    ),
    (
        "train-cifar-pickles",
        2,
        "fail torchvision's MD5 check",
        "store",
        [
            "train",
            "resnet18",
            "--dataset",
            "cifar10",
            "--data-dir",
            "{data}",
            "--no-progress",
            "--n-train",
            "10",
            "--checkpoint-dir",
            "{tmp}/ck",
        ],
    ),  # fmt: skip
    ("search-seeds-out-file", 2, "existing file", "store", ["search-seeds", "--out", "{plain}"]),
    ("train-unknown-model", 2, "unknown model", "store", ["train", "nosuch"]),
    (
        "train-bad-override",
        2,
        "--override expects",
        "store",
        ["train", "resnet18", "--override", "oops"],
    ),
    ("train-unknown-recipe", 2, "nope", "store", ["train", "resnet18", "--recipe", "nope"]),
    ("unknown-command", 2, "invalid choice", "store", ["nosuch"]),
    ("preset-unknown", 2, "nope", "store", ["run", "--preset", "nope", "--store", "{store}"]),
]
CUDA_CASES = [
    (
        "run-cuda",
        2,
        "cuda",
        "store",
        ["run", "--dry-run", "--device", "cuda", "--store", "{store}"],
    ),
    ("train-cuda", 2, "cuda", "store", ["train", "resnet18", "--device", "cuda"]),
    ("search-seeds-cuda", 2, "cuda", "store", ["search-seeds", "--device", "cuda"]),
    ("search-cuda", 2, "cuda", "store", ["search", "--name", "ok", "--device", "cuda"]),
]


def sha(path: Path) -> str:
    """sha256 of the file's bytes, or "absent"."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The inputs the cases name: a store, a pickle, genotype files, a corrupt run folder."""
    monkeypatch.chdir(tmp_path)  # nothing a case writes by default lands in the project
    store = tmp_path / "store.db"
    shutil.copy(FIXTURE_STORE, store)
    marker = tmp_path / "UNPICKLED"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(Payload(marker)))
    gbad = tmp_path / "gbad"
    gbad.mkdir()
    (gbad / "broken.json").write_text('{"name": "broken", "kind": "darts", "normal": []}')
    monkeypatch.setenv("RACL_GENOTYPES_PATH", str(gbad))
    geno = tmp_path / "mine" / "mine.json"
    geno.parent.mkdir()
    geno.write_text((ROOT / "genotypes" / "darts.json").read_text())
    pickle_json = tmp_path / "pickled.json"
    pickle_json.write_bytes(pickle.dumps(Payload(marker)))
    bad_run = tmp_path / "bad_run"
    bad_run.mkdir()
    (bad_run / "state.json").write_text('{"epoch": 1, "tens')
    cifar = tmp_path / "data" / "cifar-10-batches-py"  # every file a pickle with a payload
    cifar.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                 "data_batch_5", "test_batch", "batches.meta"):  # fmt: skip
        (cifar / name).write_bytes(pickle.dumps(Payload(marker)))
    monkeypatch.setenv("RACL_BENCH_OFFLINE", "1")  # no case downloads anything
    plain = tmp_path / "plain.txt"
    plain.write_text("a file\n")
    return {"tmp": tmp_path, "models": USER_MODELS, "store": store,
            "absent": tmp_path / "absent.db", "evil": evil, "geno": geno,
            "pickle_json": pickle_json, "bad_run": bad_run, "plain": plain,
            "data": tmp_path / "data",
            "marker": marker}  # fmt: skip


def _argv(template: list[str], files: dict[str, Path]) -> list[str]:
    return [part.format(**{k: str(v) for k, v in files.items()}) for part in template]


def _check(case, files, capsys) -> None:  # noqa: ANN001
    _, code, keyword, watched, template = case
    before = sha(files[watched])
    with warnings.catch_warnings(record=True) as caught:  # a warning would be a second line
        warnings.simplefilter("always")
        try:
            got = main(_argv(template, files))
        except SystemExit as exit_:  # argparse
            got = exit_.code
    out, err = capsys.readouterr()
    assert not [str(w.message) for w in caught if not issubclass(w.category, HIDDEN)]
    lines = err.strip().splitlines()
    assert got == code, err
    assert len(lines) == 1 and lines[0].startswith("bench: error: "), err
    assert keyword in lines[0], lines[0]
    assert "Traceback" not in out + err
    assert sha(files[watched]) == before
    assert not files["marker"].exists()  # nothing was unpickled


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(case, files, capsys) -> None:  # noqa: ANN001
    _check(case, files, capsys)


@NO_CUDA
@pytest.mark.parametrize("case", CUDA_CASES, ids=[c[0] for c in CUDA_CASES])
def test_cuda_without_a_gpu_is_refused_first(case, files, capsys) -> None:  # noqa: ANN001
    _check(case, files, capsys)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) + len(CUDA_CASES) >= 40


def test_valid_inputs_still_pass(files, capsys) -> None:  # noqa: ANN001
    """The validated forms still plan: typed torchattacks and AutoAttack arguments, seeds."""
    attacks = ("torchattacks:PGD(steps=5, alpha=0.01),torchattacks:CW(c=0.5),"
               "autoattack(version='standard'),torchattacks:APGD(loss='dlr')")  # fmt: skip
    argv = ["run", "--dry-run", "--json", "--models", "resnet18", "--attacks", attacks,
            "--seed", str(2**32 - 1), "--n", "10000", "--store", str(files["absent"])]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dry_run"] and doc["cells"] > 0
    assert not files["absent"].exists()
