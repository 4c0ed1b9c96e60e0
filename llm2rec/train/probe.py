"""Choosing an embedding stage's checkpoint on the valid split: knn Recall@20 of the stage's own vectors.

MNTP's held-out loss and the contrastive loss say how well a stage does its own task, not whether its item
vectors got better at what they are for. This probe embeds every item title the way ``llm2rec embed`` will
(bidirectional attention, mean pooling, left padding, the item text ``{title}``), ranks all items by
centred cosine to each valid example's last history item (the knn baseline, seen items removed), and
reports Recall/NDCG@10/20 on the *valid* targets. The test split is never read.
"""

from __future__ import annotations

import copy

import torch

SELECT_BY = ("loss", "knn")
SELECTION_METRIC = "knn_recall@20"


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
        from llm2rec.seqrec.baselines import last_item_knn_vectors
        from llm2rec.seqrec.metrics import full_ranking_ranks, metrics_from_ranks

        users, items = last_item_knn_vectors(
            self.vectors(model).numpy(), self.valid.histories, self.valid.lengths
        )
        ranks = full_ranking_ranks(users, items, self.valid.targets, self.valid.seen)
        metrics = metrics_from_ranks(ranks, (10, 20))
        return {f"knn_{k}": v for k, v in metrics.items() if k.startswith(("recall", "ndcg"))}


def _base_transformer(model):
    """The transformer body (no LM head) of a causal LM, a LoRA-wrapped one, or a base model."""
    if hasattr(model, "get_base_model"):  # peft
        model = model.get_base_model()
    return model.get_decoder() if hasattr(model, "lm_head") else model


def with_knn_selection(eval_fn, probe: ValidKnnProbe):
    """An ``eval_fn`` that adds the probe's metrics to ``eval_fn``'s (when given) and selects on them:
    ``selection`` (lower is better, as the loop's loss) is minus the valid knn Recall@20."""

    def evaluate(model, loader, accelerator=None) -> dict[str, float]:
        metrics = dict(eval_fn(model, loader, accelerator)) if eval_fn is not None else {}
        metrics.update(probe(model))
        metrics["selection"] = -metrics[SELECTION_METRIC]
        return metrics

    return evaluate
