"""Stage settings: a preset's values plus overrides, and the part of them that decides a stage's output.

Every LLM stage (CSFT, MNTP, contrastive) keeps a dataclass of settings and a ``PRESETS`` dict beside it;
:func:`build_config` is the one way to combine them, and :func:`identity` is what the pipeline hashes to
decide whether a finished stage is still valid (so editing a preset in code re-runs the stages it feeds).
"""

from __future__ import annotations

import dataclasses

from llm2rec.errors import ConfigError

# Settings that change how a run is shown or where its checkpoints go, never the model it produces.
COSMETIC = frozenset({"progress", "report_to", "log_every", "save_every", "keep_checkpoints", "keep_work"})


def build_config(cls, presets: dict[str, dict], preset: str, overrides: dict):
    """``cls`` with the preset's values, then every non-None override.

    Dotted or dashed keys (``lora.r``, ``max-steps``) name the field with underscores; unknown keys are errors.
    """
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(presets)}")
    values = dict(presets[preset])
    for key, value in overrides.items():
        if value is not None:
            values[key.replace(".", "_").replace("-", "_")] = value
    unknown = set(values) - set(cls.__dataclass_fields__)
    if unknown:
        raise ConfigError(
            f"unknown option(s) for {cls.__name__}: {', '.join(sorted(unknown))}; "
            f"known: {', '.join(cls.__dataclass_fields__)}"
        )
    return cls(**values)


def identity(config) -> dict:
    """The settings that decide what a stage produces: every field but the cosmetic ones."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in COSMETIC}
