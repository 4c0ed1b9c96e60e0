import json

import numpy as np
import pytest
from typer.testing import CliRunner

from llm2rec.errors import ConfigError, DataFormatError
from llm2rec.seqrec import run_seqrec


def test_results_directory_contract(cyclic_dataset, tmp_path):
    out = tmp_path / "res"
    results = run_seqrec(
        cyclic_dataset.root, model="gru4rec", seeds=(1, 2), out_dir=out, epochs=2, lr=1e-2, progress=False
    )
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["metrics"] == results["metrics"]
    for key in ("recall@10", "ndcg@10", "mrr@10", "recall@5", "ndcg@20"):
        entry = on_disk["metrics"][key]
        assert len(entry["per_seed"]) == 2
        assert entry["mean"] == pytest.approx(np.mean(entry["per_seed"]))
        assert entry["std"] == pytest.approx(np.std(entry["per_seed"]))  # population std by default
    for seed in (1, 2):
        metrics = json.loads((out / f"seed-{seed}" / "metrics.json").read_text())
        assert metrics["test"]["recall@10"] in on_disk["metrics"]["recall@10"]["per_seed"]
        assert len(metrics["curve"]) == metrics["epochs_run"] == 2
        assert (out / f"seed-{seed}" / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "results.csv").read_text().splitlines()[0] == "metric,mean,std,seed_1,seed_2"
    assert "gru4rec (id)" in (out / "results.md").read_text()
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["lr"] == 1e-2 and config["dataset"]["checksum"] == cyclic_dataset.checksum
    with pytest.raises(FileExistsError):
        run_seqrec(cyclic_dataset.root, model="pop", out_dir=out)


def test_popularity_is_deterministic_and_runs_once(cyclic_dataset, tmp_path):
    results = run_seqrec(cyclic_dataset.root, model="pop", out_dir=tmp_path / "pop")
    assert results["seeds"] == ["none"] and results["metrics"]["recall@10"]["std"] == 0.0
    assert (tmp_path / "pop" / "seed-none" / "metrics.json").is_file()


def test_resume_reuses_finished_seeds_with_the_same_settings(cyclic_dataset, tmp_path, monkeypatch):
    import llm2rec.seqrec.run as run_module

    kw = dict(model="sasrec", epochs=1, progress=False, hidden=16, ffn=32, out_dir=tmp_path / "res")
    first = run_seqrec(cyclic_dataset.root, seeds=(1,), **kw)
    trained = []
    real = run_module.run_one_seed
    monkeypatch.setattr(run_module, "run_one_seed", lambda *a, **k: trained.append(a[3]) or real(*a, **k))
    both = run_seqrec(cyclic_dataset.root, seeds=(1, 2), resume=True, **kw)
    assert trained == [2]  # seed 1 came from disk
    assert both["metrics"]["recall@10"]["per_seed"][0] == first["metrics"]["recall@10"]["per_seed"][0]
    assert json.loads((tmp_path / "res" / "config.json").read_text())["seeds"] == [1, 2]
    assert not (tmp_path / "res.work").exists()

    trained.clear()
    with pytest.raises(ConfigError, match="another dropout; pass --overwrite"):  # never silently replaced
        run_seqrec(cyclic_dataset.root, seeds=(1, 2), resume=True, **{**kw, "dropout": 0.1})
    run_seqrec(cyclic_dataset.root, seeds=(1, 2), resume=True, overwrite=True, **{**kw, "dropout": 0.1})
    assert trained == [1, 2]  # another setting: nothing reused


def test_resume_after_an_interruption_keeps_the_seeds_that_finished(cyclic_dataset, tmp_path, monkeypatch):
    import llm2rec.seqrec.run as run_module

    kw = dict(model="sasrec", seeds=(1, 2), epochs=1, progress=False, hidden=16, ffn=32, resume=True)
    real = run_module.run_one_seed

    def dies_on_seed_2(*args, **kwargs):
        if args[3] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "run_one_seed", dies_on_seed_2)
    with pytest.raises(KeyboardInterrupt):
        run_seqrec(cyclic_dataset.root, out_dir=tmp_path / "res", **kw)
    assert not (tmp_path / "res").exists() and (tmp_path / "res.work" / "seed-1" / "metrics.json").is_file()
    trained = []
    monkeypatch.setattr(run_module, "run_one_seed", lambda *a, **k: trained.append(a[3]) or real(*a, **k))
    run_seqrec(cyclic_dataset.root, out_dir=tmp_path / "res", **kw)
    assert trained == [2]


