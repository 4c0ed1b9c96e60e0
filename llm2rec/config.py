"""Run configuration for ``llm2rec run``, and the one ``key=value`` grammar every command's ``--set`` uses.

A run config is a YAML file merged over :data:`DEFAULTS`, then dotted ``key=value`` overrides (values
parsed as YAML, so ``csft.max_steps=20`` is an int and ``seqrec.seeds=[1,2]`` a list). The stage commands
take the same assignments without the section (``llm2rec csft --set lr=1e-4``): :func:`parse_assignments`.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator

from llm2rec.embed.registry import ENCODER_NAMES
from llm2rec.errors import ConfigError
from llm2rec.seqrec.config import DEFAULT_SEEDS
from llm2rec.typed import validated


def deep_merge(base: dict, extra: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        where = f"{path}{key}"
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = deep_merge(out[key], value, where + ".")
        else:
            out[key] = copy.deepcopy(value)
    return out


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Dataset(_Section):
    format: str = "builtin"
    input: list[str] = []
    kcore: NonNegativeInt = 5
    max_history: PositiveInt = 10
    split: Literal["loo", "temporal", "shipped"] = "loo"
    cutoffs: Annotated[list[int], Field(min_length=2, max_length=2)] = [1628643414042, 1658002729837]
    min_rating: float | None = None
    skip_bad_lines: bool = False
    keep_duplicates: bool = False
    options: dict[str, Any] = {}
    num_users: PositiveInt = 3000
    num_items: Annotated[int, Field(ge=2)] = 1500
    seed: int = 0  # builtin's generator, and the user sample's
    sample_users: PositiveInt | None = None  # a seeded sample of this many users, drawn before k-core
    # Cold-start items, held out of every training part (seeded by `seed`): a fraction, or by first time.
    cold_items: Annotated[float, Field(gt=0, lt=1)] | None = None
    cold_after: int | None = None
    cold_titles_known: bool = False  # MNTP and the contrastive stage may see cold items' titles

    @field_validator("input", mode="before")
    @classmethod
    def _one_path_is_a_list(cls, value):
        # "input: data/x.csv" means one input, not the characters of its name (a "/" once made the
        # pipeline hash the whole filesystem).
        return [value] if isinstance(value, str | Path) else value

    @field_validator("options", mode="before")
    @classmethod
    def _assignments_are_options(cls, value):
        # Reader options may be written as a list of key=value strings, as on the command line.
        return parse_assignments(value) if isinstance(value, list) else value


class _Embed(_Section):
    batch_size: PositiveInt = 32
    template: str = "{title}"
    normalize: bool = False


class _Seqrec(_Section):
    models: Annotated[list[str], Field(min_length=1)] = ["sasrec"]
    seeds: Annotated[list[int], Field(min_length=1)] = list(DEFAULT_SEEDS)
    options: dict[str, Any] = {}
    workers: PositiveInt = 1  # > 1 runs the encoder × recommender jobs side by side (one torch thread each)
    # Encoders that also get a text+ID row (their frozen vectors plus a trainable ID embedding), e.g.
    # [minilm, llm2rec]: RecBole's and the paper's text+ID setting. Trained recommenders only (not knn/pop).
    with_id: list[str] = []


class _Mix(_Section):
    """A multi-dataset run (with ``datasets``): which datasets the LLM stages train on, which are evaluated."""

    train: list[str] = []  # default: every dataset
    evaluate: list[str] = []  # default: every dataset
    # CSFT pairs per dataset: None = in proportion to each dataset's size; [1, 1] (in train's order) or
    # {name: weight}: each dataset's share of the pairs is its weight's share.
    weights: list[Annotated[float, Field(ge=0)]] | dict[str, Annotated[float, Field(ge=0)]] | None = None
    seed: int = 0  # of the weighted resampling


class _RunConfig(_Section):
    dataset: _Dataset = _Dataset()
    datasets: dict[str, _Dataset] = {}  # name -> dataset section: a multi-dataset run (see mix)
    mix: _Mix = _Mix()
    model: str = "smollm2-135m"
    preset: str = "auto"  # llm2rec.train.config.DEFAULT_PRESET: paper on a GPU, cpu elsewhere
    csft: dict[str, Any] = {}
    mntp: dict[str, Any] = {}
    contrastive: dict[str, Any] = {}
    contrastive_pairs: dict[str, Any] = {}  # the llm2rec+pairs row: contrastive's settings, then these
    embed: _Embed = _Embed()
    encoders: Annotated[list[str], Field(min_length=1)] = list(ENCODER_NAMES)
    seqrec: _Seqrec = _Seqrec()


# Every key of a run config with its default value: the schema's defaults, as plain data.
DEFAULTS: dict = _RunConfig().model_dump()


def validate_config(cfg: dict) -> dict:
    """``cfg`` checked against the run-config schema (every key, its type), normalised; unknown keys and
    unknown encoders are errors. The training stages' sections are checked by the stages' own settings
    classes, every one of them, whether or not the run plans that stage."""
    from llm2rec.train import check_sections
    from llm2rec.train.config import resolve_preset

    checked = validated(_RunConfig, cfg, where="config").model_dump()
    checked["preset"] = resolve_preset(checked["preset"])  # every stage and record sees the one it chose
    check_sections(checked)
    bad = [e for e in checked["encoders"] if e not in ENCODER_NAMES]
    if bad:
        raise ConfigError(f"unknown encoder(s) {bad}; choose from {', '.join(ENCODER_NAMES)}")
    stray = [e for e in checked["seqrec"]["with_id"] if e not in checked["encoders"] or e == "id"]
    if stray:
        raise ConfigError(f"seqrec.with_id names {stray}: each must be one of the run's text encoders")
    return _checked_mix(checked)


_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _checked_mix(cfg: dict) -> dict:
    """A multi-dataset config made explicit: ``mix.train`` / ``mix.evaluate`` filled in (default: every
    dataset), ``mix.weights`` as {name: weight}; a single-dataset config must leave ``mix`` alone."""
    names, mix = list(cfg["datasets"]), cfg["mix"]
    if not names:
        if mix != DEFAULTS["mix"]:
            raise ConfigError("mix settings need a multi-dataset config (a `datasets:` section)")
        return cfg
    if cfg["dataset"] != DEFAULTS["dataset"]:
        raise ConfigError("give either `dataset:` (one dataset) or `datasets:` (several), not both")
    bad = [n for n in names if not _DATASET_NAME.fullmatch(n)]
    if bad:
        raise ConfigError(
            f"dataset names {bad}: use letters, digits, '_', '-' and '.' (they name directories)"
        )
    for key in ("train", "evaluate"):
        mix[key] = mix[key] or names
        unknown = [n for n in mix[key] if n not in names]
        if unknown or len(set(mix[key])) != len(mix[key]):
            raise ConfigError(f"mix.{key} {mix[key]}: each must be one of datasets {names}, once")
    weights = mix["weights"]
    if isinstance(weights, list):
        if len(weights) != len(mix["train"]):
            raise ConfigError(
                f"mix.weights has {len(weights)} values for {len(mix['train'])} training datasets"
            )
        mix["weights"] = dict(zip(mix["train"], weights, strict=True))
    elif isinstance(weights, dict) and set(weights) != set(mix["train"]):
        raise ConfigError(f"mix.weights names {sorted(weights)}; the training datasets are {mix['train']}")
    if weights is not None and not sum(mix["weights"].values()):
        raise ConfigError("mix.weights must not all be 0")
    return cfg


def is_multi(cfg: dict) -> bool:
    """Whether ``cfg`` (validated) describes a multi-dataset run."""
    return bool(cfg.get("datasets"))


def all_inputs(cfg: dict) -> list[str]:
    """Every input path of the run (one dataset's or all of a multi-dataset run's)."""
    sections = cfg["datasets"].values() if is_multi(cfg) else [cfg["dataset"]]
    return [p for section in sections for p in section["input"]]


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
    # YAML 1.1 reads yes/no/on/off as booleans; on a command line they are words (mixed_precision=no).
    # Only true/false are booleans here, as in YAML 1.2.
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()
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
    """A complete, checked ``dataset`` section: :data:`DEFAULTS`' values, then ``values`` (what
    ``llm2rec prepare`` was given); see :func:`llm2rec.data.prepare.prepare_from_spec`."""
    given = {k: v for k, v in values.items() if v is not None}
    return validated(_Dataset, given, where="dataset").model_dump()


def embed_settings(**values) -> dict:
    """A complete, checked ``embed`` section: :data:`DEFAULTS`' values, then ``values`` (what
    ``llm2rec embed`` was given: its flags, then its ``--set`` assignments); unknown keys are errors."""
    given = {k: v for k, v in values.items() if v is not None}
    unknown = sorted(set(given) - set(_Embed.model_fields))
    if unknown:
        raise ConfigError(
            f"{', '.join(f'embed.{k}' for k in unknown)}: unknown setting (a typo?); "
            f"the embed settings are {', '.join(_Embed.model_fields)}"
        )
    return validated(_Embed, given, where="embed").model_dump()


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys silently; a config that says a setting twice is refused."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: the key {key!r} appears twice")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path):
    """A YAML file's content (``{}`` when empty); bad YAML, bad encoding, repeated keys: one-line errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader) or {}
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults ← YAML file ← overrides; unknown keys are errors (typos should not pass silently)."""
    cfg = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        loaded = read_yaml(path)
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        cfg = deep_merge(cfg, loaded)
    for pair in overrides or []:
        apply_override(cfg, pair)
    return validate_config(cfg)
