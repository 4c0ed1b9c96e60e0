"""One process of tests/train/test_fsdp.py, started by ``accelerate launch`` with the FSDP2 config of
docs/reproduce.md (two CPU processes over gloo). Not a test module: ``fsdp_worker.py OUT DATASET MODEL``.

Accelerate (1.16) turns its FSDP config into FSDP only for GPU-like distributed types: on CPU it keeps the
processes MULTI_CPU and wraps the model in DDP (measured: ``accelerate launch --use_fsdp`` here gives a
``DistributedDataParallel``; llm2rec refuses that launch rather than run it as DDP). torch's FSDP2 itself
shards on CPU over gloo, so :func:`lift_cpu_gate` makes that one decision as it is made on a GPU machine:
the state becomes FSDP with the plugin Accelerate built from the launch config. Everything else is
Accelerate's and llm2rec's own code: ``fully_shard`` per decoder layer, activation checkpointing, mixed
precision, ``get_state_dict``, ``save_state`` / ``load_state`` (sharded checkpoints).

Runs, one after the other in the same processes (as ``llm2rec run`` chains stages):

- ``stages/ddp``: the MNTP then the contrastive stage (its cpu preset: gradient checkpointing, the valid
  knn probe choosing the checkpoint, negatives gathered across processes) as DDP, the launch's FSDP
  setting hidden from Accelerate; the reference for ``stages/fsdp``, the same stages under FSDP2 at the end
  (one process would train other weights: MNTP masks and contrastive negatives depend on the processes);
- ``fp32``: stopped inside step 3 (after the step-2 checkpoint) on both processes, then resumed from other
  initial weights;
- ``bf16``: bf16 mixed precision and the model's own (Hugging Face) gradient checkpointing on top of the
  config's activation checkpointing, as the contrastive stage's paper preset has it; its precision differs
  from the first run's, so the loop builds Accelerate's state again (``allow_precision``).

Each process writes ``report-<rank>.json``: what Accelerate chose before the gate was lifted, what the loss
saw (distributed type, sharded parameters).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))

from test_loop import TEXTS, CountingLoss, make_collate  # noqa: E402

RUNS = {
    "fp32": dict(max_steps=4, batch_size=8, micro_batch=2, lr=1e-2, log_every=1, eval_every=2, save_every=2,
                 mixed_precision="no", length_grouped=True, progress=False),
    "bf16": dict(max_steps=3, batch_size=8, micro_batch=2, lr=1e-2, log_every=1, eval_every=3,
                 mixed_precision="bf16", progress=False),
}  # fmt: skip
STAGES = {
    "mntp": dict(max_steps=4, batch_size=8, micro_batch=2, eval_every=2, lr=1e-3, mixed_precision="no"),
    "contrastive": dict(max_steps=4, batch_size=8, micro_batch=4, eval_every=2, lr=1e-3, warmup_steps=0,
                        mixed_precision="no"),
}  # fmt: skip
EVAL_EXAMPLES = 6  # 3 micro-batches of 2: the second process evaluates one real batch and one padding batch
# Calls of the loss per process: eval@0 = 2, steps 1-2 = 4 (2 micro-batches a step), eval@2 = 2, step 3 = 2.
FAIL_AT = 10


def model(tokenizer, seed: int, checkpointing: bool = False):
    from llm2rec.llm.bidirectional import enable_bidirectional
    from llm2rec.llm.tiny import make_tiny_model

    lm = enable_bidirectional(make_tiny_model("qwen2", tokenizer, attention_dropout=0.0, seed=seed))
    if checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return lm


def lift_cpu_gate() -> list[str]:
    """Make Accelerate's FSDP decision on CPU as it is made on GPUs (see the module docstring); returns
    the distributed types Accelerate had chosen itself, one per state it built."""
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedType

    original, chosen = AcceleratorState.__init__, []

    def init(self, *args, **kwargs):
        fresh = len(AcceleratorState._shared_state) == 0
        original(self, *args, **kwargs)
        plugin = kwargs.get("fsdp_plugin")
        if fresh and plugin is not None:
            chosen.append(str(self.distributed_type))
            if self.distributed_type == DistributedType.MULTI_CPU:
                if self._mixed_precision != "no":
                    plugin.set_mixed_precision(self._mixed_precision)
                self.fsdp_plugin = plugin
                self.distributed_type = DistributedType.FSDP
                PartialState._shared_state["distributed_type"] = DistributedType.FSDP

    AcceleratorState.__init__ = init
    return chosen


class SeeingLoss(CountingLoss):
    """CountingLoss that notes, on its first call, how the model it trains is distributed."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict = {}

    def __call__(self, model, batch, accelerator):
        if not self.seen:
            from torch.distributed.tensor import DTensor

            param = next(model.parameters())
            sharded = isinstance(param, DTensor) and param.to_local().numel() < param.numel()
            self.seen.update(distributed_type=str(accelerator.distributed_type), sharded=sharded)
        return super().__call__(model, batch, accelerator)


