"""The prepared dataset's id: the same tables prepared twice keep one id; a changed table changes it."""

import json

import numpy as np
import pytest

from llm2rec.config import dataset_spec
from llm2rec.data.dataset import Dataset
from llm2rec.data.prepare import prepare_from_spec
from llm2rec.data.vectors import load_item_vectors, save_item_vectors
from llm2rec.errors import DataFormatError

SPEC = dict(format="builtin", num_users=200, num_items=120)


@pytest.fixture
def twice(tmp_path):
    """The same data prepared into two directories, with two different creation times."""
    first = prepare_from_spec(dataset_spec(**SPEC), tmp_path / "a").root
    second = prepare_from_spec(dataset_spec(**SPEC), tmp_path / "b").root
    manifest = json.loads((second / "manifest.json").read_text())
    manifest["created"] = "1999-01-01T00:00:00Z"  # as if prepared another day
    (second / "manifest.json").write_text(json.dumps(manifest))
    return Dataset.load(first), Dataset.load(second)


def test_the_same_tables_prepared_twice_have_one_id(twice):
    a, b = twice
    assert a.manifest_sha256 != b.manifest_sha256  # the manifests differ (creation time)...
    assert a.checksum == b.checksum  # ...the data does not


def test_vectors_of_one_preparation_load_against_the_other(twice, tmp_path):
    a, b = twice
    vectors = np.random.default_rng(0).normal(size=(a.num_items + 1, 4)).astype(np.float32)
    path = tmp_path / "v.npy"
    save_item_vectors(path, vectors, {"num_items": a.num_items, "dataset_checksum": a.checksum})
    np.testing.assert_array_equal(load_item_vectors(path, b.num_items, b.known_checksums), vectors)


def test_vectors_recorded_with_the_former_id_still_load(twice, tmp_path):
    """Files written before the id left the manifest's creation time out recorded the manifest's sha256."""
    a, _ = twice
    path = tmp_path / "old.npy"
    vectors = np.random.default_rng(1).normal(size=(a.num_items + 1, 4)).astype(np.float32)
    save_item_vectors(path, vectors, {"num_items": a.num_items, "dataset_checksum": a.manifest_sha256})
    np.testing.assert_array_equal(load_item_vectors(path, a.num_items, a.known_checksums), vectors)
    with pytest.raises(DataFormatError, match="another order"):  # the new id alone would refuse them
        load_item_vectors(path, a.num_items, a.checksum)


def test_a_changed_table_changes_the_id_and_refuses_the_vectors(twice, tmp_path):
    a, _ = twice
    path = tmp_path / "v.npy"
    save_item_vectors(
        path,
        np.zeros((a.num_items + 1, 4), np.float32),
        {"num_items": a.num_items, "dataset_checksum": a.checksum},
    )
    manifest = dict(a.manifest, tables=dict(a.manifest["tables"], items="0" * 64))
    changed = Dataset(a.root, manifest)
    assert changed.checksum != a.checksum
    with pytest.raises(DataFormatError, match="item rows may be in another order"):
        load_item_vectors(path, a.num_items, (changed.checksum,))
