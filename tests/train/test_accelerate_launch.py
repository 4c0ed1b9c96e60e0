"""A training stage under `accelerate launch` itself (not only torchrun): two CPU processes train the same
CSFT as one process, and the stage records both processes (README: the loop runs unchanged under `python`,
`torchrun` and `accelerate launch`).

No accelerate config file is read: every choice is a flag. On a machine without GPUs, `accelerate launch
--cpu --num_processes 2` starts one process only (its multi-CPU path is mpirun with a hostfile), so the
two processes are asked for with `--multi_gpu`: Accelerate then starts them through torchrun, and
llm2rec's process state (cpu=True without a GPU, llm2rec.distributed) joins them over gloo.
"""

from __future__ import annotations

import json
import sys

import pytest

from tests.launch import free_port, launch

pytestmark = pytest.mark.slow

# Half the effective batch per micro-batch: two processes accumulate nothing, one accumulates two.
CSFT = {"max_steps": 4, "batch_size": 4, "micro_batch": 2, "warmup_steps": 0, "schedule_steps": None,
        "eval_every": 2, "save_every": None, "eval_samples": 8, "generation_samples": 0, "max_length": 64,
        "mixed_precision": "no", "progress": False}  # fmt: skip


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from llm2rec.config import dataset_spec
    from llm2rec.data.prepare import prepare_from_spec
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    root = tmp_path_factory.mktemp("accelerate")
    prepare_from_spec(dataset_spec(format="builtin", num_users=150, num_items=100), root / "ds")
    tok = make_tiny_tokenizer()
    save_pretrained_atomic(make_tiny_model("llama", tok), tok, root / "model")
    return root / "ds", root / "model"


def _eval_losses(out) -> list[float]:
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [e["loss"] for e in events if e["split"] == "eval"]


def test_accelerate_launch_two_cpu_processes_train_the_same_csft(inputs, tmp_path):
    from safetensors.torch import load_file

    from llm2rec.train.csft import run_csft

    dataset, model = inputs
    one = run_csft(dataset, model, tmp_path / "one", preset="cpu", **CSFT)

    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                "--main_process_port", str(free_port())]  # fmt: skip
    sets = [x for k, v in CSFT.items() for x in ("--set", f"{k}={'null' if v is None else v}")]
    two = tmp_path / "two"
    launch(launcher + ["-m", "llm2rec.cli", "csft", "--dataset", str(dataset), "--model", str(model),
                        "--out", str(two), "--preset", "cpu", *sets])  # fmt: skip

    record = json.loads((two / "csft.json").read_text())
    assert record["processes"] == 2
    one_w, two_w = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    assert one_w.keys() == two_w.keys()
    assert max((one_w[k] - two_w[k]).abs().max().item() for k in one_w) < 1e-4
    assert len(_eval_losses(one)) == 3  # before training, at step 2 and at step 4
    assert _eval_losses(two) == pytest.approx(_eval_losses(one), rel=1e-4)
    assert not (tmp_path / "two.work").exists()  # published, its training state removed as in one process
