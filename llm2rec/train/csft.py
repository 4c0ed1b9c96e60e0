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

import json
import logging
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from llm2rec.errors import ConfigError
from llm2rec.io import atomic_write_json, work_dir_for
from llm2rec.train import settings
from llm2rec.train.outputs import finished, publish
from llm2rec.train.title_match import Catalogue, token_f1

log = logging.getLogger(__name__)

IGNORE = -100
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# ------------------------------------------------------------------------------------------------- settings
@dataclass
class CSFTConfig:
    """All CSFT settings. Batch sizes count examples; ``effective_batch`` is over all processes."""

    max_steps: int = 10_000
    effective_batch: int = 128
    micro_batch: int = 4
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_steps: int = 200
    max_grad_norm: float | None = 1.0
    max_length: int = 1024  # the official cutoff_len; prompts are cut from the left to fit
    prompt_template: str = "{history}"  # {history} = the titles joined by history_separator
    history_separator: str = ", "
    target_template: str = "{title}\n"  # EOS is appended after it
    eval_every: int | None = 2000
    save_every: int | None = 2000
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "auto"  # bf16 autocast with fp32 master weights on a GPU, fp32 on CPU
    keep: str = "best"
    length_grouped: bool = True
    eval_samples: int | None = 2000  # validation pairs for the eval loss (None = all)
    generation_samples: int = 200  # validation pairs for the generation sanity metric (0 = off)
    generation_batch: int = 16
    max_new_tokens: int = 64
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: list(LORA_TARGETS))
    num_workers: int = 0
    keep_work: bool = False  # keep <out>.work (checkpoints) after a successful run
    progress: bool = True
    report_to: str | None = None  # "tensorboard" (pip install tensorboard): event files end in <out>/logs

    def __post_init__(self) -> None:
        if "{history}" not in self.prompt_template:
            raise ConfigError(f"prompt_template must contain {{history}}, got {self.prompt_template!r}")
        if "{title}" not in self.target_template:
            raise ConfigError(f"target_template must contain {{title}}, got {self.target_template!r}")
        if self.max_length < 2:
            raise ConfigError(f"max_length must be at least 2, got {self.max_length}")

    def loop_config(self):
        from llm2rec.train.loop import loop_config_from

        return loop_config_from(self)


PRESETS: dict[str, dict] = {
    # METHOD §2: Qwen2-0.5B (pass --model Qwen/Qwen2-0.5B), effective batch 128 (micro 4), lr 3e-4,
    # 200 warm-up steps then linear decay, 10k steps, eval/save every 2k steps on 2,000 validation pairs.
    "paper": {},
    # SmolLM2-135M on a laptop CPU: a few minutes.
    "cpu": dict(
        max_steps=60,
        effective_batch=8,
        micro_batch=8,
        lr=2e-4,
        warmup_steps=6,
        max_length=96,
        eval_every=20,
        save_every=20,
        log_every=5,
        eval_samples=64,
        generation_samples=32,
        generation_batch=32,
        max_new_tokens=32,
        mixed_precision="no",
    ),
}


def build_config(preset: str = "paper", **overrides) -> CSFTConfig:
    """The preset's settings, then every non-None override. Dotted keys (``lora.r``) map to ``lora_r``."""
    return settings.build_config(CSFTConfig, PRESETS, preset, overrides)


# --------------------------------------------------------------------------------------------- the examples
@dataclass
class CSFTPair:
    history_titles: list[str]
    target_title: str


def format_prompt(history_titles, config: CSFTConfig) -> str:
    return config.prompt_template.format(history=config.history_separator.join(history_titles))


def encode_pair(pair: CSFTPair, tokenizer, config: CSFTConfig) -> dict | None:
    """Token ids and labels of one pair; ``None`` when the target alone does not fit ``max_length``.

    Labels are the target ids (title, "\\n", EOS) and ``IGNORE`` on every prompt token. The prompt keeps
    its newest tokens (left truncation); the target is never cut.
    """
    prompt = tokenizer(format_prompt(pair.history_titles, config), add_special_tokens=False)["input_ids"]
    target = tokenizer(config.target_template.format(title=pair.target_title), add_special_tokens=False)[
        "input_ids"
    ] + [tokenizer.eos_token_id]
    room = config.max_length - len(target)
    if room < 1:
        return None
    truncated = len(prompt) > room
    prompt = prompt[-room:]
    return {
        "input_ids": prompt + target,
        "labels": [IGNORE] * len(prompt) + target,
        "prompt_len": len(prompt),
        "truncated": truncated,
    }


class CSFTDataset(torch.utils.data.Dataset):
    """Encoded pairs, with ``lengths`` for length-grouped batching."""

    def __init__(self, pairs: list[CSFTPair], tokenizer, config: CSFTConfig):
        encoded = [encode_pair(p, tokenizer, config) for p in pairs]
        self.examples = [e for e in encoded if e is not None]
        self.dropped_too_long = len(encoded) - len(self.examples)
        self.truncated = sum(e["truncated"] for e in self.examples)
        self.lengths = [len(e["input_ids"]) for e in self.examples]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        return self.examples[index]


