"""The one-call GPU check (issue 37 §3): every GPU-dependent part of LLM2Rec, a few steps each, in one run.

Nothing is downloaded: the backbone is the paper's architecture (Qwen2-0.5B's config, written below) with
random weights, the tokenizer the tiny byte-level BPE of ``llm2rec.llm.tiny`` (512 tokens; the model keeps
Qwen2's full 151,936-row vocabulary and simply never sees ids above 511, so the embedding and LM-head
shapes, parameter count and FLOPs are the real model's), and every dataset the built-in synthetic one.
Parts, each timed, in this order:

* ``setup``: the random backbone saved as a model directory, a small built-in dataset for the LLM stages;
* ``bidirectional``: in bf16, under eager, sdpa and (when installed) flash_attention_2: the bidirectional
  model's outputs at every position change when a later token changes (and a causal control's do not),
  without padding, with right and with left padding; sdpa/flash outputs match eager's within a bf16
  tolerance (eager in fp32 is reported as the reference for eager bf16's own error);
* ``csft@IMPL``, ``mntp@IMPL``, ``contrastive@IMPL`` (IMPL = sdpa, and flash_attention_2 when installed):
  ``run_csft`` → ``run_mntp`` → ``run_contrastive`` with the paper preset's shapes (batch sizes,
  max_length) in bf16 autocast for a handful of steps; tokens/s and MFU from the stage's metrics.jsonl
  (``llm2rec.train.throughput``), seconds per optimizer step, the paper-length stage time it projects to,
  peak GPU memory;
* ``extract@IMPL``: ``Encoder.from_pretrained`` on the contrastive output and ``encode`` of 50k
  synthetic titles: titles/s;
* ``seqrec``: ``run_seqrec`` (SASRec, ID embeddings, one seed) for two epochs on the built-in generator's
  catalogue of 100k items (100k users, kcore 0): seconds per epoch.

A total time budget (``--budget``, default 480 s) is kept: a part starts only when the time left covers its
usual cost, and a running part is cut when the budget is spent; either way it is recorded as skipped with
the reason. The JSON (``--out DIR``, default ``$OUT`` when set, else benchmarks/results/) holds every
field of every part, null with a reason where a value does not apply. The exit code is 1 when any check
failed or any part raised, else 0.

    python benchmarks/gpu_check.py --out $OUT           # on a GPU machine: sized for <= 8 min on one H100
    python benchmarks/gpu_check.py --device cpu --tiny  # the dry run: every step, tiny model and sizes
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import platform
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # a checkout that was copied, not installed, still imports its llm2rec
    sys.path.insert(0, str(REPO))

# Qwen/Qwen2-0.5B's config.json (the paper's backbone), less the token ids, which follow the tokenizer.
QWEN2_0_5B = dict(
    vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
    num_attention_heads=14, num_key_value_heads=2, hidden_act="silu", max_position_embeddings=131072,
    max_window_layers=24, rms_norm_eps=1e-6, rope_theta=1_000_000.0, sliding_window=131072,
    use_sliding_window=False, tie_word_embeddings=True, initializer_range=0.02, attention_dropout=0.0,
)  # fmt: skip
TINY_BACKBONE = dict(
    QWEN2_0_5B, vocab_size=None, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_window_layers=2,
)  # fmt: skip
STAGES = ("csft", "mntp", "contrastive")
PAPER_STAGE_STEPS = {"csft": 4, "mntp": 10, "contrastive": 6}  # a handful: one step is warm-up
SIZES = {
    # The paper preset's own shapes (csft 128 / micro 4 / 1024 tokens, mntp 32 / 512, contrastive 256 / 512).
    "paper": dict(stage_shapes={}, steps=PAPER_STAGE_STEPS, llm_users=1000, llm_items=1500,
                  extract_titles=50_000, extract_batch=32, seqrec_items=100_000, seqrec_users=100_000,
                  seqrec_epochs=2),
    "tiny": dict(stage_shapes={"csft": dict(batch_size=8, micro_batch=4, max_length=128),
                               "mntp": dict(batch_size=8, micro_batch=8, max_length=64),
                               "contrastive": dict(batch_size=8, micro_batch=8, max_length=64)},
                 steps={s: 3 for s in STAGES}, llm_users=300, llm_items=200, extract_titles=300,
                 extract_batch=32, seqrec_items=200, seqrec_users=200, seqrec_epochs=2),
}  # fmt: skip
# Usual seconds of each part on one H100 (a part starts only when the budget has that much left).
RESERVE_S = 10.0  # of the budget, for removing the work folder (~10 GB) and writing the report
MIN_SECONDS = {"setup": 20, "bidirectional": 20, "csft": 40, "mntp": 25, "contrastive": 25, "extract": 30,
               "seqrec": 60}  # fmt: skip
BF16_TOLERANCE = {"rel_err": 0.05, "min_cosine": 0.995}  # vs eager bf16 (eager bf16 vs fp32: ~0.015, 0.9998)
# A position "depends on" a later token when changing that token moves its hidden state by more than this
# (relative norm), and a causal one must move by less: above bf16 rounding noise (sdpa vs eager differ by
# ~0.017 on the full model), below what one changed token does to a bidirectional model (on CPU, sdpa:
# 0.30-0.60 on the random Qwen2-0.5B, >= 0.049 on the tiny one; the causal control moves by exactly 0).
CHANGE_THRESHOLD = 0.02
NOTES = {
    "mfu": "tokens/s x 6N / peak bf16 FLOPs, N = every parameter (embeddings included), attention "
           "FLOPs ignored; the peak is llm2rec.train.throughput's table (H100: 989 TFLOPs dense)",
    "stages": "run_csft -> run_mntp -> run_contrastive, preset paper (its batch sizes and max_length), "
              "bf16 autocast with fp32 master weights, a handful of steps, no evaluation but a few "
              "batches at the end; tokens/s and MFU are medians over the steps after the first; step_s "
              "times optimizer steps",
    "extract": "Encoder.from_pretrained (bf16) on the contrastive output, encode() at llm2rec's default "
               "batch 32 (the official code used 16), after a warm-up of two batches",
    "seqrec": "run_seqrec: SASRec with ID embeddings, one seed, the built-in generator's catalogue "
              "(kcore 0), seqrec defaults otherwise (batch 256, hidden 128); epoch_s is the last "
              "epoch's training time",
    "tokens": "the tiny tokenizer gives ~37 tokens per synthetic title where Qwen2's would give ~15 "
              "(4 characters a token): sequences are ~2.5x longer than with the real tokenizer",
}  # fmt: skip
COMMON_FIELDS = ("status", "reason", "wall_s", "peak_gpu_memory_gb", "checks", "null_reasons")
FIELDS = {
    "setup": ("device", "precision", "parameters", "vocab_size", "tokenizer_size", "tokens_per_title_mean",
              "build_s", "save_s", "dataset_items", "dataset_users", "prepare_s"),
    "bidirectional": ("dtype", "change_threshold", "implementations", "tolerance",
                      "causal_vs_bidirectional_rel_err"),
    "stage": ("attn_implementation", "started_from", "steps", "batch_size", "micro_batch", "max_length",
              "mixed_precision", "train_examples", "tokens_per_s", "tokens_per_s_per_step", "mfu",
              "step_s", "step_s_per_step", "paper_steps", "projected_paper_stage_s", "loss_first",
              "loss_last", "stage_wall_s"),
    "extract": ("attn_implementation", "encoder", "titles", "batch_size", "dtype", "dim",
                "tokens_per_title_mean", "load_s", "encode_s", "titles_per_s", "projected_50k_s"),
    "seqrec": ("model", "item_repr", "num_items_requested", "num_items", "num_users", "prepare_s", "epochs",
               "epoch_seconds", "epoch_s", "train_seconds", "test_eval_seconds", "valid_recall@20",
               "test_recall@20"),
}  # fmt: skip


class BudgetSpent(BaseException):
    """Raised by the watchdog inside a part when the total budget is spent (BaseException: library code's
    ``except Exception`` must not swallow it)."""


class Skip(Exception):
    """A part that does not apply here (e.g. flash attention without flash_attn): skipped, not failed."""


class Check:
    """One run: settings, the work directory, the parts' entries and the checks."""

    def __init__(self, args, started: float | None = None):
        import torch

        self.args, self.tiny = args, args.tiny
        self.started = started if started is not None else time.perf_counter()
        if args.tiny and args.device == "cpu":
            torch.set_num_threads(1)  # tiny tensors: more threads only contend (a dry run on a busy machine)
        self.sizes = SIZES["tiny" if args.tiny else "paper"]
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.precision = "bf16"
        self.work = Path(tempfile.mkdtemp(prefix="gpu_check-", dir=args.work))
        self.parts: dict[str, dict] = {}
        self.checks: list[dict] = []
        self.backbone = self.dataset = self.tokenizer = None
        self.outputs: dict[str, Path] = {}  # part -> the model directory it published

    def left(self) -> float:
        """Seconds the parts may still use (the paper-size run keeps RESERVE_S for cleanup and the report)."""
        reserve = 0.0 if self.tiny else RESERVE_S
        return self.args.budget - reserve - (time.perf_counter() - self.started)

    def check(self, part: str, name: str, ok: bool, detail) -> None:
        self.checks.append({"part": part, "check": name, "ok": bool(ok), "detail": detail})
        self.parts[part]["checks"].append({"check": name, "ok": bool(ok), "detail": detail})

    def injected(self, part: str) -> bool:
        return part in (self.args.inject_failure or [])


