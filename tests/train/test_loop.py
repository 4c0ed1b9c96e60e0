"""The shared training loop: data order, exact resume, DDP equivalence, best/last selection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llm2rec.errors import ConfigError
from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
from llm2rec.train.batching import LengthTagged, dataset_lengths, micro_batches_for, plan_epoch, token_counts
from llm2rec.train.config import LoopConfig
from llm2rec.train.loop import train_loop

TEXTS = [f"Safety Goggles {i}, Nitrile Gloves {'Large ' * (i % 5)}{i * 7 % 13}" for i in range(40)]


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def lm_data(tokenizer):
    return [{"input_ids": tokenizer(t).input_ids} for t in TEXTS]


def make_collate(tokenizer):
    def collate(items):
        return dict(tokenizer.pad({"input_ids": [x["input_ids"] for x in items]}, return_tensors="pt"))

    return collate


class CountingLoss:
    """Plain causal-LM loss that can simulate a crash (KeyboardInterrupt) on its n-th call."""

    def __init__(self, fail_at: int | None = None):
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, model, batch, accelerator):
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        return model(**batch, labels=labels).loss, {"calls": float(self.calls)}


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(Path(model_dir) / "model.safetensors")


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


def config(**overrides) -> LoopConfig:
    settings = dict(max_steps=6, batch_size=8, micro_batch=4, lr=1e-2, log_every=1, progress=False)
    settings.update(overrides)
    return LoopConfig(**settings)


# ------------------------------------------------------------------------------------------------- data order
def test_plan_epoch_is_a_deterministic_partition():
    cfg = config(batch_size=8)
    batches = plan_epoch(43, cfg, epoch=0)
    assert len(batches) == 5 and all(len(b) == 8 for b in batches)
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == 40 and set(flat) <= set(range(43))
    assert plan_epoch(43, cfg, epoch=0) == batches
    assert plan_epoch(43, cfg, epoch=1) != batches


def test_length_grouping_reduces_padding():
    lengths = [(i * 37) % 50 + 1 for i in range(400)]
    cfg = config(batch_size=16, micro_batch=4)

    def padding(batches):
        padded = sum(
            max(lengths[i] for i in mb) * len(mb) for b in batches for mb in micro_batches_for(b, 4, 0, 1)
        )
        return 1 - sum(lengths[i] for b in batches for i in b) / padded

    plain = padding(plan_epoch(400, cfg, 0))
    grouped_batches = plan_epoch(400, config(batch_size=16, micro_batch=4, length_grouped=True), 0, lengths)
    assert sorted(i for b in grouped_batches for i in b) == list(range(400))
    assert padding(grouped_batches) < plain / 3


def test_length_tagged_examples_carry_truncated_token_counts():
    tokenizer = make_tiny_tokenizer()
    titles = ["a b c d e f g h", "a b", "a b"]
    counts = token_counts(tokenizer, titles, max_length=4)
    assert set(counts) == {"a b c d e f g h", "a b"} and counts["a b c d e f g h"] == 4
    assert counts["a b"] < 4
    tagged = LengthTagged(titles, [counts[t] for t in titles])
    assert list(tagged) == titles and dataset_lengths(tagged) == [4, counts["a b"], counts["a b"]]
    with pytest.raises(ValueError, match="2 lengths for 3 examples"):
        LengthTagged(titles, [1, 2])


def test_micro_batches_are_dealt_round_robin():
    batch = list(range(8))
    assert micro_batches_for(batch, 2, 0, 1) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert micro_batches_for(batch, 2, 0, 2) == [[0, 1], [4, 5]]
    assert micro_batches_for(batch, 2, 1, 2) == [[2, 3], [6, 7]]


def test_config_rejects_bad_batch_sizes():
    with pytest.raises(ConfigError):
        config(batch_size=8, micro_batch=3).accumulation_steps(1)
    with pytest.raises(ConfigError):
        config(batch_size=2, micro_batch=4)
    with pytest.raises(ConfigError):
        config(keep="first")


# ------------------------------------------------------------------------------------------------- training
def test_training_lowers_loss_and_keeps_best(tmp_path, tokenizer, lm_data):
    model = make_tiny_model("qwen2", tokenizer)
    cfg = config(max_steps=8, eval_every=4, log_every=2)
    result = train_loop(
        model,
        lm_data,
        make_collate(tokenizer),
        CountingLoss(),
        cfg,
        tmp_path / "run",
        eval_dataset=lm_data[:8],
        tokenizer=tokenizer,
    )
    evals = [e for e in result.history if e["split"] == "eval"]
    assert [e["step"] for e in evals] == [0, 4, 8]
    assert evals[-1]["loss"] < evals[0]["loss"]
    assert result.best_step == min(evals, key=lambda e: e["loss"])["step"]
    assert result.chosen_dir == tmp_path / "run" / "best"
    train_logs = [e for e in result.history if e["split"] == "train"]
    assert all(e["tokens_per_s"] > 0 for e in train_logs)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == result.history
    # A re-run of a finished run returns at once, without training (the loss would be called).
    loss = CountingLoss()
    again = train_loop(model, lm_data, make_collate(tokenizer), loss, cfg, tmp_path / "run")
    assert loss.calls == 0 and again.best_step == result.best_step


def test_keep_last_hands_on_the_last_model(tmp_path, tokenizer, lm_data):
    cfg = config(max_steps=2, keep="last", eval_every=1)
    result = train_loop(
        make_tiny_model("llama", tokenizer),
        lm_data,
        make_collate(tokenizer),
        CountingLoss(),
        cfg,
        tmp_path / "run",
        eval_dataset=lm_data[:4],
        tokenizer=tokenizer,
    )
    assert result.chosen_dir == tmp_path / "run" / "last"
    assert not (tmp_path / "run" / "best").exists()


def _train_lrs(tmp_path, tokenizer, lm_data, **settings) -> list[float]:
    cfg = config(log_every=1, **settings)
    result = train_loop(
        make_tiny_model("llama", tokenizer), lm_data, make_collate(tokenizer), CountingLoss(), cfg,
        tmp_path / "run", tokenizer=tokenizer,
    )  # fmt: skip
    return [e["lr"] for e in result.history if e["split"] == "train"]


@pytest.mark.parametrize(
    "horizon, last_lr",
    [
        ({}, 0.0),  # decays to 0 at max_steps (the last logged lr is after the last step)
        ({"schedule_steps": 8}, 1e-2 * 4 / 8),  # a run cut at step 4 of 8 ends at half the peak
        ({"schedule_epochs": 2.0}, 1e-2 * 4 / 10),  # 40 examples / batch 8: 5 steps an epoch, 10 planned
    ],
)
def test_schedule_horizon_keeps_a_cut_short_run_above_zero(tmp_path, tokenizer, lm_data, horizon, last_lr):
    max_steps = 6 if "schedule_epochs" in horizon else 4
    lrs = _train_lrs(tmp_path, tokenizer, lm_data, max_steps=max_steps, **horizon)
    assert len(lrs) == max_steps
    assert lrs[-1] == pytest.approx(last_lr)
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))  # no warm-up here: only decay


def test_schedule_horizon_is_checked():
    with pytest.raises(ConfigError, match="not both"):
        config(schedule_steps=10, schedule_epochs=1.0)
    with pytest.raises(ConfigError, match=">= max_steps"):
        config(max_steps=6, schedule_steps=5)
    assert config(max_steps=6, schedule_epochs=0.1).schedule_horizon(40) == 6  # never before max_steps


def test_max_epochs_sets_the_steps_from_the_training_set(tmp_path, tokenizer, lm_data):
    """40 examples, batch 8: 1.5 passes are ceil(7.5) = 8 steps, whatever max_steps says; the schedule
    planned over 2 passes (10 steps) ends that run at 2/10 of the peak."""
    lrs = _train_lrs(tmp_path, tokenizer, lm_data, max_steps=3, max_epochs=1.5, schedule_epochs=2.0)
    assert len(lrs) == 8
    assert lrs[-1] == pytest.approx(1e-2 * 2 / 10)


def test_max_epochs_is_checked_and_resolved():
    with pytest.raises(ConfigError, match="max_epochs must be > 0"):
        config(max_epochs=0)
    resolved = config(max_steps=100, max_epochs=0.1).for_examples(40)
    assert (resolved.max_steps, resolved.max_epochs) == (1, None)  # at least one step
    assert config(max_steps=7).for_examples(40).max_steps == 7  # no max_epochs: max_steps as given


def test_a_later_setting_at_its_default_leaves_the_identity_unchanged():
    """Adding max_epochs must not re-run every finished stage of an existing run directory."""
    from llm2rec.train.config import identity

    assert "max_epochs" not in identity(config())
    assert identity(config(max_epochs=2.0))["max_epochs"] == 2.0


def test_eval_fn_selection_decides_the_best_checkpoint(tmp_path, tokenizer, lm_data):
    """A 'selection' (lower is better) overrides the loss as the criterion: here it prefers step 2."""

    def eval_fn(model, loader, accelerator=None):
        eval_fn.calls += 1
        return {"loss": 1.0, "selection": 0.0 if eval_fn.calls == 3 else 1.0}  # calls: step 0, 1, 2, 3

    eval_fn.calls = 0
    result = train_loop(
        make_tiny_model("llama", tokenizer), lm_data, make_collate(tokenizer), CountingLoss(),
        config(max_steps=3, eval_every=1), tmp_path / "run", eval_dataset=lm_data[:4], eval_fn=eval_fn,
        tokenizer=tokenizer,
    )  # fmt: skip
    assert result.best_step == 2 and result.chosen_dir == tmp_path / "run" / "best"


def test_resume_continues_as_if_never_stopped(tmp_path, tokenizer, lm_data):
    # Dropout on, so the restored RNG state matters as much as weights, optimizer and data position.
    def fresh_model(seed=0):
        return make_tiny_model("llama", tokenizer, attention_dropout=0.3, seed=seed)

    cfg = config(max_steps=6, save_every=3, eval_every=2, length_grouped=True)
    collate = make_collate(tokenizer)
    kwargs = dict(eval_dataset=lm_data[:6], tokenizer=tokenizer)
    straight = train_loop(fresh_model(), lm_data, collate, CountingLoss(), cfg, tmp_path / "a", **kwargs)

    # Calls: eval@0 = 2, steps 1-2 = 4, eval@2 = 2, step 3 = 2 (checkpoint), so call 12 is inside step 4.
    with pytest.raises(KeyboardInterrupt):
        train_loop(fresh_model(), lm_data, collate, CountingLoss(fail_at=12), cfg, tmp_path / "b", **kwargs)
    assert [p.name for p in (tmp_path / "b" / "checkpoints").iterdir()] == ["step-000003"]
    # Different initial weights: everything must come from the checkpoint.
    resumed = train_loop(fresh_model(seed=7), lm_data, collate, CountingLoss(), cfg, tmp_path / "b", **kwargs)

    assert max_diff(weights(straight.last_dir), weights(resumed.last_dir)) < 1e-6
    drop_calls = [
        {k: v for k, v in e.items() if k not in ("calls", "tokens_per_s", "mfu")} for e in straight.history
    ]
    assert drop_calls == [
        {k: v for k, v in e.items() if k not in ("calls", "tokens_per_s", "mfu")} for e in resumed.history
    ]


def test_resume_refuses_a_changed_data_order(tmp_path, tokenizer, lm_data):
    collate = make_collate(tokenizer)
    with pytest.raises(KeyboardInterrupt):
        train_loop(
            make_tiny_model("llama", tokenizer),
            lm_data,
            collate,
            CountingLoss(fail_at=5),
            config(save_every=1),
            tmp_path / "run",
        )
    with pytest.raises(ConfigError, match="seed"):
        train_loop(
            make_tiny_model("llama", tokenizer),
            lm_data,
            collate,
            CountingLoss(),
            config(save_every=1, seed=1),
            tmp_path / "run",
        )


_DDP_WORKER = """
import sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests_dir!r})
from test_loop import TEXTS, CountingLoss, make_collate
from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
from llm2rec.train.config import LoopConfig
from llm2rec.train.loop import train_loop
tok = make_tiny_tokenizer()
data = [{{"input_ids": tok(t).input_ids}} for t in TEXTS]
cfg = LoopConfig(max_steps=3, batch_size=8, micro_batch=2, lr=1e-2, progress=False, length_grouped=True)
train_loop(make_tiny_model("qwen2", tok, attention_dropout=0.0), data, make_collate(tok), CountingLoss(), cfg,
           sys.argv[1], eval_dataset=data[:6], tokenizer=tok)
