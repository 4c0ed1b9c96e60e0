"""A corpus of broken inputs, as a hostile new user would try them, against every command.

Each case builds its inputs in a temporary directory and runs the real entry point (``llm2rec.cli.main``,
in process). Every one must end with exit code 2, exactly one ``error:`` line naming what is wrong (the
file, line or key), no traceback, and nothing left behind at the output path.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.data.sources.fixtures import META, REVIEWS, meta_line, review_line, write_amazon2023, write_lines


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A small prepared dataset (built-in generator) shared by the seqrec / stats / export cases."""
    from llm2rec.config import dataset_spec
    from llm2rec.data.prepare import prepare_from_spec

    out = tmp_path_factory.mktemp("bad") / "ds"
    prepare_from_spec(dataset_spec(format="builtin", num_users=200, num_items=120), out)
    return out


def _vectors(tmp: Path, dataset: Path, array=None, meta=None, name="v.npy") -> Path:
    from llm2rec.data.dataset import Dataset

    n = Dataset.load(dataset).num_items
    array = np.random.default_rng(0).normal(size=(n + 1, 8)).astype(np.float32) if array is None else array
    path = tmp / name
    np.save(path, array(n) if callable(array) else array)
    if meta is not None:
        path.with_suffix(".json").write_bytes(meta if isinstance(meta, bytes) else json.dumps(meta).encode())
    return path


def _amazon(tmp: Path, reviews=None, meta=None) -> list[str]:
    r = write_lines(tmp / "Cat.jsonl", reviews or [review_line(*x) for x in REVIEWS * 3])
    m = write_lines(tmp / "meta_Cat.jsonl", meta or [meta_line(k, t) for k, t in META.items()])
    return ["prepare", "--format", "amazon2023", "--input", r, m, "--kcore", 0, "--out", tmp / "out"]


def _generic(tmp: Path, events: str, items: str | None = None, *options: str) -> list:
    (tmp / "events.csv").write_text(events)
    paths = [tmp / "events.csv"]
    if items is not None:
        name = "items.jsonl" if items.lstrip().startswith("{") else "items.csv"
        (tmp / name).write_text(items)
        paths.append(tmp / name)
    extra = [x for o in options for x in ("--option", o)]
    return ["prepare", "--format", "generic", "--input", *paths, "--kcore", 0, *extra, "--out", tmp / "out"]


EVENTS = "user_id,item_id,timestamp\n" + "".join(
    f"u{u},i{i},{1600000000000 + 1000 * (3 * u + i)}\n" for u in range(4) for i in range(3)
)
EVENTS_IN_SECONDS = "user_id,item_id,timestamp\n" + "".join(
    f"u{u},i{i},{1600000000 + 3 * u + i}\n" for u in range(4) for i in range(3)
)
ITEMS = "item_id,title\n" + "".join(f"i{i},Item {i}\n" for i in range(3))


def _config(tmp: Path, text: str | bytes, *more) -> list:
    path = tmp / "run.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["run", path, "--out", tmp / "out", *more]


def _readonly_dir(tmp: Path) -> Path:
    """A place no one may create a directory in. Root ignores permission bits (``os.access`` says yes),
    so there it is ``/proc``, a pseudo file system: only trying to create tells."""
    if os.geteuid() == 0:
        if not Path("/proc/self").is_dir():
            pytest.skip("root ignores directory permissions and there is no /proc here")
        return Path("/proc")
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    return ro


def _loop(tmp: Path) -> Path:
    """Two symbolic links that point at each other."""
    (tmp / "loop-a").symlink_to(tmp / "loop-b")
    (tmp / "loop-b").symlink_to(tmp / "loop-a")
    return tmp / "loop-a"


def _under_a_file(tmp: Path) -> Path:
    (tmp / "file").write_text("x")
    return tmp / "file" / "out"


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _copy_dataset(dataset: Path, tmp: Path) -> Path:
    import shutil

    return Path(shutil.copytree(dataset, tmp / "ds"))


