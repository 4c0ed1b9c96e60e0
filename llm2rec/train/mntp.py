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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from llm2rec.errors import ConfigError
from llm2rec.io import work_dir_for
from llm2rec.train import settings
from llm2rec.train.outputs import finished, publish

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
    """Tokenizes titles (right-padded), then corrupts them for MNTP.

    Items are titles (masked afresh every time: training) or ``(index, title)`` pairs, masked with a
    generator seeded by the index, so held-out titles are corrupted identically at every evaluation.
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

    def __call__(self, items: list) -> dict[str, torch.Tensor]:
        fixed = [isinstance(item, tuple | list) for item in items]
        titles = [item[1] if is_fixed else item for item, is_fixed in zip(items, fixed, strict=True)]
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
        rows = []
        for r, item in enumerate(items):
            generator = self._generator
            if fixed[r]:
                generator = torch.Generator().manual_seed(self.seed * 1_000_003 + int(item[0]))
            rows.append(
                mask_tokens(
                    enc["input_ids"][r : r + 1],
                    selectable[r : r + 1],
                    self.mask_token_id,
                    len(self.tokenizer),
                    self.probability,
                    generator,
                )
            )
        input_ids = torch.cat([r[0] for r in rows])
        labels = torch.cat([r[1] for r in rows])
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
    device = accelerator.device if accelerator is not None else None
    stats = torch.zeros(3, dtype=torch.float64, device=device)  # loss × tokens, correct, tokens
    for batch in loader:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        loss, metrics = shifted_mlm_loss(out.logits, batch["labels"])
        n = metrics["tokens"]
        stats += torch.tensor(
            [float(loss) * n, metrics["accuracy"] * n, n], dtype=torch.float64, device=device
        )
    if accelerator is not None and accelerator.num_processes > 1:
        stats = accelerator.reduce(stats, reduction="sum")
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


@dataclass
class MNTPConfig:
    """MNTP settings; :data:`PRESETS` hold the paper's and a quick CPU run's."""

    max_steps: int = 1000
    batch_size: int = 32  # effective, over all processes
    micro_batch: int = 32
    lr: float = 5e-5
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    eval_every: int | None = 100
    save_every: int | None = 100
    log_every: int = 10
    seed: int = 42
    mixed_precision: str = "auto"
    keep_checkpoints: int = 1
    mask_probability: float = 0.2
    mask_token: str = "_"
    max_length: int = 512
    eval_fraction: float = 0.1
    max_eval_titles: int | None = None
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    progress: bool = True
    report_to: str | None = None  # "tensorboard" (pip install tensorboard): event files end in <out>/logs
    keep_work: bool = False  # keep <out>.work (checkpoints, both best and last) after publishing

    def loop_config(self):
        from llm2rec.train.loop import loop_config_from

        return loop_config_from(self, keep="best")  # lowest held-out MNTP loss


PRESETS: dict[str, dict] = {
    # METHOD §3: batch 32, 1k steps, lr 5e-5 (HF default), no warm-up, eval/save every 100, max length 512.
    "paper": {},
    # SmolLM2-135M on a CPU: a few minutes (one thread; on a shared machine OMP_NUM_THREADS=1 is fastest).
    "cpu": dict(
        max_steps=30,
        batch_size=16,
        micro_batch=16,
        eval_every=10,
        save_every=None,
        log_every=5,
        max_length=64,
        max_eval_titles=128,
    ),
}


def build_config(preset: str = "paper", **overrides) -> MNTPConfig:
    """The preset's settings, then every non-None override (unknown keys are errors)."""
    return settings.build_config(MNTPConfig, PRESETS, preset, overrides)


