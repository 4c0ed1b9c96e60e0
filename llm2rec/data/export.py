"""Export a prepared dataset in the official LLM2Rec layout, so users can run the authors' code on
exactly the same data.

Layout written under OUT (names follow the official repository's read paths)::

    downstream/item_titles.json   {"1": title, ..., "N": title}
    downstream/data.txt           every user's whole sequence (the official code only reads max id from it)
    downstream/train_data.txt     one line per training example: history ids then the target id
    downstream/val_data.txt       one line per user: training part (≤ max_history) then the valid target
    downstream/test_data.txt      one line per user: training + valid (≤ max_history) then the test target
    train/<name>.csv              CSFT pairs (training part only)
    valid/<name>.csv              validation pairs in the same CSV schema (for the CSFT eval loss)
    info/item_titles.txt          one title per line (the MNTP / contrastive corpus)

CSV ids are 0-based (downstream id − 1), as the official ``SeqRecData`` comment says; list columns are
Python literals (``repr``), which the official code reads and ``ast.literal_eval`` parses safely.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd

from llm2rec.data.dataset import Dataset
from llm2rec.io import atomic_dir


def _id_lines(df: pd.DataFrame) -> str:
    return "".join(
        " ".join(map(str, [*h, t])) + "\n" for h, t in zip(df["history"], df["target"], strict=True)
    )


def _csft_csv(df: pd.DataFrame, titles: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["user_id", "history_item_title", "history_item_id", "item_title", "item_id"])
    for user, hist, target in zip(df["user"], df["history"], df["target"], strict=True):
        writer.writerow(
            [
                int(user),
                repr([titles[i] for i in hist]),
                repr([int(i) - 1 for i in hist]),
                titles[int(target)],
                int(target) - 1,
            ]
        )
    return buf.getvalue()


def export_llm2rec(
    dataset: Dataset, out: str | Path, name: str = "dataset", *, overwrite: bool = False
) -> Path:
    from llm2rec.outdir import check_output

    check_output(out, "export", overwrite=overwrite, inputs=[dataset.root], legacy=("downstream",))
    titles = dataset.titles
    with atomic_dir(out, overwrite=overwrite, kind="export", legacy=("downstream",)) as tmp:
        down = tmp / "downstream"
        for sub in ("downstream", "train", "valid", "info"):
            (tmp / sub).mkdir()
        mapping = {str(i): titles[i] for i in range(1, dataset.num_items + 1)}
        (down / "item_titles.json").write_text(
            json.dumps(mapping, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        seqs = dataset.sequences["items"]
        (down / "data.txt").write_text("".join(" ".join(map(str, s)) + "\n" for s in seqs), encoding="utf-8")
        (down / "train_data.txt").write_text(_id_lines(dataset.split("train")), encoding="utf-8")
        (down / "val_data.txt").write_text(_id_lines(dataset.split("valid")), encoding="utf-8")
        (down / "test_data.txt").write_text(_id_lines(dataset.split("test")), encoding="utf-8")
        (tmp / "train" / f"{name}.csv").write_text(_csft_csv(dataset.csft_pairs(), titles), encoding="utf-8")
        (tmp / "valid" / f"{name}.csv").write_text(
            _csft_csv(dataset.split("valid"), titles), encoding="utf-8"
        )
        (tmp / "info" / "item_titles.txt").write_text("".join(t + "\n" for t in titles[1:]), encoding="utf-8")
    return Path(out)