# (id, build(tmp, dataset) -> argv, text the error line must contain)
CASES = [
    # ---------------------------------------------------------------- prepare: options
    ("unknown-format", lambda t, d: ["prepare", "--format", "nope", "--input", t, "--out", t / "out"], "unknown --format"),
    ("missing-input", lambda t, d: ["prepare", "--format", "recbole", "--input", t / "none.inter", "--out", t / "out"], "none.inter"),
    ("no-input", lambda t, d: ["prepare", "--format", "recbole", "--out", t / "out"], "--input is required"),
    ("negative-kcore", lambda t, d: ["prepare", "--format", "builtin", "--kcore", -1, "--out", t / "out"], "kcore"),
    ("zero-history", lambda t, d: ["prepare", "--format", "builtin", "--max-history", 0, "--out", t / "out"], "max_history"),
    ("unknown-split", lambda t, d: ["prepare", "--format", "builtin", "--split", "nope", "--out", t / "out"], "split"),
    ("decreasing-cutoffs", lambda t, d: ["prepare", "--format", "builtin", "--split", "temporal", "--cutoffs", 5, 1, "--out", t / "out"], "cut-offs must be increasing"),
    ("builtin-zero-users", lambda t, d: ["prepare", "--format", "builtin", "--num-users", 0, "--out", t / "out"], "num_users"),
    ("builtin-one-item", lambda t, d: ["prepare", "--format", "builtin", "--num-items", 1, "--out", t / "out"], "num_items"),
    ("builtin-too-few-items", lambda t, d: ["prepare", "--format", "builtin", "--num-items", 10, "--out", t / "out"], "--num-items"),
    ("set-yaml-error", lambda t, d: ["prepare", "--format", "builtin", "--set", "kcore=[1", "--out", t / "out"], "not valid YAML"),
    ("set-unknown-key", lambda t, d: ["prepare", "--format", "builtin", "--set", "kcroe=3", "--out", t / "out"], "kcroe"),
    ("set-wrong-type", lambda t, d: ["prepare", "--format", "builtin", "--set", "kcore=five", "--out", t / "out"], "dataset.kcore"),
    ("option-without-value", lambda t, d: ["prepare", "--format", "builtin", "--option", "novalue", "--out", t / "out"], "key=value"),
    ("temporal-outside-data", lambda t, d: ["prepare", "--format", "builtin", "--split", "temporal", "--cutoffs", 1, 2, "--out", t / "out"], "the data spans"),
    ("kcore-too-high", lambda t, d: ["prepare", "--format", "builtin", "--num-users", 50, "--kcore", 500, "--out", t / "out"], "no interactions are left"),
    # ---------------------------------------------------------------- prepare: where the output goes
    ("out-is-cwd", lambda t, d: (os.chdir(t), ["prepare", "--format", "builtin", "--out", "."])[1], "working directory"),
    ("out-is-root", lambda t, d: ["prepare", "--format", "builtin", "--out", "/", "--overwrite"], "filesystem root"),
    ("out-is-home", lambda t, d: ["prepare", "--format", "builtin", "--out", Path.home(), "--overwrite"], "home directory"),
    ("out-below-a-file", lambda t, d: ["prepare", "--format", "builtin", "--out", _under_a_file(t)], "is a file"),
    ("out-read-only", lambda t, d: ["prepare", "--format", "builtin", "--out", _readonly_dir(t) / "out"], "not writable"),
    ("overwrite-input-dir", lambda t, d: _generic(t, EVENTS, ITEMS)[:-1] + [t, "--overwrite"], "holds the input"),
    ("overwrite-parent-of-input", lambda t, d: ((t / "raw").mkdir(), _generic(t / "raw", EVENTS, ITEMS)[:-1] + [t, "--overwrite"])[1], "holds the input"),
    ("overwrite-foreign-dir", lambda t, d: ((t / "out").mkdir(), (t / "out" / "thesis.tex").write_text("x"), ["prepare", "--format", "builtin", "--out", t / "out", "--overwrite"])[2], "did not write"),
    ("out-exists", lambda t, d: ((t / "out").mkdir(), (t / "out" / "a").write_text("x"), ["prepare", "--format", "builtin", "--out", t / "out"])[2], "did not write"),
    # ---------------------------------------------------------------- prepare: Amazon 2023 files
    ("amazon-malformed-json", lambda t, d: _amazon(t, reviews=[review_line(*REVIEWS[0]), "{not json"]), "Cat.jsonl:2"),
    ("amazon-review-not-object", lambda t, d: _amazon(t, reviews=["[1, 2]"]), "Cat.jsonl:1"),
    ("amazon-title-dict", lambda t, d: _amazon(t, meta=[meta_line("B01CUPMQZE", {"en": "x"})]), "item B01CUPMQZE"),
    ("amazon-title-int", lambda t, d: _amazon(t, meta=[meta_line("B01CUPMQZE", 7)]), "not int"),
    ("amazon-title-bool", lambda t, d: _amazon(t, meta=[meta_line("B01CUPMQZE", True)]), "not bool"),
    ("amazon-no-meta", lambda t, d: ["prepare", "--format", "amazon2023", "--input", write_amazon2023(t)[0], "--out", t / "out"], "no metadata file"),
    ("amazon-empty-file", lambda t, d: ((t / "Cat.jsonl").write_bytes(b""), ["prepare", "--format", "amazon2023", "--input", t / "Cat.jsonl", write_amazon2023(t)[1], "--out", t / "out"])[1], "Cat.jsonl"),
    ("amazon-truncated-gzip", lambda t, d: ((t / "Cat.jsonl.gz").write_bytes(gzip.compress(b"\n".join(review_line(*r).encode() for r in REVIEWS))[:40]), ["prepare", "--format", "amazon2023", "--input", t / "Cat.jsonl.gz", write_amazon2023(t)[1], "--out", t / "out"])[1], "Cat.jsonl.gz"),
    ("amazon-not-utf8", lambda t, d: ((t / "Cat.jsonl").write_bytes(review_line(*REVIEWS[0]).encode() + b"\n\xff\xfe\n"), ["prepare", "--format", "amazon2023", "--input", t / "Cat.jsonl", write_amazon2023(t)[1], "--out", t / "out"])[1], "Cat.jsonl:2"),
    ("amazon-missing-user", lambda t, d: _amazon(t, reviews=[json.dumps({"parent_asin": "B01CUPMQZE", "timestamp": 1600000000000, "rating": 5})]), "Cat.jsonl:1"),
    ("amazon-bad-timestamp", lambda t, d: _amazon(t, reviews=[review_line("U1", "B01CUPMQZE", "soon", 5.0)]), "Cat.jsonl:1"),
    # ---------------------------------------------------------------- prepare: generic tables
    ("generic-missing-column", lambda t, d: _generic(t, "user,item\nu,i\n", ITEMS), "no 'timestamp' column"),
    ("generic-missing-user-column", lambda t, d: _generic(t, "user,item,timestamp\nu,i,1600000000000\n", ITEMS), "user_id"),
    ("generic-seconds-read-as-ms", lambda t, d: _generic(t, EVENTS_IN_SECONDS, ITEMS, "time_unit=ms"), "time_unit=ms"),
    ("generic-ms-read-as-seconds", lambda t, d: _generic(t, EVENTS, ITEMS, "time_unit=s"), "time_unit=s"),
    ("generic-bad-time-unit", lambda t, d: _generic(t, EVENTS, ITEMS, "time_unit=hours"), "time_unit"),
    ("generic-unknown-option", lambda t, d: _generic(t, EVENTS, ITEMS, "colour=red"), "colour"),
    ("generic-title-dict", lambda t, d: _generic(t, EVENTS, '{"item_id": "i0", "title": {"en": "x"}}\n'), "item i0"),
    ("generic-title-int", lambda t, d: _generic(t, EVENTS, '{"item_id": "i0", "title": 1984}\n'), "not int"),
    ("generic-empty-user", lambda t, d: _generic(t, EVENTS + ",i0,1600000000000\n", ITEMS), "events.csv:14"),
    ("generic-bad-timestamp", lambda t, d: _generic(t, EVENTS + "u1,i0,later\n", ITEMS), "events.csv:14"),
    ("generic-empty-events", lambda t, d: _generic(t, "", ITEMS), "events.csv"),
    # ---------------------------------------------------------------- data stats / export: broken datasets
    ("stats-not-a-dataset", lambda t, d: ["data", "stats", t], "not a prepared dataset"),
    ("stats-manifest-invalid-json", lambda t, d: ((_copy_dataset(d, t) / "manifest.json").write_text("{"), ["data", "stats", t / "ds"])[1], "manifest.json: not valid JSON"),
    ("stats-manifest-list", lambda t, d: ((_copy_dataset(d, t) / "manifest.json").write_text("[]"), ["data", "stats", t / "ds"])[1], "expected a JSON object"),
    ("stats-manifest-no-counts", lambda t, d: (_edit_manifest(_copy_dataset(d, t), drop="counts"), ["data", "stats", t / "ds"])[1], "counts"),
    ("stats-truncated-parquet", lambda t, d: (_truncate(_copy_dataset(d, t) / "items.parquet"), ["data", "stats", t / "ds"])[1], "items.parquet"),
    ("stats-missing-parquet", lambda t, d: ((_copy_dataset(d, t) / "items.parquet").unlink(), ["data", "stats", t / "ds"])[1], "items.parquet is missing"),
    ("export-missing-parquet", lambda t, d: ((_copy_dataset(d, t) / "test.parquet").unlink(), ["export", t / "ds", t / "out"])[1], "test.parquet is missing"),
    ("export-onto-its-dataset", lambda t, d: ["export", _copy_dataset(d, t), t / "ds", "--overwrite"], "holds the input"),
    ("export-unknown-format", lambda t, d: ["export", d, t / "out", "--format", "nope"], "unknown export format"),
    ("export-foreign-dir", lambda t, d: ((t / "out").mkdir(), (t / "out" / "notes.txt").write_text("x"), ["export", d, t / "out", "--overwrite"])[2], "did not write"),
    # ---------------------------------------------------------------- seqrec: vector files
    ("vectors-all-zero", lambda t, d: _seqrec(t, d, _vectors(t, d, lambda n: np.zeros((n + 1, 8), np.float32))), "all zeros"),
    ("vectors-constant", lambda t, d: _seqrec(t, d, _vectors(t, d, lambda n: np.vstack([np.zeros((1, 8)), np.ones((n, 8))]).astype(np.float32))), "same vector"),
    ("vectors-zero-columns", lambda t, d: _seqrec(t, d, _vectors(t, d, lambda n: np.zeros((n + 1, 0), np.float32))), "zero columns"),
    ("vectors-npz-named-npy", lambda t, d: _seqrec(t, d, _npz_as_npy(t)), ".npz archive"),
    ("vectors-empty-file", lambda t, d: ((t / "v.npy").write_bytes(b""), _seqrec(t, d, t / "v.npy"))[1], "0 bytes"),
    ("vectors-sidecar-list", lambda t, d: _seqrec(t, d, _vectors(t, d, meta=[1, 2])), "must be a JSON object"),
    ("vectors-sidecar-num-items-text", lambda t, d: _seqrec(t, d, _vectors(t, d, meta={"num_items": "abc"})), "num_items"),
    ("vectors-sidecar-num-items-null", lambda t, d: _seqrec(t, d, _vectors(t, d, meta={"num_items": None})), "num_items"),
    ("vectors-sidecar-not-utf8", lambda t, d: _seqrec(t, d, _vectors(t, d, meta=b"\xff\xfe{}")), "not UTF-8"),
    ("vectors-sidecar-bad-json", lambda t, d: _seqrec(t, d, _vectors(t, d, meta=b"{nope")), "invalid JSON"),
    ("vectors-wrong-rows", lambda t, d: _seqrec(t, d, _vectors(t, d, lambda n: np.ones((n, 8), np.float32))), "rows"),
    ("vectors-float64", lambda t, d: _seqrec(t, d, _vectors(t, d, lambda n: np.random.default_rng(0).normal(size=(n + 1, 8)))), "float64"),
    ("vectors-nan", lambda t, d: _seqrec(t, d, _vectors(t, d, lambda n: np.full((n + 1, 8), np.nan, np.float32))), "NaN"),
    ("vectors-missing", lambda t, d: _seqrec(t, d, t / "none.npy"), "none.npy"),
    ("vectors-not-npy", lambda t, d: ((t / "v.txt").write_text("1 2"), _seqrec(t, d, t / "v.txt"))[1], ".npy"),
    ("vectors-other-dataset", lambda t, d: _seqrec(t, d, _vectors(t, d, meta={"dataset_checksum": "0" * 64})), "another order"),
    # ---------------------------------------------------------------- seqrec: options and outputs
    ("seqrec-unknown-model", lambda t, d: ["seqrec", "-d", d, "--model", "nope", "--out", t / "out"], "--model"),
    ("seqrec-bad-ks", lambda t, d: ["seqrec", "-d", d, "--ks", "5,x", "--out", t / "out"], "--ks"),
    ("seqrec-set-wrong-type", lambda t, d: ["seqrec", "-d", d, "--set", "epochs=five", "--out", t / "out"], "seqrec.epochs"),
    ("seqrec-set-unknown", lambda t, d: ["seqrec", "-d", d, "--set", "epoch=5", "--out", t / "out"], "epoch"),
    ("seqrec-knn-needs-vectors", lambda t, d: ["seqrec", "-d", d, "--model", "knn", "--out", t / "out"], "--embeddings"),
    ("seqrec-out-is-dataset", lambda t, d: ["seqrec", "-d", _copy_dataset(d, t), "--out", t / "ds", "--overwrite"], "holds the input"),
    ("seqrec-not-a-dataset", lambda t, d: ["seqrec", "-d", t, "--out", t / "out"], "not a prepared dataset"),
    # ---------------------------------------------------------------- run: configs
    ("run-config-missing", lambda t, d: ["run", t / "none.yaml", "--out", t / "out"], "none.yaml"),
    ("run-yaml-syntax", lambda t, d: _config(t, "dataset: [1,\n"), "not valid YAML"),
    ("run-duplicate-key", lambda t, d: _config(t, "preset: cpu\npreset: paper\n"), "'preset' appears twice"),
    ("run-not-utf8", lambda t, d: _config(t, b"model: \xff\n"), "not UTF-8"),
    ("run-not-a-mapping", lambda t, d: _config(t, "- a\n- b\n"), "mapping"),
    ("run-kcore-text", lambda t, d: _config(t, "dataset: {kcore: five}\n"), "config.dataset.kcore"),
    ("run-seeds-int", lambda t, d: _config(t, "seqrec: {seeds: 2024}\n"), "config.seqrec.seeds"),
    ("run-cutoffs-int", lambda t, d: _config(t, "dataset: {cutoffs: 5}\n"), "config.dataset.cutoffs"),
    ("run-min-rating-text", lambda t, d: _config(t, "dataset: {min_rating: high}\n"), "config.dataset.min_rating"),
    ("run-workers-text", lambda t, d: _config(t, "seqrec: {workers: two}\n"), "config.seqrec.workers"),
    ("run-dataset-null", lambda t, d: _config(t, "dataset:\n"), "config.dataset"),
    ("run-seqrec-null", lambda t, d: _config(t, "seqrec:\n"), "config.seqrec"),
    ("run-unknown-key", lambda t, d: _config(t, "datset: {}\n"), "config.datset"),
    ("run-unknown-encoder", lambda t, d: _config(t, "encoders: [id, bert]\n"), "unknown encoder"),
    ("run-set-yaml-error", lambda t, d: _config(t, "preset: cpu\n", "--set", "seqrec.seeds=[1"), "not valid YAML"),
    ("run-unknown-stage-setting", lambda t, d: _config(t, "encoders: [csft]\ncsft: {learning_rate: 0.1}\n"), "learning_rate"),
    ("run-stage-setting-wrong-type", lambda t, d: _config(t, "encoders: [csft]\ncsft: {lr: fast}\n"), "lr"),
    ("run-seqrec-option-wrong-type", lambda t, d: _config(t, "seqrec: {options: {epochs: five}}\n"), "seqrec.epochs"),
    ("run-unknown-preset", lambda t, d: _config(t, "encoders: [csft]\npreset: laptop\n"), "unknown preset"),
    ("run-out-holds-input", lambda t, d: ((t / "raw").mkdir(), ["run", _write(t / "raw" / "c.yaml", f"dataset: {{format: recbole, input: [{t / 'raw'}]}}\n"), "--out", t])[1], "holds the input"),
    ("run-input-string-missing", lambda t, d: _config(t, f"dataset: {{format: recbole, input: {t / 'nope.inter'}, kcore: 0}}\nencoders: [id]\n"), "nope.inter"),
    ("run-unknown-format", lambda t, d: _config(t, "dataset: {format: nope}\nencoders: [id]\n"), "unknown --format"),
    ("run-input-symlink-loop", lambda t, d: _config(t, f"dataset: {{format: recbole, input: [{_loop(t)}]}}\nencoders: [id]\n"), "input not found"),
    ("prepare-input-symlink-loop", lambda t, d: ["prepare", "--format", "recbole", "--input", _loop(t), "--out", t / "out"], "input not found"),
    ("seqrec-embeddings-symlink-loop", lambda t, d: ["seqrec", "-d", d, "--model", "sasrec", "--embeddings", _loop(t), "--out", t / "out"], "does not exist"),
    ("run-force-unknown", lambda t, d: _config(t, "encoders: [id]\n", "--force", "csfft"), "--force"),
    ("sasrec-all-zero-vectors", lambda t, d: ["seqrec", "-d", d, "--embeddings", _vectors(t, d, lambda n: np.zeros((n + 1, 8), np.float32)), "--epochs", 2, "--seeds", 2024, "--out", t / "out"], "all zeros"),
    # ---------------------------------------------------------------- training stages: outputs and settings
    ("csft-out-is-dataset", lambda t, d: ["csft", "-d", _copy_dataset(d, t), "--out", t / "ds", "--preset", "cpu"], "holds the input"),
    ("csft-out-foreign-dir", lambda t, d: ((t / "out").mkdir(), (t / "out" / "a.txt").write_text("x"), ["csft", "-d", d, "--out", t / "out", "--preset", "cpu"])[2], "did not write"),
    ("csft-set-wrong-type", lambda t, d: ["csft", "-d", d, "--out", t / "out", "--preset", "cpu", "--set", "lr=fast"], "CSFTConfig.lr"),
    ("csft-unknown-setting", lambda t, d: ["csft", "-d", d, "--out", t / "out", "--set", "learning_rate=1"], "learning_rate"),
    ("mntp-out-is-cwd", lambda t, d: (os.chdir(t), ["mntp", "--model", "smollm2-135m", "-d", d, "--out", ".", "--preset", "cpu"])[1], "working directory"),
    ("contrastive-unknown-preset", lambda t, d: ["contrastive", "--model", "smollm2-135m", "-d", d, "--out", t / "out", "--preset", "laptop"], "unknown preset"),
    ("contrastive-bad-batch", lambda t, d: ["contrastive", "--model", "smollm2-135m", "-d", d, "--out", t / "out", "--preset", "cpu", "--micro-batch", 32, "--batch-size", 16], "micro_batch"),
    # ---------------------------------------------------------------- download / embed
    ("download-out-read-only", lambda t, d: ["data", "download", "All_Beauty", "--out", _readonly_dir(t) / "out"], "not writable"),
    ("download-out-is-a-file", lambda t, d: ["data", "download", "All_Beauty", "--out", _write(t / "out", "x")], "is not a directory"),
    ("download-out-below-a-file", lambda t, d: ["data", "download", "All_Beauty", "--out", _under_a_file(t)], "is a file"),
    ("download-unknown-category", lambda t, d: ["data", "download", "Video_Gamez", "--out", t / "out"], "Video_Gamez"),
    ("download-unknown-kind", lambda t, d: ["data", "download", "Video_Games", "--kind", "nope", "--out", t / "out"], "kind"),
    ("embed-out-not-npy", lambda t, d: ["embed", "--encoder", "smollm2-135m", "-d", d, "--out", t / "out.txt"], "must end with .npy"),
    ("embed-foreign-file", lambda t, d: ((t / "out.npy").write_bytes(b"mine"), ["embed", "--encoder", "smollm2-135m", "-d", d, "--out", t / "out.npy", "--overwrite"])[1], "not written by llm2rec"),
    ("embed-existing-file", lambda t, d: ((t / "out.npy").write_bytes(b"mine"), ["embed", "--encoder", "smollm2-135m", "-d", d, "--out", t / "out.npy"])[1], "--overwrite"),
]  # fmt: skip