# ------------------------------------------------------------------------------------------------ helpers
def flash_unavailable(device) -> str | None:
    """Why flash_attention_2 cannot run here, or None."""
    if device.type != "cuda":
        return f"flash attention needs a CUDA GPU (device is {device.type})"
    if importlib.util.find_spec("flash_attn") is None:
        return "flash_attn is not installed (pip install flash-attn)"
    from transformers.utils import is_flash_attn_2_available

    if not is_flash_attn_2_available():
        return "transformers reports flash attention 2 unavailable (flash_attn version or GPU)"
    return None


def sync(check: Check) -> None:
    if check.cuda:
        import torch

        torch.cuda.synchronize(check.device)


def free_memory(check: Check) -> None:
    import gc

    gc.collect()
    if check.cuda:
        import torch

        torch.cuda.empty_cache()


@contextlib.contextmanager
def watchdog(seconds: float):
    """Raise :class:`BudgetSpent` in this (main) thread after ``seconds``; a no-op off the main thread."""
    usable = hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def fire(signum, frame):
        raise BudgetSpent()

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def step_clock(check: Check):
    """The time after every optimizer step (torch's global post-step hook), the GPU synchronised."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    times: list[float] = []

    def hook(optimizer, args, kwargs):
        sync(check)
        times.append(time.perf_counter())

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield times
    finally:
        handle.remove()


def tokens_per_title(tokenizer, titles: list[str]) -> float:
    sample = titles[:2000]
    return round(statistics.fmean(len(ids) for ids in tokenizer(sample)["input_ids"]), 2)


def warm(values: list) -> list:
    """The per-step values after the first (warm-up) one, when there are others."""
    return values[1:] if len(values) > 1 else values


# -------------------------------------------------------------------------------------------------- parts
def part_setup(check: Check) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, Qwen2Config

    from llm2rec.config import dataset_spec
    from llm2rec.data.prepare import prepare_from_spec
    from llm2rec.llm.tiny import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    shape = dict(TINY_BACKBONE if check.tiny else QWEN2_0_5B)
    shape["vocab_size"] = shape["vocab_size"] or len(tokenizer)
    ids = dict(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    tick = time.perf_counter()
    with torch.random.fork_rng(devices=[]), torch.device(check.device):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(Qwen2Config(**shape, **ids), dtype=torch.bfloat16)
    sync(check)
    build_s, tick = time.perf_counter() - tick, time.perf_counter()
    check.backbone = check.work / "backbone"
    model.save_pretrained(check.backbone)
    tokenizer.save_pretrained(check.backbone)
    save_s, parameters = time.perf_counter() - tick, sum(p.numel() for p in model.parameters())
    del model
    tick = time.perf_counter()
    spec = dataset_spec(
        format="builtin", num_users=check.sizes["llm_users"], num_items=check.sizes["llm_items"]
    )
    check.dataset = check.work / "dataset"
    dataset = prepare_from_spec(spec, check.dataset)
    check.tokenizer = tokenizer
    loaded = AutoConfig.from_pretrained(check.backbone)
    check.check(
        "setup", "the backbone directory is a Qwen2 model", loaded.model_type == "qwen2", loaded.model_type
    )
    if not check.tiny:  # Qwen2-0.5B has 494,032,768 parameters (tied embeddings)
        check.check("setup", "Qwen2-0.5B's parameter count", parameters == 494_032_768, parameters)
    return {
        "device": str(check.device), "precision": check.precision, "parameters": parameters,
        "vocab_size": shape["vocab_size"], "tokenizer_size": len(tokenizer),
        "tokens_per_title_mean": tokens_per_title(tokenizer, dataset.titles[1:]), "build_s": build_s,
        "save_s": save_s, "dataset_items": dataset.num_items, "dataset_users": dataset.num_users,
        "prepare_s": time.perf_counter() - tick,
    }  # fmt: skip


def bidirectional_batches(check: Check) -> dict:
    """Three cases of a few titles: equal lengths without a mask, right padding, left padding."""
    import torch

    from llm2rec.data.dataset import Dataset

    titles = Dataset.load(check.dataset).titles[1:9]
    tok = check.tokenizer
    ids = tok(titles, add_special_tokens=False)["input_ids"]
    shortest = min(len(i) for i in ids)
    cases = {"no_padding": {"input_ids": torch.tensor([i[:shortest] for i in ids])}}
    for side in ("right", "left"):
        enc = tok(titles, padding=True, return_tensors="pt", padding_side=side)
        cases[f"{side}_padding"] = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    for batch in cases.values():
        mask = batch.get("attention_mask", torch.ones_like(batch["input_ids"]))
        last = mask.shape[1] - 1 - mask.flip(1).argmax(1)  # each row's last real position
        changed = batch["input_ids"].clone()
        rows = torch.arange(len(changed))
        changed[rows, last] = (changed[rows, last] + 7) % len(tok)
        batch.update(mask=mask.bool(), last=last, changed=changed)
    return cases


def hidden_states(model, batch: dict, changed: bool, device):
    import torch

    ids = batch["changed"] if changed else batch["input_ids"]
    kwargs = {"attention_mask": batch["attention_mask"].to(device)} if "attention_mask" in batch else {}
    with torch.no_grad():
        return model(input_ids=ids.to(device), **kwargs).last_hidden_state.float().cpu()


def earlier_changes(a, b, batch: dict) -> list[float]:
    """||a - b|| / ||a|| at every real position before each row's last real token (the one changed)."""
    out = []
    for r in range(a.shape[0]):
        for p in range(a.shape[1]):
            if batch["mask"][r, p] and p < batch["last"][r]:
                out.append(float((a[r, p] - b[r, p]).norm() / a[r, p].norm().clamp_min(1e-12)))
    return out


