import numpy as np
import pytest
import torch

from llm2rec.errors import ConfigError
from llm2rec.seqrec.item_encoder import ItemEncoder, normalise_vectors


def test_normalise_vectors_keeps_padding_row():
    vecs = np.array([[0, 0], [3, 4], [1, 0], [2, 2]], dtype=np.float32)
    l2 = normalise_vectors(vecs, "l2")
    np.testing.assert_allclose(np.linalg.norm(l2[1:], axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(l2[0], [0, 0])
    centred = normalise_vectors(vecs, "center")
    np.testing.assert_allclose(centred[1:].mean(axis=0), 0.0, atol=1e-6)
    with pytest.raises(ConfigError):
        normalise_vectors(vecs, "whiten-ish")


def test_text_table_rows_follow_file_rows():
    vecs = np.arange(12, dtype=np.float32).reshape(4, 3)
    enc = ItemEncoder(3, 5, "text", vecs)
    expected = enc.adapter(torch.from_numpy(vecs))
    torch.testing.assert_close(enc.table(), expected)
    assert not any(p is enc.vectors for p in enc.parameters())  # frozen: a buffer, not a parameter


def test_modes_and_trainable_parts():
    vecs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    text_id = ItemEncoder(3, 5, "text+id", vecs, finetune_vectors=True)
    assert text_id.table().shape == (4, 5)
    names = {n for n, _ in text_id.named_parameters()}
    assert {"vectors", "id_embedding.weight", "adapter.weight"} <= names
    ident = ItemEncoder(3, 5, "id")
    assert torch.all(ident.table()[0] == 0)
    mlp = ItemEncoder(3, 5, "text", vecs, adapter="mlp")
    assert mlp.table().shape == (4, 5)
    with pytest.raises(ConfigError, match="needs an embeddings file"):
        ItemEncoder(3, 5, "text")


def test_scale_normalisation_keeps_every_angle():
    vecs = np.array([[0, 0], [30, 40], [0, 10], [6, 8]], dtype=np.float32)
    out = normalise_vectors(vecs, "scale")
    norms = np.linalg.norm(out[1:], axis=1)
    assert norms.mean() == pytest.approx(1.0) and np.allclose(
        out[1:] / norms[:, None], vecs[1:] / np.linalg.norm(vecs[1:], axis=1)[:, None]
    )
    assert out[0].tolist() == [0, 0]


def test_standardize_evens_out_dimensions_with_the_catalogue_statistics():
    rng = np.random.default_rng(0)
    vecs = np.zeros((6, 3), dtype=np.float32)
    vecs[1:] = rng.normal(size=(5, 3)) * [1.0, 10.0, 0.0] + [0.0, 40.0, 7.0]  # one big dim, one constant
    out = normalise_vectors(vecs, "standardize")
    np.testing.assert_allclose(out[1:].mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(out[1:].std(axis=0), [1 / np.sqrt(3), 1 / np.sqrt(3), 0.0], rtol=1e-5)
    assert out[0].tolist() == [0, 0, 0]
    # A new item is normalised with the catalogue's mean and std, not its own.
    new = np.zeros((2, 3), dtype=np.float32)
    new[1] = vecs[1]
    np.testing.assert_allclose(normalise_vectors(new, "standardize", reference=vecs)[1], out[1], rtol=1e-5)
