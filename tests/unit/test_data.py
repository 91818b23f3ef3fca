"""Calibration sampling and evaluation text from the data directory (../shared/data)."""

import json

import pytest

from pruning_core import DataNotFound, SpecError, data


def char_tokenize(text):
    return [ord(c) % 251 for c in text]


def test_default_data_dir_has_the_shared_files():
    root = data.data_dir()
    assert (root / "wikitext-2-raw" / "wiki.test.raw").is_file()


def test_wikitext_eval_text_is_the_file_as_is():
    text = data.eval_text("wikitext2")
    assert text == (data.data_dir() / "wikitext-2-raw" / "wiki.test.raw").read_text(encoding="utf-8")


def test_ptb_lines_joined_with_spaces():
    text = data.eval_text("ptb")
    assert "\n" not in text and text.startswith("no it was n't black monday")


def test_c4_calibration_follows_the_protocol():
    """Same draw sequence as random.seed(seed) + randint, documents longer than seqlen only."""
    import random

    import pyarrow.parquet as pq

    docs = pq.read_table(data.data_dir() / "c4" / "c4_validation_2k.parquet").column("text").to_pylist()
    ids = data.calibration_ids("c4", char_tokenize, nsamples=5, seqlen=300, seed=0)
    random.seed(0)
    expected = []
    while len(expected) < 5:
        toks = char_tokenize(docs[random.randint(0, len(docs) - 1)])
        if len(toks) <= 300:
            continue
        j = random.randint(0, len(toks) - 300 - 1)
        expected.append(toks[j : j + 300])
    assert ids.tolist() == expected
    assert data.calibration_ids("c4", char_tokenize, 5, 300, seed=1).tolist() != expected


def test_user_files(tmp_path):
    jsonl = tmp_path / "cal.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": "x" * 50 + str(i)}) for i in range(4)) + "\n")
    ids = data.calibration_ids(str(jsonl), char_tokenize, nsamples=3, seqlen=20, seed=0)
    assert ids.shape == (3, 20)
    txt = tmp_path / "cal.txt"
    txt.write_text("abc " * 100)
    assert data.calibration_ids(str(txt), char_tokenize, 2, 16, 0).shape == (2, 16)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"body": 1}\n')
    with pytest.raises(SpecError, match="bad.jsonl:1"):
        data.calibration_ids(str(bad), char_tokenize, 1, 4, 0)
    with pytest.raises(SpecError, match="too few documents"):
        data.calibration_ids(str(txt), char_tokenize, 1, 10_000, 0)
    with pytest.raises(DataNotFound, match="not found"):
        data.calibration_ids(str(tmp_path / "missing.txt"), char_tokenize, 1, 4, 0)


def test_missing_data_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPIARY_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFound, match="wiki.test.raw"):
        data.eval_text("wikitext2")
    with pytest.raises(DataNotFound, match="c4_validation_2k.parquet"):
        data.calibration_ids("c4", char_tokenize, 1, 4, 0)
