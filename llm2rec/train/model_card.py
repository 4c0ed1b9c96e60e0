"""The model card (``README.md``) every published stage directory holds, so it can be published as it is.

Written from the stage's record (the dict that becomes ``<stage>.json``), its ``metrics.jsonl`` events and
the chosen model's ``config.json``; the stages upstream of it are read from their own published records
(the directory each record names as its ``model``), so the card of a contrastive model lists CSFT, MNTP and
the contrastive stage with their settings. Sections: base model, stages and their settings, dataset and its
checksum, the validation metrics the stage logged, licence, how to load it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CARD_FILE = "README.md"
MAX_EVAL_ROWS = 25  # a longer run's table keeps its first, best and last evaluations and evenly spaced ones
_WHAT = {
    "csft": "collaborative supervised fine-tuning (next-item title generation)",
    "mntp": "masked next-token prediction with bidirectional attention",
    "contrastive": "item-level contrastive learning (the LLM2Rec item encoder)",
    "contrastive_pairs": "item-level contrastive learning with collaborative positive pairs",
}
_SKIP_FIELDS = {"stage", "model", "dataset", "dataset_checksum", "identity", "preset", "config"}


def recorded_model(model, where: Path) -> Path | None:
    """The local directory a record's ``model`` names: records store it relative to their own folder
    ``where`` (older ones as given, absolute or relative to where the command ran); None for a hub id."""
    if not model:
        return None
    for candidate in (Path(where) / model, Path(model)):
        if candidate.is_dir():
            return candidate
    return None


def upstream_records(record: dict, where: Path) -> list[dict]:
    """The records of the stages ``record`` (the record of folder ``where``) was trained after, upstream
    first (those still on disk)."""
    from llm2rec.train import TRAINING_STAGES

    chain, model, seen = [], recorded_model(record.get("model"), where), set()
    while model is not None and model.resolve() not in seen:
        seen.add(model.resolve())
        found = [model / f"{s}.json" for s in TRAINING_STAGES if (model / f"{s}.json").is_file()]
        if not found:
            break
        upstream = json.loads(found[0].read_text(encoding="utf-8"))
        chain.insert(0, upstream)
        model = recorded_model(upstream.get("model"), model)
    return chain


def _base_licence(base: str) -> str | None:
    """The ``license:`` a local base model's own card declares, if it has one."""
    card = Path(base) / CARD_FILE
    if not card.is_file():
        return None
    lines = card.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "---":
        return None
    for line in lines[1:]:
        if line.strip() == "---":
            return None
        if line.startswith("license:"):
            return line.split(":", 1)[1].strip().strip("'\"") or None
    return None


def _is_hub_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and not Path(name).exists()


def _value(value) -> str:
    plain = isinstance(value, str) and value.isprintable()  # else JSON: "{title}\n" keeps its newline visible
    text = value if plain else json.dumps(value, default=str)
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def _settings(record: dict) -> dict:
    identity = record.get("identity") or {}
    return identity.get("config") or record.get("config") or {}


def _stage_section(record: dict) -> list[str]:
    name = record.get("stage", "?")
    lines = [
        f"### {name}: {_WHAT.get(name, 'a training stage')}",
        "",
        f"Started from `{record.get('model')}`, preset `{record.get('preset')}`; kept the `{record.get('chosen')}` "
        f"checkpoint (best step {record.get('best_step')}, last step {record.get('last_step')}), "
        f"{record.get('processes', 1)} process(es), precision `{record.get('precision')}`, "
        f"{float(record.get('wall_s') or 0):.0f} s.",
        "",
    ]
    facts = {k: v for k, v in record.items() if k not in _SKIP_FIELDS and isinstance(v, int | float | str)}
    facts = {k: v for k, v in facts.items() if k not in ("chosen", "best_step", "last_step", "processes",
                                                        "precision", "wall_s")}  # fmt: skip
    rows = [f"| {k} | {_value(v)} |" for k, v in _settings(record).items()]
    rows += [f"| {k} (recorded) | {_value(v)} |" for k, v in facts.items()]
    return lines + ["| setting | value |", "|---|---|", *rows, ""]


