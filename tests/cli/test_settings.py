"""`--set KEY=VALUE`: every command that has settings takes it; `llm2rec embed` reads the run config's
`embed:` section through it (issue 35)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# The rule README states: a command that has settings of its own (a section of a run config, or a whole run
# config) takes --set; the others act on something that exists already (a dataset, a run, a download) and
# have no settings for --set to change.
TAKES_SET = {"prepare", "csft", "mntp", "contrastive", "embed", "seqrec", "run", "demo"}
NO_SETTINGS = {"export", "data stats", "data download", "report", "recommend", "serve"}


def _commands():
    """Every leaf command of the `llm2rec` app, by its full name (``data stats``), with its click command."""
    import typer

    from llm2rec.cli import app

    found = {}

    def walk(group, prefix: str) -> None:
        for name, command in group.commands.items():
            if getattr(command, "commands", None) is not None:  # a group (typer vendors its own click)
                walk(command, f"{prefix}{name} ")
            else:
                found[f"{prefix}{name}"] = command

    walk(typer.main.get_command(app), "")
    return found


def _takes_set(command) -> bool:
    return any("--set" in getattr(param, "opts", ()) for param in command.params)


def test_every_command_with_settings_takes_set_and_no_other():
    commands = _commands()
    assert set(commands) == TAKES_SET | NO_SETTINGS, "a new command: say whether it has settings"
    assert {name for name, command in commands.items() if _takes_set(command)} == TAKES_SET


def _llm2rec(*args):
    return subprocess.run(
        [sys.executable, "-m", "llm2rec.cli", *map(str, args)], capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def encoder_and_dataset(tmp_path_factory):
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.bidirectional import enable_bidirectional
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
    from tests.embed.test_extract import tiny_titles, write_tiny_dataset

    root = tmp_path_factory.mktemp("embed-set")
    tokenizer = make_tiny_tokenizer()
    model = enable_bidirectional(make_tiny_model("qwen2", tokenizer, seed=3))
    encoder = save_pretrained_atomic(model, tokenizer, root / "encoder")
    return encoder, write_tiny_dataset(root / "ds", tiny_titles(8))


def test_embed_reads_the_embed_section_through_set(encoder_and_dataset, tmp_path):
    from typer.testing import CliRunner

    from llm2rec.cli import app

    encoder, dataset = encoder_and_dataset
    out = tmp_path / "e.npy"
    args = ["embed", "--encoder", str(encoder), "--dataset", str(dataset), "--out", str(out),
            "--template", "{title}", "--set", "template='{brand}: {title}'", "--set", "normalize=true",
            "--set", "batch_size=3"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["template"] == "{brand}: {title}"  # --set wins over the named flag
    assert record["normalize"] is True


@pytest.mark.parametrize(
    "pair, named",
    [("bogus=1", "embed.bogus"), ("batch_size=0", "embed.batch_size"), ("normalize", "key=value")],
)
def test_embed_refuses_an_unknown_or_bad_setting_in_one_line(tmp_path, pair, named):
    out = tmp_path / "e.npy"
    # Refused before the encoder or the dataset is looked at (neither exists here).
    r = _llm2rec("embed", "--encoder", tmp_path / "no-model", "--dataset", tmp_path / "no-ds", "--out", out,
                 "--set", pair)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert named in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not out.exists()
