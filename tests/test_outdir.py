"""Output safety: never delete what is not ours, never leave temporary files behind, follow the umask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llm2rec.config import dataset_spec
from llm2rec.data.prepare import prepare_from_spec
from llm2rec.errors import OutputError
from llm2rec.io import atomic_dir
from llm2rec.outdir import MARKER, check_output, write_marker

EVENTS = "user_id,item_id,timestamp\n" + "".join(
    f"u{u},i{i},{1600000000000 + 1000 * (3 * u + i)}\n" for u in range(5) for i in range(3)
)
ITEMS = "item_id,title\n" + "".join(f"i{i},Item {i}\n" for i in range(3))


def _llm2rec(*args, **kw):
    return subprocess.run([sys.executable, "-m", "llm2rec.cli", *map(str, args)], capture_output=True,
                          text=True, **kw)  # fmt: skip


def test_overwrite_onto_the_input_directory_deletes_nothing(tmp_path):
    raw = tmp_path / "RAW"
    raw.mkdir()
    (raw / "events.csv").write_text(EVENTS)
    (raw / "items.csv").write_text(ITEMS)
    (raw / "notes.txt").write_text("my notes")
    before = sorted(p.name for p in raw.iterdir())
    r = _llm2rec("prepare", "--format", "generic", "--input", raw / "events.csv", raw / "items.csv",
                 "--kcore", 0, "--out", raw, "--overwrite")  # fmt: skip
    assert r.returncode == 2 and "holds the input" in r.stderr, r.stderr
    assert sorted(p.name for p in raw.iterdir()) == before
    assert (raw / "notes.txt").read_text() == "my notes"
    # --out a parent of the inputs: refused just the same
    r = _llm2rec("prepare", "--format", "generic", "--input", raw / "events.csv", raw / "items.csv",
                 "--kcore", 0, "--out", tmp_path, "--overwrite")  # fmt: skip
    assert r.returncode == 2 and "holds the input" in r.stderr and (raw / "events.csv").is_file()


def test_a_previous_output_of_the_same_kind_is_replaced_others_are_not(tmp_path):
    out = tmp_path / "ds"
    prepare_from_spec(dataset_spec(format="builtin", num_users=100, num_items=100), out)
    assert (out / MARKER).is_file()
    prepare_from_spec(dataset_spec(format="builtin", num_users=120, num_items=100), out, overwrite=True)
    with pytest.raises(OutputError, match="did not write"):
        check_output(out, "seqrec", overwrite=True)  # a dataset is not a results dir
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "paper.tex").write_text("x")
    with pytest.raises(OutputError, match="did not write"):
        prepare_from_spec(
            dataset_spec(format="builtin", num_users=100, num_items=100), foreign, overwrite=True
        )
    assert (foreign / "paper.tex").read_text() == "x"
    legacy = tmp_path / "old"
    legacy.mkdir()
    (legacy / "manifest.json").write_text("{}")  # a dataset prepared before markers existed
    with pytest.raises(OutputError, match=r"delete it by hand \(rm -r "):
        check_output(legacy, "dataset", overwrite=True, legacy=("manifest.json",))
    assert (legacy / "manifest.json").is_file()


def test_atomic_dir_refuses_protected_places_and_foreign_dirs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="working directory"), atomic_dir(".", overwrite=True):
        pass
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "a").write_text("a")
    with (
        pytest.raises(OutputError, match="did not write"),
        atomic_dir(tmp_path / "x", True, "export"),
    ):
        pass
    assert (tmp_path / "x" / "a").read_text() == "a"


def test_leftovers_of_an_interrupted_write_are_cleaned_up_by_the_next(tmp_path):
    out = tmp_path / "ds"
    stale = tmp_path / ".ds.abc123.tmp"
    stale.mkdir()
    write_marker(stale, "dataset")
    not_ours = tmp_path / ".ds.user.tmp"
    not_ours.mkdir()  # no marker: not ours, left alone
    prepare_from_spec(dataset_spec(format="builtin", num_users=100, num_items=100), out)
    old = tmp_path / ".ds.old"
    old.mkdir()
    write_marker(old, "dataset")
    prepare_from_spec(dataset_spec(format="builtin", num_users=100, num_items=100), out, overwrite=True)
    assert not stale.exists() and not old.exists() and not_ours.exists()


def test_sigterm_during_prepare_leaves_nothing_behind(tmp_path):
    out = tmp_path / "big"
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm2rec.cli", "prepare", "--format", "builtin", "--num-users", "60000",
         "--num-items", "6000", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if any(p.name.startswith(".big.") for p in tmp_path.iterdir()):
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.skip("prepare finished before it could be interrupted")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no .big.*.tmp, no half-written big/


def test_outputs_follow_the_umask(tmp_path):
    code = (
        "import os; os.umask(0o022); from llm2rec.config import dataset_spec; "
        "from llm2rec.data.prepare import prepare_from_spec; "
        f"prepare_from_spec(dataset_spec(format='builtin', num_users=100, num_items=100), {str(tmp_path / 'ds')!r})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "ds").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "ds" / "manifest.json").stat().st_mode & 0o777 == 0o644


def test_a_failed_run_says_how_to_resume_or_remove(tmp_path, monkeypatch, capsys):
    from llm2rec.cli import main
    from llm2rec.errors import ConfigError
    from llm2rec.pipeline import actions

    def fail(pipe, stage, resume):
        raise ConfigError("the reader gave up")

    monkeypatch.setattr(actions, "run_prepare", fail)
    monkeypatch.setattr(
        sys, "argv", ["llm2rec", "run", str(_demo_config(tmp_path)), "--out", str(tmp_path / "run")]
    )
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and "the reader gave up" in err
    assert "run the same command again to resume" in err and f"delete {tmp_path / 'run'}" in err


def _demo_config(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text("dataset: {format: builtin, num_users: 100, num_items: 100}\nencoders: [id]\n")
    return path


def test_root_and_home_are_never_outputs(tmp_path):
    for place in (Path("/"), Path.home()):
        with pytest.raises(OutputError):
            check_output(place, "dataset", overwrite=True)
    assert os.path.exists("/")
