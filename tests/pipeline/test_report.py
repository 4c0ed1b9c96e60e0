from __future__ import annotations

import json

import pytest

from llm2rec.pipeline.report import markdown_to_html, results_table, write_report


def _entry(encoder, r10, seeds=2):
    keys = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
    per_seed = [r10 - 0.001, r10 + 0.001][:seeds] if seeds > 1 else [r10]
    return {"encoder": encoder, "recommender": "sasrec", "description": f"{encoder} vectors",
            "metrics": {k: {"mean": r10, "std": 0.001 if seeds > 1 else 0.0, "per_seed": per_seed}
                        for k in keys}}  # fmt: skip


def _results():
    dataset = {"source": "builtin", "users": 10, "items": 5, "interactions": 50, "mean_sequence_length": 5.0,
               "density": 1.0}  # fmt: skip
    return {"dataset": dataset, "model": "tiny", "preset": "cpu", "seeds": [1],
            "entries": [_entry("id", 0.1), _entry("llm2rec", 0.2)]}  # fmt: skip


def test_best_per_column_is_bold():
    lines = results_table(_results())
    assert "**0.2000 ± 0.0010**" in lines[-1] and "**" not in lines[-2]
    assert "llm2rec: llm2rec vectors" in lines[-1]


def test_one_seed_shows_no_spread_and_the_console_table_is_short():
    results = {**_results(), "entries": [_entry("id", 0.1, seeds=1)]}
    (line,) = results_table(results, describe=False)[2:]
    assert "±" not in line and "| id |" in line and "vectors" not in line


def test_report_files(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_results()))
    (tmp_path / "csft").mkdir()
    events = [{"split": "train", "step": s, "loss": 3.0 - s / 10} for s in range(1, 6)]
    events.append({"split": "eval", "step": 5, "loss": 2.5})
    (tmp_path / "csft" / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "pipeline.json").write_text(json.dumps({"csft": {"wall_seconds": 12.5}}))
    md = write_report(tmp_path).read_text()
    assert "![csft](plots/csft_loss.png)" in md and "| csft | 12.5 |" in md and "Table 3" in md
    assert (
        "## Does LLM2Rec beat every other row?" in md
        and "- sasrec, text-only: yes: `llm2rec` (against id)." in md
    )
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html
    assert "<li>sasrec, text-only: yes: <code>llm2rec</code> (against id).</li>" in html  # a list, not <p>-
    assert (tmp_path / "plots" / "results.png").stat().st_size > 1000


def test_missing_results_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="results.json"):
        write_report(tmp_path)


PNG = bytes.fromhex(  # a 1x1 PNG
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def test_html_renders_lists_links_tables_and_inlines_images(tmp_path):
    # issue 36 §5: a real Markdown library; the hand-written converter made <p>- item</p> of a list and
    # left links as text
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "p.png").write_bytes(PNG)
    md = "\n".join([
        "# Report `run`", "", "Some **bold** text and [the paper](https://arxiv.org/abs/2506.21579).", "",
        "- first item", "- second item with `code`", "", "1. one", "2. two", "",
        "| model | R@10 |", "|---|---:|", "| **llm2rec** | 0.1508 |", "| id | 0.1440 |", "",
        "![results](plots/p.png)", "", "![gone](plots/missing.png)", "", "<script>alert(1)</script>",
    ])  # fmt: skip
    page = markdown_to_html(md, tmp_path)
    assert page.startswith("<!doctype html>") and "<style>" in page
    assert "<h1>Report <code>run</code></h1>" in page and "<strong>bold</strong>" in page
    assert '<a href="https://arxiv.org/abs/2506.21579">the paper</a>' in page
    assert "<ul>\n<li>first item</li>\n<li>second item with <code>code</code></li>\n</ul>" in page
    assert "<ol>\n<li>one</li>" in page and "<p>-" not in page
    assert "<table>" in page and "<th>model</th>" in page and "<td><strong>llm2rec</strong></td>" in page
    assert page.count("data:image/png;base64,") == 1 and 'alt="results"' in page
    assert "plots/p.png" not in page  # self-contained: no reference to a file beside it
    assert "[image not found: gone]" in page and "plots/missing.png" not in page
    assert "<script>" not in page and "&lt;script&gt;" in page  # raw HTML is escaped
