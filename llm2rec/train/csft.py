"""Stage 1: Collaborative Supervised Fine-Tuning (CSFT) — generate the next item's title from the history.

The paper's setting (METHOD §2): the prompt is the history titles joined by ", ", oldest first, with no
instruction; the target is the next title + "\\n" + EOS, appended with no separator; the loss falls on the
target tokens only; over-long inputs lose their oldest tokens, never the target.

Two deliberate differences from the official code: sequences are left-padded (as there) but given position
ids that skip the padding, so a padded example is computed exactly like an unpadded one; and only the
logits of target positions are computed (``logits_to_keep``), which saves the vocabulary projection over
the prompt. Neither changes the objective.

``run_csft`` writes ``out_dir`` as a plain Hugging Face directory (model + tokenizer, LoRA merged) plus
``csft.json`` (settings, data checksum, losses and the generation sanity metric before/after) and
``metrics.jsonl``. Checkpoints live in ``<out_dir>.work`` while training, so an interrupted run resumes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from llm2rec.errors import ConfigError
from llm2rec.train import config as config_module
from llm2rec.train.config import DEFAULT_PRESET, StageConfig, resolve_preset
from llm2rec.train.csft_data import (
    IGNORE,
    CSFTCollator,
    CSFTDataset,
    CSFTPair,
    training_pairs,
    validation_pairs,
)
from llm2rec.train.generation import generation_on_main
from llm2rec.train.stage import Stage, StageInputs, StageParts, evaluations, resolve_config, run_stage
from llm2rec.train.title_match import TitleIndex

log = logging.getLogger(__name__)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# ------------------------------------------------------------------------------------------------- settings
@dataclass
class CSFTConfig(StageConfig):
    """CSFT settings (plus the loop's and the shared ones); defaults = the paper's. Batch sizes count
    examples; ``batch_size`` is the effective batch over all processes."""

    max_steps: int = 10_000
    batch_size: int = 128
    micro_batch: int = 4
    lr: float = 3e-4
    warmup_steps: int = 200
    max_length: int = 1024  # the official cutoff_len; prompts are cut from the left to fit
    eval_every: int | None = 2000
    save_every: int | None = 2000
    length_grouped: bool = True
    prompt_template: str = "{history}"  # {history} = the titles joined by history_separator
    history_separator: str = ", "
    target_template: str = "{title}\n"  # EOS is appended after it
    eval_samples: int | None = 2000  # validation pairs for the eval loss (None = all)
    generation_samples: int = 200  # validation pairs for the generation sanity metric (0 = off)
    generation_batch: int = 16
    max_new_tokens: int = 64
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))

    def __post_init__(self) -> None:
        super().__post_init__()
        if "{history}" not in self.prompt_template:
            raise ConfigError(f"prompt_template must contain {{history}}, got {self.prompt_template!r}")
        if "{title}" not in self.target_template:
            raise ConfigError(f"target_template must contain {{title}}, got {self.target_template!r}")
        if self.max_length < 2:
            raise ConfigError(f"max_length must be at least 2, got {self.max_length}")


PRESETS: dict[str, dict] = {
    # METHOD §2: Qwen2-0.5B (pass --model Qwen/Qwen2-0.5B), effective batch 128 (micro 4), lr 3e-4,
    # 200 warm-up steps then linear decay, 10k steps, eval/save every 2k steps on 2,000 validation pairs.
    "paper": {},
    # SmolLM2-135M on a CPU, about 20 minutes of the ~50-minute cpu budget (docs/results.md): 240 steps of
    # 16 pairs at 2e-4, the first half of a 480-step schedule (so it ends at half the peak lr rather than at
    # 0), prompts cut to their newest 128 tokens; the kept checkpoint has the lowest valid CSFT loss.
    "cpu": dict(
        max_steps=240,
        schedule_steps=480,
        batch_size=16,
        micro_batch=16,
        lr=2e-4,
        warmup_steps=12,
        max_length=128,
        eval_every=80,
        save_every=80,
        log_every=10,
        eval_samples=128,
        generation_samples=32,
        generation_batch=32,
        max_new_tokens=32,
    ),
}


def build_config(preset: str = "paper", **overrides) -> CSFTConfig:
    """The preset's settings, then every non-None override. Dotted keys (``lora.r``) map to ``lora_r``."""
    return config_module.build_config(CSFTConfig, PRESETS, preset, overrides)


def csft_loss(model, batch: dict, accelerator=None) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy over the micro-batch's target tokens (title, "\\n", EOS)."""
    keep = int(batch["logits_to_keep"])
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=keep,
        use_cache=False,
    )
    # The logit at position p predicts token p+1: the kept positions L-keep..L-2 predict L-keep+1..L-1.
    logits = out.logits[:, :-1].float()
    labels = batch["labels"][:, -keep + 1 :]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE)
    return loss, {}


