"""The training loop's multi-process rules that one process can check: gradient accumulation as the
textbook does it, equal eval batch counts on every process (padding that counts for nothing), and the
launches it refuses (an FSDP config Accelerate would run unsharded, LoRA under FSDP, DeepSpeed).

The multi-process runs themselves: tests/train/test_fsdp.py (FSDP2), test_loop.py and
test_accelerate_launch.py (DDP)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from test_loop import TEXTS, CountingLoss, make_collate, max_diff, weights

from llm2rec.errors import ConfigError
from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
from llm2rec.train.batching import StepSampler
from llm2rec.train.config import LoopConfig
from llm2rec.train.evaluation import eval_loader, eval_plan, mean_loss_eval
from llm2rec.train.loop import train_loop
from llm2rec.train.setup import configure_parallelism


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def lm_data(tokenizer):
    return [{"input_ids": tokenizer(t).input_ids} for t in TEXTS]


# ------------------------------------------------------------------------------------- gradient accumulation
def test_one_process_accumulates_as_plain_torch(tmp_path, tokenizer, lm_data):
    """The loop's steps through Accelerate's ``accumulate`` are the textbook's: the mean of the micro-batch
    losses / accumulation steps, clipped, AdamW, the linear schedule; bit for bit on one process."""
    from transformers import get_linear_schedule_with_warmup

    from llm2rec.train.setup import param_groups

    cfg = LoopConfig(max_steps=4, batch_size=8, micro_batch=2, lr=1e-2, warmup_steps=1, weight_decay=0.1,
                     log_every=1, progress=False)  # fmt: skip
    collate, loss_fn = make_collate(tokenizer), CountingLoss()
    result = train_loop(make_tiny_model("llama", tokenizer), lm_data, collate, loss_fn, cfg, tmp_path / "run")

    torch.manual_seed(cfg.seed)
    model = make_tiny_model("llama", tokenizer)
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=cfg.adam_betas,
                                  eps=cfg.adam_eps)  # fmt: skip
    schedule = get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.max_steps)
    batches = iter(StepSampler(len(lm_data), cfg, None, 0, 0, 1))
    losses = []
    for _ in range(cfg.max_steps):
        total = 0.0
        for _ in range(cfg.batch_size // cfg.micro_batch):
            loss, _ = loss_fn(model, collate([lm_data[i] for i in next(batches)]), None)
            (loss / 4).backward()
            total += loss.item() / 4
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(total)

    assert [e["loss"] for e in result.history if e["split"] == "train"] == losses
    reference = {k: v.detach() for k, v in model.state_dict().items() if k in weights(result.last_dir)}
    assert max_diff(weights(result.last_dir), reference) == 0.0


# ---------------------------------------------------------------------------------------------- evaluation
@pytest.mark.parametrize("examples, micro, world", [(6, 2, 2), (7, 2, 2), (5, 2, 3), (8, 2, 2), (3, 4, 2)])
def test_every_process_gets_as_many_eval_batches_and_the_real_ones_once(examples, micro, world):
    plans = [eval_plan(examples, micro, rank, world) for rank in range(world)]
    assert len({len(plan) for plan in plans}) == 1
    real = sorted(i for plan in plans for indices, padding in plan if not padding for i in indices)
    assert real == list(range(examples))
    for plan in plans:  # padding only after the real batches, at most one
        flags = [padding for _, padding in plan]
        assert flags == sorted(flags) and sum(flags) <= 1


def test_one_process_never_pads():
    assert eval_plan(7, 2, 0, 1) == [([0, 1], False), ([2, 3], False), ([4, 5], False), ([6], False)]


def test_a_padding_batch_scores_nothing(tokenizer, lm_data):
    """Process 1 of 2 on 3 micro-batches: one real batch (the second) and one padding batch."""

    def collate(items):
        batch = make_collate(tokenizer)(items)
        return {**batch, "labels": batch["input_ids"].clone()}

    acc = SimpleNamespace(process_index=1, num_processes=2, device=torch.device("cpu"),
                          reduce=lambda tensor, reduction: tensor)  # fmt: skip
    loader = eval_loader(lm_data[:6], collate, 2, acc)
    batches = list(loader.weighted())
    assert [rows for _, rows in batches] == [2, 0] and len(loader) == 2
    assert (batches[1][0]["labels"] == -100).all()  # a labels-weighted eval_fn (MNTP's) skips it as it is

    seen = []

    def loss_fn(model, batch, accelerator):  # nan where nothing is scored, as a mean over no label is
        scored = batch["labels"] != -100
        seen.append(int(scored.sum()))
        return (batch["input_ids"] * scored).sum() / scored.sum(), {}

    real = batches[0][0]
    expected = float((real["input_ids"]).sum() / real["labels"].numel())
    assert mean_loss_eval(loss_fn)(None, loader, acc) == {"loss": pytest.approx(expected)}
    assert len(seen) == 2 and seen[1] == 0  # the padding batch ran (a sharded model's forward must)


# ------------------------------------------------------------------------------------------ refused launches
def test_an_fsdp_config_accelerate_would_run_unsharded_is_refused(tmp_path, monkeypatch, tokenizer, lm_data):
    """What ``accelerate launch --config_file accelerate-fsdp2.yaml`` is on a machine without GPUs:
    Accelerate keeps the processes MULTI_CPU (DDP, measured); llm2rec says so in one line."""
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ConfigError, match="asks for FSDP, but Accelerate .* shards only on GPUs") as refused:
        train_loop(make_tiny_model("llama", tokenizer), lm_data, make_collate(tokenizer), CountingLoss(),
                   LoopConfig(max_steps=1, batch_size=8, micro_batch=2, lr=1e-2, progress=False),
                   tmp_path / "run")  # fmt: skip
    assert "\n" not in str(refused.value)


def _accelerator(kind: str):
    return SimpleNamespace(distributed_type=kind, state=SimpleNamespace(distributed_type=kind))


def test_lora_under_fsdp_is_refused(tokenizer):
    from peft import LoraConfig, get_peft_model

    lora = get_peft_model(make_tiny_model("llama", tokenizer), LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(ConfigError, match="LoRA under FSDP"):
        configure_parallelism(_accelerator("FSDP"), lora, 1)
    accelerator = _accelerator("MULTI_CPU")
    assert configure_parallelism(accelerator, lora, 2) is False  # DDP: fine
    assert accelerator.gradient_accumulation_steps == 2


@pytest.mark.parametrize(
    "state",
    [{"distributed_type": "DEEPSPEED"}, {"distributed_type": "MULTI_GPU", "deepspeed_plugin": object()}],
)
def test_a_deepspeed_state_is_refused_at_loop_start(tmp_path, monkeypatch, tokenizer, lm_data, state):
    """A faked Accelerate state (deepspeed is not installed here): the loop refuses before it trains."""
    import llm2rec.train.loop as loop

    real = loop.make_accelerator

    class DeepSpeedLooking:
        def __init__(self, accelerator):
            self.accelerator, self.state = accelerator, SimpleNamespace(**state)
            self.distributed_type = state["distributed_type"]

        def __getattr__(self, name):
            return getattr(self.accelerator, name)

    monkeypatch.setattr(loop, "make_accelerator", lambda config, out: DeepSpeedLooking(real(config, out)))
    loss = CountingLoss()
    with pytest.raises(ConfigError, match="^DeepSpeed is not supported") as refused:
        train_loop(make_tiny_model("llama", tokenizer), lm_data, make_collate(tokenizer), loss,
                   LoopConfig(max_steps=1, batch_size=8, micro_batch=2, lr=1e-2, progress=False),
                   tmp_path / "run")  # fmt: skip
    assert "\n" not in str(refused.value) and loss.calls == 0


def test_a_deepspeed_launch_is_refused_before_accelerate_reads_it(tmp_path, monkeypatch, tokenizer, lm_data):
    """``accelerate launch --use_deepspeed`` sets ACCELERATE_USE_DEEPSPEED; Accelerate would import
    deepspeed on reading it, so the loop refuses first."""
    import llm2rec.train.setup as setup

    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setattr(setup, "check_tracker", lambda name: pytest.fail("an Accelerator was being built"))
    with pytest.raises(ConfigError, match="^DeepSpeed is not supported"):
        train_loop(make_tiny_model("llama", tokenizer), lm_data, make_collate(tokenizer), CountingLoss(),
                   LoopConfig(max_steps=1, batch_size=8, micro_batch=2, lr=1e-2, progress=False),
                   tmp_path / "run")  # fmt: skip
