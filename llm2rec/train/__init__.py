"""The LLM stages (CSFT → MNTP → item contrastive), their shared skeleton, settings and training loop.

Submodules load lazily: importing this package does not import torch.
"""

from __future__ import annotations

# The training chain, in order: each stage starts from the previous one's published model.
TRAINING_STAGES: tuple[str, ...] = ("csft", "mntp", "contrastive")


def training_stage_module(name: str):
    """The module of training stage ``name`` (its ``build_config``, ``PRESETS`` and ``run_<name>``)."""
    if name == "csft":
        from llm2rec.train import csft

        return csft
    if name == "mntp":
        from llm2rec.train import mntp

        return mntp
    if name == "contrastive":
        from llm2rec.train import contrastive

        return contrastive
    from llm2rec.errors import ConfigError

    raise ConfigError(f"unknown training stage {name!r}; stages: {', '.join(TRAINING_STAGES)}")
