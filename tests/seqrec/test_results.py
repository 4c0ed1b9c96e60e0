import pytest

from llm2rec.seqrec.results import aggregate, markdown_table, metrics_csv


def test_aggregate_population_and_sample_std():
    runs = [{"recall@10": 0.1}, {"recall@10": 0.2}, {"recall@10": 0.3}]
    pop = aggregate(runs)["recall@10"]
    assert pop["mean"] == pytest.approx(0.2)
    assert pop["std"] == pytest.approx((2 * 0.01 / 3) ** 0.5)
    assert pop["per_seed"] == [0.1, 0.2, 0.3]
    assert aggregate(runs, "sample")["recall@10"]["std"] == pytest.approx(0.1)
    assert aggregate(runs[:1], "sample")["recall@10"]["std"] == 0.0
    with pytest.raises(ValueError):
        aggregate([])


def test_tables():
    agg = aggregate([{"recall@10": 0.1, "ndcg@10": 0.05}, {"recall@10": 0.3, "ndcg@10": 0.07}])
    table = markdown_table({"sasrec": agg, "pop": aggregate([{"recall@10": 0.02}])}, ["recall@10", "ndcg@10"])
    lines = table.splitlines()
    assert lines[0] == "| run | R@10 | N@10 |"
    assert lines[2] == "| sasrec | 0.2000 ± 0.1000 | 0.0600 ± 0.0100 |"
    assert lines[3] == "| pop | 0.0200 | – |"
    assert metrics_csv(agg, [1, 2]).splitlines()[1] == "recall@10,0.200000,0.100000,0.100000,0.300000"
