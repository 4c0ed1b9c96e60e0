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

from llm2rec.errors import ConfigError
from llm2rec.llm.pooling import mean_pool
from llm2rec.train import settings
from llm2rec.train.outputs import finished, publish

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ distributed


def _world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each process the summed gradient of its own rows.

    Every process's loss depends on every process's embeddings, so the gradient for this process's rows is
    the sum over processes: one all_reduce, then keep our slice. (torch.distributed.nn's all_gather does the
    same through all_to_all, which is deprecated and aborted now and then at gloo shutdown in our tests.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rows = x.shape[0]
        return gather_no_grad(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        rank, _ = _world()
        return grad[rank * ctx.rows : (rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0; gradients flow back to each process's part.

    Every process must pass the same number of rows (the training loop's micro-batches are always full).
    """
    _, world = _world()
    if world == 1:
        return x
    return _GatherWithGrad.apply(x)


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    rank, world = _world()
    if world == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


# -------------------------------------------------------------------------------------------------- loss


def info_nce(
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_ids: torch.Tensor,
    key_ids: torch.Tensor,
    temperature: float = 0.2,
    offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE of each query against all keys; query i's positive is key ``offset + i``.

    Keys whose text id equals the query's (other than the positive) are removed from the negatives.
    Returns the mean loss and the in-batch top-1 accuracy.
    """
    q = F.normalize(queries.float(), dim=-1)
    k = F.normalize(keys.float(), dim=-1)
    scores = q @ k.T / temperature
    targets = torch.arange(q.shape[0], device=q.device) + offset
    same_text = query_ids[:, None] == key_ids[None, :]
    same_text[torch.arange(q.shape[0], device=q.device), targets] = False
    scores = scores.masked_fill(same_text, float("-inf"))
    loss = F.cross_entropy(scores, targets)
    accuracy = (scores.argmax(-1) == targets).float().mean()
    return loss, accuracy


def contrastive_loss(
    view_a: torch.Tensor,
    view_b: torch.Tensor,
    text_ids: torch.Tensor,
    temperature: float = 0.2,
    symmetric: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    """SimCSE loss for this process's ``view_a``/``view_b`` (B, d) against the globally gathered views."""
    rank, _ = _world()
    all_b = gather_with_grad(view_b)
    all_ids = gather_no_grad(text_ids)
    offset = rank * view_a.shape[0]
    loss, accuracy = info_nce(view_a, all_b, text_ids, all_ids, temperature, offset)
    if symmetric:
        all_a = gather_with_grad(view_a)
        loss_b, acc_b = info_nce(view_b, all_a, text_ids, all_ids, temperature, offset)
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

    def __call__(self, pairs: list[tuple[int, str]]) -> dict[str, torch.Tensor]:
        ids = [int(i) for i, _ in pairs]
        titles = [t for _, t in pairs]
        enc = self.tokenizer(
            titles + titles,
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
        }


def encode_batch(model, batch: dict[str, torch.Tensor], hidden_dropout: float = 0.0) -> torch.Tensor:
    """Mean-pooled last-layer hidden states (after the final norm) of every row, (rows, d) float32.

    ``model`` is the base transformer (``AutoModel``: no LM head, so no vocabulary-sized logits)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    hidden = out.last_hidden_state
    if hidden_dropout > 0 and model.training:
        hidden = F.dropout(hidden, hidden_dropout)
    return mean_pool(hidden, batch["pool_mask"])


def make_contrastive_loss_fn(temperature: float = 0.2, symmetric: bool = False, hidden_dropout: float = 0.0):
    """``loss_fn(model, batch, accelerator)`` for the training loop."""

    def loss_fn(model, batch, accelerator=None):
        pooled = encode_batch(model, batch, hidden_dropout)
        view_a, view_b = pooled.chunk(2, dim=0)
        return contrastive_loss(view_a, view_b, batch["text_ids"], temperature, symmetric)

    return loss_fn


# ------------------------------------------------------------------------------------------------ config


@dataclass
class ContrastiveConfig:
    """Item-level contrastive settings; :data:`PRESETS` hold the paper's and a quick CPU run's."""

    max_steps: int = 1000
    batch_size: int = 256  # titles per optimizer step over all processes (each encoded twice)
    micro_batch: int = 256
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 300
    max_grad_norm: float | None = 1.0
    save_every: int | None = 100
    log_every: int = 10
    seed: int = 42
    mixed_precision: str = "auto"
    keep_checkpoints: int = 1
    temperature: float = 0.2  # the paper's; the official code used 0.1
    symmetric: bool = False
    attention_dropout: float = 0.2
    hidden_dropout: float = 0.0
    token_mask_probability: float = 0.0
    mask_token: str = "_"
    max_length: int = 512
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    progress: bool = True
    report_to: str | None = None  # "tensorboard" (pip install tensorboard): event files end in <out>/logs
    keep_work: bool = False  # keep <out>.work (checkpoints) after publishing

    def loop_config(self):
        from llm2rec.train.loop import loop_config_from

        return loop_config_from(
            self, keep="last", eval_every=None, eval_at_start=False
        )  # no held-out criterion (as in the paper): hand on the final model


PRESETS: dict[str, dict] = {
    # METHOD §4: batch 256, lr 2e-4, 300 warm-up, 1k steps, attention dropout 0.2, τ 0.2 (paper).
    "paper": {},
    # SmolLM2-135M on a CPU: a few minutes (one thread; on a shared machine OMP_NUM_THREADS=1 is fastest).
    "cpu": dict(
        max_steps=20,
        batch_size=16,
        micro_batch=16,
        lr=5e-5,
        warmup_steps=2,
        save_every=None,
        log_every=5,
        max_length=64,
    ),
}


def build_config(preset: str = "paper", **overrides) -> ContrastiveConfig:
    """The preset's settings, then every non-None override (unknown keys are errors)."""
    return settings.build_config(ContrastiveConfig, PRESETS, preset, overrides)


def run_contrastive(
    model_dir: str | Path,
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "paper",
    resume: bool = True,
    **overrides,
) -> Path:
    """Train the item-level contrastive stage from ``model_dir`` (an MNTP output or any model dir).

    Returns ``out_dir``, the encoder: a plain HF dir (base model, no LM head) whose config records
    bidirectional attention and mean pooling, loadable by :meth:`llm2rec.Encoder.load`, plus
    ``contrastive.json`` and ``metrics.jsonl``. Training state lives in ``<out_dir>.work`` until then.
    """
    import time
    from dataclasses import asdict

    from transformers import AutoConfig, AutoModel

    from llm2rec.data.dataset import Dataset
    from llm2rec.distributed import process_state
    from llm2rec.encoder import POOLING_KEY
    from llm2rec.io import work_dir_for
    from llm2rec.llm.backbone import check_attn_implementation, load_tokenizer, resolve_model
    from llm2rec.llm.bidirectional import enable_bidirectional, probe_bidirectional
    from llm2rec.train.loop import train_loop
    from llm2rec.train.mntp import (
        resolve_mask_token_id,
        resolve_model_dir,
        unique_titles,
    )

    config = build_config(preset, **overrides)
    check_attn_implementation(config.attn_implementation)
    out_dir = Path(out_dir)
    work = work_dir_for(out_dir)
    if resume and finished(out_dir, "contrastive"):
        log.info("%s is a finished contrastive run; nothing to do (resume off to redo it)", out_dir)
        return out_dir
    state = process_state()
    started = time.perf_counter()
    source = resolve_model(resolve_model_dir(model_dir))
    dataset = Dataset.load(dataset_dir)
    titles = unique_titles(dataset.titles)
    log.info("contrastive from %s on %d unique titles", source, len(titles))

    tokenizer = load_tokenizer(source, padding_side="left")
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
    mask_id = (
        resolve_mask_token_id(tokenizer, config.mask_token) if config.token_mask_probability > 0 else None
    )

    result = train_loop(
        model,
        list(enumerate(titles)),  # the index identifies identical titles across processes
        TitlePairCollator(tokenizer, config.max_length, config.token_mask_probability, mask_id, config.seed),
        make_contrastive_loss_fn(config.temperature, config.symmetric, config.hidden_dropout),
        config.loop_config(),
        work,
        tokenizer=tokenizer,
        resume=resume,
    )
    trains = [e for e in result.history if e["split"] == "train"]
    record = {
        "stage": "contrastive",
        "model": str(model_dir),
        "dataset": str(dataset_dir),
        "dataset_checksum": dataset.checksum,
        "preset": preset,
        "config": asdict(config),
        "titles": len(titles),
        "last_step": result.last_step,
        "train_loss_first": trains[0]["loss"] if trains else None,
        "train_loss_last": trains[-1]["loss"] if trains else None,
        "processes": state.num_processes,
        "wall_s": time.perf_counter() - started,
    }
    if state.is_main_process:
        publish(result, work, out_dir, "contrastive", record, keep_work=config.keep_work)
    state.wait_for_everyone()
    return out_dir
