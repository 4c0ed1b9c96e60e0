"""The summary a training command prints: the probe line must say whether the kept step's margin is
larger than the probe's own paired standard error."""

from __future__ import annotations

from llm2rec.cli.train import _report_evals


def test_probe_line_states_the_kept_steps_margin_against_its_paired_error(capsys):
    probes = [
        {"step": 6, "knn_recall@20": 0.1523, "knn_recall@20_se": 0.0066},
        {
            "step": 12,
            "knn_recall@20": 0.1501,
            "knn_recall@20_vs_best": -0.0022,
            "knn_recall@20_vs_best_se": 0.003,
        },
        {
            "step": 24,
            "knn_recall@20": 0.1537,
            "knn_recall@20_vs_best": 0.0014,
            "knn_recall@20_vs_best_se": 0.0031,
        },
    ]
    _report_evals([], probes, "knn_recall@20")
    line = capsys.readouterr().out.strip()
    assert line == (
        "valid knn Recall@20 0.1523 (step 6) → best 0.1537 (step 24), +0.0014 over the best evaluation "
        "before it (paired SE 0.0031)"
    )


def test_probe_line_without_a_paired_comparison_names_only_the_steps(capsys):
    _report_evals([], [{"step": 5, "sasrec_recall@20": 0.2}], "sasrec_recall@20")
    assert capsys.readouterr().out.strip() == "valid sasrec Recall@20 0.2000 (step 5) → best 0.2000 (step 5)"
