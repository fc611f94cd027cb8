"""Each check of what a user types fires on bad input and stays quiet on good input; the CLI's
one error path maps each failure to its exit code (docs/decisions/errors.md)."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pytest
import torch

from bench.attacks import parse_attack
from bench.attacks.kwarg_types import ArgType, arg_type, torchattacks_types
from bench.cli import main
from bench.cli_errors import describe
from bench.inputs import check_name, check_output_dir, check_output_file, check_seed
from core.errors import UserError
from racl_search.errors import SearchError
from racl_search.run_state import load_run_state, run_dir_hash, save_run_state


def test_valid_attack_arguments_still_parse() -> None:
    spec = parse_attack("torchattacks:PGD(steps=5, alpha=0.01)", eps="8/255")
    assert spec.steps == 5 and spec.step_size == pytest.approx(0.01)
    assert dict(parse_attack("autoattack(version='standard')", eps="8/255").params)["version"] == (
        "standard"
    )
    assert dict(parse_attack("torchattacks:CW(c=0.5, kappa=1)", eps="8/255").params)["c"] == 0.5
    assert dict(parse_attack("torchattacks:APGD(loss='dlr')", eps="8/255").params)["loss"] == "dlr"
    ta_aa = parse_attack("torchattacks:AutoAttack(seed=None, version='plus')", eps="8/255")
    assert dict(ta_aa.params)["version"] == "plus"
    assert parse_attack("torchattacks:PGD(random_start=0)", eps="8/255").random_start is False


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("torchattacks:PGD(steps=2.7)", "steps must be an integer"),
        ("torchattacks:PGD(steps=True)", "steps must be an integer"),
        ("torchattacks:CW(steps=1.5)", "steps must be an integer"),
        ("torchattacks:AutoAttack(version='nope')", "'standard', 'plus', 'rand'"),
        ("torchattacks:AutoAttack(seed='a')", "seed must be an integer"),
        ("torchattacks:PGD(random_start=2)", "random_start must be True or False"),
        ("autoattack(targets=2.5, version='custom', attacks='apgd-t')", "targets"),
    ],
)
def test_attack_argument_types_are_checked(text: str, fault: str) -> None:
    with pytest.raises(UserError, match=fault):
        parse_attack(text, eps="8/255")


def test_types_come_from_defaults_and_docstrings() -> None:
    cw = torchattacks_types("CW")
    assert cw["c"].kind == "real"  # default 1, documented "c (float)"
    assert cw["steps"].kind == "int"
    apgd = torchattacks_types("APGD")
    assert apgd["loss"].choices == ("ce", "dlr") and apgd["verbose"].kind == "bool"
    assert arg_type(None, "int").optional and arg_type(None, "int").kind == "int"
    assert arg_type(3).kind == "int" and arg_type(0.5).kind == "real"
    assert arg_type("x", "str", ("a", "b")).choices == ()  # a default outside the list: free text
    ArgType("real").check("a", "b", 3)  # an int is a number
    with pytest.raises(UserError, match="a: b must be a number"):
        ArgType("real").check("a", "b", True)


def test_seed_range() -> None:
    assert check_seed(0) == 0 and check_seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, 2**70, True, 1.0):
        with pytest.raises(UserError, match="--seed"):
            check_seed(bad)


def test_name_rule() -> None:
    for good in ("my_geno", "racl-2.1", "A" * 64):
        assert check_name(good) == good
    for bad in ("../x y", "..", ".hidden", "", "a/b", "A" * 65, "x y"):
        with pytest.raises(UserError, match="not a valid genotype name"):
            check_name(bad)


def test_output_paths(tmp_path: Path) -> None:
    plain = tmp_path / "f.txt"
    plain.write_text("x")
    assert check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert check_output_dir(tmp_path) == tmp_path
    assert check_output_file(tmp_path / "new" / "e.json") == tmp_path / "new" / "e.json"
    assert check_output_file(plain) == plain  # an existing file is replaced
    with pytest.raises(UserError, match="existing file"):
        check_output_dir(plain)
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_output_dir(plain / "sub")
    with pytest.raises(UserError, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_output_file(plain / "e.json")


def test_exit_codes_of_the_error_path() -> None:
    assert describe(UserError("bad"))[1] == 2
    assert describe(OSError(errno.ENOSPC, "No space left on device", "/x")) == (
        "/x: No space left on device",
        1,
    )
    assert describe(OSError(errno.EACCES, "Permission denied", "/x"))[1] == 2
    assert describe(OSError(errno.EROFS, "Read-only file system", "/x"))[1] == 2
    assert describe(sqlite3.DatabaseError("file is not a database"), "s.db") == (
        "store s.db: file is not a database",
        2,
    )
    assert describe(sqlite3.OperationalError("disk I/O error"), "s.db")[1] == 1
    message, code = describe(RuntimeError("boom"))
    assert code == 1 and "internal error: RuntimeError: boom" in message and "--debug" in message


def _boom(args) -> int:  # noqa: ANN001
    raise RuntimeError("boom\nsecond line")


@pytest.mark.parametrize("how", ["none", "flag", "flag-after", "env"])
def test_debug_shows_the_traceback(how: str, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setattr("bench.commands.zoo.run", _boom)
    argv = {"none": ["zoo"], "flag": ["--debug", "zoo"], "flag-after": ["zoo", "--debug"],
            "env": ["zoo"]}[how]  # fmt: skip
    if how == "env":
        monkeypatch.setenv("RACL_BENCH_DEBUG", "1")
    else:
        monkeypatch.delenv("RACL_BENCH_DEBUG", raising=False)
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("bench: error: internal error: RuntimeError")
    assert ("Traceback" in err) == (how != "none")
    if how == "none":
        assert len(err.strip().splitlines()) == 1


def test_interrupt_exits_130(monkeypatch, capsys) -> None:  # noqa: ANN001
    def interrupted(args) -> int:  # noqa: ANN001
        raise KeyboardInterrupt

    monkeypatch.setattr("bench.commands.zoo.run", interrupted)
    assert main(["zoo"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_corrupt_search_state_names_the_file(tmp_path: Path) -> None:
    save_run_state(tmp_path, 0, {"w": torch.ones(2), "history": [], "elapsed": 1.0})
    (tmp_path / "config.json").write_text(json.dumps({"config_hash": "abc"}))
    epoch, state = load_run_state(tmp_path)  # a sound state still loads
    assert epoch == 0 and torch.equal(state["w"], torch.ones(2))
    assert run_dir_hash(tmp_path) == "abc"
    (tmp_path / "state-0.safetensors").write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(SearchError, match="corrupt search state .*state-0.safetensors"):
        load_run_state(tmp_path)
    (tmp_path / "state.json").write_text("[1, 2]")
    with pytest.raises(SearchError, match="state.json: not a JSON object"):
        load_run_state(tmp_path)
    (tmp_path / "state.json").write_text('{"epoch": 0}')
    with pytest.raises(SearchError, match="state.json: missing or bad field"):
        load_run_state(tmp_path)
    (tmp_path / "config.json").write_bytes(b"\x80\x04\x95")
    with pytest.raises(SearchError, match="config.json: not JSON"):
        run_dir_hash(tmp_path)


def test_planner_refuses_n_above_the_test_set() -> None:
    from bench.plan.experiments import get_experiments
    from bench.plan.planner import plan
    from bench.plan.presets import get_preset

    preset = get_preset("smoke")
    assert plan(get_experiments([]), preset, ["resnet18"], ["fgsm"], n=10000, calibrate=False)
    with pytest.raises(UserError, match="above the .* test set size"):
        plan(get_experiments([]), preset, ["resnet18"], ["fgsm"], n=10001, calibrate=False)
