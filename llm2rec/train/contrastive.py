"""Stage 2b: item-level contrastive learning (unsupervised SimCSE on item titles), METHOD §4.

Each title is encoded twice in one forward pass (the batch holds both copies); attention dropout (0.2 by
default) makes the two copies differ, and those two views are the positive pair. Titles are mean-pooled
over their tokens with bidirectional attention. The loss is InfoNCE over cosine similarities with
in-batch negatives and temperature τ (0.2, the paper's; the official code used 0.1). Under DDP the
embeddings of every process are gathered *with* gradient so the negatives grow with the global batch.
Two views of identical titles (e.g. the same product listed twice) are never negatives of each other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from llm2rec.data.text import unique_titles
from llm2rec.distributed import gather_no_grad, gather_with_grad, world
from llm2rec.errors import ConfigError
from llm2rec.llm.pooling import POOLING_KEY, mean_pool
from llm2rec.train import config as config_module
from llm2rec.train.batching import LengthTagged, token_counts
from llm2rec.train.config import DEFAULT_PRESET, StageConfig, resolve_preset
from llm2rec.train.stage import Stage, StageInputs, StageParts, resolve_config, run_stage

log = logging.getLogger(__name__)


# -------------------------------------------------------------------------------------------------- loss


def info_nce(
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_ids: torch.Tensor,
    key_ids: torch.Tensor,
    temperature: float,
    offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of each query against all keys; query i's positive is key ``offset + i``.

    Keys whose text id equals the query's or the positive's (other than the positive itself) are removed
    from the negatives: the same title listed twice is not a negative of itself. Returns the mean loss and
    the in-batch top-1 accuracy.
    """
    q = F.normalize(queries.float(), dim=-1)
    k = F.normalize(keys.float(), dim=-1)
    scores = q @ k.T / temperature
    rows = torch.arange(q.shape[0], device=q.device)
    targets = rows + offset
    positive_ids = key_ids[targets]
    same_text = (query_ids[:, None] == key_ids[None, :]) | (positive_ids[:, None] == key_ids[None, :])
    same_text[rows, targets] = False
    scores = scores.masked_fill(same_text, float("-inf"))
    loss = F.cross_entropy(scores, targets)
    accuracy = (scores.argmax(-1) == targets).float().mean()
    return loss, accuracy


