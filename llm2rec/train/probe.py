"""Choosing an embedding stage's checkpoint on the valid split: knn (or SASRec) Recall@20 of its vectors.

MNTP's held-out loss and the contrastive loss say how well a stage does its own task, not whether its item
vectors got better at what they are for. This probe embeds every item title the way ``llm2rec embed`` will
(bidirectional attention, mean pooling, left padding, the item text ``{title}``), ranks all items by
centred cosine to each valid example's last history item (the knn baseline, seen items removed), and
reports Recall/NDCG@10/20 on the *valid* targets. The test split is never read.
Each evaluation also records the noise a choice must beat: ``knn_recall@20_se`` (the standard error over
the valid rows) and ``knn_recall@20_vs_best`` / ``_vs_best_se`` (the paired difference from the best
earlier evaluation in this process, on the same rows).

``select_by: sasrec`` (:class:`ValidSASRecProbe`) also trains the downstream SASRec (the seqrec defaults:
frozen vectors behind the linear adapter, one seed, early stopping on valid Recall@20) on those vectors
and selects on its best valid Recall@20: slower (a recommender per evaluation), but the valid knn did not
always predict SASRec (MNTP lowered Scientific's valid knn and raised its SASRec, docs/results.md).
"""

from __future__ import annotations

import contextlib
import copy
import random

import numpy as np
import torch

SELECTION_METRIC = "knn_recall@20"
# What each probe-based select_by chooses on (higher is better).
SELECTION_METRICS = {"knn": SELECTION_METRIC, "sasrec": "sasrec_recall@20"}


def knn_ranks(examples, vectors) -> torch.Tensor:
    """``(higher, tied)`` of each example's target under the knn baseline on ``vectors`` ((N+1, d), row 0
    padding): centred cosine to the last history item, the example's seen items removed."""
    from llm2rec.seqrec.baselines import last_item_knn_vectors
    from llm2rec.seqrec.metrics import full_ranking_ranks

    users, items = last_item_knn_vectors(vectors, examples.histories, examples.lengths)
    return full_ranking_ranks(users, items, examples.targets, examples.seen)


class ValidKnnProbe:
    """Scores a model's item vectors on the valid split of ``dataset``."""

    def __init__(self, dataset, tokenizer, max_length: int, batch_size: int = 64):
        from llm2rec.embed.extract import render_item_texts
        from llm2rec.seqrec.data import split_examples

        self.texts = render_item_texts(dataset.items)
        self.valid = split_examples(dataset, "valid")  # the valid split only: a training union has no test
        self.tokenizer = copy.copy(tokenizer)
        self.tokenizer.padding_side = "left"  # as the extraction pads
        self.max_length, self.batch_size = max_length, batch_size
        self._best_hits: np.ndarray | None = None  # per-row Recall@20 of the best evaluation so far

    def vectors(self, model) -> torch.Tensor:
        """(N+1, d) float32 item vectors, row 0 = zeros (the padding item)."""
        from llm2rec.embed.encoder import Encoder

        encoder = Encoder(
            _base_transformer(model),
            self.tokenizer,
            pooling="mean",
            bidirectional=True,
            source="in-training",
            max_length=self.max_length,
        )
        out = encoder.encode(self.texts, batch_size=self.batch_size)
        return torch.cat([torch.zeros(1, out.shape[1]), torch.from_numpy(out)])

    def __call__(self, model) -> dict[str, float]:
        return self.knn(self.vectors(model).numpy())

    def knn(self, vectors) -> dict[str, float]:
        """The knn baseline's valid Recall/NDCG@10/20 of ``vectors`` (``knn_*``)."""
        from llm2rec.seqrec.metrics import metrics_from_ranks, per_row_metric

        ranks = knn_ranks(self.valid, vectors)
        metrics = metrics_from_ranks(ranks, (10, 20))
        out = {f"knn_{k}": v for k, v in metrics.items() if k.startswith(("recall", "ndcg"))}
        return out | self._spread(per_row_metric(ranks, "recall", 20).numpy())

    def _spread(self, hits: np.ndarray) -> dict[str, float]:
        """How sure the probe is: the standard error of this Recall@20 over the valid rows, and its paired
        difference from the best earlier evaluation of this probe (same rows, so far smaller than two
        independent errors). On Scientific (2,928 valid rows) checkpoints a few thousandths apart were
        within one paired error: a choice between them is a coin toss, docs/results.md."""
        from llm2rec.seqrec.metrics import standard_error

        out = {f"{SELECTION_METRIC}_se": standard_error(hits)}
        if self._best_hits is not None:
            diff = hits - self._best_hits
            out[f"{SELECTION_METRIC}_vs_best"] = float(diff.mean())
            out[f"{SELECTION_METRIC}_vs_best_se"] = standard_error(diff)
        if self._best_hits is None or hits.mean() > self._best_hits.mean():
            self._best_hits = hits
        return out


