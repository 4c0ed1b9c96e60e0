"""A stage reuses a finished output, or resumes a training state, only under the same identity (issue 35, §2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from llm2rec.errors import ConfigError, OutputError
from llm2rec.io import work_dir_for
from llm2rec.train.csft import run_csft
from llm2rec.train.outputs import IDENTITY_FILE

FAST = dict(max_steps=2, batch_size=4, micro_batch=2, lr=1e-3, warmup_steps=0, max_length=48, eval_every=2,
            save_every=1, log_every=1, eval_samples=4, generation_samples=0, progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from llm2rec.config import dataset_spec
    from llm2rec.data.prepare import prepare_from_spec

    out = tmp_path_factory.mktemp("id") / "ds"
    prepare_from_spec(dataset_spec(format="builtin", num_users=60, num_items=100), out)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    root = tmp_path_factory.mktemp("models")
    a, b = root / "a", root / "b"
    save_pretrained_atomic(make_tiny_model("qwen2", tokenizer), tokenizer, a)
    save_pretrained_atomic(make_tiny_model("llama", tokenizer), tokenizer, b)
    return a, b


@pytest.fixture(scope="module")
def finished(tmp_path_factory, dataset, models) -> Path:
    out = tmp_path_factory.mktemp("stage") / "csft"
    run_csft(dataset, models[0], out, preset="cpu", **FAST)
    return out


def _copy(finished: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished, tmp_path / "csft"))


def test_the_same_identity_is_reused_as_is(finished, tmp_path, dataset, models):
    out = _copy(finished, tmp_path)  # a copied (moved) output keeps its identity
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    # progress and logging are not part of the identity
    run_csft(dataset, models[0], out, preset="cpu", **{**FAST, "progress": True, "log_every": 5})
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("change", ["settings", "model", "dataset"])
def test_another_identity_is_refused_naming_what_differs(change, finished, tmp_path, dataset, models):
    out = _copy(finished, tmp_path)
    before = (out / "model.safetensors").read_bytes()
    options, model, data = dict(FAST), models[0], dataset
    if change == "settings":
        options.update(max_steps=3, lr=5e-4)
    elif change == "model":
        model = models[1]
    else:
        from llm2rec.config import dataset_spec
        from llm2rec.data.prepare import prepare_from_spec

        data = tmp_path / "other"
        prepare_from_spec(dataset_spec(format="builtin", num_users=61, num_items=100), data)
    expected = {
        "settings": "settings: lr, max_steps",
        "model": "setting: model",
        "dataset": "setting: dataset",
    }
    with pytest.raises(OutputError, match=f"another {expected[change]}; pass --overwrite"):
        run_csft(data, model, out, preset="cpu", **options)
    assert (out / "model.safetensors").read_bytes() == before


def test_overwrite_trains_again_under_the_new_identity(finished, tmp_path, dataset, models):
    out = _copy(finished, tmp_path)
    run_csft(dataset, models[0], out, preset="cpu", overwrite=True, **{**FAST, "max_steps": 3})
    record = json.loads((out / "csft.json").read_text())
    assert record["last_step"] == 3 and record["identity"]["config"]["max_steps"] == 3


def test_an_interrupted_state_resumes_only_under_its_identity(tmp_path, dataset, models):
    out = tmp_path / "csft"
    run_csft(dataset, models[0], out, preset="cpu", **{**FAST, "keep_work": True})
    work = work_dir_for(out)
    shutil.rmtree(out)  # as if interrupted after the last checkpoint: the state is all that is left
    recorded = json.loads((work / IDENTITY_FILE).read_text())
    assert recorded["config"]["max_steps"] == 2
    with pytest.raises(OutputError, match="interrupted csft run with another setting: lr"):
        run_csft(dataset, models[0], out, preset="cpu", **{**FAST, "lr": 5e-4})
    assert (work / "checkpoints").is_dir()  # refused: nothing removed
    run_csft(dataset, models[0], out, preset="cpu", **FAST)  # same identity: resumed, published
    assert json.loads((out / "csft.json").read_text())["last_step"] == 2
    (work / IDENTITY_FILE).unlink(missing_ok=True)


def test_a_state_without_a_recorded_identity_is_not_resumed(tmp_path, dataset, models):
    out = tmp_path / "csft"
    run_csft(dataset, models[0], out, preset="cpu", **{**FAST, "keep_work": True})
    shutil.rmtree(out)
    (work_dir_for(out) / IDENTITY_FILE).unlink()  # a state an older llm2rec left
    with pytest.raises(OutputError, match="not recorded"):
        run_csft(dataset, models[0], out, preset="cpu", **FAST)
    run_csft(dataset, models[0], out, preset="cpu", overwrite=True, **FAST)
    assert (out / "csft.json").is_file()


def test_seqrec_resume_refuses_results_of_other_settings(tmp_path, dataset):
    from llm2rec.seqrec import run_seqrec

    out = tmp_path / "sasrec"
    common = dict(model="sasrec", epochs=1, eval_every=1, hidden=16, ffn=16, progress=False, plots=False)
    run_seqrec(dataset, seeds=[1], out_dir=out, **common)
    run_seqrec(dataset, seeds=[1, 2], out_dir=out, resume=True, **common)  # one more seed: fine
    assert json.loads((out / "config.json").read_text())["seeds"] == [1, 2]
    with pytest.raises(ConfigError, match="another hidden; pass --overwrite"):
        run_seqrec(dataset, seeds=[1], out_dir=out, resume=True, **{**common, "hidden": 32})
    run_seqrec(dataset, seeds=[1], out_dir=out, resume=True, overwrite=True, **{**common, "hidden": 32})
    assert json.loads((out / "config.json").read_text())["config"]["hidden"] == 32


def test_embed_never_keeps_an_old_file_silently(tmp_path, dataset, models):
    from llm2rec.embed.extract import embed_items

    out = tmp_path / "v.npy"
    embed_items(models[0], dataset, out, show_progress=False)
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        embed_items(models[1], dataset, out, show_progress=False)
    embed_items(models[1], dataset, out, show_progress=False, overwrite=True)
    assert json.loads(out.with_suffix(".json").read_text())["encoder"].endswith("b")