def _eval_rows(events: list[dict], best_step) -> list[dict]:
    evals = [e for e in events if e.get("split") == "eval"]
    if len(evals) <= MAX_EVAL_ROWS:
        return evals
    spacing = (len(evals) - 1) / (MAX_EVAL_ROWS - 2)  # the first and the last included
    keep = {round(i * spacing) for i in range(MAX_EVAL_ROWS - 1)}
    keep |= {i for i, e in enumerate(evals) if e.get("step") == best_step}
    return [evals[i] for i in sorted(keep)]


def _chosen_step(record: dict):
    return record.get("last_step") if record.get("chosen") == "last" else record.get("best_step")


def _metrics_section(record: dict, events: list[dict]) -> list[str]:
    lines = ["## Validation metrics", ""]
    chosen = _chosen_step(record)
    rows = _eval_rows(events, chosen)
    if not rows:
        return lines + ["The stage logged no evaluation.", ""]
    keys = [k for k in dict.fromkeys(k for e in rows for k in e) if k not in ("step", "split")]
    keys = [k for k in keys if any(isinstance(e.get(k), int | float) for e in rows)]
    total = sum(e.get("split") == "eval" for e in events)
    lines += [
        f"What the stage evaluated while training ({total} evaluation(s); `select_by: "
        f"{_settings(record).get('select_by', 'loss')}`, keep `{record.get('chosen')}`: step {chosen}, marked ◀). "
        "Held-out titles or pairs for the losses, the dataset's valid split for the knn / SASRec probes; "
        "the test split is never read by a stage. Every event is in `metrics.jsonl`.",
        "",
        "| step | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for e in rows:
        cells = [f"{e[k]:.4f}" if isinstance(e.get(k), float) else str(e.get(k, "–")) for k in keys]
        mark = " ◀" if e.get("step") == chosen else ""
        lines.append(f"| {e.get('step')}{mark} | " + " | ".join(cells) + " |")
    return lines + [""]


def _dataset_section(record: dict, where: Path) -> list[str]:
    lines = ["## Dataset", "", f"`{record.get('dataset')}`, checksum `{record.get('dataset_checksum')}` "
             "(sha256 over its tables, as `llm2rec prepare` wrote them in `manifest.json`)."]  # fmt: skip
    folder = recorded_model(record.get("dataset"), where)  # a folder the record names, as for models
    manifest = (folder or Path(str(record.get("dataset")))) / "manifest.json"
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return lines + [""]
    counts, source = info.get("counts") or {}, info.get("source") or {}
    lines += ["", f"Source format `{source.get('format')}`; {counts.get('users')} users, {counts.get('items')} "
              f"items, {counts.get('interactions')} interactions; split `{(info.get('settings') or {}).get('split')}`."]  # fmt: skip
    return lines + [""]


def _usage_section(name: str, config: dict) -> list[str]:
    bidirectional = bool(config.get("llm2rec_bidirectional") or config.get("is_causal") is False)
    pooling = config.get("llm2rec_pooling") or ("mean" if bidirectional else "last")
    auto = "AutoModel" if bidirectional else "AutoModelForCausalLM"
    path = f"path/to/{name}"
    lines = [
        "## How to load it",
        "",
        f"Attention: {'bidirectional (`is_causal: false` in config.json)' if bidirectional else 'causal'}; "
        f"llm2rec pools the {'mean of the title tokens' if pooling == 'mean' else 'last token'} for an item vector.",
        "",
        "With transformers (a plain Hugging Face directory, safetensors + tokenizer):",
        "",
        "```python",
        f"from transformers import {auto}, AutoTokenizer",
        "",
        f'model = {auto}.from_pretrained("{path}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{path}")',
        "```",
        "",
        "With llm2rec (`pip install llm2rec`): texts in, one float32 vector per text out:",
        "",
        "```python",
        "from llm2rec import Encoder",
        "",
        f'encoder = Encoder.from_pretrained("{path}")',
        'vectors = encoder.encode(["Digital Caliper 6 inch"], batch_size=64, normalize_embeddings=True)',
        "```",
        "",
    ]
    if pooling != "mean":
        return lines + [
            "sentence-transformers: a causal, last-token model is not exported; the mean-pooled encoders of "
            "the later stages (`mntp`, `contrastive`) are.",
            "",
        ]
    return lines + [
        "With sentence-transformers: export it once (llm2rec checks that the export gives the same vectors), "
        "then load the export:",
        "",
        "```python",
        f'Encoder.from_pretrained("{path}").save_sentence_transformers("{name}-st")',
        "",
        "from sentence_transformers import SentenceTransformer",
        "",
        f'vectors = SentenceTransformer("{name}-st").encode(["Digital Caliper 6 inch"])',
        "```",
        "",
    ]


def model_card(record: dict, events: list[dict], model_config: dict, name: str, where: Path) -> str:
    """The card's Markdown (YAML front matter first, as the Hugging Face hub reads it); ``where`` is the
    folder ``record`` belongs to (the paths it records are relative to it)."""
    chain = [*upstream_records(record, where), record]
    base = str(chain[0].get("model"))
    local_base = recorded_model(base, where if len(chain) == 1 else _folder_of(chain, where))
    if local_base is not None:  # the folder it was, not the relative path the record keeps
        base = os.path.normpath(local_base.absolute())
    licence = _base_licence(base)
    front = ["---", "library_name: transformers", "pipeline_tag: feature-extraction",
             "tags: [llm2rec, recommendation, sequential-recommendation, feature-extraction]"]  # fmt: skip
    front += [f"base_model: {base}"] if _is_hub_id(base) else []
    front += [f"license: {licence}"] if licence else []
    stage = record.get("stage", "?")
    stages = " → ".join(f"`{r.get('stage')}`" for r in chain)
    lines = [
        *front,
        "---",
        "",
        f"# {name}: an llm2rec `{stage}` model",
        "",
        f"`{base}` after {stages}, trained with llm2rec (LLM2Rec, "
        "He et al., KDD 2025: LLM item embeddings for sequential recommendation).",
        "",
        "## Base model",
        "",
        f"`{base}`" + (f" (its card declares `license: {licence}`)." if licence else "."),
        "",
        "## Stages",
        "",
        "Every setting that changes the model (progress and logging settings left out; all of them are in "
        f"`{stage}.json`), upstream first.",
        "",
    ]
    for r in chain:
        lines += _stage_section(r)
    lines += _dataset_section(record, where) + _metrics_section(record, events)
    lines += [
        "## Licence",
        "",
        f"This model is a fine-tune of `{base}`: **the base model's licence applies** to it (read the base "
        "model's card before you publish or use it), and so do the terms of the dataset it was trained on. "
        "llm2rec itself, the code that trained it, is Apache-2.0.",
        "",
        *_usage_section(name, model_config),
    ]
    return "\n".join(lines)


def _folder_of(chain: list[dict], where: Path) -> Path:
    """The folder of the first record of ``chain`` (the one whose ``model`` is the base model)."""
    folder = Path(where)
    for record in reversed(chain[1:]):
        folder = recorded_model(record.get("model"), folder) or folder
    return folder


def write_model_card(model_dir: Path, record: dict, events: list[dict], name: str) -> Path:
    """Write ``model_dir/README.md`` (``model_dir`` holds the chosen model's ``config.json``)."""
    from llm2rec.io import atomic_write_text

    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    path = Path(model_dir) / CARD_FILE
    atomic_write_text(path, model_card(record, events, config, name, Path(model_dir)))
    return path
