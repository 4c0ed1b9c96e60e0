import numpy as np
import torch

import llm2rec.seqrec.trainer as trainer
from llm2rec.seqrec.config import TrainConfig
from llm2rec.seqrec.data import SeqRecData
from llm2rec.seqrec.item_encoder import ItemEncoder
from llm2rec.seqrec.models import GRU4Rec, SASRec
from llm2rec.seqrec.trainer import evaluate, fit


def _small_sasrec(data, item_repr="id", vectors=None, hidden=32):
    enc = ItemEncoder(data.num_items, hidden, item_repr, vectors)
    return SASRec(enc, data.max_history, hidden=hidden, layers=1, heads=2, ffn=2 * hidden, dropout=0.1)


def test_early_stopping_restores_the_best_epoch(cyclic_dataset, monkeypatch):
    data = SeqRecData.from_dataset(cyclic_dataset)
    torch.manual_seed(0)
    model = _small_sasrec(data)
    scripted = iter([0.1, 0.5, 0.3, 0.2, 0.4, 0.45, 0.2, 0.1, 0.1])
    snapshots = {}

    def fake_evaluate(model, examples, ks, *args, **kwargs):
        epoch = len(snapshots) + 1
        snapshots[epoch] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"recall@20": next(scripted)}

    monkeypatch.setattr(trainer, "evaluate", fake_evaluate)
    result = fit(model, data, TrainConfig(epochs=50, patience=3, lr=1e-2, progress=False), seed=0)
    assert result.best_epoch == 2 and result.epochs_run == 5  # stopped 3 epochs after the best
    state = model.state_dict()
    for key, value in snapshots[2].items():
        torch.testing.assert_close(state[key], value)
    assert not torch.equal(
        state["item_encoder.id_embedding.weight"], snapshots[5]["item_encoder.id_embedding.weight"]
    )


def test_a_run_the_epoch_cap_ends_while_improving_is_flagged(cyclic_dataset, monkeypatch, caplog):
    data = SeqRecData.from_dataset(cyclic_dataset)
    scores = {"rising": iter([0.1, 0.2, 0.3, 0.4]), "converged": iter([0.1, 0.4, 0.3, 0.3])}
    for name, scripted in scores.items():
        monkeypatch.setattr(
            trainer, "evaluate", lambda *a, scripted=scripted, **k: {"recall@20": next(scripted)}
        )
        caplog.clear()
        with caplog.at_level("WARNING", logger=trainer.log.name):
            fit(_small_sasrec(data), data, TrainConfig(epochs=4, patience=2, progress=False), seed=0)
        # best at epoch 4 of 4 is flagged; best at 2, then 2 epochs without gain (patience), is not
        flagged = "may not have converged" in caplog.text
        assert flagged == (name == "rising"), name


def test_eval_every_k_epochs(cyclic_dataset):
    data = SeqRecData.from_dataset(cyclic_dataset)
    model = _small_sasrec(data)
    result = fit(model, data, TrainConfig(epochs=6, eval_every=3, patience=100, progress=False), seed=0)
    evaluated = [p["epoch"] for p in result.curve if "valid_recall@20" in p]
    assert evaluated == [3, 6] and len(result.curve) == 6


def test_sasrec_learns_a_deterministic_sequence(cyclic_dataset):
    data = SeqRecData.from_dataset(cyclic_dataset)
    torch.manual_seed(0)
    model = _small_sasrec(data)
    before = evaluate(model, data.test)
    fit(
        model,
        data,
        TrainConfig(epochs=15, lr=1e-2, patience=100, valid_metric="ndcg@5", progress=False),
        seed=0,
    )
    after = evaluate(model, data.test)
    assert before["recall@5"] < 0.5 and after["recall@5"] > 0.95


