import numpy as np
import pytest

from llm2rec.seqrec.data import SeqRecData, pad_right, training_examples


def test_pad_right():
    flat = np.array([1, 2, 3, 4, 5])
    padded = pad_right(flat, np.array([0, 2, 4]), np.array([2, 3, 1]), 4)
    assert padded.tolist() == [[1, 2, 0, 0], [3, 4, 5, 0], [5, 0, 0, 0]]


def test_every_prefix_is_supervised_by_default():
    ex = training_examples([np.array([1, 2, 3, 4]), np.array([5, 6])], max_history=2)
    assert ex.targets.tolist() == [2, 3, 4, 6]
    assert ex.histories.tolist() == [[1, 0], [1, 2], [2, 3], [5, 0]]
    assert ex.lengths.tolist() == [1, 2, 2, 1]
    assert ex.users.tolist() == [0, 0, 0, 1]


def test_last_position_only():
    ex = training_examples([np.array([1, 2, 3, 4]), np.array([5]), np.array([5, 6])], 3, supervise="last")
    assert ex.targets.tolist() == [4, 6]
    assert ex.histories.tolist() == [[1, 2, 3], [5, 0, 0]]
    assert ex.users.tolist() == [0, 2]


def test_from_dataset_matches_the_protocol_tables(tmp_path, make_dataset):
    seqs = [[1, 2, 3, 4, 5, 6, 7], [3, 1, 4], [2, 5, 2, 6, 1]]
    ds = make_dataset(tmp_path / "d", seqs, num_items=7, max_history=3)
    data = SeqRecData.from_dataset(ds)
    train = ds.split("train")
    assert data.train.targets.tolist() == train["target"].tolist()
    for row, hist in zip(data.train.histories.tolist(), train["history"], strict=True):
        assert row[: len(hist)] == list(hist) and all(x == 0 for x in row[len(hist) :])
    assert data.test.targets.tolist() == [7, 4, 1]
    assert data.test.histories.tolist() == [[4, 5, 6], [3, 1, 0], [5, 2, 6]]
    # seen items: valid sees the training part, test also the validation item
    indptr, items = data.test.seen
    assert items[indptr[1] : indptr[2]].tolist() == [1, 3]
    indptr, items = data.valid.seen
    assert items[indptr[1] : indptr[2]].tolist() == [3]
    assert data.item_counts.tolist() == [0, 1, 3, 2, 1, 2, 0, 0]


def test_out_of_range_ids_are_refused(tmp_path, make_dataset):
    ds = make_dataset(tmp_path / "d", [[1, 2, 9, 3]], num_items=3)
    with pytest.raises(ValueError, match="outside 1..3"):
        SeqRecData.from_dataset(ds)
