"""The LLM stages (CSFT → MNTP → item contrastive), their shared skeleton, settings and training loop.

Submodules load lazily: importing this package does not import torch.
"""

from __future__ import annotations

# Every training stage, upstream before downstream; each starts from its upstream stage's published model
# (the backbone for CSFT). ``contrastive_pairs`` is the contrastive stage with collaborative positives
# (llm2rec.train.pairs), a branch beside the paper's ``contrastive``, both from MNTP.
UPSTREAM: dict[str, str | None] = {
    "csft": None,
    "mntp": "csft",
    "contrastive": "mntp",
    "contrastive_pairs": "mntp",
}
TRAINING_STAGES: tuple[str, ...] = tuple(UPSTREAM)
# What a stage's settings start from before the run config's sections (the variant's own choices).
STAGE_DEFAULTS: dict[str, dict] = {"contrastive_pairs": {"pair_gap": 3}}
# Run-config sections read by a stage, in order (later ones win): a variant reads its base stage's too.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {"contrastive_pairs": ("contrastive", "contrastive_pairs")}


def training_chain(name: str) -> list[str]:
    """The stages ``name`` needs, upstream first, ending with ``name``."""
    chain = []
    while name is not None:
        chain.append(name)
        name = UPSTREAM[name]
    return chain[::-1]


def stage_settings(name: str, cfg: dict) -> dict:
    """The overrides stage ``name`` gets from a run config: its defaults, then its sections."""
    settings = dict(STAGE_DEFAULTS.get(name, {}))
    for section in STAGE_SECTIONS.get(name, (name,)):
        settings.update(cfg.get(section) or {})
    return settings


def check_sections(cfg: dict) -> None:
    """Every training stage's settings in run config ``cfg`` checked (keys, types, the preset), whether or not
    the run plans the stage: a typo under ``csft:`` in a run that trains no CSFT is refused too. Errors name
    the section and the key (``csft.max_stepz``). A variant (``contrastive_pairs``) is checked after its base
    stage, so a problem in the base stage's section is named after that section."""
    from llm2rec.train.config import build_config

    for name in TRAINING_STAGES:
        module = training_stage_module(name)
        cls = type(module.build_config(cfg["preset"]))  # the stage's settings class; the preset checked
        build_config(cls, module.PRESETS, cfg["preset"], stage_settings(name, cfg), where=name)


def training_stage_module(name: str):
    """The module of training stage ``name`` (its ``build_config``, ``PRESETS``, ``STAGE`` and runner)."""
    if name == "csft":
        from llm2rec.train import csft

        return csft
    if name == "mntp":
        from llm2rec.train import mntp

        return mntp
    if name in ("contrastive", "contrastive_pairs"):
        from llm2rec.train import contrastive

        return contrastive
    from llm2rec.errors import ConfigError

    raise ConfigError(f"unknown training stage {name!r}; stages: {', '.join(TRAINING_STAGES)}")
