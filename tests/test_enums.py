import pytest

from core.enums import Dataset, Training


def test_parse_accepts_values_case_and_dashes():
    assert Dataset.parse("CIFAR10") is Dataset.CIFAR10
    assert Dataset.parse("fashion-mnist") is Dataset.FASHION_MNIST
    assert Training.parse(Training.TRADES) is Training.TRADES


def test_parse_rejects_unknown_with_choices():
    with pytest.raises(ValueError, match="choose one of: cifar10, cifar100, mnist"):
        Dataset.parse("imagenet")


def test_unknown_choice_is_a_one_line_user_error_for_every_enum():
    from core import enums
    from core.errors import UserError

    members = [getattr(enums, n) for n in dir(enums)]
    kinds = [e for e in members if isinstance(e, type) and issubclass(e, enums.StrEnum)]
    kinds = [e for e in kinds if e is not enums.StrEnum]
    assert {e.__name__ for e in kinds} >= {
        "Dataset", "Norm", "Training", "Device", "EvalKind", "SearchMethod", "Strength"
    }  # fmt: skip
    for kind in kinds:
        assert kind.parse(kind.values()[0]).value == kind.values()[0]
        with pytest.raises(UserError, match=r"^unknown .*; choose one of: ") as err:
            kind.parse("no-such-value")
        assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


def test_the_cli_reports_an_unknown_choice_in_one_line(capsys):
    from bench.cli import main

    assert main(["run", "--dataset", "imagenet", "--dry-run", "--store", "/nonexistent/x.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bench: error: unknown dataset 'imagenet'") and "\n" not in err


def test_an_unknown_preset_is_a_one_line_error_naming_the_presets():
    from bench.plan.presets import get_preset
    from core.errors import UserError

    assert get_preset("demo").name == "demo"
    with pytest.raises(UserError, match=r"^unknown preset 'huge'; choose one of: smoke, demo"):
        get_preset("huge")
