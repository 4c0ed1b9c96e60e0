"""The report's per-group tables (popularity, repeat / new, warm / cold) and the R@10-by-popularity plot."""

from __future__ import annotations

from pathlib import Path

from llm2rec.seqrec.groups import COLD_GROUPS, HISTORY_GROUPS, POPULARITY_GROUPS

GROUP_METRIC = "recall@10"
PARTITIONS = (("popularity", POPULARITY_GROUPS), ("repeat or new target", HISTORY_GROUPS),
              ("warm or cold target", COLD_GROUPS))  # fmt: skip


def group_sections(results: dict, plots: Path) -> list[str]:
    """Markdown sections (one table per partition that the entries have), plus the plot's image line."""
    entries = [e for e in results["entries"] if e.get("group_metrics")]
    if not entries:
        return []
    lines = ["## Results by target group", "",
             "Test R@10 (N@10) per group of test targets; `llm2rec/seqrec/groups.py` defines them (popularity: "
             "three groups of items that each hold a third of the training interactions, most popular first); "
             "each table's heading gives the number of test rows per group.", ""]  # fmt: skip
    for title, names in PARTITIONS:
        present = [n for n in names if n in entries[0]["group_metrics"]]
        if not present:
            continue
        sizes = " / ".join(f"{n} {entries[0]['group_metrics'][n]['rows']:,}" for n in present)
        lines += [f"**{title}** ({sizes} rows)", "",
                  "| recommender | item representation | " + " | ".join(present) + " |",
                  "|" + "---|" * (2 + len(present))]  # fmt: skip
        for e in entries:
            where = f" ({e['dataset']})" if "dataset" in e else ""
            cells = [_cell(e["group_metrics"].get(n, {})) for n in present]
            lines.append(f"| {e['recommender']} | {e['encoder']}{where} | " + " | ".join(cells) + " |")
        lines.append("")
    path = plot_popularity(entries, plots)
    return lines + ([f"![R@10 by popularity group](plots/{path.name})", ""] if path else [])


def _cell(group: dict) -> str:
    if GROUP_METRIC not in group:
        return "–"
    return f"{group[GROUP_METRIC]['mean']:.4f} ({group['ndcg@10']['mean']:.4f})"


def plot_popularity(entries: list[dict], plots: Path) -> Path | None:
    """Grouped bars: R@10 on head / torso / tail targets, one bar per encoder × recommender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    entries = [e for e in entries if all(g in e["group_metrics"] for g in POPULARITY_GROUPS)]
    if not entries:
        return None
    width = 0.8 / len(entries)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(entries) + 4), 3.6))
    for k, e in enumerate(entries):
        values = [e["group_metrics"][g].get(GROUP_METRIC, {}).get("mean", 0.0) for g in POPULARITY_GROUPS]
        label = f"{e['encoder']} {e['recommender']}" + (f" ({e['dataset']})" if "dataset" in e else "")
        ax.bar(np.arange(3) + k * width, values, width, label=label)
    ax.set_xticks(np.arange(3) + 0.4 - width / 2, POPULARITY_GROUPS)
    ax.set_ylabel("test R@10")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = plots / "recall_by_popularity.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
