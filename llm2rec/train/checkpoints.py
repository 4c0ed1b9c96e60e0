"""The training loop's checkpoints and model directories.

Checkpoints: Accelerate state (model, optimizer, scheduler, RNG) per saved step. Layout under the loop's
``out_dir``: ``checkpoints/step-000300/`` holds what ``Accelerator.save_state`` writes (under FSDP, each
process's shards: several machines need a shared file system) plus ``loop_state.json`` (step, history,
best so far, the settings), written last: a checkpoint without it is incomplete and ignored. Saving goes
through a hidden ``.step-*.tmp`` folder and a rename.

Model directories (``best/``, ``last/``): :func:`save_model`, a plain Hugging Face directory whatever the
parallelism, written by the main process once every process has handed in its part of the weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from llm2rec.errors import ConfigError
from llm2rec.io import atomic_write_json

LOOP_STATE = "loop_state.json"
# Settings that decide which examples land in which step: a resume must not change them.
DATA_ORDER_KEYS = ("batch_size", "micro_batch", "seed", "length_grouped", "group_size")


class Checkpoints:
    def __init__(self, accelerator, out_dir: Path, keep: int):
        self.accelerator, self.root, self.keep = accelerator, Path(out_dir) / "checkpoints", max(keep, 1)

    def complete(self) -> list[Path]:
        """The complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.glob("step-*") if (p / LOOP_STATE).is_file()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def remove_all(self) -> None:
        """Main process only (the caller waits)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def load_latest(self, config) -> dict | None:
        """Restore the newest checkpoint into the accelerator; returns its loop state (None if there is
        none). Refuses one whose data order differs from ``config``'s: the resumed run would differ."""
        found = self.complete()
        if not found:
            return None
        latest = found[-1]
        state = json.loads((latest / LOOP_STATE).read_text())
        for key in DATA_ORDER_KEYS:
            if state["config"].get(key) != getattr(config, key):
                raise ConfigError(
                    f"cannot resume from {latest}: {key} was {state['config'].get(key)!r}, now "
                    f"{getattr(config, key)!r}; use the same setting or start afresh (resume off)"
                )
        self.accelerator.load_state(str(latest))
        return {**state, "path": str(latest)}

    def save(self, step: int, loop_state: dict) -> None:
        """Every process calls this (Accelerate's save is collective); the main one writes the state."""
        acc = self.accelerator
        final = self.root / f"step-{step:06d}"
        tmp = self.root / f".step-{step:06d}.tmp"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            atomic_write_json(tmp / LOOP_STATE, loop_state)  # written last: marks the checkpoint complete
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            for old in self.complete()[: -self.keep]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()


def save_model(
    accelerator, model, target: Path, save_fn, tokenizer, *, sharded: bool, use_cache: bool | None = None
) -> Path:
    """Write the prepared ``model`` to ``target``; every process calls this.

    The full weights come from ``accelerator.get_state_dict`` (under FSDP a collective: each process hands
    in its shards, the main process gets them all, on the CPU). The main process then writes them: an
    unsharded model through ``save_fn(model, tokenizer, target)`` as before (LoRA merged by the default);
    a sharded one through ``save_fn(model, tokenizer, target, state_dict=...)``, the default being
    :func:`save_full_state`. The config (bidirectional attention included) is the model's own either way,
    with ``use_cache`` as given where training turned the cache off (``setup.cache_off_for_checkpointing``).
    """
    from llm2rec.llm.backbone import save_pretrained_atomic

    state_dict = accelerator.get_state_dict(model) if sharded else None
    if accelerator.is_main_process:
        bare = accelerator.unwrap_model(model)
        training_cache = getattr(bare.config, "use_cache", None)
        if use_cache is not None:
            bare.config.use_cache = use_cache
        try:
            if not sharded:
                save_fn(bare, tokenizer, target)
            elif save_fn is save_pretrained_atomic:
                save_full_state(bare, state_dict, tokenizer, target)
            else:
                save_fn(bare, tokenizer, target, state_dict=state_dict)
        finally:
            if use_cache is not None:
                bare.config.use_cache = training_cache
    accelerator.wait_for_everyone()
    return target


def save_full_state(model, state_dict: dict, tokenizer, target: Path) -> Path:
    """``model``'s config and ``state_dict`` (full tensors) as a plain HF directory (safetensors),
    atomically: what ``AutoModel.from_pretrained`` loads. ``model`` may be an FSDP-sharded module (main
    process only): its weights are not read, only its config and class."""
    from llm2rec.io import atomic_dir

    with atomic_dir(target, overwrite=True) as tmp:
        model.save_pretrained(tmp, state_dict=tied_as_in(model, state_dict), safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return target


def tied_as_in(model, state_dict: dict) -> dict:
    """``state_dict`` whose entries for one shared parameter of ``model`` (tied input and output
    embeddings) are one tensor again: gathered shards arrive as separate copies, and transformers keeps
    one name of a tied pair only where the tensors are shared, as in the model saved by one process."""
    names: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name.replace("_checkpoint_wrapped_module.", ""))
    tied = dict(state_dict)
    for group in names.values():
        present = [n for n in group if n in tied]
        for name in present[1:]:
            tied[name] = tied[present[0]]
    return tied
