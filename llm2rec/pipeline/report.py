"""``llm2rec report RUN`` (also a run's last step): Markdown + self-contained HTML from a run directory.

Reads ``results.json`` (one entry per encoder × recommender), the dataset manifest, each training stage's
``metrics.jsonl`` and ``pipeline.json`` (wall times); writes ``report.md``, ``report.html`` (rendered by
markdown-it-py, images inlined as base64, so the page is one file: :mod:`llm2rec.pipeline.report_html`)
and PNG plots under ``plots/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from llm2rec.io import atomic_write_text
from llm2rec.pipeline.layout import RunLayout
from llm2rec.pipeline.report_groups import group_sections
from llm2rec.pipeline.report_html import markdown_to_html
from llm2rec.pipeline.report_verdict import verdict_section
from llm2rec.train import TRAINING_STAGES
from llm2rec.train.outputs import read_metrics

METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")

# The paper's Table 3, SASRec, R@10 / N@10 (He et al., KDD 2025), for reference only: other datasets.
PAPER_TABLE3_SASREC = {
    "columns": ["Games", "Arts", "Movies", "Sports", "Baby", "Goodreads"],
    "rows": {
        "BERT": [".0585/.0311", ".0650/.0405", ".0447/.0240", ".0860/.0649", ".0114/.0050", ".1479/.0858"],
        "GTE-7B": [".0641/.0349", ".0644/.0394", ".0570/.0300", ".0823/.0584", ".0264/.0142", ".1488/.0851"],
        "BGE": [".0733/.0410", ".0748/.0475", ".0626/.0350", ".0974/.0736", ".0428/.0250", ".1445/.0813"],
        "LLM2Vec (Qwen2-0.5B)": [".0740/.0407", ".0770/.0506", ".0662/.0384", ".1079/.0854", ".0561/.0339", ".1424/.0790"],
        "BLaIR": [".0654/.0361", ".0648/.0379", ".0581/.0315", ".0893/.0614", ".0332/.0180", ".1508/.0860"],
        "EasyRec": [".0647/.0357", ".0658/.0395", ".0528/.0278", ".0887/.0627", ".0271/.0154", ".1445/.0825"],
        "LLMEmb": [".0813/.0487", ".0865/.0601", ".0659/.0390", ".1131/.0936", ".0659/.0439", ".1374/.0778"],
        "LLM2Rec": [".0865/.0521", ".0925/.0637", ".0705/.0429", ".1170/.0976", ".0708/.0503", ".1530/.0897"],
    },
}  # fmt: skip


def _fmt(m: dict | None) -> str:
    if not m:
        return "–"
    std = m.get("std")
    # One seed (or a deterministic baseline) has no spread to report.
    if std is None or len(m.get("per_seed", ())) < 2:
        return f"{m['mean']:.4f}"
    return f"{m['mean']:.4f} ± {std:.4f}"


def results_table(results: dict, describe: bool = True) -> list[str]:
    """Markdown rows; the best mean per (dataset,) recommender and column is in bold. Entries of a
    multi-dataset run get a dataset column."""
    entries = results["entries"]
    multi = any("dataset" in e for e in entries)
    group = lambda e: (e.get("dataset"), e["recommender"])  # noqa: E731
    best = {}
    for e in entries:
        for k in METRICS:
            m = e["metrics"].get(k)
            if m and m["mean"] > best.get((group(e), k), -1):
                best[(group(e), k)] = m["mean"]
    first = "| dataset | recommender |" if multi else "| recommender |"
    lines = [first + " item representation | " + " | ".join(k.upper() for k in METRICS) + " |",
             "|" + "---|" * (2 + multi + len(METRICS))]  # fmt: skip
    for e in entries:
        cells = []
        for k in METRICS:
            m = e["metrics"].get(k)
            text = _fmt(m)
            cells.append(f"**{text}**" if m and m["mean"] == best[(group(e), k)] else text)
        name = f"{e['encoder']}: {e['description']}" if describe else e["encoder"]
        where = f"| {e['dataset']} " if multi else ""
        lines.append(f"{where}| {e['recommender']} | {name} | " + " | ".join(cells) + " |")
    return lines


def plot_stage_curves(layout: RunLayout, plots: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    for stage in TRAINING_STAGES:
        history = read_metrics(layout.training(stage))
        if not history:
            continue
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for split in ("train", "eval"):
            pts = [(e["step"], e["loss"]) for e in history if e.get("split") == split and "loss" in e]
            if pts:
                ax.plot(*zip(*pts), marker="o" if split == "eval" else None, label=f"{split} loss")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.set_title(stage)
        ax.legend()
        fig.tight_layout()
        path = plots / f"{stage}_loss.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out[stage] = path
    return out


def plot_results(results: dict, plots: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = results["entries"]
    if not entries:
        return None
    labels = [
        f"{e['encoder']}\n{e['recommender']}" + (f"\n{e['dataset']}" if "dataset" in e else "")
        for e in entries
    ]
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.1 * len(entries)) * 2, 3.6))
    for ax, key in zip(axes, ("recall@10", "ndcg@10")):
        means = [e["metrics"].get(key, {}).get("mean", 0.0) for e in entries]
        stds = [e["metrics"].get(key, {}).get("std", 0.0) or 0.0 for e in entries]
        ax.bar(range(len(entries)), means, yerr=stds, capsize=3)
        ax.set_xticks(range(len(entries)), labels, fontsize=7)
        ax.set_title(key.upper())
    fig.tight_layout()
    path = plots / "results.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _dataset_line(d: dict) -> str:
    return (f"source `{d['source']}`: {d['users']:,} users, {d['items']:,} items, {d['interactions']:,} "
            f"interactions, mean sequence length {d['mean_sequence_length']:.2f}, density {d['density']:.5f}.")  # fmt: skip


def _single_dataset_sections(results: dict) -> list[str]:
    return [
        "## Dataset",
        "",
        _dataset_line(results["dataset"]),
        "",
        "## Results",
        "",
        *results_table(results),
        "",
    ]


def _multi_dataset_sections(results: dict) -> list[str]:
    """Training union, one results table per evaluation dataset, and the in/out-of-domain summary."""
    u = results["dataset"]
    lines = ["## Datasets", "",
             f"The LLM stages trained on the training parts of {', '.join(results['training_datasets'])}: "
             f"{u['users']:,} users, {u['items']:,} items, {u['csft_pairs']:,} CSFT pairs.", ""]  # fmt: skip
    for name, d in results["datasets"].items():
        where = "in-domain" if d["domain"] == "in" else "out-of-domain"
        lines.append(f"- `{name}` ({where}): {_dataset_line(d)}")
    for name, d in results["datasets"].items():
        where = "in-domain" if d["domain"] == "in" else "out-of-domain"
        rows = {
            "entries": [
                {k: v for k, v in e.items() if k != "dataset"}
                for e in results["entries"]
                if e.get("dataset") == name
            ]
        }
        lines += ["", f"## Results on `{name}` ({where})", "", *results_table(rows, describe=False)]
    for dom, title in (("in", "in-domain"), ("out", "out-of-domain")):
        rows = results["summary"].get(dom) or []
        if rows:
            lines += [
                "",
                f"## Summary, {title}: mean over datasets",
                "",
                "| recommender | item representation | datasets | R@10 | N@10 |",
                "|---|---|---|---|---|",
            ]
            lines += [f"| {r['recommender']} | {r['encoder']} | {r['datasets']} | {r.get('recall@10', 0):.4f} | "
                      f"{r.get('ndcg@10', 0):.4f} |" for r in rows]  # fmt: skip
    return lines + [""]


def build_markdown(layout: RunLayout, results: dict, stage_plots: dict, results_plot: Path | None) -> str:
    state = json.loads(layout.state.read_text()) if layout.state.is_file() else {}
    lines = [
        f"# llm2rec run report: `{layout.root.name}`",
        "",
        f"Backbone `{results['model']}`, preset `{results['preset']}`, seeds {results['seeds']}. Test split, "
        "full ranking over all items, mean ± population std over seeds.",
        "",
        *(_multi_dataset_sections(results) if "datasets" in results else _single_dataset_sections(results)),
    ]
    if results_plot:
        lines += [f"![results](plots/{results_plot.name})", ""]
    lines += verdict_section(results)
    lines += group_sections(results, layout.plots)
    lines += ["## Training curves", ""]
    lines += [f"![{s}](plots/{p.name})" for s, p in stage_plots.items()] or [
        "(no training stage in this run)"
    ]
    lines += ["", "## Wall time per stage", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {rec.get('wall_seconds', '–')} |" for name, rec in state.items()]
    cols = PAPER_TABLE3_SASREC["columns"]
    lines += [
        "",
        "## For reference: the paper's Table 3 (SASRec, R@10 / N@10, other datasets)",
        "",
        "| model | " + " | ".join(cols) + " |",
        "|---|" + "---|" * len(cols),
        *[f"| {name} | " + " | ".join(vals) + " |" for name, vals in PAPER_TABLE3_SASREC["rows"].items()],
        "",
    ]
    return "\n".join(lines)


def write_report(run_dir: str | Path) -> Path:
    layout = RunLayout(Path(run_dir))
    if not layout.results.is_file():
        raise FileNotFoundError(
            f"{layout.results} not found: is {layout.root} a finished `llm2rec run` directory?"
        )
    results = json.loads(layout.results.read_text(encoding="utf-8"))
    layout.plots.mkdir(exist_ok=True)
    stage_plots = plot_stage_curves(layout, layout.plots)
    results_plot = plot_results(results, layout.plots)
    md = build_markdown(layout, results, stage_plots, results_plot)
    atomic_write_text(layout.report_md, md)
    atomic_write_text(layout.report_html, markdown_to_html(md, layout.root))
    return layout.report_md