def compare(a, b, mask) -> dict:
    import torch

    a, b = a[mask], b[mask]
    cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
    return {"rel_err": float((a - b).norm() / b.norm()), "min_cosine": float(cos.min())}


def attention_outputs(check: Check, impl: str, cases: dict, dtype) -> dict:
    """Outputs of the backbone under ``impl`` (bidirectional, then a causal control) on every case."""
    from transformers import AutoModel

    from llm2rec.llm.bidirectional import disable_bidirectional, enable_bidirectional, probe_bidirectional

    model = AutoModel.from_pretrained(check.backbone, dtype=dtype, attn_implementation=impl)
    model.to(check.device).eval()
    if not (impl == "sdpa" and check.injected("bidirectional")):  # the injected failure: left causal
        enable_bidirectional(model)
    out = {"probe_bidirectional": probe_bidirectional(model), "bi": {}, "causal": {}}
    for name, batch in cases.items():
        out["bi"][name] = (hidden_states(model, batch, False, check.device),
                           hidden_states(model, batch, True, check.device))  # fmt: skip
    disable_bidirectional(model)
    for name, batch in cases.items():
        out["causal"][name] = (hidden_states(model, batch, False, check.device),
                               hidden_states(model, batch, True, check.device))  # fmt: skip
    del model
    free_memory(check)
    return out


