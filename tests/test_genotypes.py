"""Genotype values, JSON files, validation messages and the search path."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import genotypes
from genotypes import Genotype, GenotypeError, RobNetArch

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "genotypes.json"
DARTS_NAMES = (
    "darts", "darts_v1", "pc_darts", "nasnet", "amoebanet", "pdarts", "advrush", "racl_published",
)  # fmt: skip
ROBNET_NAMES = ("robnet_small", "robnet_large", "robnet_free")
SHIPPED = DARTS_NAMES + ROBNET_NAMES

GOOD_PAIRS = [["sep_conv_3x3", 0], ["skip_connect", 1], ["max_pool_3x3", 2], ["none", 0]]


def darts_doc(**changes: object) -> dict:
    doc = {
        "name": "x",
        "kind": "darts",
        "normal": GOOD_PAIRS,
        "normal_concat": [2, 3],
        "reduce": GOOD_PAIRS,
        "reduce_concat": [2, 3],
        "source": "test",
    }
    doc.update(changes)
    return doc


def robnet_doc(**changes: object) -> dict:
    doc = {"kind": "robnet", "cells": [["01"] * 14], "share": True, "init_channels": 8, "layers": 5}
    doc.update(changes)
    return doc


def test_vocabularies():
    assert len(genotypes.PRIMITIVES) == 8 and len(genotypes.KNOWN_OPS) == 10
    assert set(genotypes.PRIMITIVES) < set(genotypes.KNOWN_OPS)
    assert genotypes.ROBNET_EDGES == 14
    assert set(genotypes.ROBNET_OPS) == {"00", "01", "10", "11"}


def test_every_published_genotype_is_shipped_with_its_source():
    assert set(SHIPPED) <= set(genotypes.list_genotypes())
    for name in DARTS_NAMES:
        assert isinstance(genotypes.load(name), Genotype)
    for name in ROBNET_NAMES:
        assert isinstance(genotypes.load(name), RobNetArch)
    if REFERENCE.is_file():
        ref = json.loads(REFERENCE.read_text())
        for name in DARTS_NAMES:
            record, expected = genotypes.read_genotype_file(name), ref["genotypes"][name]
            assert record.source == expected["source"]
            assert [list(p) for p in record.arch.normal] == expected["normal"]
            assert list(record.arch.reduce_concat) == expected["reduce_concat"]
        for name in ROBNET_NAMES:
            record, expected = genotypes.read_genotype_file(name), ref["robnet"]["archs"][name]
            assert record.source == expected["source"]
            assert [list(c) for c in record.arch.cells] == expected["cells"]
            assert record.arch.init_channels == expected["C"]


def test_nasnet_has_five_nodes_and_sparse_concat():
    nasnet = genotypes.load_genotype("nasnet")
    assert nasnet.normal_nodes == 5 and nasnet.reduce_nodes == 5
    assert nasnet.reduce_concat == (4, 5, 6)


@pytest.mark.parametrize("name", SHIPPED)
def test_round_trip_is_exact(name, tmp_path):
    record = genotypes.read_genotype_file(name)
    path = genotypes.save_genotype(
        record.arch, tmp_path / f"{name}.json", source=record.source, metadata={"k": [1, 2]}
    )
    again = genotypes.read_genotype_file(path)
    assert again.arch == record.arch and again.name == name
    assert again.source == record.source and again.metadata == {"k": [1, 2]}
    # Saving what was loaded writes the same bytes; the shipped file is byte-identical too.
    text = path.read_text()
    genotypes.save_genotype(again.arch, path, source=again.source, metadata=again.metadata)
    assert path.read_text() == text
    shipped = genotypes.find_genotype_file(name)
    copy = genotypes.save_genotype(record.arch, tmp_path / "copy", name=name, source=record.source)
    assert copy.read_text() == shipped.read_text()


def test_genotype_accepts_lists_and_is_hashable():
    g = Genotype(GOOD_PAIRS, [2, 3], GOOD_PAIRS, [3])
    assert g.normal[0] == ("sep_conv_3x3", 0) and g.reduce_concat == (3,)
    assert hash(g) == hash(Genotype(GOOD_PAIRS, [2, 3], GOOD_PAIRS, [3]))
    with pytest.raises(AttributeError):
        g.normal = ()  # type: ignore[misc]


def test_direct_construction_validates():
    with pytest.raises(GenotypeError, match="unknown op 'conv_9x9'"):
        Genotype([["conv_9x9", 0], ["none", 1]], [2], GOOD_PAIRS, [2])


MALFORMED = {
    "unknown op": (darts_doc(normal=[["conv_9x9", 0], ["none", 1]]), "unknown op 'conv_9x9'"),
    "eval-like op name": (darts_doc(normal=[["__import__('os')", 0], ["none", 1]]), "unknown op"),
    "odd pair count": (darts_doc(normal=GOOD_PAIRS[:3]), "3 pairs; every node needs exactly two"),
    "empty cell": (darts_doc(reduce=[]), "reduce: expected a non-empty list"),
    "pair of three": (darts_doc(normal=[["none", 0, 1], ["none", 1]]), r"expected \[op, input"),
    "pair not a list": (darts_doc(normal=["none", ["none", 1]]), r"expected \[op, input"),
    "index not below node": (
        darts_doc(normal=[["none", 0], ["none", 1], ["none", 4], ["none", 0]]),
        r"normal pair 2 \(node 1\): input index 4 must be an int in \[0, 3\)",
    ),
    "negative index": (darts_doc(normal=[["none", -1], ["none", 1]]), "input index -1"),
    "string index": (darts_doc(normal=[["none", "0"], ["none", 1]]), "input index '0'"),
    "bool index": (darts_doc(normal=[["none", True], ["none", 1]]), "input index True"),
    "concat out of range": (darts_doc(normal_concat=[2, 4]), r"index 4 out of range \[2, 4\)"),
    "concat below inputs": (darts_doc(reduce_concat=[1]), "reduce_concat: index 1 out of range"),
    "concat duplicate": (darts_doc(normal_concat=[2, 2]), "duplicate indices"),
    "concat empty": (darts_doc(normal_concat=[]), "normal_concat: expected a non-empty list"),
    "concat non-int": (darts_doc(normal_concat=[2, "3"]), "index '3' is not an int"),
    "missing key": ({"kind": "darts", "normal": GOOD_PAIRS}, "missing key.*normal_concat"),
    "unknown kind": (darts_doc(kind="nasbench"), "kind 'nasbench'"),
    "not an object": ([1, 2], "expected a JSON object"),
    "robnet bad code": (robnet_doc(cells=[["01"] * 13 + ["12"]]), "edge 13: code '12' not one of"),
    "robnet int code": (robnet_doc(cells=[["01"] * 13 + [11]]), "edge 13: code 11 not one of"),
    "robnet 13 codes": (robnet_doc(cells=[["01"] * 13]), "cell 0: expected 14 edge codes, got 13"),
    "robnet per-cell count": (
        robnet_doc(share=False, cells=[["01"] * 14] * 3),
        "3 cells given; expected 5, one per layer",
    ),
    "robnet shared count": (robnet_doc(cells=[["01"] * 14] * 2), "expected exactly 1"),
    "robnet share not bool": (robnet_doc(share="yes"), "share: expected true or false"),
    "robnet bad layers": (robnet_doc(layers=0), "layers: expected a positive int"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_rejected_with_file_and_fault(case, tmp_path):
    doc, message = MALFORMED[case]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(GenotypeError, match=message) as info:
        genotypes.load(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and "\n" not in text


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(GenotypeError, match=f"{path}: not valid JSON"):
        genotypes.load(str(path))


def test_unknown_name_and_missing_path():
    with pytest.raises(GenotypeError, match="unknown genotype 'dartz'.*darts"):
        genotypes.load("dartz")
    with pytest.raises(GenotypeError, match="no such genotype file"):
        genotypes.load("nowhere/x.json")
    with pytest.raises(GenotypeError, match="invalid genotype name"):
        genotypes.load("a b")


def test_load_genotype_refuses_robnet():
    with pytest.raises(GenotypeError, match="RobNet architecture"):
        genotypes.load_genotype("robnet_small")


def test_dropped_file_found_by_name_and_path(tmp_path, monkeypatch):
    monkeypatch.setenv(genotypes.ENV_VAR, f"{tmp_path / 'missing'}{os.pathsep}{tmp_path}")
    g = genotypes.load_genotype("darts")
    genotypes.save_genotype(g, tmp_path, name="my_search", source="unit test")
    assert "my_search" in genotypes.list_genotypes()
    assert genotypes.load("my_search") == g == genotypes.load(tmp_path / "my_search.json")
    assert genotypes.genotype_dirs()[1] == tmp_path
    # A file in the search path shadows the packaged one of the same name.
    genotypes.save_genotype(genotypes.load_genotype("pc_darts"), tmp_path / "darts.json")
    assert genotypes.load("darts") == genotypes.load_genotype("pc_darts")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = genotypes.save_genotype(genotypes.load("darts"), tmp_path / "g.json", source="a")
    before = path.read_bytes()

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        genotypes.save_genotype(genotypes.load("pc_darts"), path, source="b")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.json"]


def test_save_rejects_bad_targets(tmp_path):
    g = genotypes.load("darts")
    with pytest.raises(GenotypeError, match="give a .json file path or a name"):
        genotypes.save_genotype(g, tmp_path)
    with pytest.raises(GenotypeError, match="invalid genotype name"):
        genotypes.save_genotype(g, tmp_path, name="../evil")
    with pytest.raises(GenotypeError, match="cannot save a dict"):
        genotypes.save_genotype({"normal": []}, tmp_path / "x.json")  # type: ignore[arg-type]


def test_robnet_cell_codes():
    free = genotypes.load("robnet_free")
    assert not free.share and len(free.cells) == free.layers == 20
    assert free.cell_codes(3) == free.cells[3]
    small = genotypes.load("robnet_small")
    assert small.cell_codes(19) == small.cells[0]
    with pytest.raises(GenotypeError, match="out of range"):
        small.cell_codes(20)
