"""One RecBole 1.2.1 run, timed from inside; run with the RecBole venv (benchmarks/recbole/setup.sh).

    .venv-recbole/bin/python benchmarks/recbole/run_recbole.py --data-path DIR --dataset NAME --model SASRec \
        --epochs 10 --seed 2024 --max-len 10 --out run.json

Reads RecBole benchmark atomic files ``DIR/NAME/NAME.{train,valid,test}.inter`` (columns ``user_id``,
``item_id_list``, ``item_id``: one row per prediction, as UniSRec ships Scientific). Settings are the
project's downstream ones (hidden 128, 2 layers, 2 heads, FFN 256, dropout 0.3, CE over all items, AdamW lr
1e-3 (GRU4Rec: --lr), weight decay 1e-4, batch 256, full ranking, early stopping on valid Recall@20).
RecBole's ``quick_start`` is not used (it imports ray); the building blocks are called in its order. Writes
per-epoch training and validation seconds, the test metrics and the process's peak RSS as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole's best-model reload, torch >= 2.6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-path", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", default="SASRec")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--max-len", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    started = time.perf_counter()
    # RecBole writes ./log and ./log_tensorboard under the working directory: keep them out of the
    # caller's tree by running from a scratch directory (paths made absolute first).
    args.data_path, args.out = os.path.abspath(args.data_path), os.path.abspath(args.out)
    os.chdir(tempfile.mkdtemp(prefix="recbole-run-"))

    import torch

    torch.set_num_threads(args.threads)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_logger, init_seed

    checkpoints = tempfile.mkdtemp(prefix="recbole-ckpt-")
    config = Config(model=args.model, dataset=args.dataset, config_dict=_settings(args, checkpoints))
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    # get_model imports recbole.model.sequential_recommender.sine, which turns anomaly detection on for the
    # whole process (1.4-1.8x slower epochs); a debugging aid, not part of the method: turn it back off.
    torch.autograd.set_detect_anomaly(False)
    trainer = Trainer(config, model)
    epochs, valids = _time_epochs(trainer)
    _, best_valid = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    result = {
        "model": args.model,
        "dataset": args.dataset,
        "seed": args.seed,
        "epochs_run": len(epochs),
        "train_seconds_per_epoch": epochs,
        "valid_seconds": valids,
        "best_valid": {k: float(v) for k, v in best_valid.items()},
        "test": {k: float(v) for k, v in test.items()},
        "inside_process_seconds": time.perf_counter() - started,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "recbole_version": __import__("recbole").__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)


def _settings(args, checkpoints: str) -> dict:
    model = {
        "SASRec": {"hidden_size": 128, "inner_size": 256, "n_layers": 2, "n_heads": 2, "hidden_dropout_prob": 0.3,
                   "attn_dropout_prob": 0.3, "hidden_act": "gelu", "layer_norm_eps": 1e-12, "initializer_range": 0.02},
        "GRU4Rec": {"embedding_size": 128, "hidden_size": 128, "num_layers": 2, "dropout_prob": 0.3},
    }[args.model]  # fmt: skip
    return {
        **model,
        "data_path": args.data_path,
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": args.max_len,
        "train_neg_sample_args": None,
        "loss_type": "CE",
        "learner": "adamw",
        "learning_rate": args.lr,
        "weight_decay": 1e-4,
        "train_batch_size": 256,
        "eval_batch_size": 4096,
        "epochs": args.epochs,
        "stopping_step": args.patience,
        "eval_step": 1,
        "eval_args": {"mode": "full", "order": "TO", "group_by": "user"},
        "metrics": ["Recall", "NDCG"],
        "topk": [10, 20],
        "valid_metric": "Recall@20",
        "seed": args.seed,
        "reproducibility": True,
        "show_progress": False,
        "device": "cpu",
        "use_gpu": False,
        "worker": 0,
        "checkpoint_dir": checkpoints,
        "log_wandb": False,
        "state": "WARNING",
    }


def _time_epochs(trainer) -> tuple[list, list]:
    """Wrap the trainer's epoch and validation methods to record their seconds."""
    epochs, valids = [], []
    train_epoch, valid_epoch = trainer._train_epoch, trainer._valid_epoch

    def timed_train(*a, **k):
        start = time.perf_counter()
        out = train_epoch(*a, **k)
        epochs.append(time.perf_counter() - start)
        return out

    def timed_valid(*a, **k):
        start = time.perf_counter()
        out = valid_epoch(*a, **k)
        valids.append(time.perf_counter() - start)
        return out

    trainer._train_epoch, trainer._valid_epoch = timed_train, timed_valid
    return epochs, valids


if __name__ == "__main__":
    main()