def test_text_mode_reads_vectors_in_item_order(cyclic_dataset):
    """2-D frozen vectors that encode the item id as an angle (item i at 2πi/N). On the cyclic data the next
    item is always one step round the circle, a rotation any adapter+SASRec learns at once, so with rows in
    item order the model is near-perfect. Two dimensions cannot memorise 30 items, so the same vectors with
    their rows permuted (what a wrong row order would give) leave it far from perfect."""
    data = SeqRecData.from_dataset(cyclic_dataset)
    n = data.num_items
    angles = 2 * np.pi * np.arange(n + 1) / n
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    circle[0] = 0.0

    def ndcg5(vectors):
        torch.manual_seed(0)
        model = _small_sasrec(data, "text", vectors)
        cfg = TrainConfig(epochs=8, lr=1e-2, patience=100, valid_metric="ndcg@5", progress=False)
        fit(model, data, cfg, seed=0)
        return evaluate(model, data.test)["ndcg@5"]

    aligned = ndcg5(circle)
    permuted = circle.copy()
    permuted[1:] = circle[1:][np.random.default_rng(0).permutation(n)]
    scrambled = ndcg5(permuted)
    assert aligned > 0.9, aligned
    assert scrambled < 0.6, scrambled


def test_gru4rec_trains_and_predicts(cyclic_dataset):
    data = SeqRecData.from_dataset(cyclic_dataset)
    torch.manual_seed(0)
    model = GRU4Rec(ItemEncoder(data.num_items, 32, "id", id_init="xavier"), hidden=32, layers=2, dropout=0.1)
    fit(
        model,
        data,
        TrainConfig(epochs=10, lr=1e-2, patience=100, valid_metric="ndcg@5", progress=False),
        seed=0,
    )
    assert evaluate(model, data.test)["recall@5"] > 0.9


def test_sasrec_blocks_compute_what_nn_transformer_encoder_computes():
    import torch

    from llm2rec.seqrec.item_encoder import ItemEncoder
    from llm2rec.seqrec.models import SASRec, _post_ln_block

    torch.manual_seed(0)
    model = SASRec(ItemEncoder(30, 16, "id"), 10, 16, 2, 2, 32, dropout=0.0).eval()
    x = torch.randn(4, 7, 16)
    causal = torch.triu(torch.ones(7, 7, dtype=torch.bool), diagonal=1)
    expected = model.blocks(x, mask=causal, is_causal=True)
    got = x
    for block in model.blocks.layers:
        got = _post_ln_block(block, got)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_our_adamw_is_torch_adamw():
    import torch

    from llm2rec.seqrec.optim import AdamW

    torch.manual_seed(0)
    ours, theirs = torch.nn.Linear(6, 4), torch.nn.Linear(6, 4)
    theirs.load_state_dict(ours.state_dict())
    opt_ours = AdamW(ours.parameters(), lr=1e-2, weight_decay=1e-2)
    opt_theirs = torch.optim.AdamW(theirs.parameters(), lr=1e-2, weight_decay=1e-2)
    for step in range(5):
        x = torch.randn(8, 6)
        for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
            opt.zero_grad()
            model(x).pow(2).mean().backward()
            if step == 2:
                model.bias.grad = None  # a parameter without a gradient is not updated, as in torch
            opt.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_sasrec_reads_the_last_state_exactly_when_it_computes_only_that_position():
    import torch

    from llm2rec.seqrec.item_encoder import ItemEncoder
    from llm2rec.seqrec.models import SASRec, last_position

    torch.manual_seed(0)
    model = SASRec(ItemEncoder(30, 16, "id"), 10, 16, 2, 2, 32, dropout=0.0).eval()
    lengths = torch.tensor([7, 3, 1, 5, 7])
    histories = torch.randint(1, 31, (5, 7)) * (torch.arange(7)[None, :] < lengths[:, None])
    embedded = model.item_encoder.table()[histories]
    expected = last_position(model.sequence_outputs(embedded), lengths)
    torch.testing.assert_close(model.encode_sequence(embedded, lengths), expected, rtol=1e-5, atol=1e-6)