def case_report(got: dict, eager: dict, reference: dict, cases: dict) -> dict:
    """Per case: how much earlier positions move when the last token changes, and the distance to eager."""
    out = {}
    for name, batch in cases.items():
        bi_changes = earlier_changes(*got["bi"][name], batch)
        out[name] = {
            "positions": len(bi_changes),
            "unchanged_positions_bidirectional": sum(c <= CHANGE_THRESHOLD for c in bi_changes),
            "min_rel_change_bidirectional": min(bi_changes),
            "max_rel_change_causal": max(earlier_changes(*got["causal"][name], batch)),
            "vs_eager_bf16": compare(got["bi"][name][0], eager[name][0], batch["mask"]),
            "vs_eager_fp32": compare(got["bi"][name][0], reference[name][0], batch["mask"]),
        }
    return out


def attention_checks(check: Check, impl: str, entry: dict) -> None:
    cases = entry["cases"].items()
    sees_later = entry["probe_bidirectional"] and all(
        c["unchanged_positions_bidirectional"] == 0 for _, c in cases
    )
    check.check("bidirectional", f"{impl}: every position depends on later tokens", sees_later,
                {n: c["unchanged_positions_bidirectional"] for n, c in cases})  # fmt: skip
    causal_ok = all(c["max_rel_change_causal"] <= CHANGE_THRESHOLD for _, c in cases)
    check.check("bidirectional", f"{impl}: causal control sees no later token", causal_ok,
                {n: c["max_rel_change_causal"] for n, c in cases})  # fmt: skip
    if impl != "eager":
        close = all(
            c["vs_eager_bf16"]["rel_err"] <= BF16_TOLERANCE["rel_err"]
            and c["vs_eager_bf16"]["min_cosine"] >= BF16_TOLERANCE["min_cosine"]
            for _, c in cases
        )
        check.check("bidirectional", f"{impl}: matches eager within bf16 tolerance", close,
                    {n: c["vs_eager_bf16"] for n, c in cases})  # fmt: skip


