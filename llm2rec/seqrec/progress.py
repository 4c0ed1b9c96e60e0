"""Progress lines of a recommender's training, for runs without a progress bar (``llm2rec run`` trains its
recommenders with ``progress=False``, in its own process or a pool's).

One ``logging`` line per evaluation: the epoch, the training loss, the valid metric, the best so far, the
time per epoch and how long the rest can take: within ``patience`` epochs unless it improves, by the epoch
cap at the latest. Rate-limited: at most one line per ``interval`` seconds (30), except the first
evaluation, the last one and a new best (which waits ``best_interval``, 5 s, after the previous line, so a
fast run's early bests do not print a line per epoch). ``progress_label`` names the run in every line (the
pipeline gives the stage's output directory): several recommenders may train at once.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

_LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("seqrec_progress_label", default="")


@contextmanager
def progress_label(label: str) -> Iterator[None]:
    """Every progress line logged inside starts with ``label``."""
    token = _LABEL.set(label)
    try:
        yield
    finally:
        _LABEL.reset(token)


def duration(seconds: float) -> str:
    """``42 s``, ``3m05s``, ``2h07m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class EvalLog:
    """Decides which evaluations get a line and writes it (see module docstring)."""

    def __init__(
        self,
        cfg,
        seed: int,
        *,
        enabled: bool = True,
        interval: float = 30.0,
        best_interval: float = 5.0,
        clock: Callable[[], float] | None = None,
    ):
        self.cfg, self.seed, self.enabled = cfg, seed, enabled
        self.interval, self.best_interval, self.clock = interval, best_interval, clock or time.monotonic
        self.started = self.clock()
        self.last_line: float | None = None

    def due(self, now: float, *, new_best: bool, last: bool) -> bool:
        if self.last_line is None or last:
            return True
        since = now - self.last_line
        return since >= self.interval or (new_best and since >= self.best_interval)

    def evaluated(self, epoch: int, loss: float, score: float, best_score: float, best_epoch: int, *,
                  last: bool) -> bool:  # fmt: skip
        """Log the evaluation after ``epoch`` when it is due; True when a line was written."""
        now = self.clock()
        if not self.enabled or not self.due(now, new_best=best_epoch == epoch, last=last):
            return False
        self.last_line = now
        log.info("%s", self.line(epoch, loss, score, best_score, best_epoch, now - self.started, last=last))
        return True

    def line(self, epoch, loss, score, best_score, best_epoch, elapsed: float, *, last: bool) -> str:
        cfg = self.cfg
        label = _LABEL.get()
        per_epoch = elapsed / max(epoch, 1)
        head = (
            f"{label + ' ' if label else ''}seed {self.seed}: epoch {epoch}/{cfg.epochs}, loss {loss:.4f}, "
        )
        best = "new best" if best_epoch == epoch else f"best {best_score:.4f} at epoch {best_epoch}"
        rate = f"{per_epoch:.1f}" if per_epoch >= 1 else f"{per_epoch:.2f}"
        text = f"{head}valid {cfg.valid_metric} {score:.4f} ({best}); {rate} s/epoch"
        if last:
            return f"{text}; last evaluation, {duration(elapsed)} in all"
        patience_end = min(cfg.epochs, best_epoch + cfg.patience)
        eta = (
            f"stops by epoch {patience_end} (ETA {duration((patience_end - epoch) * per_epoch)}) unless it "
            f"improves, by epoch {cfg.epochs} (ETA {duration((cfg.epochs - epoch) * per_epoch)}) at the latest"
        )
        if patience_end >= cfg.epochs:
            eta = f"ETA {duration((cfg.epochs - epoch) * per_epoch)}"
        return f"{text}; {eta}"