class CSFTCollator:
    """Left-pads a list of encoded pairs into tensors.

    Left padding puts every target at the end of its row, so the loss needs only the last
    ``max target length + 1`` positions' logits (``logits_to_keep``). ``position_ids`` count real tokens
    only, so padding never shifts a sequence's positions.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = 8):
        self.pad_token_id, self.multiple = pad_token_id, pad_to_multiple_of

    def __call__(self, items: list[dict]) -> dict:
        width = max(len(x["input_ids"]) for x in items)
        if self.multiple:
            width = -(-width // self.multiple) * self.multiple
        input_ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[row, width - n :] = torch.tensor(item["input_ids"])
            labels[row, width - n :] = torch.tensor(item["labels"])
            attention_mask[row, width - n :] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        target_span = max(len(x["input_ids"]) - x["prompt_len"] for x in items)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "labels": labels,
            "logits_to_keep": torch.tensor(target_span + 1),
        }


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


# ------------------------------------------------------------------------------------------------- the data
def training_pairs(dataset) -> list[CSFTPair]:
    """Pairs from the training part only (the prepared ``csft`` table)."""
    table = dataset.csft_pairs()
    return [
        CSFTPair(list(h), str(t)) for h, t in zip(table["history_titles"], table["target_title"], strict=True)
    ]


def validation_pairs(dataset, limit: int | None, seed: int) -> list[CSFTPair]:
    """(history → validation item) pairs, a seeded random sample of ``limit`` of them."""
    titles = dataset.titles
    valid = dataset.split("valid")
    pairs = [
        CSFTPair([titles[i] for i in history], titles[int(target)])
        for history, target in zip(valid["history"], valid["target"], strict=True)
        if len(history) > 0
    ]
    if limit is not None and len(pairs) > limit:
        pairs = random.Random(seed).sample(pairs, limit)
    return pairs


# -------------------------------------------------------------------------------------- the sanity metric
@torch.no_grad()
def generation_metrics(
    model, tokenizer, pairs: list[CSFTPair], catalogue: Catalogue, config: CSFTConfig
) -> dict:
    """Greedy next-title generation over ``pairs``: exact-match and in-catalogue rates of the generated
    title (text up to the first newline), the graded token F1 and grounded-hit rates (see
    :mod:`llm2rec.train.title_match`), and the rate of generations that end within ``max_new_tokens``."""
    if not pairs:
        return {}
    model.eval()
    device = next(model.parameters()).device
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    stop_ids = [tokenizer.eos_token_id] + (newline if len(newline) == 1 else [])
    prompt_room = max(config.max_length - config.max_new_tokens, 1)
    exact = in_catalogue = ended = grounded = empty = 0
    f1 = 0.0
    examples = []
    for start in range(0, len(pairs), config.generation_batch):
        chunk = pairs[start : start + config.generation_batch]
        prompts = [
            tokenizer(format_prompt(p.history_titles, config), add_special_tokens=False)["input_ids"][
                -prompt_room:
            ]
            for p in chunk
        ]
        batch = CSFTCollator(tokenizer.pad_token_id, None)(
            [{"input_ids": ids, "labels": ids, "prompt_len": len(ids)} for ids in prompts]
        )
        out = model.generate(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            max_new_tokens=config.max_new_tokens,
            # An empty title is never an answer. With the paper's prompt (no separator before the target)
            # the model cannot tell that the last history title is finished and often "ends" it with
            # "\n" at once; asking for at least one token makes it name an item instead.
            min_new_tokens=1,
            do_sample=False,
            eos_token_id=stop_ids,
            pad_token_id=tokenizer.pad_token_id,
        )
        new_tokens = out[:, batch["input_ids"].shape[1] :]
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        # A title that ends (newline / EOS) within the budget: the output format has been learned.
        ended += int(torch.isin(new_tokens, torch.tensor(stop_ids, device=new_tokens.device)).any(-1).sum())
        for pair, text in zip(chunk, texts, strict=True):
            title = text.split("\n", 1)[0].strip()
            target = pair.target_title.strip()
            exact += title == target
            in_catalogue += title in catalogue
            f1 += token_f1(title, target)
            grounded += catalogue.nearest(title) == target
            empty += not title
            if len(examples) < 5:
                examples.append({"target": pair.target_title, "generated": title})
    return {
        "exact_match": exact / len(pairs),
        "in_catalogue": in_catalogue / len(pairs),
        "token_f1": f1 / len(pairs),
        "grounded_hit": grounded / len(pairs),
        "empty": empty / len(pairs),
        "ended": ended / len(pairs),
        "samples": len(pairs),
        "examples": examples,
    }


# ---------------------------------------------------------------------------------------------------- run
def run_csft(
    dataset_dir: str | Path,
    model: str | Path,
    out_dir: str | Path,
    *,
    preset: str = "paper",
    resume: bool = True,
    **overrides,
) -> Path:
    """Fine-tune ``model`` (``smollm2-135m``, a hub id or a path) with CSFT on a prepared dataset.

    Returns ``out_dir``, a plain Hugging Face directory (model + tokenizer) loadable by
    ``AutoModelForCausalLM.from_pretrained``; it is written only when training has finished. With
    ``resume``, a finished ``out_dir`` is returned as is and an interrupted run continues from its last
    checkpoint in ``<out_dir>.work``; without it, both are started afresh.
    """
    from llm2rec.data.dataset import Dataset
    from llm2rec.distributed import process_state
    from llm2rec.llm.backbone import check_attn_implementation, load_causal_lm, load_tokenizer
    from llm2rec.train.loop import train_loop

    config = build_config(preset, **overrides)
    check_attn_implementation(config.attn_implementation)
    out_dir, work = Path(out_dir), work_dir_for(Path(out_dir))
    if resume and finished(out_dir, "csft"):
        log.info("%s is a finished CSFT run; nothing to do (resume off to redo it)", out_dir)
        return out_dir
    state = process_state()
    dataset = Dataset.load(dataset_dir)
    started = time.perf_counter()

    tokenizer = load_tokenizer(model, padding_side="left")
    train_set = CSFTDataset(training_pairs(dataset), tokenizer, config)
    eval_set = CSFTDataset(validation_pairs(dataset, config.eval_samples, config.seed), tokenizer, config)
    gen_pairs = (
        validation_pairs(dataset, config.generation_samples, config.seed + 1)
        if config.generation_samples
        else []
    )
    catalogue = Catalogue(dataset.titles[1:])
    log.info(
        "CSFT: %d training pairs (%d too long, dropped), %d validation pairs",
        len(train_set),
        train_set.dropped_too_long,
        len(eval_set),
    )

    lm = load_causal_lm(model, attn_implementation=config.attn_implementation)
    lm.config.pad_token_id = tokenizer.pad_token_id
    if config.gradient_checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not resume and state.is_main_process:
        shutil.rmtree(work, ignore_errors=True)
    before = _generation_on_main(
        lambda: lm.to(state.device),
        tokenizer,
        gen_pairs,
        catalogue,
        config,
        state,
        work / "generation_before.json",
    )
    if config.lora:
        lm = apply_lora(lm, config)

    result = train_loop(
        lm,
        train_set,
        CSFTCollator(tokenizer.pad_token_id),
        csft_loss,
        config.loop_config(),
        work,
        eval_dataset=eval_set if len(eval_set) else None,
        tokenizer=tokenizer,
        resume=resume,
    )
    after = _generation_on_main(
        lambda: load_causal_lm(result.chosen_dir, attn_implementation=config.attn_implementation).to(
            state.device
        ),
        tokenizer,
        gen_pairs,
        catalogue,
        config,
        state,
    )
    evals = [e for e in result.history if e["split"] == "eval"]
    record = {
        "stage": "csft",
        "model": str(model),
        "dataset": str(dataset_dir),
        "dataset_checksum": dataset.checksum,
        "preset": preset,
        "config": asdict(config),
        "train_pairs": len(train_set),
        "dropped_too_long": train_set.dropped_too_long,
        "truncated_prompts": train_set.truncated,
        "eval_pairs": len(eval_set),
        "chosen": result.chosen_dir.name,
        "best_step": result.best_step,
        "last_step": result.last_step,
        "eval_loss_before": evals[0]["loss"] if evals and evals[0]["step"] == 0 else None,
        "eval_loss_best": result.best_loss,
        "generation_before": before,
        "generation_after": after,
        "processes": state.num_processes,
        "wall_s": time.perf_counter() - started,
    }
    if state.is_main_process:
        publish(result, work, out_dir, "csft", record, keep_work=config.keep_work)
    state.wait_for_everyone()
    return out_dir


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


def _generation_on_main(
    load_model, tokenizer, pairs, catalogue, config, state, cache: Path | None = None
) -> dict:
    """The sanity metric, computed by process 0 only (others get ``{}``); ``cache`` spares a resumed run
    from generating the "before" numbers again."""
    if not pairs or not state.is_main_process:
        return {}
    if cache is not None and cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    metrics = generation_metrics(load_model(), tokenizer, pairs, catalogue, config)
    log.info(
        "generation sanity: exact match %.3f, in catalogue %.3f, token F1 %.3f, grounded hit %.3f, "
        "empty %.3f (%d samples)",
        metrics["exact_match"],
        metrics["in_catalogue"],
        metrics["token_f1"],
        metrics["grounded_hit"],
        metrics["empty"],
        metrics["samples"],
    )
    if cache is not None:
        atomic_write_json(cache, metrics)
    return metrics