def part_bidirectional(check: Check) -> dict:
    import torch

    cases = bidirectional_batches(check)
    flash = flash_unavailable(check.device)
    impls = ["eager", "sdpa"] + ([] if flash else ["flash_attention_2"])
    outputs = {impl: attention_outputs(check, impl, cases, torch.bfloat16) for impl in impls}
    reference = attention_outputs(check, "eager", cases, torch.float32)["bi"]
    eager = outputs["eager"]["bi"]
    report = {}
    for impl in impls:
        report[impl] = {
            "probe_bidirectional": outputs[impl]["probe_bidirectional"],
            "cases": case_report(outputs[impl], eager, reference, cases),
        }
        attention_checks(check, impl, report[impl])
    if flash:
        report["flash_attention_2"] = {"skipped": flash}
    # The check means something only if causal and bidirectional outputs differ by far more than it allows.
    mask = cases["right_padding"]["mask"]
    gap = compare(outputs["eager"]["causal"]["right_padding"][0], eager["right_padding"][0], mask)["rel_err"]
    check.check("bidirectional", "causal and bidirectional outputs differ beyond the tolerance",
                gap > 4 * BF16_TOLERANCE["rel_err"], {"rel_err": gap})  # fmt: skip
    return {
        "dtype": "bfloat16", "change_threshold": CHANGE_THRESHOLD, "implementations": report,
        "tolerance": BF16_TOLERANCE, "causal_vs_bidirectional_rel_err": gap,
    }  # fmt: skip


def stage_config(check: Check, stage: str, impl: str):
    from llm2rec.train import contrastive, csft, mntp

    extra = {
        "csft": dict(eval_samples=16, generation_samples=0),  # the end-of-run eval stays a few batches
        "mntp": dict(max_eval_titles=16),
        "contrastive": {},
    }[stage]
    module = {"csft": csft, "mntp": mntp, "contrastive": contrastive}[stage]
    steps = check.args.steps or check.sizes["steps"][stage]
    overrides = dict(
        max_steps=steps, eval_every=None, save_every=None, eval_at_start=False, keep="last", log_every=1,
        progress=False, mixed_precision=check.precision, attn_implementation=impl,
        **check.sizes["stage_shapes"].get(stage, {}), **extra,
    )  # fmt: skip
    return module.build_config("paper", **overrides), module.build_config("paper").max_steps


def part_stage(check: Check, stage: str, impl: str) -> dict:
    from llm2rec.llm.bidirectional import is_bidirectional
    from llm2rec.train.contrastive import run_contrastive
    from llm2rec.train.csft import run_csft
    from llm2rec.train.mntp import run_mntp

    if impl == "flash_attention_2" and (why := flash_unavailable(check.device)):
        raise Skip(why)
    config, paper_steps = stage_config(check, stage, impl)
    upstream = {"csft": None, "mntp": f"csft@{impl}", "contrastive": f"mntp@{impl}"}[stage]
    start = check.outputs.get(upstream, check.backbone)
    out = check.work / f"{stage}-{impl}"
    with step_clock(check) as times:
        if stage == "csft":
            run_csft(check.dataset, start, out, preset="paper", config=config, resume=False)
        else:
            runner = run_mntp if stage == "mntp" else run_contrastive
            runner(start, check.dataset, out, preset="paper", config=config, resume=False)
    check.outputs[f"{stage}@{impl}"] = out
    if upstream in check.outputs and not check.args.keep_work:  # 2 GB each: only the last one is read on
        shutil.rmtree(check.outputs[upstream], ignore_errors=True)
    record = json.loads((out / f"{stage}.json").read_text())
    train = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [e for e in train if e["split"] == "train"]
    tok_s, mfu = [e["tokens_per_s"] for e in train], [e["mfu"] for e in train]
    step_s = [b - a for a, b in zip(times, times[1:])]  # steps 2..N: step 1 has no start mark
    losses = [e["loss"] for e in train]
    name = f"{stage}@{impl}"
    check.check(name, "ran every step", record["last_step"] == config.max_steps, record["last_step"])
    check.check(name, "finite losses", all(map(math.isfinite, losses)), losses)
    if stage != "csft":
        check.check(
            name, "published model is bidirectional", is_bidirectional_dir(out, is_bidirectional), None
        )
    median_step = statistics.median(step_s) if step_s else None
    return {
        "attn_implementation": impl, "started_from": upstream if upstream in check.outputs else "backbone",
        "steps": config.max_steps, "batch_size": config.batch_size, "micro_batch": config.micro_batch,
        "max_length": config.max_length, "mixed_precision": record["precision"],
        "train_examples": record.get("train_pairs") or record.get("train_titles") or record.get("titles"),
        "tokens_per_s": statistics.median(warm(tok_s)), "tokens_per_s_per_step": tok_s,
        "mfu": statistics.median(warm(mfu)) if mfu and None not in mfu else None, "step_s": median_step,
        "step_s_per_step": step_s, "paper_steps": paper_steps,
        "projected_paper_stage_s": None if check.tiny or median_step is None else median_step * paper_steps,
        "loss_first": losses[0], "loss_last": losses[-1], "stage_wall_s": record["wall_s"],
    }  # fmt: skip


