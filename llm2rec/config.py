"""Run configuration for ``llm2rec run``, and the one ``key=value`` grammar every command's ``--set`` uses.

A run config is a YAML file merged over :data:`DEFAULTS`, then dotted ``key=value`` overrides (values
parsed as YAML, so ``csft.max_steps=20`` is an int and ``seqrec.seeds=[1,2]`` a list). The stage commands
take the same assignments without the section (``llm2rec csft --set lr=1e-4``): :func:`parse_assignments`.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

from llm2rec.embed.registry import ENCODER_NAMES
from llm2rec.errors import ConfigError

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
    "encoders": list(ENCODER_NAMES),
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
    bad = [e for e in cfg["encoders"] if e not in ENCODER_NAMES]
    if bad:
        raise ConfigError(f"unknown encoder(s) {bad}; choose from {', '.join(ENCODER_NAMES)}")
    for section in ("dataset", "embed", "seqrec"):
        extra = set(cfg[section]) - set(DEFAULTS[section])
        if extra:
            raise ConfigError(f"unknown key(s) in {section}: {', '.join(sorted(extra))}")


_EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_assignment(pair: str) -> tuple[str, object]:
    """``key=value`` → (key, value): the key as written (dots kept, dashes → underscores), the value
    parsed as a YAML scalar or list (``true``, ``3``, ``1e-4``, ``[1, 2]``, ``user_id``)."""
    key, sep, raw = pair.partition("=")
    key = key.strip().replace("-", "_")
    if not sep or not key:
        raise ConfigError(f"expected key=value, got {pair!r}")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{pair!r}: the value is not valid YAML ({exc.problem or exc})") from exc
    # YAML 1.1 reads "1e-4" (no dot) as a string; a learning rate written that way is a number.
    if isinstance(value, str) and _EXPONENT_NUMBER.fullmatch(value.strip()):
        value = float(value)
    return key, value


def parse_assignments(pairs: list[str] | None) -> dict:
    """Several ``key=value`` strings → a flat dict (later ones win)."""
    return dict(parse_assignment(pair) for pair in pairs or [])


def apply_override(cfg: dict, pair: str) -> None:
    """Set the dotted ``section.key=value`` of ``pair`` in the nested ``cfg``."""
    key, value = parse_assignment(pair)
    *parents, leaf = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {pair!r}: {part} is not a section")
    node[leaf] = value


def dataset_spec(**values) -> dict:
    """A complete ``dataset`` section: :data:`DEFAULTS`' values, then ``values`` (what ``llm2rec prepare``
    was given); see :func:`llm2rec.data.protocol.prepare_from_spec`."""
    spec = deep_merge(DEFAULTS["dataset"], {k: v for k, v in values.items() if v is not None})
    _check_dataset(spec)
    return spec


def _check_dataset(spec: dict) -> None:
    extra = set(spec) - set(DEFAULTS["dataset"])
    if extra:
        raise ConfigError(f"unknown key(s) in dataset: {', '.join(sorted(extra))}")
    # Reader options may be written as a list of key=value strings, as on the command line.
    if isinstance(spec["options"], list):
        spec["options"] = parse_assignments(spec["options"])


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
    _check_dataset(cfg["dataset"])
    return cfg