def test_knn_ranks_the_next_item_first_when_vectors_encode_the_walk(cyclic_dataset, tmp_path):
    # Items on a circle in walk order: the last item's nearest neighbours are the one before (seen,
    # removed) and the one after (the target).
    angles = 2 * np.pi * np.arange(31) / 30
    vectors = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    vectors[0] = 0
    path = tmp_path / "circle.npy"
    np.save(path, vectors)
    results = run_seqrec(cyclic_dataset.root, model="knn", embeddings=path, seeds=(1, 2))
    assert results["seeds"] == ["none"]  # deterministic: runs once
    assert results["metrics"]["recall@5"]["mean"] == 1.0 and results["metrics"]["ndcg@5"]["mean"] == 1.0
    with pytest.raises(ConfigError, match="needs --embeddings"):
        run_seqrec(cyclic_dataset.root, model="knn")


def test_knn_is_centred_a_direction_every_item_shares_changes_nothing(cyclic_dataset, tmp_path):
    # The circle of the test above, pushed along one direction shared by every item (as raw LLM vectors
    # are): uncentred, all vectors point within ±12° of it and far-apart items look alike; centred, the
    # circle is back.
    angles = 2 * np.pi * np.arange(31) / 30
    vectors = np.stack([np.cos(angles) + 5.0, np.sin(angles)], axis=1).astype(np.float32)
    vectors[0] = 0
    np.save(tmp_path / "shifted.npy", vectors)
    results = run_seqrec(cyclic_dataset.root, model="knn", embeddings=tmp_path / "shifted.npy")
    assert results["metrics"]["ndcg@5"]["mean"] == 1.0  # the next item first, for every user


def test_same_seed_same_result(cyclic_dataset):
    kw = dict(model="sasrec", seeds=(3,), epochs=1, progress=False, hidden=16, ffn=32)
    assert (
        run_seqrec(cyclic_dataset.root, **kw)["metrics"] == run_seqrec(cyclic_dataset.root, **kw)["metrics"]
    )


def test_bad_settings_are_config_errors(cyclic_dataset):
    with pytest.raises(ConfigError, match="needs --embeddings"):
        run_seqrec(cyclic_dataset.root, item_repr="text")
    with pytest.raises(ConfigError, match="unknown seqrec setting"):
        run_seqrec(cyclic_dataset.root, learning_rate=1)
    with pytest.raises(ConfigError, match="--model must be one of"):
        run_seqrec(cyclic_dataset.root, model="bert4rec")