class ValidSASRecProbe(ValidKnnProbe):
    """The knn probe plus a SASRec trained on the stage's vectors: its best valid metrics (``sasrec_*``).

    The recommender is built and trained exactly as ``llm2rec seqrec --model sasrec`` builds and trains
    one seed (same seeding, model, adapter and early stopping); only the test split is left out."""

    def __init__(self, dataset, tokenizer, max_length: int, batch_size: int = 64, seed: int | None = None,
                 seqrec: dict | None = None):  # fmt: skip
        from llm2rec.seqrec.config import DEFAULT_SEEDS, config_from_overrides
        from llm2rec.seqrec.data import SeqRecData

        super().__init__(dataset, tokenizer, max_length, batch_size)
        self.seed = DEFAULT_SEEDS[0] if seed is None else seed
        # The run's own seqrec settings (its seqrec.options), else the seqrec defaults: one home for each.
        settings = {**(seqrec or {}), "model": "sasrec", "progress": False, "plots": False}
        self.seqrec = config_from_overrides(**settings).resolved(has_embeddings=True)
        valid = dataset.split("valid")
        # The valid rows fill the test slot too: fitting reads the training rows and valid only, and a
        # training union (several datasets) has no test split at all.
        self.data = SeqRecData.from_frames(
            dataset.train_sequences(), valid, valid, dataset.sequences, dataset.num_items, dataset.max_history
        )

    def __call__(self, model) -> dict[str, float]:
        from llm2rec.seqrec.registry import build_model
        from llm2rec.seqrec.run import seed_everything
        from llm2rec.seqrec.trainer import fit

        vectors = self.vectors(model).numpy()
        device = next(model.parameters()).device
        with global_rng_kept(device):
            seed_everything(self.seed)
            recommender = build_model(self.seqrec, self.data, vectors).to(device)
            # The training loop evaluates under no_grad and the stage's autocast; seqrec trains in fp32.
            with torch.enable_grad(), torch.autocast(device.type, enabled=False):
                result = fit(recommender, self.data, self.seqrec.train, self.seed)
        sasrec = {f"sasrec_{k}": v for k, v in result.best_valid.items() if k.startswith(("recall", "ndcg"))}
        return self.knn(vectors) | sasrec | {"sasrec_best_epoch": result.best_epoch}


@contextlib.contextmanager
def global_rng_kept(device: torch.device):
    """Run a block that seeds and draws from the global RNGs (torch, numpy, random), then put them back.

    The SASRec probe reseeds torch for its recommender. Without this, each evaluation changed the stage's
    later dropout masks, so a stage with ``select_by: sasrec`` trained other weights than the same stage
    with ``select_by: knn`` (found on Scientific: the contrastive loss parted after the first probe,
    2.138 against 2.093 at step 10)."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    cuda = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def _base_transformer(model):
    """The transformer body (no LM head) of a causal LM, a LoRA-wrapped one, or a base model."""
    if hasattr(model, "get_base_model"):  # peft
        model = model.get_base_model()
    return model.get_decoder() if hasattr(model, "lm_head") else model


def with_probe_selection(eval_fn, probe: ValidKnnProbe, metric: str = SELECTION_METRIC):
    """An ``eval_fn`` that adds the probe's metrics to ``eval_fn``'s (when given) and selects on them:
    ``selection`` (lower is better, as the loop's loss) is minus the probe's ``metric``."""

    def evaluate(model, loader, accelerator=None) -> dict[str, float]:
        from llm2rec.distributed import from_main_process

        metrics = dict(eval_fn(model, loader, accelerator)) if eval_fn is not None else {}
        # Every process runs the probe; the main process's numbers decide, so that GPU nondeterminism
        # (a SASRec trained on each) cannot make processes disagree on the best checkpoint.
        metrics.update(from_main_process(probe(model)))
        metrics["selection"] = -metrics[metric]
        return metrics

    return evaluate
