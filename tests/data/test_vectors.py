"""The item-vector file: a matching file loads, every mismatch is refused with a message naming the file."""

import json

import numpy as np
import pytest

from llm2rec.data.vectors import load_item_vectors
from llm2rec.errors import DataFormatError


def _save(tmp_path, array, meta=None, name="vecs"):
    path = tmp_path / f"{name}.npy"
    np.save(path, array)
    if meta is not None:
        (tmp_path / f"{name}.json").write_text(json.dumps(meta))
    return path


def test_loads_a_matching_file(tmp_path):
    vecs = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    path = _save(tmp_path, vecs, {"num_items": 5, "dim": 4, "dataset_checksum": "abc"})
    np.testing.assert_array_equal(load_item_vectors(path, 5, "abc"), vecs)


@pytest.mark.parametrize(
    "array, meta, message",
    [
        (np.zeros((5, 4), np.float32), None, "has 5 rows but the dataset has 5 items: expected 6"),
        (np.zeros((6, 4), np.float64), None, "dtype is float64, expected float32"),
        (np.zeros(6, np.float32), None, "expected a 2-D array"),
        (np.zeros((6, 4), np.float32), {"num_items": 7}, "made for 7 items, the dataset has 5"),
        (np.zeros((6, 4), np.float32), {"dim": 8}, "says dim 8"),
        (np.zeros((6, 4), np.float32), {"dataset_checksum": "other"}, "item rows may be in another order"),
    ],
)
def test_mismatched_files_are_refused_clearly(tmp_path, array, meta, message):
    path = _save(tmp_path, array, meta)
    with pytest.raises(DataFormatError, match=message) as info:
        load_item_vectors(path, 5, "abc")
    assert "vecs" in str(info.value)  # the message names the file


def test_nan_and_inf_are_refused(tmp_path):
    vecs = np.zeros((6, 4), np.float32)
    vecs[3, 1] = np.nan
    vecs[4, 0] = np.inf
    with pytest.raises(DataFormatError, match="2 rows hold NaN or inf values .first: row 3"):
        load_item_vectors(_save(tmp_path, vecs), 5)


def test_missing_and_non_npy_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_item_vectors(tmp_path / "nope.npy", 5)
    (tmp_path / "v.txt").write_text("1 2 3")
    with pytest.raises(DataFormatError, match=".npy"):
        load_item_vectors(tmp_path / "v.txt", 5)