def read_metrics(out_dir: str | Path) -> list[dict]:
    """The ``metrics.jsonl`` entries of a published stage dir."""
    import json

    path = Path(out_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def resolve_model_dir(path: str | Path) -> str:
    """A training-loop dir (holding ``done.json``) → the model dir it chose; anything else (a published
    stage dir, a model dir, ``smollm2-135m``, a hub id) → unchanged."""
    import json

    root = Path(path)
    done = root / "done.json"
    if not done.is_file() or (root / "config.json").is_file():
        return str(path)
    chosen = Path(json.loads(done.read_text(encoding="utf-8"))["chosen_dir"])
    if not (chosen / "config.json").is_file():  # the run was moved: look beside done.json
        chosen = root / chosen.name
    if not (chosen / "config.json").is_file():
        raise FileNotFoundError(f"{done} names model dir {chosen}, which does not exist")
    return str(chosen)


# ----------------------------------------------------------------------------------------------- running


def run_mntp(
    model_dir: str | Path,
    dataset_dir: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "paper",
    resume: bool = True,
    **overrides,
) -> Path:
    """Train MNTP from ``model_dir`` (a CSFT output, a model dir or a backbone name) on the item titles.

    Returns ``out_dir``: the checkpoint with the lowest held-out MNTP loss as a plain HF dir whose config
    records bidirectional attention, plus ``mntp.json`` (settings, data checksum, held-out loss and
    masked-token accuracy before and after) and ``metrics.jsonl``. Training state lives in
    ``<out_dir>.work`` until then; with ``resume`` an interrupted run continues and a finished one is
    returned as is.
    """
    import time

    from llm2rec.data.dataset import Dataset
    from llm2rec.distributed import process_state
    from llm2rec.llm.backbone import check_attn_implementation, load_causal_lm, load_tokenizer
    from llm2rec.llm.bidirectional import enable_bidirectional, probe_bidirectional
    from llm2rec.train.loop import train_loop

    config = build_config(preset, **overrides)
    check_attn_implementation(config.attn_implementation)
    out_dir = Path(out_dir)
    work = work_dir_for(out_dir)
    if resume and finished(out_dir, "mntp"):
        log.info("%s is a finished MNTP run; nothing to do (resume off to redo it)", out_dir)
        return out_dir
    state = process_state()
    started = time.perf_counter()
    source = resolve_model_dir(model_dir)
    dataset = Dataset.load(dataset_dir)
    train_titles, eval_titles = split_titles(unique_titles(dataset.titles), config.eval_fraction, config.seed)
    if config.max_eval_titles is not None:
        eval_titles = eval_titles[: config.max_eval_titles]
    log.info("MNTP from %s on %d titles (%d held out)", source, len(train_titles), len(eval_titles))

    tokenizer = load_tokenizer(source, padding_side="right")
    model = load_causal_lm(source, attn_implementation=config.attn_implementation)
    enable_bidirectional(model)
    if not probe_bidirectional(model):
        raise RuntimeError("bidirectional attention did not take effect; refusing to train MNTP causally")
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    mask_id = resolve_mask_token_id(tokenizer, config.mask_token)

    result = train_loop(
        model,
        train_titles,
        MNTPCollator(tokenizer, mask_id, config.mask_probability, config.max_length, config.seed),
        mntp_loss,
        config.loop_config(),
        work,
        eval_dataset=list(enumerate(eval_titles)) or None,
        eval_fn=mntp_eval,
        tokenizer=tokenizer,
        resume=resume,
    )
    evals = [e for e in result.history if e["split"] == "eval"]
    best = next((e for e in evals if e["step"] == result.best_step), None)
    record = {
        "stage": "mntp",
        "model": str(model_dir),
        "dataset": str(dataset_dir),
        "dataset_checksum": dataset.checksum,
        "preset": preset,
        "config": asdict(config),
        "mask_token_id": mask_id,
        "train_titles": len(train_titles),
        "eval_titles": len(eval_titles),
        "chosen": result.chosen_dir.name,
        "best_step": result.best_step,
        "last_step": result.last_step,
        "eval_before": evals[0] if evals and evals[0]["step"] == 0 else None,
        "eval_best": best,
        "processes": state.num_processes,
        "wall_s": time.perf_counter() - started,
    }
    if state.is_main_process:
        publish(result, work, out_dir, "mntp", record, keep_work=config.keep_work)
    state.wait_for_everyone()
    return out_dir
