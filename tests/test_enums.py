import pytest

from core.enums import Dataset, Training


def test_parse_accepts_values_case_and_dashes():
    assert Dataset.parse("CIFAR10") is Dataset.CIFAR10
    assert Dataset.parse("fashion-mnist") is Dataset.FASHION_MNIST
    assert Training.parse(Training.TRADES) is Training.TRADES


def test_parse_rejects_unknown_with_choices():
    with pytest.raises(ValueError, match="choose one of: cifar10, cifar100, mnist"):
        Dataset.parse("imagenet")
