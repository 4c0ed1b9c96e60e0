"""The report's verdict: is an LLM2Rec row above every other row by more than one seed std?

The question issue 13 asks of every comparison table, answered the same way for every run from
``results.json``: for each recommender trained over several seeds, each LLM2Rec row (an encoder read from a
contrastive stage: ``llm2rec``, ``llm2rec+pairs``, ``llm2rec-causal-mean``) against each other row of its
kind -- text-only rows and ID-only for a text-only LLM2Rec row, text+ID rows for a text+ID one -- on R@10 and
N@10. An LLM2Rec row is *clearly* above another when the difference of their means is larger than the
larger of their two seed stds (the spread one retraining of the recommender can move a mean by).
LLM2Rec rows are not compared with each other: the question is whether one of them beats the rest.
"""

from __future__ import annotations

from llm2rec.embed.registry import ENCODER_NAMES, encoder_spec
from llm2rec.pipeline.plan import WITH_ID

VERDICT_METRICS = ("recall@10", "ndcg@10")
LLM2REC_STAGES = ("contrastive", "contrastive_pairs")


def _base(encoder: str) -> str:
    """The encoder behind a row (``llm2rec+pairs+id`` -> ``llm2rec+pairs``)."""
    return encoder.removesuffix(WITH_ID)


def with_id(encoder: str) -> bool:
    return _base(encoder) != encoder


def is_llm2rec(encoder: str) -> bool:
    base = _base(encoder)
    return base in ENCODER_NAMES and encoder_spec(base).trained_by in LLM2REC_STAGES


def margin(row: dict, other: dict, metric: str) -> tuple[float, float]:
    """The difference of means (row − other) and the larger of the two seed stds."""
    a, b = row["metrics"][metric], other["metrics"][metric]
    return a["mean"] - b["mean"], max(a.get("std") or 0.0, b.get("std") or 0.0)


def _seeded(entry: dict) -> bool:
    return all(len(entry["metrics"].get(m, {}).get("per_seed", ())) >= 2 for m in VERDICT_METRICS)


def _peers(row: dict, entries: list[dict]) -> list[dict]:
    """The rows an LLM2Rec row is judged against: same dataset and recommender, not LLM2Rec, same kind."""
    return [
        e for e in entries
        if e["recommender"] == row["recommender"] and e.get("dataset") == row.get("dataset")
        and not is_llm2rec(e["encoder"]) and with_id(e["encoder"]) == with_id(row["encoder"])
        and all(m in e["metrics"] for m in VERDICT_METRICS)
    ]  # fmt: skip


def verdicts(entries: list[dict]) -> list[dict]:
    """One record per LLM2Rec row (seeded recommenders only): its comparisons and whether it clears all."""
    out = []
    for row in entries:
        peers = _peers(row, entries) if is_llm2rec(row["encoder"]) and _seeded(row) else []
        if not peers:
            continue
        against = [
            {"encoder": e["encoder"], **{m: margin(row, e, m) for m in VERDICT_METRICS}} for e in peers
        ]
        short = [c["encoder"] for c in against if any(c[m][0] <= c[m][1] for m in VERDICT_METRICS)]
        out.append({"dataset": row.get("dataset"), "recommender": row["recommender"],
                    "encoder": row["encoder"], "against": against, "short_of": short})  # fmt: skip
    return out


def _cell(diff: float, spread: float) -> str:
    mark = "above by > 1 std" if diff > spread else ("above, within 1 std" if diff > 0 else "not above")
    return f"{diff:+.4f} (std {spread:.4f}): {mark}"


def verdict_section(results: dict) -> list[str]:
    """Markdown: one table per LLM2Rec row, then whether it clears every other row; [] when none."""
    found = verdicts(results["entries"])
    if not found:
        return []
    lines = ["## Does LLM2Rec beat every other row?", "",
             "Each LLM2Rec row against every other row of its kind (text-only against text-only and ID; "
             "text+ID against text+ID), test split: the difference of means and the larger of the two seed "
             "stds. **Clearly above** means the difference is larger than that std. "
             "(`llm2rec/pipeline/report_verdict.py`)", ""]  # fmt: skip
    lines += [*_answers(found), ""]
    for v in found:
        where = f" on `{v['dataset']}`" if v["dataset"] else ""
        if v["short_of"]:
            answer = f"not clearly above {', '.join(v['short_of'])}"
        else:
            answer = "clearly above every other row of this run on R@10 and N@10"
        lines += [f"**{v['recommender']}, `{v['encoder']}`{where}**: {answer}.", "",
                  "| against | R@10 | N@10 |", "|---|---|---|"]  # fmt: skip
        lines += [f"| {c['encoder']} | " + " | ".join(_cell(*c[m]) for m in VERDICT_METRICS) + " |"
                  for c in v["against"]]  # fmt: skip
        lines.append("")
    return lines


def _answers(found: list[dict]) -> list[str]:
    """One line per dataset × recommender × kind of row: which LLM2Rec row, if any, clears every other, and
    which rows of this run that means (a run without the ID or MiniLM rows answers only for the rows it has)."""
    groups: dict[tuple, tuple[list[str], list[str]]] = {}
    for v in found:
        winners, judged = groups.setdefault((v["dataset"], v["recommender"], with_id(v["encoder"])), ([], []))
        if not v["short_of"]:
            winners.append(v["encoder"])
        judged += [c["encoder"] for c in v["against"] if c["encoder"] not in judged]
    lines = []
    for (dataset, recommender, text_id), (winners, judged) in groups.items():
        where = f"`{dataset}`, " if dataset else ""
        kind = "text+ID" if text_id else "text-only"
        answer = (f"yes: {', '.join(f'`{w}`' for w in winners)}" if winners
                  else "no LLM2Rec row is clearly above every other row")  # fmt: skip
        lines.append(f"- {where}{recommender}, {kind}: {answer} (against {', '.join(judged)}).")
    return lines