# ---------------------------------------------------------------------------------------------------- run
def _build(inputs: StageInputs) -> StageParts:
    from llm2rec.llm.backbone import load_causal_lm, load_tokenizer

    config, dataset, state = inputs.config, inputs.dataset, inputs.state
    tokenizer = load_tokenizer(inputs.model, padding_side="left")
    train_set = CSFTDataset(training_pairs(dataset), tokenizer, config)
    eval_set = CSFTDataset(validation_pairs(dataset, config.eval_samples, config.seed), tokenizer, config)
    log.info(
        "CSFT: %d training pairs (%d too long, dropped), %d validation pairs",
        len(train_set),
        train_set.dropped_too_long,
        len(eval_set),
    )
    lm = load_causal_lm(inputs.model, attn_implementation=config.attn_implementation)
    lm.config.pad_token_id = tokenizer.pad_token_id
    if config.gradient_checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    sanity = {"pairs": _generation_pairs(dataset, config), "catalogue": TitleIndex(dataset.titles[1:])}
    before = generation_on_main(
        lambda: lm.to(state.device),
        tokenizer,
        sanity["pairs"],
        sanity["catalogue"],
        config,
        state,
        inputs.work / "generation_before.json",
    )
    if config.lora:
        lm = apply_lora(lm, config)
    return StageParts(
        model=lm,
        tokenizer=tokenizer,
        train_set=train_set,
        collator=CSFTCollator(tokenizer.pad_token_id),
        loss_fn=csft_loss,
        eval_set=eval_set if len(eval_set) else None,
        record={
            "train_pairs": len(train_set),
            "dropped_too_long": train_set.dropped_too_long,
            "truncated_prompts": train_set.truncated,
            "eval_pairs": len(eval_set),
            "generation_before": before,
        },
        extras=sanity,
    )


def _generation_pairs(dataset, config: CSFTConfig) -> list[CSFTPair]:
    if not config.generation_samples:
        return []
    return validation_pairs(dataset, config.generation_samples, config.seed + 1)


def _summarise(inputs: StageInputs, parts: StageParts, result) -> dict:
    from llm2rec.llm.backbone import load_causal_lm

    config, state = inputs.config, inputs.state
    after = generation_on_main(
        lambda: load_causal_lm(result.chosen_dir, attn_implementation=config.attn_implementation).to(
            state.device
        ),
        parts.tokenizer,
        parts.extras["pairs"],
        parts.extras["catalogue"],
        config,
        state,
    )
    evals = evaluations(result)
    return {
        "eval_loss_before": evals[0]["loss"] if evals and evals[0]["step"] == 0 else None,
        "eval_loss_best": result.best_loss,
        "generation_after": after,
    }


STAGE = Stage("csft", _build, _summarise)


def run_csft(
    dataset_dir: str | Path,
    model: str | Path,
    out_dir: str | Path,
    *,
    preset: str = DEFAULT_PRESET,
    resume: bool = True,
    overwrite: bool = False,
    config: CSFTConfig | None = None,
    **overrides,
) -> Path:
    """Fine-tune ``model`` (``smollm2-135m``, a hub id or a path) with CSFT on a prepared dataset.

    Returns ``out_dir``, a plain Hugging Face directory (model + tokenizer) loadable by
    ``AutoModelForCausalLM.from_pretrained``; it is written only when training has finished. Settings:
    ``config`` when given, else the preset with ``overrides``. See :func:`llm2rec.train.stage.run_stage`
    for resuming.
    """
    preset = resolve_preset(preset)
    config = resolve_config(build_config, config, preset, overrides)
    return run_stage(
        STAGE, model, dataset_dir, out_dir, config, preset=preset, resume=resume, overwrite=overwrite
    )


def apply_lora(model, config: CSFTConfig):
    from peft import LoraConfig, get_peft_model

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in config.lora_target_modules if t in present]
    if not targets:
        raise ConfigError(f"none of lora_target_modules {config.lora_target_modules} exist in this model")
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)