def _edit_manifest(root: Path, drop: str) -> None:
    manifest = json.loads((root / "manifest.json").read_text())
    manifest.pop(drop)
    (root / "manifest.json").write_text(json.dumps(manifest))


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _npz_as_npy(tmp: Path) -> Path:
    np.savez(tmp / "v.npz", a=np.ones((3, 2), np.float32))
    (tmp / "v.npz").rename(tmp / "v.npy")
    return tmp / "v.npy"


def _seqrec(tmp: Path, dataset: Path, vectors: Path) -> list:
    return ["seqrec", "-d", dataset, "--model", "knn", "--embeddings", vectors, "--out", tmp / "out"]


def _run_cli(argv: list, capsys, monkeypatch) -> tuple[int, str]:
    from llm2rec.cli import main

    monkeypatch.setattr(sys, "argv", ["llm2rec", *map(str, argv)])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("name, build, expected", CASES, ids=[c[0] for c in CASES])
def test_broken_input_is_one_clear_line(name, build, expected, dataset, tmp_path, capsys, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    case = tmp_path / "case"
    case.mkdir()
    before = _snapshot(dataset)
    argv = build(case, dataset)
    code, err = _run_cli(argv, capsys, monkeypatch)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert "Traceback" not in err, err
    assert len(errors) == 1, err
    assert expected in errors[0], errors[0]
    assert not (case / "out").exists() or name in _OUT_EXISTED, "output left behind"
    assert not [p for p in case.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    assert _snapshot(dataset) == before, "the shared dataset was changed"


# Cases whose out/ existed before the command ran (and must still hold what it held).
_OUT_EXISTED = {
    "overwrite-foreign-dir",
    "out-exists",
    "export-foreign-dir",
    "csft-out-foreign-dir",
    "download-out-is-a-file",
}


def _snapshot(root: Path) -> dict:
    return {p.name: p.stat().st_size for p in sorted(root.iterdir())}


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60
