"""`llm2rec prepare` on every dataset in ../shared/data; the Scientific split must equal the shipped one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llm2rec.data.protocol import ProtocolSettings, prepare
from llm2rec.data.sources import read_source

SCI = "unisrec_scientific_subset_2018"


def _shipped(root, split):
    df = pd.read_csv(root / f"Scientific.{split}.inter", sep="\t")
    asin = pd.read_csv(root / "Scientific.item2index", sep="\t", header=None, names=["asin", "idx"])
    to_asin = dict(zip(asin["idx"], asin["asin"]))
    hist = [tuple(to_asin[int(i)] for i in h.split()[-10:]) for h in df["item_id_list:token_seq"]]
    return sorted(zip(hist, (to_asin[int(i)] for i in df["item_id:token"])))


def _ours(ds, split):
    keys = np.concatenate([[""], ds.items["key"].to_numpy()])
    df = ds.split(split)
    return sorted(zip((tuple(keys[h]) for h in df["history"]), keys[df["target"].to_numpy()]))


def test_scientific_as_shipped(shared_data, tmp_path):
    root = shared_data / SCI
    raw = read_source("recbole", [root])
    ds = prepare(raw, tmp_path / "sci", ProtocolSettings(kcore=0, dedup=False))
    assert (ds.num_users, ds.num_items) == (2928, 1585)
    for split in ("valid", "test"):
        assert _ours(ds, split) == _shipped(root, split)
    assert ds.manifest["counts"]["train_examples"] == len(
        pd.read_csv(root / "Scientific.train.inter", sep="\t")
    )


@pytest.mark.parametrize(
    "folder, pattern",
    [("minionerec_amazon18", "Industrial_and_Scientific"), ("minionerec_amazon18", "Office_Products"),
     ("r3_cds_vinyl_2018", "CDs_and_Vinyl")],
)  # fmt: skip
def test_d3_datasets_prepare(shared_data, tmp_path, folder, pattern):
    root = shared_data / folder
    inputs = [p for p in sorted(root.rglob("*")) if p.is_file() and pattern in p.name and p.suffix != ".md"]
    # Only the valid/test slices of a global time split ship here, so 5-core collapses them; 3-core does not.
    ds = prepare(read_source("d3", inputs), tmp_path / "ds", ProtocolSettings(kcore=3))
    seqs = ds.sequences
    assert ds.num_users > 2000 and ds.num_items > 2000
    assert all(len(s) >= 3 for s in seqs["items"])
    test = ds.split("test")
    last = seqs.set_index("user")["items"].map(lambda s: int(s[-1]))
    assert (test["target"].to_numpy() == last.loc[test["user"]].to_numpy()).all()
    assert all(t for t in ds.titles[1:])  # every kept item has a cleaned, non-empty title