def is_bidirectional_dir(path: Path, is_bidirectional) -> bool:
    from transformers import AutoConfig

    return is_bidirectional(AutoConfig.from_pretrained(path))


def synthetic_titles(count: int) -> list[str]:
    from llm2rec.data.synthetic import generate

    return generate(num_users=10, num_items=max(count, 100)).items["title"].tolist()[:count]


def part_extract(check: Check, impl: str) -> dict:
    import numpy as np
    import torch

    from llm2rec.embed.encoder import Encoder

    if impl == "flash_attention_2" and (why := flash_unavailable(check.device)):
        raise Skip(why)
    titles = synthetic_titles(check.sizes["extract_titles"])
    trained = check.outputs.get(f"contrastive@{impl}")
    source = trained or check.backbone  # the raw backbone, bidirectional + mean, if the stage did not run
    tick = time.perf_counter()
    options = {} if trained else {"bidirectional": True, "pooling": "mean"}
    encoder = Encoder.from_pretrained(
        source, attn_implementation=impl, device=str(check.device), dtype=torch.bfloat16, **options
    )
    load_s, batch = time.perf_counter() - tick, check.sizes["extract_batch"]
    encoder.encode(titles[: 2 * batch], batch_size=batch)  # warm-up, not timed
    sync(check)
    tick = time.perf_counter()
    vectors = encoder.encode(titles, batch_size=batch)
    sync(check)
    encode_s = time.perf_counter() - tick
    name = f"extract@{impl}"
    check.check(name, "one finite vector per title", vectors.shape == (len(titles), encoder.dim)
                and bool(np.isfinite(vectors).all()), list(vectors.shape))  # fmt: skip
    check.check(name, "vectors differ between titles", float(vectors.std(axis=0).max()) > 0, None)
    rate = len(titles) / encode_s
    return {
        "attn_implementation": impl, "encoder": f"contrastive@{impl}" if trained else "backbone",
        "titles": len(titles), "batch_size": batch, "dtype": str(next(encoder.model.parameters()).dtype),
        "dim": encoder.dim, "tokens_per_title_mean": tokens_per_title(encoder.tokenizer, titles),
        "load_s": load_s, "encode_s": encode_s, "titles_per_s": rate, "projected_50k_s": 50_000 / rate,
    }  # fmt: skip


def part_seqrec(check: Check) -> dict:
    from llm2rec.config import dataset_spec
    from llm2rec.data.prepare import prepare_from_spec
    from llm2rec.seqrec.run import run_seqrec

    sizes, tick = check.sizes, time.perf_counter()
    spec = dataset_spec(  # kcore 0: the catalogue keeps (almost) all of its items
        format="builtin", num_items=sizes["seqrec_items"], num_users=sizes["seqrec_users"], kcore=0
    )
    dataset = prepare_from_spec(spec, check.work / "seqrec-dataset")
    prepare_s, epochs = time.perf_counter() - tick, sizes["seqrec_epochs"]
    out = check.work / "seqrec"
    run_seqrec(dataset.root, model="sasrec", seeds=[2024], out_dir=out, epochs=epochs, eval_every=epochs,
               patience=epochs, progress=False, plots=False, device=str(check.device))  # fmt: skip
    seed = json.loads((out / "seed-2024" / "metrics.json").read_text())
    curve = seed["curve"]
    check.check("seqrec", "trained every epoch", len(curve) == epochs, len(curve))
    check.check(
        "seqrec", "finite losses", all(math.isfinite(p["loss"]) for p in curve), [p["loss"] for p in curve]
    )
    return {
        "model": "sasrec", "item_repr": "id", "num_items_requested": sizes["seqrec_items"],
        "num_items": dataset.num_items, "num_users": dataset.num_users, "prepare_s": prepare_s,
        "epochs": epochs,
        "epoch_seconds": [p["seconds"] for p in curve], "epoch_s": curve[-1]["seconds"],
        "train_seconds": seed["train_seconds"], "test_eval_seconds": seed["test_eval_seconds"],
        "valid_recall@20": seed["valid"]["recall@20"], "test_recall@20": seed["test"]["recall@20"],
    }  # fmt: skip


# ------------------------------------------------------------------------------------------------- runner
def plan(check: Check) -> list[tuple[str, str, object]]:
    """(part name, kind, function) in running order: what matters most first, in case the budget ends."""
    impls = ("sdpa", "flash_attention_2")
    parts = [("setup", "setup", part_setup), ("bidirectional", "bidirectional", part_bidirectional)]
    for impl in impls:
        for stage in STAGES:
            parts.append((f"{stage}@{impl}", "stage", lambda c, s=stage, i=impl: part_stage(c, s, i)))
    parts += [(f"extract@{impl}", "extract", lambda c, i=impl: part_extract(c, i)) for impl in impls]
    parts.append(("seqrec", "seqrec", part_seqrec))
    return parts