"""


@pytest.mark.slow
def test_two_process_ddp_equals_one_process(tmp_path, tokenizer, lm_data):
    cfg = config(max_steps=3, batch_size=8, micro_batch=2, length_grouped=True)
    single = train_loop(
        make_tiny_model("qwen2", tokenizer),
        lm_data,
        make_collate(tokenizer),
        CountingLoss(),
        cfg,
        tmp_path / "one",
        eval_dataset=lm_data[:6],
        tokenizer=tokenizer,
    )

    worker = tmp_path / "worker.py"
    worker.write_text(textwrap.dedent(_DDP_WORKER.format(tests_dir=str(Path(__file__).parent))))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(worker),
        str(tmp_path / "two"),
    ]
    # Own process group, so a hang kills the workers too, not only the launcher.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, stderr[-3000:]

    assert max_diff(weights(single.last_dir), weights(tmp_path / "two" / "last")) < 1e-5
    two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    ours = [e for e in single.history if e["split"] == "eval"]
    theirs = [e for e in two if e["split"] == "eval"]
    assert [e["loss"] for e in theirs] == pytest.approx([e["loss"] for e in ours], rel=1e-5)


def test_tensorboard_logs_the_same_losses_as_metrics_jsonl(tmp_path, tokenizer, lm_data):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = config(max_steps=3, eval_every=3, report_to="tensorboard")
    out = tmp_path / "tb"
    result = train_loop(
        make_tiny_model("llama", tokenizer), lm_data, make_collate(tokenizer), CountingLoss(), cfg, out,
        eval_dataset=lm_data[:8], tokenizer=tokenizer,
    )  # fmt: skip
    events = list(out.rglob("events.out.tfevents*"))
    assert len(events) == 1
    board = EventAccumulator(str(events[0].parent))
    board.Reload()
    logged = {e.step: e.value for e in board.Scalars("train/loss")}
    expected = {e["step"]: e["loss"] for e in result.history if e["split"] == "train"}
    assert logged.keys() == expected.keys()
    assert list(logged.values()) == pytest.approx(list(expected.values()), rel=1e-5)
    assert [e.step for e in board.Scalars("eval/loss")] == [0, 3]  # before training, then every 3


@pytest.mark.parametrize("name", ["tensorbored", "wandb"])
def test_unknown_or_missing_tracker_is_a_clear_error(tmp_path, tokenizer, lm_data, name):
    from accelerate.tracking import get_available_trackers

    if name in [str(t) for t in get_available_trackers()]:
        pytest.skip(f"{name} is installed here")
    with pytest.raises(ConfigError, match="report_to"):
        train_loop(make_tiny_model("llama", tokenizer), lm_data, make_collate(tokenizer), CountingLoss(),
                   config(report_to=name), tmp_path / "x")  # fmt: skip


def test_auto_precision_is_bf16_only_where_bf16_is_native(monkeypatch):
    import llm2rec.train.setup as setup

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(setup, "cpu_has_native_bf16", lambda: True)
    assert setup.resolve_precision("auto") == "bf16"
    monkeypatch.setattr(setup, "cpu_has_native_bf16", lambda: False)
    assert setup.resolve_precision("auto") == "no" and setup.resolve_precision("bf16") == "bf16"


def test_stages_in_one_process_may_use_different_precisions():
    """``llm2rec run`` trains CSFT, MNTP and contrastive in one process; Accelerate keeps one global state."""
    from accelerate import Accelerator

    from llm2rec.train.setup import allow_precision

    for precision in ("bf16", "no", "bf16"):
        allow_precision(precision)
        assert Accelerator(cpu=True, mixed_precision=precision).mixed_precision == precision
