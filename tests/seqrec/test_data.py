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


def test_whole_sequence_rows_hold_the_same_targets_and_histories():
    from llm2rec.seqrec.data import training_rows

    seqs = [np.array([1, 2, 3, 4, 5, 6]), np.array([7, 8]), np.array([9])]
    rows = training_rows(seqs, max_history=3)
    assert rows.inputs.tolist() == [[1, 2, 3], [7, 0, 0], [2, 3, 4], [3, 4, 5]]
    assert rows.targets.tolist() == [[2, 3, 4], [8, 0, 0], [0, 0, 5], [0, 0, 6]]
    assert rows.widths.tolist() == [3, 1, 3, 3] and rows.num_targets == len(training_examples(seqs, 3))
    last = training_rows(seqs, 3, supervise="last")
    assert last.inputs.tolist() == [[3, 4, 5], [7, 0, 0]] and last.targets.tolist() == [[0, 0, 6], [8, 0, 0]]


@pytest.mark.parametrize("model_name", ["sasrec", "gru4rec"])
@pytest.mark.parametrize("max_history", [3, 10])
def test_whole_sequence_training_equals_the_row_per_prefix_loss_and_gradients(model_name, max_history):
    import torch
    import torch.nn.functional as F

    from llm2rec.seqrec.data import training_rows
    from llm2rec.seqrec.item_encoder import ItemEncoder
    from llm2rec.seqrec.models import GRU4Rec, SASRec

    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 31, size=n) for n in (2, 4, 7, 11, 15, 3)]  # short and long (> H + 1) parts
    torch.manual_seed(0)
    encoder = ItemEncoder(30, 16, "id")
    model = (
        SASRec(encoder, max_history, 16, 2, 2, 32, dropout=0.0)
        if model_name == "sasrec"
        else GRU4Rec(encoder, 16, 2, 0.0)
    )
    model.eval()  # dropout off: both forms must compute the same numbers

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    ex = training_examples(seqs, max_history)
    per_prefix = F.cross_entropy(model(ex.histories, ex.lengths), ex.targets - 1)
    expected = grads(per_prefix)
    rows = training_rows(seqs, max_history)
    whole = model.training_loss(rows.inputs, rows.targets)
    got = grads(whole)
    assert whole.item() == pytest.approx(per_prefix.item(), rel=1e-5)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_epoch_batches_cover_every_row_once_with_about_batch_size_targets():
    import torch

    from llm2rec.seqrec.data import training_rows
    from llm2rec.seqrec.trainer import epoch_batches

    rng = np.random.default_rng(1)
    rows = training_rows([rng.integers(1, 50, size=n) for n in rng.integers(2, 30, size=200)], 10)
    batches = list(epoch_batches(rows, 64, torch.Generator().manual_seed(0)))
    seen = torch.cat([idx for idx, _ in batches]).sort().values
    assert seen.tolist() == list(range(len(rows)))
    for idx, width in batches[:-1]:
        assert width == int(rows.widths[idx].max())
    sizes = [int(rows.n_targets[idx].sum()) for idx, _ in batches]
    assert sum(sizes) == rows.num_targets and max(sizes) < 64 + 10


def test_chunked_windows_predict_every_target_once_from_its_piece():
    from llm2rec.seqrec.data import training_rows

    rows = training_rows([np.arange(1, 9), np.array([7, 8])], 3, windows="chunked")
    assert rows.inputs.tolist() == [[1, 2, 3], [4, 5, 6], [7, 0, 0], [7, 0, 0]]
    assert rows.targets.tolist() == [[2, 3, 4], [5, 6, 7], [8, 0, 0], [8, 0, 0]]
    assert rows.num_targets == 7 + 1