def selected(name: str, wanted: list[str] | None) -> bool:
    return not wanted or name == "setup" or any(name == w or name.split("@")[0] == w for w in wanted)


def run_part(check: Check, name: str, kind: str, fn) -> None:
    import torch

    entry = {key: None for key in (*COMMON_FIELDS, *FIELDS[kind])}
    entry.update(checks=[], null_reasons={})
    check.parts[name] = entry
    cost = 0.0 if check.tiny else MIN_SECONDS[name.split("@")[0]]
    reason = None
    if not selected(name, check.args.parts):
        reason = "not selected (--parts)"
    elif check.left() <= cost:
        reason = (f"time budget: {max(check.left(), 0):.0f} s left of {check.args.budget:.0f} s, this part "
                  f"usually needs {cost:.0f} s")  # fmt: skip
    elif name != "setup" and check.parts["setup"]["status"] != "ok":
        reason = "setup did not complete"
    if reason:
        entry.update(status="skipped", reason=reason)
        return
    print(f"[gpu_check] {name} ...", file=sys.stderr, flush=True)
    if check.cuda:
        torch.cuda.reset_peak_memory_stats(check.device)
    tick = time.perf_counter()
    try:
        with watchdog(check.left()):
            if check.injected(name) and name != "bidirectional":
                raise RuntimeError(f"failure injected into {name} (--inject-failure)")
            entry.update(fn(check))
        failed = [c for c in entry["checks"] if not c["ok"]]
        entry["status"] = "failed" if failed else "ok"
        if failed:
            entry["reason"] = "failed: " + "; ".join(c["check"] for c in failed)
    except BudgetSpent:
        entry.update(status="skipped", reason=f"cut at the time budget ({check.args.budget:.0f} s) after "
                     f"{time.perf_counter() - tick:.0f} s")  # fmt: skip
    except Skip as why:
        entry.update(status="skipped", reason=str(why))
    except Exception as exc:  # a part that raises is a failed check, recorded with its traceback's end
        entry.update(status="error", reason=f"{type(exc).__name__}: {exc}")
        entry["traceback"] = traceback.format_exc().splitlines()[-12:]
        check.checks.append(
            {"part": name, "check": "ran without error", "ok": False, "detail": entry["reason"]}
        )
    entry["wall_s"] = time.perf_counter() - tick
    if check.cuda:
        entry["peak_gpu_memory_gb"] = torch.cuda.max_memory_allocated(check.device) / 2**30
    free_memory(check)
    explain_nulls(check, name, entry)


def explain_nulls(check: Check, name: str, entry: dict) -> None:
    """Every null field of a part that ran gets a reason (a skipped part's reason covers all of its)."""
    if entry["status"] == "skipped":
        return
    reasons = entry["null_reasons"]
    for key, value in entry.items():
        if value is not None or key in ("reason", "null_reasons", "traceback"):
            continue
        if entry["status"] == "error":
            reasons[key] = "the part raised before it measured this"
        elif key == "peak_gpu_memory_gb":
            reasons[key] = f"no CUDA device (device is {check.device.type})"
        elif key == "mfu":
            reasons[key] = (
                "no peak FLOPs known for this device (a CPU, or a GPU not in llm2rec.train.throughput)"
            )
        elif key == "projected_paper_stage_s":
            reasons[key] = "tiny shapes (--tiny): a projection to the paper's steps would mean nothing"
        else:
            reasons[key] = "not measured"


