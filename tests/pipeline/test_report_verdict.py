from __future__ import annotations

import pytest

from llm2rec.pipeline.report_verdict import is_llm2rec, verdict_section, verdicts, with_id


def _entry(encoder, r10, n10=None, std=0.002, seeds=3, recommender="sasrec", dataset=None):
    n10 = r10 / 2 if n10 is None else n10
    metric = lambda mean: {"mean": mean, "std": std, "per_seed": [mean] * seeds}  # noqa: E731
    entry = {"encoder": encoder, "recommender": recommender,
             "metrics": {"recall@10": metric(r10), "ndcg@10": metric(n10)}}  # fmt: skip
    return {**entry, "dataset": dataset} if dataset else entry


@pytest.mark.parametrize(
    "encoder, llm2rec, text_id",
    [("llm2rec", True, False), ("llm2rec+pairs", True, False), ("llm2rec-causal-mean", True, False),
     ("llm2rec+id", True, True), ("llm2rec+pairs+id", True, True), ("csft-mntp", False, False),
     ("minilm+id", False, True), ("id", False, False), ("raw-mean", False, False)],
)  # fmt: skip
def test_which_rows_are_llm2rec_and_which_carry_ids(encoder, llm2rec, text_id):
    assert is_llm2rec(encoder) is llm2rec and with_id(encoder) is text_id


def test_a_row_clears_another_only_by_more_than_the_larger_std():
    entries = [_entry("llm2rec", 0.150, 0.080), _entry("id", 0.140, 0.070), _entry("minilm", 0.149, 0.070),
               _entry("csft", 0.147, 0.079, std=0.004)]  # fmt: skip
    (v,) = verdicts(entries)
    assert v["encoder"] == "llm2rec" and v["short_of"] == ["minilm", "csft"]
    by_name = {c["encoder"]: c for c in v["against"]}
    assert by_name["id"]["recall@10"] == pytest.approx((0.010, 0.002))
    # R@10 within the std is enough to fall short, however clear N@10 is.
    assert by_name["minilm"]["ndcg@10"][0] > 0.002
    assert by_name["csft"]["recall@10"][1] == 0.004


def test_text_id_rows_meet_only_text_id_rows_and_llm2rec_rows_not_each_other():
    entries = [_entry("llm2rec", 0.150), _entry("llm2rec+pairs", 0.160), _entry("id", 0.100),
               _entry("llm2rec+id", 0.170), _entry("minilm+id", 0.160)]  # fmt: skip
    found = {v["encoder"]: v for v in verdicts(entries)}
    assert [c["encoder"] for c in found["llm2rec"]["against"]] == ["id"]
    assert [c["encoder"] for c in found["llm2rec+id"]["against"]] == ["minilm+id"]
    assert all(not v["short_of"] for v in found.values())


def test_one_seed_rows_and_other_recommenders_and_datasets_stay_apart():
    entries = [_entry("llm2rec", 0.2, seeds=1), _entry("id", 0.1),
               _entry("llm2rec", 0.2, recommender="gru4rec"), _entry("id", 0.3, recommender="sasrec"),
               _entry("llm2rec", 0.2, dataset="a"), _entry("id", 0.1, dataset="a"),
               _entry("id", 0.5, dataset="b")]  # fmt: skip
    found = verdicts(entries)
    # The one-seed row has no spread to judge by; gru4rec has no other row; dataset "a" meets only "a".
    assert [(v["recommender"], v["dataset"]) for v in found] == [("sasrec", "a")]
    assert [c["encoder"] for c in found[0]["against"]] == ["id"] and found[0]["short_of"] == []


def test_section_answers_per_kind_of_row():
    entries = [_entry("llm2rec", 0.150), _entry("llm2rec+pairs", 0.130), _entry("minilm", 0.140),
               _entry("llm2rec+id", 0.150), _entry("minilm+id", 0.149)]  # fmt: skip
    md = "\n".join(verdict_section({"entries": entries}))
    assert "- sasrec, text-only: yes: `llm2rec` (against minilm)." in md
    assert "- sasrec, text+ID: no LLM2Rec row is clearly above every other row (against minilm+id)." in md
    assert "**sasrec, `llm2rec+pairs`**: not clearly above minilm." in md
    assert "| minilm | -0.0100 (std 0.0020): not above |" in md
    assert verdict_section({"entries": [_entry("id", 0.1)]}) == []
