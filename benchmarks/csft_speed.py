"""CSFT training speed: our loop against a plain ``transformers.Trainer`` on the same model, data and batch.

Both train the same CSFT pairs with the same micro-batch (no accumulation), lr and schedule. The Trainer
run is the official code's setup: random batches, left padding to the longest (multiple of 8) with
``DataCollatorForSeq2Seq``, the model's own loss over full-sequence logits. Ours: length-grouped batches
and target-only logits. Throughput is non-padding tokens per second, timed between forward passes
(step 1 is warm-up and not counted), so setup and saving are excluded for both. Runs alternate
(ours, Trainer, ours, Trainer...) so load on a shared machine hits both alike; the ratio uses medians.
Tokens per CPU-second are reported too: on a machine shared with other work they are the steadier measure.
Also reported: the padding fraction of an epoch of batches with and without length grouping.

    python benchmarks/csft_speed.py [--dataset DIR] [--model smollm2-135m] [--steps 8] [--rounds 2]

Without ``--dataset`` it prepares ../shared/data/unisrec_scientific_subset_2018 into a temp dir.
Writes benchmarks/results/csft_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
SCIENTIFIC = REPO.parent / "shared" / "data" / "unisrec_scientific_subset_2018"


class ForwardClock:
    """Times forward passes and counts their non-padding tokens (one forward = one step here)."""

    def __init__(self, model):
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.tokens: list[int] = []
        self.handle = model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        self.times.append(time.perf_counter())
        self.cpu_times.append(time.process_time())
        mask = kwargs.get("attention_mask")
        self.tokens.append(int(mask.sum()) if mask is not None else 0)

    def rates(self, end: tuple[float, float]) -> tuple[float, float]:
        """(tokens per wall second, tokens per CPU second) over steps 2..N, from the start of forward 2
        to the end of training. CPU seconds are robust to other programs sharing the machine."""
        tokens = sum(self.tokens[1:])
        return tokens / (end[0] - self.times[1]), tokens / (end[1] - self.cpu_times[1])

    def close(self) -> None:
        self.handle.remove()


def prepare_scientific(out: Path) -> Path:
    from llm2rec.data.protocol import ProtocolSettings, prepare
    from llm2rec.data.sources import load_raw

    raw = load_raw("recbole", [SCIENTIFIC])
    prepare(raw, out, ProtocolSettings(kcore=0))
    return out


def padding_fraction(lengths: list[int], micro_batch: int, grouped: bool, seed: int = 0) -> float:
    from llm2rec.train.batching import micro_batches_for, plan_epoch
    from llm2rec.train.config import LoopConfig

    cfg = LoopConfig(max_steps=1, batch_size=micro_batch, micro_batch=micro_batch, lr=0.0,
                     length_grouped=grouped, seed=seed)  # fmt: skip
    real = padded = 0
    for batch in plan_epoch(len(lengths), cfg, 0, lengths if grouped else None):
        for mb in micro_batches_for(batch, micro_batch, 0, 1):
            width = -(-max(lengths[i] for i in mb) // 8) * 8  # pad_to_multiple_of=8, as both collators do
            real += sum(lengths[i] for i in mb)
            padded += width * len(mb)
    return 1 - real / padded


def run_ours(model_name, train_set, tokenizer, args, seed) -> tuple[float, float]:
    from llm2rec.llm.backbone import load_causal_lm
    from llm2rec.train.config import LoopConfig
    from llm2rec.train.csft import csft_loss
    from llm2rec.train.csft_data import CSFTCollator
    from llm2rec.train.loop import train_loop

    model = load_causal_lm(model_name)
    clock = ForwardClock(model)
    cfg = LoopConfig(max_steps=args.steps, batch_size=args.micro_batch, micro_batch=args.micro_batch,
                     lr=3e-4, length_grouped=True, eval_at_start=False, log_every=args.steps, seed=seed,
                     progress=False)  # fmt: skip
    ended = {}

    def note_end(model, tokenizer, out_dir):  # called when training ends; nothing is saved
        ended["t"] = (time.perf_counter(), time.process_time())

    with tempfile.TemporaryDirectory() as tmp:
        train_loop(model, train_set, CSFTCollator(tokenizer.pad_token_id), csft_loss, cfg, Path(tmp) / "run",
                   tokenizer=tokenizer, resume=False, save_fn=note_end)  # fmt: skip
    clock.close()
    return clock.rates(ended["t"])


def run_trainer(model_name, train_set, tokenizer, args, seed) -> tuple[float, float]:
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

    from llm2rec.llm.backbone import load_causal_lm

    model = load_causal_lm(model_name)
    clock = ForwardClock(model)
    ended = {}

    class End(TrainerCallback):
        def on_train_end(self, *a, **k):
            ended["t"] = (time.perf_counter(), time.process_time())

    rows = [{"input_ids": e["input_ids"], "labels": e["labels"]} for e in train_set.examples]
    with tempfile.TemporaryDirectory() as tmp:
        training_args = TrainingArguments(
            output_dir=tmp, per_device_train_batch_size=args.micro_batch, max_steps=args.steps,
            learning_rate=3e-4, lr_scheduler_type="linear", save_strategy="no", report_to=[],
            logging_steps=args.steps, use_cpu=not torch.cuda.is_available(), seed=seed,
            dataloader_num_workers=0, disable_tqdm=True,
        )  # fmt: skip
        collator = DataCollatorForSeq2Seq(
            tokenizer, padding=True, pad_to_multiple_of=8, label_pad_token_id=-100
        )
        Trainer(model=model, args=training_args, train_dataset=rows, data_collator=collator,
                callbacks=[End()]).train()  # fmt: skip
    clock.close()
    return clock.rates(ended["t"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "csft_speed.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from llm2rec.data.dataset import Dataset
    from llm2rec.io import atomic_write_json
    from llm2rec.llm.backbone import load_tokenizer
    from llm2rec.train.csft import CSFTConfig
    from llm2rec.train.csft_data import CSFTDataset, training_pairs

    with tempfile.TemporaryDirectory() as tmp:
        dataset_dir = args.dataset or prepare_scientific(Path(tmp) / "scientific")
        dataset = Dataset.load(dataset_dir)
        tokenizer = load_tokenizer(args.model, padding_side="left")
        train_set = CSFTDataset(training_pairs(dataset), tokenizer, CSFTConfig(max_length=args.max_length))

    ours, trainer = [], []
    for round_ in range(args.rounds):
        ours.append(run_ours(args.model, train_set, tokenizer, args, seed=round_))
        trainer.append(run_trainer(args.model, train_set, tokenizer, args, seed=round_))
        print(f"round {round_}: ours {ours[-1][0]:.0f} tok/s ({ours[-1][1]:.0f} per CPU-s), "
              f"Trainer {trainer[-1][0]:.0f} tok/s ({trainer[-1][1]:.0f} per CPU-s)", flush=True)  # fmt: skip
    result = {
        "model": args.model,
        "dataset": args.dataset.name
        if args.dataset
        else "unisrec_scientific_subset_2018 (prepared, kcore 0)",
        "pairs": len(train_set),
        "steps_per_run": args.steps,
        "rounds": args.rounds,
        "micro_batch": args.micro_batch,
        "max_length": args.max_length,
        "ours_tokens_per_s": [r[0] for r in ours],
        "trainer_tokens_per_s": [r[0] for r in trainer],
        "speedup_median": statistics.median(r[0] for r in ours) / statistics.median(r[0] for r in trainer),
        "ours_tokens_per_cpu_s": [r[1] for r in ours],
        "trainer_tokens_per_cpu_s": [r[1] for r in trainer],
        "speedup_median_cpu_time": statistics.median(r[1] for r in ours)
        / statistics.median(r[1] for r in trainer),
        "load_average_1min": os.getloadavg()[0],
        "padding_fraction_random": padding_fraction(train_set.lengths, args.micro_batch, grouped=False),
        "padding_fraction_grouped": padding_fraction(train_set.lengths, args.micro_batch, grouped=True),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"),
        "torch": torch.__version__,
    }
    print(json.dumps(result, indent=2))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
