"""Stage 2a: masked next-token prediction (MNTP) on item titles with bidirectional attention.

Following llm2vec / LLM2Rec (METHOD §3): each title is one sequence; 20% of its non-special, non-padding
tokens are selected; of those, 80% become the mask token, 10% a random token and 10% stay unchanged. The
model is the causal LM with bidirectional attention, and a selected token at position i is predicted from
the output at position i−1 (the LM head's usual shift), so the pretrained next-token head is reused.
A token selected at position 0 has no predecessor and is never scored, as in the official code.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from llm2rec.errors import ConfigError

log = logging.getLogger(__name__)

IGNORE = -100


# ----------------------------------------------------------------------------------------------- masking


def resolve_mask_token_id(tokenizer, fallback: str = "_") -> int:
    """The tokenizer's own mask token if it has one, else the existing vocabulary token ``fallback``.

    Using an existing token (Qwen2 and SmolLM2 have no mask token) avoids resizing the embeddings.
    """
    if tokenizer.mask_token_id is not None:
        return int(tokenizer.mask_token_id)
    token_id = tokenizer.convert_tokens_to_ids(fallback)
    if token_id is None or token_id == tokenizer.unk_token_id:
        ids = tokenizer(fallback, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ConfigError(
                f"the tokenizer has no mask token and {fallback!r} is not a single token in its vocabulary; "
                "choose another --mask-token"
            )
        token_id = ids[0]
    return int(token_id)


def mask_tokens(
    input_ids: torch.Tensor,
    selectable: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    probability: float = 0.2,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT-style corruption: returns ``(corrupted_ids, labels)``; labels are −100 where nothing was selected.

    ``selectable`` is True for tokens that may be chosen (not special, not padding). Each is chosen with
    ``probability``; chosen tokens become ``mask_token_id`` (80%), a uniformly random id (10%) or stay (10%).
    """
    draw = torch.rand(input_ids.shape, generator=generator)
    chosen = (draw < probability) & selectable.cpu()
    labels = torch.where(chosen, input_ids.cpu(), torch.full_like(input_ids.cpu(), IGNORE))
    how = torch.rand(input_ids.shape, generator=generator)
    to_mask = chosen & (how < 0.8)
    to_random = chosen & (how >= 0.8) & (how < 0.9)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator)
    corrupted = input_ids.cpu().clone()
    corrupted[to_mask] = mask_token_id
    corrupted[to_random] = random_ids[to_random]
    return corrupted.to(input_ids.device), labels.to(input_ids.device)


@dataclass
class MNTPCollator:
    """Tokenizes a list of titles (right-padded), then corrupts them for MNTP.

    Right padding keeps every title's first token at position 0, so no token is predicted from a padding
    position's output.
    """

    tokenizer: object
    mask_token_id: int
    probability: float = 0.2
    max_length: int = 128
    seed: int = 0
    _generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self):
        self._generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, titles: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(titles),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
            padding_side="right",
        )
        selectable = (enc["attention_mask"] == 1) & (enc["special_tokens_mask"] == 0)
        input_ids, labels = mask_tokens(
            enc["input_ids"],
            selectable,
            self.mask_token_id,
            len(self.tokenizer),
            self.probability,
            self._generator,
        )
        return {"input_ids": input_ids, "attention_mask": enc["attention_mask"], "labels": labels}


# -------------------------------------------------------------------------------------------------- loss


def shifted_mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of ``logits[:, i-1]`` against ``labels[:, i]`` (float32), plus masked-token accuracy."""
    logits = logits[:, :-1].float()
    targets = labels[:, 1:]
    scored = targets != IGNORE
    if not scored.any():
        # A batch whose only selections sit at position 0: zero loss that still touches the graph.
        return logits.sum() * 0.0, {"accuracy": 0.0, "tokens": 0}
    picked = logits[scored]
    gold = targets[scored]
    loss = F.cross_entropy(picked, gold)
    accuracy = (picked.argmax(-1) == gold).float().mean().item()
    return loss, {"accuracy": accuracy, "tokens": int(scored.sum())}


def mntp_loss(model, batch: dict[str, torch.Tensor], accelerator=None):
    """``loss_fn`` for the training loop: one forward of the corrupted titles, shifted MLM loss."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return shifted_mlm_loss(out.logits, batch["labels"])


@torch.no_grad()
def mntp_eval(model, loader, accelerator=None) -> dict[str, float]:
    """Masked-token loss and accuracy over held-out titles, weighted by the number of scored tokens."""
    was_training = model.training
    model.eval()
    total_loss = total_correct = total_tokens = 0.0
    try:
        for batch in loader:
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            loss, metrics = shifted_mlm_loss(out.logits, batch["labels"])
            n = metrics["tokens"]
            total_loss += float(loss) * n
            total_correct += metrics["accuracy"] * n
            total_tokens += n
    finally:
        model.train(was_training)
    stats = torch.tensor([total_loss, total_correct, total_tokens], dtype=torch.float64)
    if accelerator is not None and accelerator.num_processes > 1:
        stats = accelerator.reduce(stats.to(accelerator.device), reduction="sum").cpu()
    tokens = max(float(stats[2]), 1.0)
    return {"loss": float(stats[0]) / tokens, "accuracy": float(stats[1]) / tokens}