def test_cli_refuses_a_mismatched_embeddings_file(cyclic_dataset, tmp_path):
    from llm2rec.cli import app

    bad = tmp_path / "vecs.npy"
    np.save(bad, np.zeros((cyclic_dataset.num_items, 8), np.float32))  # one row short: no padding row
    result = CliRunner().invoke(
        app,
        [
            "seqrec",
            "--dataset",
            str(cyclic_dataset.root),
            "--embeddings",
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert isinstance(result.exception, DataFormatError)
    assert "expected 31 rows (row 0 = padding, row i = item i)" in str(result.exception)
    assert not (tmp_path / "o").exists()


def test_cli_runs_text_mode_with_several_seeds(cyclic_dataset, tmp_path):
    from llm2rec.cli import app

    vecs = tmp_path / "v.npy"
    np.save(vecs, np.random.default_rng(0).normal(size=(cyclic_dataset.num_items + 1, 6)).astype(np.float32))
    (tmp_path / "v.json").write_text(
        json.dumps({"num_items": 30, "dim": 6, "dataset_checksum": cyclic_dataset.checksum})
    )
    args = [
        "seqrec",
        "-d",
        str(cyclic_dataset.root),
        "-e",
        str(vecs),
        "--out",
        str(tmp_path / "o"),
        "--seeds",
        "4",
        "5",
    ]
    result = CliRunner().invoke(
        app,
        [
            *args,
            "--epochs",
            "1",
            "--item-repr",
            "text+id",
            "--ks",
            "1,5",
            "--valid-metric",
            "ndcg@5",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "o" / "results.json").read_text())
    assert saved["seeds"] == [4, 5] and saved["item_repr"] == "text+id"
    assert set(saved["metrics"]) == {"recall@1", "ndcg@1", "mrr@1", "recall@5", "ndcg@5", "mrr@5"}


def test_history_exclusion_only_helps_popularity(make_dataset, tmp_path):
    # Everyone buys the two bestsellers first; excluding seen items lets the real targets rise.
    seqs = [[1, 2, 3 + u % 5, 8 + u % 3, 11 + u % 2] for u in range(40)]
    ds = make_dataset(tmp_path / "d", seqs, num_items=12)
    plain = run_seqrec(ds.root, model="pop")["metrics"]
    excluded = run_seqrec(ds.root, model="pop", exclude_history=True)["metrics"]
    assert excluded["ndcg@5"]["mean"] > plain["ndcg@5"]["mean"]


@pytest.mark.parametrize("model", ["sasrec", "gru4rec"])
def test_saved_models_reload_and_rescore_identically(cyclic_dataset, tmp_path, model):
    from llm2rec.seqrec.saved import evaluate_saved

    out = tmp_path / "res"
    run_seqrec(cyclic_dataset.root, model=model, seeds=(1, 2), out_dir=out, epochs=2, hidden=16, ffn=32,
               progress=False)  # fmt: skip
    rescored = evaluate_saved(out)
    assert sorted(rescored) == ["seed-1", "seed-2"]
    for name, scores in rescored.items():
        recorded = json.loads((out / name / "metrics.json").read_text())
        assert scores["test"] == recorded["test"] and scores["valid"] == recorded["valid"]


def test_text_models_carry_their_vectors_and_check_the_embeddings_file(cyclic_dataset, tmp_path):
    from llm2rec.data.vectors import save_item_vectors
    from llm2rec.seqrec.saved import evaluate_saved

    n = cyclic_dataset.num_items
    vectors = np.random.default_rng(0).normal(size=(n + 1, 8)).astype(np.float32)
    vectors[0] = 0
    emb = save_item_vectors(
        tmp_path / "v.npy", vectors, {"num_items": n, "dataset_checksum": cyclic_dataset.checksum}
    )
    out = tmp_path / "res"
    run_seqrec(cyclic_dataset.root, model="sasrec", embeddings=emb, seeds=(3,), out_dir=out, epochs=2,
               hidden=16, ffn=32, progress=False)  # fmt: skip
    recorded = json.loads((out / "seed-3" / "metrics.json").read_text())
    assert evaluate_saved(out)["seed-3"]["test"] == recorded["test"]
    vectors[1] += 1  # another file at the recorded path: the model would be scored with wrong vectors
    save_item_vectors(emb, vectors, {"num_items": n, "dataset_checksum": cyclic_dataset.checksum})
    with pytest.raises(DataFormatError, match="not the embeddings file"):
        evaluate_saved(out)


def test_evaluate_only_on_the_command_line(cyclic_dataset, tmp_path):
    from llm2rec.cli import app

    out = tmp_path / "res"
    run_seqrec(cyclic_dataset.root, model="gru4rec", seeds=(1,), out_dir=out, epochs=1, progress=False)
    r = CliRunner().invoke(app, ["seqrec", "--evaluate-only", str(out)])
    assert r.exit_code == 0, r.output
    recorded = json.loads((out / "seed-1" / "metrics.json").read_text())["test"]["recall@10"]
    assert f"recall@10 {recorded:.4f} (recorded {recorded:.4f})" in r.output