def machine(check: Check) -> dict:
    import torch

    from llm2rec.train.config import LoopConfig
    from llm2rec.train.throughput import peak_flops
    from llm2rec.versions import library_versions

    peak = peak_flops(check.device, LoopConfig(max_steps=1, batch_size=1, micro_batch=1, lr=0.0))
    flash = flash_unavailable(check.device)
    flash_version = None
    if importlib.util.find_spec("flash_attn") is not None:
        from importlib import metadata

        with contextlib.suppress(metadata.PackageNotFoundError):
            flash_version = metadata.version("flash-attn")
    gpu = {"gpu": None, "gpu_memory_gb": None, "bf16_supported": None}
    if check.cuda:
        gpu = {
            "gpu": torch.cuda.get_device_name(check.device),
            "gpu_memory_gb": torch.cuda.get_device_properties(check.device).total_memory / 2**30,
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
    return {
        "device": str(check.device), **gpu, "cuda": torch.version.cuda,
        "peak_bf16_tflops_for_mfu": peak / 1e12 if peak else None, "flash_attn": flash_version,
        "flash_attention_2": "available" if flash is None else flash,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "versions": library_versions(),
    }  # fmt: skip


def clean(value):
    """JSON-safe: non-finite floats become None (their check has failed already)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def report(check: Check) -> dict:
    failed = [c for c in check.checks if not c["ok"]]
    skipped = [{"part": n, "reason": p["reason"]} for n, p in check.parts.items() if p["status"] == "skipped"]
    return clean({
        "check": "gpu_check", "issue": 37, "mode": "tiny" if check.tiny else "paper",
        "ok": not failed, "exit_code": 1 if failed else 0, "wall_s": time.perf_counter() - check.started,
        "budget_s": check.args.budget, "machine": machine(check),
        "backbone": {"architecture": "Qwen2-0.5B (config below), random weights" if not check.tiny
                     else "Qwen2, tiny (config below), random weights",
                     "config": TINY_BACKBONE if check.tiny else QWEN2_0_5B,
                     "tokenizer": "llm2rec.llm.tiny.make_tiny_tokenizer (byte-level BPE, 512 tokens); the "
                                  "model keeps its vocabulary size and never sees ids above 511"},
        "notes": NOTES, "parts": check.parts, "checks": check.checks, "failed": failed, "skipped": skipped,
    })  # fmt: skip


def summary(result: dict, path: Path) -> str:
    lines = [f"gpu_check ({result['mode']}, {result['machine']['gpu'] or result['machine']['device']}): "
             f"{result['wall_s']:.0f} s of a {result['budget_s']:.0f} s budget"]  # fmt: skip
    for name, part in result["parts"].items():
        key = next((k for k in ("tokens_per_s", "titles_per_s", "epoch_s") if part.get(k) is not None), None)
        shown = f"  {key} {part[key]:.1f}" if key else ""
        if part.get("mfu") is not None:
            shown += f"  mfu {part['mfu']:.1%}"
        if part.get("peak_gpu_memory_gb") is not None:
            shown += f"  peak {part['peak_gpu_memory_gb']:.1f} GB"
        wall = f"{part['wall_s']:.1f} s" if part["wall_s"] is not None else "-"
        why = f"  ({part['reason']})" if part["reason"] else ""
        lines.append(f"  {name:<30} {part['status']:<8} {wall:>8}{shown}{why}")
    passed, failed = len(result["checks"]) - len(result["failed"]), len(result["failed"])
    lines.append(f"checks: {passed} passed, {failed} failed; {len(result['skipped'])} part(s) skipped")
    for failed in result["failed"]:
        lines.append(f"  FAILED {failed['part']}: {failed['check']}")
    lines.append(f"{'OK' if result['ok'] else 'FAILED'}; wrote {path}")
    return "\n".join(lines)


def parse_args(argv):
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default_out = os.environ.get("OUT") or str(REPO / "benchmarks" / "results")
    parser.add_argument(
        "--out", default=default_out, help="output folder (default: $OUT, else benchmarks/results)"
    )
    parser.add_argument("--device", default=None, help="cuda (default where there is one) or cpu")
    parser.add_argument("--tiny", action="store_true", help="a tiny model and tiny sizes: the dry run")
    parser.add_argument("--budget", type=float, default=480.0, help="total seconds (default 480)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps of every LLM stage")
    parser.add_argument(
        "--parts",
        type=lambda s: s.split(","),
        default=None,
        help="only these parts (comma-separated: bidirectional, csft, mntp, contrastive, extract, seqrec)",
    )
    parser.add_argument("--inject-failure", type=lambda s: s.split(","), default=None, metavar="PART",
                        help="make PART fail (bidirectional: its sdpa model is left causal; another part "
                             "raises), to see the failure path")  # fmt: skip
    parser.add_argument("--work", default=None, help="where the temporary work folder goes")
    parser.add_argument("--keep-work", action="store_true", help="keep the work folder (models, datasets)")
    args = parser.parse_args(argv)
    if args.device == "cpu":  # before anything asks CUDA: the stages' Accelerate would take a GPU it sees
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here: use --device cpu --tiny for the dry run")
    return args


def main(argv=None) -> int:
    import logging

    from transformers.utils import logging as hf_logging

    started = time.perf_counter()  # the budget counts torch's import too
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Two epochs stop "before convergence" on purpose: the trainer's warning about it is noise here.
    logging.getLogger("llm2rec.seqrec.trainer").setLevel(logging.ERROR)
    hf_logging.disable_progress_bar()
    check = Check(args, started)
    try:
        for name, kind, fn in plan(check):
            run_part(check, name, kind, fn)
    finally:
        if not args.keep_work:
            shutil.rmtree(check.work, ignore_errors=True)
    result = report(check)
    path = Path(args.out) / ("gpu_check_tiny.json" if args.tiny else "gpu_check.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(summary(result, path))
    return result["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