def contrastive_loss(
    view_a: torch.Tensor,
    view_b: torch.Tensor,
    text_ids: torch.Tensor,
    temperature: float,
    symmetric: bool = False,
    key_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """InfoNCE for this process's ``view_a``/``view_b`` (B, d) against the globally gathered views.

    ``text_ids`` are row i's text in ``view_a``; ``key_ids`` its positive's in ``view_b`` (the same text
    for two dropout views, the default; another item's for a collaborative pair)."""
    rank, _ = world()
    key_ids = text_ids if key_ids is None else key_ids
    all_b = gather_with_grad(view_b)
    all_b_ids = gather_no_grad(key_ids)
    offset = rank * view_a.shape[0]
    loss, accuracy = info_nce(view_a, all_b, text_ids, all_b_ids, temperature, offset)
    if symmetric:
        all_a = gather_with_grad(view_a)
        all_a_ids = gather_no_grad(text_ids)
        loss_b, acc_b = info_nce(view_b, all_a, key_ids, all_a_ids, temperature, offset)
        loss, accuracy = (loss + loss_b) / 2, (accuracy + acc_b) / 2
    return loss, {"accuracy": float(accuracy), "negatives": int(all_b.shape[0] - 1)}


# ------------------------------------------------------------------------------------------------ views


@dataclass
class TitlePairCollator:
    """Tokenizes ``(text_id, title)`` pairs twice over (rows 0..B−1 = view a, B..2B−1 = view b).

    ``token_mask_probability`` > 0 replaces that share of each view's title tokens with the mask token
    independently per view (the paper's "random masking"; the official code does none).
    """

    tokenizer: object
    max_length: int = 128
    token_mask_probability: float = 0.0
    mask_token_id: int | None = None
    seed: int = 0
    _generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self._generator = torch.Generator().manual_seed(self.seed)
        if self.token_mask_probability > 0 and self.mask_token_id is None:
            raise ConfigError("token masking needs a mask token id")

    def __call__(self, examples: list[tuple]) -> dict[str, torch.Tensor]:
        # (text id, title): two views of one title; (id, title, key id, key title): a collaborative pair.
        examples = [e if len(e) == 4 else (e[0], e[1], e[0], e[1]) for e in examples]
        ids = [int(e[0]) for e in examples]
        key_ids = [int(e[2]) for e in examples]
        enc = self.tokenizer(
            [e[1] for e in examples] + [e[3] for e in examples],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        input_ids = enc["input_ids"]
        pool_mask = enc["attention_mask"] * (1 - enc["special_tokens_mask"])
        if self.token_mask_probability > 0:
            hit = torch.rand(input_ids.shape, generator=self._generator) < self.token_mask_probability
            input_ids = input_ids.masked_fill(hit & pool_mask.bool(), self.mask_token_id)
        return {
            "input_ids": input_ids,
            "attention_mask": enc["attention_mask"],
            "pool_mask": pool_mask,
            "text_ids": torch.tensor(ids, dtype=torch.long),
            "key_ids": torch.tensor(key_ids, dtype=torch.long),
        }


def encode_batch(model, batch: dict[str, torch.Tensor], hidden_dropout: float = 0.0) -> torch.Tensor:
    """Mean-pooled last-layer hidden states (after the final norm) of every row, (rows, d) float32.

    ``model`` is the base transformer (``AutoModel``: no LM head, so no vocabulary-sized logits)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    hidden = out.last_hidden_state
    if hidden_dropout > 0 and model.training:
        hidden = F.dropout(hidden, hidden_dropout)
    return mean_pool(hidden, batch["pool_mask"])


@dataclass(frozen=True)
class ItemContrastiveLoss:
    """The stage's loss, holding its own settings (their defaults live in :class:`ContrastiveConfig`
    only): ``loss(model, batch, accelerator)`` for the training loop."""

    temperature: float
    symmetric: bool
    hidden_dropout: float

    @classmethod
    def from_config(cls, config: ContrastiveConfig) -> ItemContrastiveLoss:
        return cls(config.temperature, config.symmetric, config.hidden_dropout)

    def __call__(self, model, batch, accelerator=None):
        pooled = encode_batch(model, batch, self.hidden_dropout)
        view_a, view_b = pooled.chunk(2, dim=0)
        return contrastive_loss(
            view_a, view_b, batch["text_ids"], self.temperature, self.symmetric, batch.get("key_ids")
        )


# ------------------------------------------------------------------------------------------------ config


@dataclass
class ContrastiveConfig(StageConfig):
    """Item-level contrastive settings (plus the loop's and the shared ones); defaults = the paper's.

    No held-out criterion (as in the paper): the stage hands on its final model."""

    max_steps: int = 1000
    batch_size: int = 256  # titles per optimizer step over all processes (each encoded twice)
    micro_batch: int = 256
    lr: float = 2e-4
    warmup_steps: int = 300
    save_every: int | None = 100
    seed: int = 42
    keep: str = "last"
    eval_at_start: bool = False
    temperature: float = 0.2  # the paper's; the official code used 0.1
    symmetric: bool = False
    attention_dropout: float = 0.2
    hidden_dropout: float = 0.0
    token_mask_probability: float = 0.0
    mask_token: str = "_"
    # Collaborative positives (llm2rec.train.pairs): items at most pair_gap apart in a user's training
    # part; pairs_per_title of them per title join the dropout-view examples. 0 = off (the paper's stage).
    pair_gap: int = 0
    pairs_per_title: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pair_gap < 0 or self.pairs_per_title < 0:
            raise ConfigError("pair_gap and pairs_per_title must be >= 0")


PRESETS: dict[str, dict] = {
    # METHOD §4: batch 256, lr 2e-4, 300 warm-up, 1k steps, attention dropout 0.2, τ 0.2 (paper).
    # The official run was planned over 5 epochs and stopped at 1k steps, at ~60% of its peak lr.
    "paper": {"schedule_epochs": 5},
    # SmolLM2-135M on a CPU, about 7 minutes: 64 titles per step (63 negatives), one pass over the
    # catalogue (25 steps on Scientific's 1,567 titles) of a schedule planned over five, batches grouped by
    # length (padding is most of a random batch's cost). Both choices made on the valid split (knn
    # Recall@20 of the stage's vectors, docs/results.md): lr 1e-4, half the official 2e-4 (Scientific
    # 0.1515 against 0.1433 at step 25, demo 0.2549 against 0.2461), and one pass, because a second pass
    # over the same titles lowered it in every run measured (Scientific, lr 2e-4: 0.1433 -> 0.0994 at step
    # 50, 0.1038 at 75; lr 1e-4: 0.1515 -> 0.1158 at 50). Titles are cut at 64 tokens (Scientific's 99th
    # percentile is 66; 20 of 1,567 are longer). Two views of 64 titles hold about 11 GB of activations:
    # gradient checkpointing brings the stage's peak memory from about 20 to 7.8 GB in fp32 for 16% more
    # time, with the same losses (docs/results.md).
    # The kept checkpoint is the one whose vectors do best on the valid split (knn Recall@20).
    "cpu": dict(
        max_steps=25,
        schedule_epochs=5,
        batch_size=64,
        micro_batch=64,
        lr=1e-4,
        warmup_steps=7,
        save_every=None,
        log_every=5,
        max_length=64,
        length_grouped=True,
        gradient_checkpointing=True,
        eval_every=25,
        select_by="knn",
        keep="best",
    ),
}


def build_config(preset: str = "paper", **overrides) -> ContrastiveConfig:
    """The preset's settings, then every non-None override (unknown keys are errors)."""
    return config_module.build_config(ContrastiveConfig, PRESETS, preset, overrides)


# ----------------------------------------------------------------------------------------------- running


def _load_encoder_model(source: str, config: ContrastiveConfig):
    """The base transformer (no LM head), bidirectional, with the attention dropout that makes two views."""
    from transformers import AutoConfig, AutoModel

    from llm2rec.llm.bidirectional import enable_bidirectional, probe_bidirectional

    model_config = AutoConfig.from_pretrained(source)
    model_config.attention_dropout = config.attention_dropout  # the two views come from this dropout
    model = AutoModel.from_pretrained(
        source, config=model_config, attn_implementation=config.attn_implementation
    )
    enable_bidirectional(model)
    setattr(model.config, POOLING_KEY, "mean")
    if not probe_bidirectional(model):
        raise RuntimeError("bidirectional attention did not take effect; refusing to train causally")
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


class ContrastiveExamples(LengthTagged):
    """``(text id, title, key text id, key title)`` examples with their token counts (the longer of the
    two texts), so length-grouped batching can read them. A text id numbers the distinct titles, the same
    on every process."""

    def __init__(self, examples: list[tuple[int, str, int, str]], tokenizer, max_length: int):
        length = token_counts(tokenizer, [e[1] for e in examples] + [e[3] for e in examples], max_length)
        super().__init__(examples, [max(length[e[1]], length[e[3]]) for e in examples])


def training_examples(dataset, config) -> tuple[list[tuple[int, str, int, str]], dict]:
    """Two views of every distinct title, plus collaborative pairs when ``config.pair_gap`` > 0."""
    from llm2rec.train.pairs import collaborative_pairs, pair_examples

    titles = unique_titles(dataset.training_titles)  # cold items' titles only with cold_titles_known
    examples = [(i, t, i, t) for i, t in enumerate(titles)]
    record = {"titles": len(titles)}
    if config.pair_gap > 0:
        pairs = collaborative_pairs(dataset.train_sequences(), config.pair_gap)
        count = round(config.pairs_per_title * len(titles))
        extra = pair_examples(dataset.titles, pairs, count, config.seed)
        examples += extra
        record |= {"collaborative_pairs_available": len(pairs), "collaborative_pairs_used": len(extra)}
    return examples, record


def _build(inputs: StageInputs) -> StageParts:
    from llm2rec.llm.backbone import load_tokenizer, resolve_mask_token_id, resolve_model

    config = inputs.config
    source = resolve_model(inputs.model)
    examples, record = training_examples(inputs.dataset, config)
    log.info("contrastive from %s on %s", source, record)
    tokenizer = load_tokenizer(source, padding_side="left")
    model = _load_encoder_model(source, config)
    mask_id = (
        resolve_mask_token_id(tokenizer, config.mask_token) if config.token_mask_probability > 0 else None
    )
    return StageParts(
        model=model,
        tokenizer=tokenizer,
        train_set=ContrastiveExamples(examples, tokenizer, config.max_length),
        collator=TitlePairCollator(
            tokenizer, config.max_length, config.token_mask_probability, mask_id, config.seed
        ),
        loss_fn=ItemContrastiveLoss.from_config(config),
        record=record,
    )


def _summarise(inputs: StageInputs, parts: StageParts, result) -> dict:
    trains = [e for e in result.history if e["split"] == "train"]
    return {
        "train_loss_first": trains[0]["loss"] if trains else None,
        "train_loss_last": trains[-1]["loss"] if trains else None,
    }


STAGE = Stage("contrastive", _build, _summarise)


def run_contrastive(
    model_dir: str | Path,
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    preset: str = DEFAULT_PRESET,
    resume: bool = True,
    overwrite: bool = False,
    config: ContrastiveConfig | None = None,
    **overrides,
) -> Path:
    """Train the item-level contrastive stage from ``model_dir`` (an MNTP output or any model dir).

    Returns ``out_dir``, the encoder: a plain HF dir (base model, no LM head) whose config records
    bidirectional attention and mean pooling, loadable by :meth:`llm2rec.Encoder.from_pretrained`, plus
    ``contrastive.json`` and ``metrics.jsonl``. Settings: ``config`` when given, else the preset with
    ``overrides``. See :func:`llm2rec.train.stage.run_stage` for resuming.
    """
    preset = resolve_preset(preset)
    config = resolve_config(build_config, config, preset, overrides)
    return run_stage(
        STAGE, model_dir, dataset_dir, out_dir, config, preset=preset, resume=resume, overwrite=overwrite
    )