# -------------------------------------------------------------------------------------------------- data


def unique_titles(titles: list[str]) -> list[str]:
    """Non-empty titles, each once, in first-seen order (index 0 is the padding item's empty title)."""
    seen: dict[str, None] = {}
    for title in titles:
        title = title.strip()
        if title:
            seen.setdefault(title, None)
    return list(seen)


def split_titles(titles: list[str], eval_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded random split into (train, held-out). Held-out titles are never trained on."""
    shuffled = list(titles)
    random.Random(seed).shuffle(shuffled)
    n_eval = int(round(len(shuffled) * eval_fraction))
    if eval_fraction > 0 and len(shuffled) > 1:
        n_eval = max(1, n_eval)
    return shuffled[n_eval:], shuffled[:n_eval]


# ------------------------------------------------------------------------------------------------ config

PRESETS: dict[str, dict] = {
    # SmolLM2 on a laptop CPU: a few minutes.
    "cpu": dict(
        max_steps=30,
        batch_size=16,
        micro_batch=16,
        lr=5e-5,
        warmup_steps=0,
        eval_every=10,
        save_every=30,
        max_eval_titles=256,
    ),
    # METHOD §3: batch 32, 1k steps, lr 5e-5 (HF default), no warm-up, eval/save every 100.
    "paper": dict(
        max_steps=1000,
        batch_size=32,
        micro_batch=32,
        lr=5e-5,
        warmup_steps=0,
        eval_every=100,
        save_every=100,
        max_eval_titles=None,
    ),
}


@dataclass
class MNTPConfig:
    max_steps: int = 1000
    batch_size: int = 32
    micro_batch: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    eval_every: int = 100
    save_every: int = 100
    log_every: int = 10
    seed: int = 42
    mixed_precision: str = "auto"
    keep: int = 2
    mask_probability: float = 0.2
    mask_token: str = "_"
    max_length: int = 128
    eval_fraction: float = 0.1
    max_eval_titles: int | None = None
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False

    @classmethod
    def from_preset(cls, preset: str = "paper", **overrides) -> MNTPConfig:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(PRESETS)}")
        values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown MNTP option(s): {', '.join(sorted(unknown))}")
        return cls(**values)


# ----------------------------------------------------------------------------------------------- running


def run_mntp(
    model_dir: str | Path,
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "paper",
    resume: bool = True,
    **overrides,
):
    """Train MNTP from ``model_dir`` (a CSFT model dir or a backbone name) on the dataset's item titles.

    Writes a plain HF model dir to ``out_dir`` (the chosen checkpoint: lowest held-out MNTP loss) with
    ``llm2rec_bidirectional: true`` in its config. Returns the training loop's result.
    """
    from llm2rec.data.dataset import Dataset
    from llm2rec.llm.backbone import load_causal_lm, load_tokenizer
    from llm2rec.llm.bidirectional import enable_bidirectional, probe_bidirectional
    from llm2rec.train.common import make_loop_config, run_training, save_encoder_dir

    config = MNTPConfig.from_preset(preset, **overrides)
    dataset = Dataset.load(dataset_dir)
    train_titles, eval_titles = split_titles(unique_titles(dataset.titles), config.eval_fraction, config.seed)
    if config.max_eval_titles is not None:
        eval_titles = eval_titles[: config.max_eval_titles]
    log.info("MNTP on %d titles (%d held out)", len(train_titles), len(eval_titles))

    tokenizer = load_tokenizer(str(model_dir), padding_side="right")
    model = load_causal_lm(str(model_dir), attn_implementation=config.attn_implementation)
    enable_bidirectional(model)
    if not probe_bidirectional(model):
        raise RuntimeError("bidirectional attention did not take effect; refusing to train MNTP causally")
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    mask_id = resolve_mask_token_id(tokenizer, config.mask_token)
    train_collate = MNTPCollator(tokenizer, mask_id, config.mask_probability, config.max_length, config.seed)
    # A fixed seed for held-out masking so every evaluation scores the same corrupted titles.
    eval_collate = MNTPCollator(tokenizer, mask_id, config.mask_probability, config.max_length, seed=12345)

    result = run_training(
        model=model,
        tokenizer=tokenizer,
        train_dataset=train_titles,
        eval_dataset=eval_titles or None,
        collate_fn=train_collate,
        eval_collate_fn=eval_collate,
        loss_fn=mntp_loss,
        eval_fn=mntp_eval if eval_titles else None,
        loop_config=make_loop_config(config),
        out_dir=Path(out_dir),
        resume=resume,
        save_fn=save_encoder_dir,
        stage="mntp",
        extra_manifest={
            "model": str(model_dir),
            "dataset_checksum": dataset.checksum,
            "mask_token_id": mask_id,
            "config": config.__dict__,
        },
    )
    return result
