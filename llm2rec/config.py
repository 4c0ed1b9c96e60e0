"""Run configuration for ``llm2rec run``: a YAML file merged over defaults, then dotted ``key=value``
overrides (values parsed as YAML, so ``csft.max_steps=20`` is an int and ``seqrec.seeds=[1,2]`` a list)."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from llm2rec.errors import ConfigError

# The paper's Table 3/4 rows that can run here; each names how its item vectors are made.
ENCODERS = {
    "id": "trainable ID embeddings (no text)",
    "minilm": "all-MiniLM-L6-v2 sentence embeddings of the titles",
    "raw-last": "the raw backbone, causal attention, last-token pooling (the paper's 'Causal' row)",
    "raw-mean": "the raw backbone, bidirectional attention, mean pooling (the paper's 'Bidirectional' row)",
    "csft": "after CSFT, bidirectional, mean pooling",
    "csft-mntp": "after CSFT + MNTP, bidirectional, mean pooling",
    "llm2rec": "after CSFT + MNTP + item contrastive learning (full LLM2Rec)",
}

DEFAULTS: dict = {
    "dataset": {
        "format": "builtin",
        "input": [],
        "kcore": 5,
        "max_history": 10,
        "split": "loo",
        "cutoffs": [1628643414042, 1658002729837],
        "min_rating": None,
        "skip_bad_lines": False,
        "keep_duplicates": False,
        "options": {},
        "num_users": 3000,
        "num_items": 1500,
        "seed": 0,
    },
    "model": "smollm2-135m",
    "preset": "cpu",
    "csft": {},
    "mntp": {},
    "contrastive": {},
    "embed": {"batch_size": 32, "template": "{title}", "normalize": False},
    "encoders": list(ENCODERS),
    # workers > 1 runs the encoder × recommender jobs side by side (one torch thread each).
    "seqrec": {"models": ["sasrec"], "seeds": [2024, 2025, 2026], "options": {}, "workers": 1},
}


def deep_merge(base: dict, extra: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        where = f"{path}{key}"
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = deep_merge(out[key], value, where + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


def _check_keys(cfg: dict) -> None:
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise ConfigError(
            f"unknown config key(s): {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}"
        )
    bad = [e for e in cfg["encoders"] if e not in ENCODERS]
    if bad:
        raise ConfigError(f"unknown encoder(s) {bad}; choose from {', '.join(ENCODERS)}")
    for section in ("dataset", "embed", "seqrec"):
        extra = set(cfg[section]) - set(DEFAULTS[section])
        if extra:
            raise ConfigError(f"unknown key(s) in {section}: {', '.join(sorted(extra))}")


def apply_override(cfg: dict, pair: str) -> None:
    key, sep, raw = pair.partition("=")
    if not sep or not key:
        raise ConfigError(f"override must be key=value, got {pair!r}")
    *parents, leaf = key.strip().split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {pair!r}: {part} is not a section")
    node[leaf] = yaml.safe_load(raw)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults ← YAML file ← overrides; unknown keys are errors (typos should not pass silently)."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        cfg = deep_merge(cfg, loaded)
    for pair in overrides or []:
        apply_override(cfg, pair)
    _check_keys(cfg)
    return cfg
