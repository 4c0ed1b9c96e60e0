"""Cold-start items (prepare --cold-items / --cold-after): held out of every training input."""

from __future__ import annotations

import numpy as np
import pytest

from llm2rec.config import dataset_spec
from llm2rec.data.prepare import prepare_from_spec
from llm2rec.errors import ConfigError
from llm2rec.seqrec.data import SeqRecData


@pytest.fixture(scope="module")
def cold(tmp_path_factory):
    spec = dataset_spec(format="builtin", num_users=400, num_items=150, cold_items=0.1, seed=7)
    return prepare_from_spec(spec, tmp_path_factory.mktemp("cold") / "ds")


def test_no_cold_item_is_a_training_input_and_cold_targets_are_only_valid_or_test(cold):
    ids = set(cold.cold_items.tolist())
    assert ids and cold.manifest["dropped"]["cold"]["items_in_catalogue"] == len(ids)
    training = {int(i) for seq, n in zip(cold.sequences["items"], cold.sequences["n_train"], strict=True)
                for i in seq[:n]}  # fmt: skip
    assert not ids & training
    train = cold.split("train")
    assert not ids & {int(i) for h in train["history"] for i in h} and not ids & set(train["target"].tolist())
    csft = cold.csft_pairs()
    assert not ids & set(csft["target"].tolist()) and not ids & {int(i) for h in csft["history"] for i in h}
    held_out = set(cold.split("valid")["target"].tolist()) | set(cold.split("test")["target"].tolist())
    assert ids <= held_out  # every cold item in the catalogue is some valid or test target
    # The recommenders' training rows hold no cold item either (inputs or targets).
    data = SeqRecData.from_dataset(cold)
    rows = data.train_rows
    assert not ids & set(rows.inputs.unique().tolist()) and not ids & set(rows.targets.unique().tolist())
    assert set(data.cold_items.tolist()) == ids


def test_cold_titles_are_hidden_from_the_title_stages_unless_known(cold, tmp_path):
    titles = cold.training_titles
    assert all(titles[i] == "" for i in cold.cold_items)
    assert sum(t == "" for t in titles) == len(cold.cold_items) + 1  # and the padding row
    spec = dataset_spec(
        format="builtin", num_users=400, num_items=150, cold_items=0.1, seed=7, cold_titles_known=True
    )
    known = prepare_from_spec(spec, tmp_path / "known")
    assert known.training_titles == known.titles
    assert known.cold_items.tolist() == cold.cold_items.tolist()  # the same seeded choice


def test_cold_by_time_holds_out_the_items_first_seen_after_the_cut_off(tmp_path):
    plain = prepare_from_spec(
        dataset_spec(format="builtin", num_users=300, num_items=120), tmp_path / "plain"
    )
    first_seen = {}
    for seq, ts in zip(plain.sequences["items"], plain.sequences["timestamps"], strict=True):
        for i, t in zip(seq, ts, strict=True):
            first_seen[int(i)] = min(first_seen.get(int(i), t), t)
    cut = int(np.quantile(list(first_seen.values()), 0.9))
    late = prepare_from_spec(dataset_spec(format="builtin", num_users=300, num_items=120, cold_after=cut),
                             tmp_path / "late")  # fmt: skip
    first = {}
    for seq, ts in zip(late.sequences["items"], late.sequences["timestamps"], strict=True):
        for i, t in zip(seq, ts, strict=True):
            first[int(i)] = min(first.get(int(i), t), t)
    assert len(late.cold_items) and all(first[int(i)] >= cut for i in late.cold_items)


def test_cold_settings_are_checked():
    with pytest.raises(ConfigError):
        dataset_spec(format="builtin", cold_items=1.5)
    from llm2rec.data.protocol import ProtocolSettings

    with pytest.raises(ConfigError, match="not both"):
        ProtocolSettings(cold_items=0.1, cold_after=5).validate()
