"""The training loop's checkpoints: Accelerate state (model, optimizer, scheduler, RNG) per saved step.

Layout under the loop's ``out_dir``: ``checkpoints/step-000300/`` holds what ``Accelerator.save_state``
writes plus ``loop_state.json`` (step, history, best so far, the settings), written last: a checkpoint
without it is incomplete and ignored. Saving goes through a hidden ``.step-*.tmp`` folder and a rename.
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
