"""Extraction by shards (issue 37 §2): an interrupted extraction resumes by shard (a finished shard is not
encoded again, one made under other settings is), float16 files, the work directory's rules, and the
streaming file writer the shards and the merge go through."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llm2rec.errors import ConfigError, DataFormatError, OutputError
from tests.embed.test_extract import tiny_titles, write_tiny_dataset


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.bidirectional import enable_bidirectional
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    model = enable_bidirectional(make_tiny_model("qwen2", tokenizer, seed=5))
    return save_pretrained_atomic(model, tokenizer, tmp_path_factory.mktemp("enc") / "encoder")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    # varied lengths, so that length-sorting really reorders items inside a shard
    titles = [t + " extra words" * (i % 4) for i, t in enumerate(tiny_titles(23))]
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "ds", titles)


@pytest.fixture(scope="module")
def encoder(encoder_dir):
    from llm2rec.embed.encoder import Encoder

    return Encoder.from_pretrained(encoder_dir)


@pytest.fixture(scope="module")
def reference(encoder, dataset, tmp_path_factory):
    """Vectors of a plain one-process extraction in one shard."""
    from llm2rec.data.vectors import read_item_vectors
    from llm2rec.embed.extract import embed_items

    out = embed_items(encoder, dataset, tmp_path_factory.mktemp("ref") / "ref.npy", show_progress=False)
    return read_item_vectors(out)[0]


class Interrupted(Exception):
    """What the test raises inside an extraction, as an interruption."""


class _Recorder:
    """Wraps extract._encode_shard: records each shard encoded; raises at ``fail_at`` (an interruption)."""

    def __init__(self, real, fail_at=None):
        self.real, self.fail_at, self.encoded = real, fail_at, []

    def __call__(self, encoder, items, work, shard, settings, bar):
        if shard.index == self.fail_at:
            raise Interrupted(f"interrupted at shard {shard.index}")
        self.encoded.append(shard.index)
        return self.real(encoder, items, work, shard, settings, bar)


def test_interrupted_extraction_resumes_by_shard(encoder, dataset, reference, tmp_path, monkeypatch):
    from llm2rec.data.vectors import load_item_vectors, read_item_vectors
    from llm2rec.embed import extract
    from llm2rec.embed.shards import WORK_KIND
    from llm2rec.outdir import marker_kind

    out, work = tmp_path / "v.npy", tmp_path / "v.npy.work"
    real = extract._encode_shard
    first = _Recorder(real, fail_at=2)
    monkeypatch.setattr(extract, "_encode_shard", first)
    with pytest.raises(Interrupted):
        extract.embed_items(encoder, dataset, out, shard_size=5, batch_size=2, show_progress=False)
    assert first.encoded == [0, 1] and not out.exists()
    assert marker_kind(work) == WORK_KIND
    done = {p.name: p.stat().st_mtime_ns for p in work.glob("shard-*")}
    assert sorted(done) == ["shard-00000.json", "shard-00000.npy", "shard-00001.json", "shard-00001.npy"]
    assert json.loads((work / "shard-00001.json").read_text())["finished"] is True

    again = _Recorder(real)
    monkeypatch.setattr(extract, "_encode_shard", again)
    seen, real_merge = {}, extract.merge_shards

    def merge(work_dir, *args, **kwargs):  # the shard files as the merge finds them
        seen.update({p.name: p.stat().st_mtime_ns for p in work_dir.glob("shard-*")})
        return real_merge(work_dir, *args, **kwargs)

    monkeypatch.setattr(extract, "merge_shards", merge)
    extract.embed_items(encoder, dataset, out, shard_size=5, batch_size=3, show_progress=False)
    assert again.encoded == [2, 3, 4]  # shards 0 and 1 were not encoded again ...
    assert all(seen[name] == mtime for name, mtime in done.items())  # ... nor rewritten
    vectors, meta = read_item_vectors(out)
    np.testing.assert_allclose(vectors, reference, atol=1e-5)
    assert meta["shards"] == 5 and meta["shard_size"] == 5 and meta["dtype"] == "float32"
    assert not work.exists()  # removed after the merge
    from llm2rec.data.dataset import Dataset

    ds = Dataset.load(dataset)
    np.testing.assert_allclose(load_item_vectors(out, ds.num_items, ds.checksum), reference, atol=1e-5)


def test_shards_made_under_other_settings_are_encoded_again(encoder, dataset, tmp_path, monkeypatch):
    from llm2rec.embed import extract

    out = tmp_path / "v.npy"
    real = extract._encode_shard
    first = _Recorder(real, fail_at=3)
    monkeypatch.setattr(extract, "_encode_shard", first)
    with pytest.raises(Interrupted):
        extract.embed_items(encoder, dataset, out, shard_size=5, show_progress=False)
    assert first.encoded == [0, 1, 2]
    # another template: nothing is reused; another shard size: other bounds, nothing is reused either
    for changed in ({"template": "{brand}: {title}"}, {"shard_size": 4}, {"normalize": True}):
        again = _Recorder(real, fail_at=1)
        monkeypatch.setattr(extract, "_encode_shard", again)
        with pytest.raises(Interrupted):
            extract.embed_items(encoder, dataset, out, **{"shard_size": 5, **changed}, show_progress=False)
        assert again.encoded == [0], changed
    # a shard file cut short (its record says finished, the file does not agree) is encoded again
    shard = tmp_path / "v.npy.work" / "shard-00000.npy"
    assert json.loads(shard.with_suffix(".json").read_text())["finished"] is True
    shard.write_bytes(shard.read_bytes()[:100])
    stopped = _Recorder(real, fail_at=0)  # interrupted as it starts on that shard again:
    monkeypatch.setattr(extract, "_encode_shard", stopped)
    with pytest.raises(Interrupted):
        extract.embed_items(encoder, dataset, out, shard_size=5, normalize=True, show_progress=False)
    assert not shard.with_suffix(".json").exists()  # its old record no longer vouches for the file
    last = _Recorder(real)
    monkeypatch.setattr(extract, "_encode_shard", last)
    extract.embed_items(encoder, dataset, out, shard_size=5, normalize=True, show_progress=False)
    assert 0 in last.encoded


def test_float16_halves_the_file_and_reads_back_as_float32(encoder, dataset, reference, tmp_path):
    from llm2rec.data.dataset import Dataset
    from llm2rec.data.vectors import load_item_vectors, read_item_vectors
    from llm2rec.embed.extract import embed_items

    out = embed_items(
        encoder, dataset, tmp_path / "h.npy", dtype="float16", shard_size=7, show_progress=False
    )
    stored = np.load(out)
    assert stored.dtype == np.float16 and stored.shape == reference.shape
    half, single = out.stat().st_size, reference.nbytes
    assert half < 0.55 * single
    vectors, meta = read_item_vectors(out)
    assert vectors.dtype == np.float32 and meta["dtype"] == "float16"
    ds = Dataset.load(dataset)
    loaded = load_item_vectors(out, ds.num_items, ds.known_checksums)
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, reference, rtol=2e-3, atol=2e-3)
    with pytest.raises(ConfigError, match="float32 or float16"):
        embed_items(encoder, dataset, tmp_path / "b.npy", dtype="bfloat16", show_progress=False)


def test_a_record_that_names_another_dtype_is_refused(tmp_path):
    from llm2rec.data.vectors import load_item_vectors, save_item_vectors

    vectors = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float16)
    path = save_item_vectors(tmp_path / "v.npy", vectors, {"num_items": 5})
    assert json.loads((tmp_path / "v.json").read_text())["dtype"] == "float16"
    assert load_item_vectors(path, 5).dtype == np.float32
    np.save(path, vectors.astype(np.float32))  # the array replaced, its record left as it was
    with pytest.raises(DataFormatError, match="says dtype 'float16' but v.npy stores float32"):
        load_item_vectors(path, 5)
    np.save(path, vectors.astype(np.float64))
    with pytest.raises(DataFormatError, match="dtype is float64, expected float32"):
        load_item_vectors(path, 5)


def test_float16_refuses_values_it_cannot_hold():
    from llm2rec.data.vectors import as_stored

    assert as_stored(np.array([[1.5, -2.0]], np.float32), "float16").dtype == np.float16
    with pytest.raises(ConfigError, match="beyond float16"):
        as_stored(np.array([[7e4, 0.0]], np.float32), "float16")


def test_a_work_dir_that_is_not_ours_is_refused_and_left_alone(encoder, dataset, tmp_path):
    from llm2rec.embed.extract import embed_items

    work = tmp_path / "v.npy.work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not an llm2rec extraction's work directory"):
        embed_items(encoder, dataset, tmp_path / "v.npy", show_progress=False)
    assert [p.name for p in work.iterdir()] == ["notes.txt"] and not (tmp_path / "v.npy").exists()


def test_item_texts_by_slice_equal_the_whole(dataset, tmp_path):
    """From the DataFrame, from a shuffled items.parquet (held sorted) and from one in item order with
    small row groups (read a group at a time): the same texts, slice by slice."""
    from llm2rec.data.dataset import Dataset
    from llm2rec.embed.extract import ItemTexts, render_item_texts

    items = Dataset.load(dataset).items
    template = "{brand}: {title}"
    whole = render_item_texts(items, template)
    assert len(whole) == 23 and whole[0] == f"Acme: {tiny_titles(1)[0]}"
    in_order = tmp_path / "items.parquet"
    items.sort_values("item_id").to_parquet(in_order, index=False, row_group_size=4)
    for source in (items, dataset / "items.parquet", in_order):
        texts = ItemTexts(source, template)
        assert len(texts) == 23
        assert texts.texts(0, 5) + texts.texts(5, 11) + texts.texts(11, 99) == whole
        assert texts.texts(3, 9) == whole[3:9] and texts.texts(7, 7) == []
    assert ItemTexts(in_order, "same for all").texts(0, 3) == ["same for all"] * 3
    with pytest.raises(ConfigError, match="colour"):
        ItemTexts(in_order, "{colour}")
    items.assign(item_id=items["item_id"] * 2).to_parquet(tmp_path / "gaps.parquet", index=False)
    with pytest.raises(ConfigError, match="not contiguous"):
        ItemTexts(tmp_path / "gaps.parquet", template)


def test_vector_rows_write_scatter_read_without_a_memory_map(tmp_path):
    from llm2rec.data.vectors import VectorRows, publish_vector_file

    rng = np.random.default_rng(1)
    block = rng.normal(size=(9, 3)).astype(np.float32)
    with VectorRows.create(tmp_path / "w.npy", 10, 3, "float32") as rows:
        rows.scatter(np.array([8, 2, 3, 4, 0, 9, 5, 1, 7]), block)
        assert np.array_equal(rows.read(6, 1), np.zeros((1, 3), np.float32))  # never written: zeros
    with pytest.raises(ValueError, match="cannot write"):
        VectorRows(tmp_path / "w.npy", write=True).write(9, block[:2])
    published = publish_vector_file(tmp_path / "w.npy", tmp_path / "final.npy", {"num_items": 9})
    array = np.load(published)
    assert np.array_equal(array[[8, 2, 3, 4, 0, 9, 5, 1, 7]], block)
    assert json.loads((tmp_path / "final.json").read_text())["rows"] == 10
    assert not (tmp_path / "w.npy").exists()


def test_plan_shards():
    from llm2rec.embed.shards import DEFAULT_SHARD_SIZE, plan_shards

    assert [(s.start, s.stop) for s in plan_shards(23, 1, 5)] == [
        (0, 5),
        (5, 10),
        (10, 15),
        (15, 20),
        (20, 23),
    ]
    assert [(s.start, s.stop) for s in plan_shards(25, 2)] == [(0, 13), (13, 25)]  # every process gets one
    many = plan_shards(10 * DEFAULT_SHARD_SIZE + 1, 4)
    assert len(many) == 11 and many == plan_shards(10 * DEFAULT_SHARD_SIZE + 1, 1)  # bounds by size alone
    assert plan_shards(0, 2) == []


def test_cli_dtype_and_shard_size(encoder_dir, dataset, reference, tmp_path, capsys, monkeypatch):
    from llm2rec.cli import main
    from llm2rec.data.vectors import read_item_vectors

    out = tmp_path / "cli.npy"
    argv = ["llm2rec", "embed", "--encoder", str(encoder_dir), "--dataset", str(dataset), "--out", str(out),
            "--dtype", "float16", "--shard-size", "6"]  # fmt: skip
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as done:
        main()
    assert done.value.code in (0, None), capsys.readouterr().err
    vectors, meta = read_item_vectors(out)
    assert meta["dtype"] == "float16" and meta["shards"] == 4 and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, reference, rtol=2e-3, atol=2e-3)
    monkeypatch.setattr("sys.argv", [*argv[:-4], "--dtype", "int8", "--overwrite"])
    with pytest.raises(SystemExit) as refused:
        main()
    assert refused.value.code == 2 and "float32 or float16" in capsys.readouterr().err


def test_a_file_someone_put_in_the_work_dir_is_left_there(encoder, dataset, reference, tmp_path, monkeypatch):
    from llm2rec.data.vectors import read_item_vectors
    from llm2rec.embed import extract
    from llm2rec.outdir import MARKER

    out, work = tmp_path / "v.npy", tmp_path / "v.npy.work"
    monkeypatch.setattr(extract, "_encode_shard", _Recorder(extract._encode_shard, fail_at=1))
    with pytest.raises(Interrupted):
        extract.embed_items(encoder, dataset, out, shard_size=10, show_progress=False)
    (work / "notes.txt").write_text("mine")
    monkeypatch.undo()
    extract.embed_items(encoder, dataset, out, shard_size=10, show_progress=False)
    np.testing.assert_allclose(read_item_vectors(out)[0], reference, atol=1e-5)
    assert sorted(p.name for p in work.iterdir()) == [MARKER, "notes.txt"]  # our shards removed, not theirs