def run_stages(out: Path, dataset: Path, model_dir: Path) -> str:
    """MNTP then contrastive; returns the distributed type they trained under."""
    from accelerate.state import AcceleratorState

    from llm2rec.train.contrastive import run_contrastive
    from llm2rec.train.mntp import run_mntp

    common = dict(preset="cpu", progress=False)
    mntp = run_mntp(model_dir, dataset, out / "mntp", **common, **STAGES["mntp"])
    run_contrastive(mntp, dataset, out / "contrastive", **common, **STAGES["contrastive"])
    return str(AcceleratorState._shared_state["distributed_type"])


def as_ddp(run):
    """``run()`` with the launch's FSDP setting hidden from Accelerate (a DDP state, built afresh)."""
    import os

    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
    fsdp = os.environ.pop("ACCELERATE_USE_FSDP")
    try:
        return run()
    finally:
        os.environ["ACCELERATE_USE_FSDP"] = fsdp
        AcceleratorState._reset_state(reset_partial_state=False)


def main(out: Path, dataset: Path, model_dir: Path) -> None:
    from llm2rec.distributed import process_state
    from llm2rec.llm.tiny import make_tiny_tokenizer
    from llm2rec.train.config import LoopConfig
    from llm2rec.train.loop import train_loop

    chosen = lift_cpu_gate()
    stages = {"ddp": as_ddp(lambda: run_stages(out / "stages" / "ddp", dataset, model_dir))}
    tok = make_tiny_tokenizer()
    data = [{"input_ids": tok(t).input_ids} for t in TEXTS]
    kwargs = dict(eval_dataset=data[:EVAL_EXAMPLES], tokenizer=tok)
    collate = make_collate(tok)
    cfg = LoopConfig(**RUNS["fp32"])
    try:
        train_loop(model(tok, 0), data, collate, CountingLoss(fail_at=FAIL_AT), cfg, out / "fp32", **kwargs)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the fp32 run was to be interrupted")
    fp32, bf16 = SeeingLoss(), SeeingLoss()
    train_loop(model(tok, 7), data, collate, fp32, cfg, out / "fp32", **kwargs)
    cfg = LoopConfig(**RUNS["bf16"])
    train_loop(model(tok, 0, checkpointing=True), data, collate, bf16, cfg, out / "bf16", **kwargs)
    seen = {"fp32": fp32.seen, "bf16": bf16.seen}
    stages["fsdp"] = run_stages(out / "stages" / "fsdp", dataset, model_dir)
    rank = process_state().process_index
    (out / f"report-{rank}.json").write_text(
        json.dumps({"accelerate_chose": chosen, "seen": seen, "stages": stages})
    )


if __name__ == "__main__":
    main(*map(Path, sys.argv[1:4]))
