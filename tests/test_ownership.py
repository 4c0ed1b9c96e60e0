"""What llm2rec may replace: only what its own output marker lists (issue 35, §1).

Each case gives a command an ``--out`` that is not (wholly) llm2rec's, with ``--overwrite`` where the
command has it, and checks the one-line refusal and that every file in it is still there, unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from llm2rec.outdir import MARKER, first_unlisted, read_marker, write_marker


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from llm2rec.config import dataset_spec
    from llm2rec.data.prepare import prepare_from_spec

    out = tmp_path_factory.mktemp("own") / "ds"
    prepare_from_spec(dataset_spec(format="builtin", num_users=100, num_items=100), out)
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    out = tmp_path_factory.mktemp("model") / "tiny"
    save_pretrained_atomic(make_tiny_model("qwen2", tokenizer), tokenizer, out)
    return out


def _run(argv: list, capsys, monkeypatch) -> tuple[int, str]:
    from llm2rec.cli import main

    monkeypatch.setattr(sys, "argv", ["llm2rec", *map(str, argv)])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, capsys.readouterr().err


def _snapshot(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _foreign(path: Path, *familiar: str) -> Path:
    """A user's folder that holds files named like ours, and their thesis."""
    path.mkdir(parents=True)
    for name in familiar:
        (path / name).write_text("{}")
    (path / "thesis.tex").write_text("my thesis")
    return path


def test_a_folder_with_a_familiar_file_name_is_not_ours(tmp_path, capsys, monkeypatch):
    foreign = _foreign(tmp_path / "foreign", "manifest.json")
    before = _snapshot(foreign)
    code, err = _run(["prepare", "--format", "builtin", "--out", foreign, "--overwrite"], capsys, monkeypatch)
    assert code == 2 and "error:" in err and "rm -r" in err, err
    assert _snapshot(foreign) == before


def test_a_model_folder_is_not_a_seqrec_output(tmp_path, dataset, tiny_model, capsys, monkeypatch):
    import shutil

    model = Path(shutil.copytree(tiny_model, tmp_path / "my-model"))
    (model / MARKER).unlink()  # a Hugging Face folder as its user has it: config.json, weights, tokenizer
    before = _snapshot(model)
    argv = ["seqrec", "--dataset", dataset, "--model", "pop", "--out", model, "--overwrite"]
    code, err = _run(argv, capsys, monkeypatch)
    assert code == 2 and "did not write" in err, err
    assert _snapshot(model) == before


def test_our_output_with_one_file_of_the_user_is_refused_naming_it(tmp_path, capsys, monkeypatch):
    out = tmp_path / "ds"
    assert _run(["prepare", "--format", "builtin", "--out", out], capsys, monkeypatch)[0] == 0
    assert first_unlisted(out) is None and "manifest.json" in read_marker(out)["files"]
    (out / "notes.txt").write_text("mine")
    (out / "tables").mkdir(exist_ok=True)
    before = _snapshot(out)
    code, err = _run(["prepare", "--format", "builtin", "--out", out, "--overwrite"], capsys, monkeypatch)
    assert code == 2 and "holds notes.txt" in err, err
    assert _snapshot(out) == before


def test_a_file_in_a_nested_output_is_found(tmp_path):
    outer, inner = tmp_path / "run", tmp_path / "run" / "csft"
    inner.mkdir(parents=True)
    (inner / "model.safetensors").write_bytes(b"x")
    write_marker(inner, "stage:csft")
    (outer / "pipeline.json").write_text("{}")
    write_marker(outer, "run", files=("pipeline.json", "plots/"))
    (outer / "plots").mkdir()
    (outer / "plots" / "a.png").write_bytes(b"png")
    assert first_unlisted(outer) is None  # listed by name, by folder, and by the nested marker
    (inner / "mine.txt").write_text("x")
    assert first_unlisted(outer) == "csft/mine.txt"


# Every command that takes --out, given a user's folder with a familiar name in it.
def _cases(tmp: Path, dataset: Path, model: Path) -> dict[str, tuple[list, Path]]:
    train = ["--dataset", dataset, "--model", model, "--preset", "cpu", "--max-steps", 1, "--overwrite"]
    vectors = tmp / "v.npy"
    np.save(vectors, np.zeros((101, 4), dtype=np.float32))
    (tmp / "v.json").write_text(json.dumps({"mine": True}))  # a user's file pair, not an llm2rec record
    config = tmp / "run.yaml"
    config.write_text("dataset: {format: builtin, num_users: 100, num_items: 100}\nencoders: [id]\n")
    return {
        "prepare": (["prepare", "--format", "builtin", "--overwrite"], _foreign(tmp / "p", "manifest.json")),
        "export": (["export", dataset, tmp / "x", "--overwrite"], _foreign(tmp / "x", "downstream")),
        "csft": (["csft", *train], _foreign(tmp / "c", "csft.json", "config.json")),
        "mntp": (["mntp", *train], _foreign(tmp / "m", "mntp.json", "config.json")),
        "contrastive": (["contrastive", *train], _foreign(tmp / "k", "contrastive.json", "config.json")),
        "seqrec": (
            ["seqrec", "--dataset", dataset, "--model", "pop", "--overwrite"],
            _foreign(tmp / "s", "results.json", "config.json"),
        ),  # fmt: skip
        "run": (["run", config], _foreign(tmp / "r", "pipeline.json", "config.json")),
        "embed": (["embed", "--encoder", model, "--dataset", dataset, "--overwrite"], vectors),
    }


@pytest.mark.parametrize(
    "command", ["prepare", "export", "csft", "mntp", "contrastive", "seqrec", "run", "embed"]
)
def test_no_command_replaces_a_users_folder(command, tmp_path, dataset, tiny_model, capsys, monkeypatch):
    argv, out = _cases(tmp_path, dataset, tiny_model)[command]
    where = out.parent if out.is_file() else out
    before = _snapshot(where)
    code, err = _run([*argv, *([] if out in argv else ["--out", out])], capsys, monkeypatch)
    assert code == 2, err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1, err
    assert _snapshot(where) == before


def test_data_download_adds_its_files_and_touches_nothing_else(tmp_path, capsys, monkeypatch):
    from llm2rec.data import download as dl

    folder = _foreign(tmp_path / "raw", "manifest.json")
    fetched = []
    monkeypatch.setattr(
        dl, "fetch", lambda url, target, **kw: (fetched.append(target), target.write_text("x"))
    )
    code, err = _run(["data", "download", "All_Beauty", "--out", folder], capsys, monkeypatch)
    assert code in (0, None), err
    assert (folder / "thesis.tex").read_text() == "my thesis" and len(fetched) == 2
    (tmp_path / "file").write_text("x")
    code, err = _run(["data", "download", "All_Beauty", "--out", tmp_path / "file"], capsys, monkeypatch)
    assert code == 2 and "is not a directory" in err, err


def test_what_an_interrupted_atomic_write_left_is_ours_but_a_look_alike_is_not(tmp_path):
    work = tmp_path / "csft.work"
    work.mkdir()
    write_marker(work, "stage-work", files=("metrics.jsonl", "identity.json", "checkpoints/"))
    (work / ".identity.json.uw5k4xy0.tmp").write_text("{")  # killed inside io.atomic_write_json
    assert first_unlisted(work) is None
    (work / ".thesis.tex.ab12cd.tmp").write_text("x")  # not the temporary file of anything listed
    assert first_unlisted(work) == ".thesis.tex.ab12cd.tmp"
