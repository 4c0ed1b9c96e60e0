"""Where does LLM2Rec's gain come from? Its SASRec and knn Recall@10 against the LLM-stage budget.

    python benchmarks/budget_curve.py --config configs/cpu-small.yaml --out-root runs/budget \
        [--scales 0.25 0.5 1 2] [--seed 2024] [--reuse 1=runs/scientific] [--plot-only]

Each scale runs ``llm2rec run CONFIG`` with the cpu presets of CSFT, MNTP and the contrastive stage
scaled by that factor: steps, warm-up, evaluation interval and the schedule horizon together, so every
run's learning rate has the same shape and ends at the same fraction of its peak (the budget changes,
not the schedule). Only the LLM2Rec row is trained and evaluated (SASRec, one seed, and the knn probe).
Checkpoints are chosen on the valid split as in any run; the test numbers are read once per scale, for
the figure. ``--reuse 1=DIR`` takes an existing run of the same config for a scale (e.g. the full
comparison's run dir for scale 1). Output: a JSON (benchmarks/results/budget_curve.json) and a PNG.

The four scales together cost about 3.75 times the presets' LLM stages (over four hours on a 2-core CPU),
more than one working session, so the curve can be built a few scales at a time: the points the JSON
already holds for the same config and seed are kept when their settings are still today's presets at
that scale (a point made with other presets is dropped, and said), and a scale run again replaces its
point.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("csft", "mntp", "contrastive")
SCALED_STEPS = ("max_steps", "warmup_steps", "eval_every", "save_every", "schedule_steps")


def scaled_settings(scale: float) -> dict[str, dict]:
    """The cpu preset of each LLM stage with its budget scaled by ``scale`` (steps and horizon alike)."""
    from llm2rec.train import contrastive, csft, mntp

    out = {}
    for name, module in zip(STAGES, (csft, mntp, contrastive), strict=True):
        preset = module.build_config("cpu")
        settings = {
            key: max(1, round(getattr(preset, key) * scale))
            for key in SCALED_STEPS
            if getattr(preset, key, None)  # unset (None) or 0: left as the preset has it
        }
        for key in ("schedule_epochs", "max_epochs"):  # passes, not steps: scaled as floats
            if getattr(preset, key) is not None:
                settings[key] = getattr(preset, key) * scale
        out[name] = settings
    return out


def run_command(config: Path, out_dir: Path, scale: float, seed: int) -> list[str]:
    sets = [
        f"{stage}.{key}={value}" for stage, s in scaled_settings(scale).items() for key, value in s.items()
    ]
    sets += ["encoders=[llm2rec]", "seqrec.models=[sasrec, knn]", f"seqrec.seeds=[{seed}]"]
    launcher = "from llm2rec.cli import main; main()"
    return [sys.executable, "-c", launcher, "run", str(config), "--out", str(out_dir)] + [
        arg for s in sets for arg in ("--set", s)
    ]


def point(run_dir: Path, scale: float) -> dict:
    """The LLM2Rec row's test Recall@10 / NDCG@10 (SASRec, knn) and the LLM stages' wall time of a run,
    with the scaled settings it was made with (so a later call can tell whether the point is stale)."""
    results = json.loads((run_dir / "results.json").read_text())
    row = {"scale": scale, "run": run_dir.name, "settings": scaled_settings(scale)}
    for entry in results["entries"]:
        if entry["encoder"] == "llm2rec" and entry["recommender"] in ("sasrec", "knn"):
            for metric in ("recall@10", "ndcg@10"):
                row[f"{entry['recommender']}_{metric}"] = entry["metrics"][metric]["mean"]
    walls = results.get("stage_wall_seconds", {})
    row["llm_stage_seconds"] = sum(walls.get(stage) or 0.0 for stage in STAGES)
    row["precision"] = training_precision(run_dir)
    return row


def training_precision(run_dir: Path) -> str | None:
    """How the run's LLM stages trained ("bf16", or "fp32" where ``auto`` found no native bf16), from
    their stage records: the seconds of points made on different CPUs compare only with it."""
    found = set()
    for stage in STAGES:
        record = run_dir / stage / f"{stage}.json"
        if record.exists():
            found.add(json.loads(record.read_text()).get("precision"))
    names = sorted("fp32" if p == "no" else str(p) for p in found if p is not None)
    return "+".join(names) or None


def kept_points(path: Path, config: str, seed: int, rerun: set[float]) -> list[dict]:
    """The points an earlier call saved for this config and seed that are still valid: not a scale run
    again now, and made with today's presets at their scale."""
    if not path.exists():
        return []
    saved = json.loads(path.read_text())
    if saved.get("config") != config or saved.get("seed") != seed:
        return []
    kept = []
    for old in saved.get("points", []):
        if old["scale"] in rerun:
            continue
        if old.get("settings") != scaled_settings(old["scale"]):
            print(f"dropping the saved {old['scale']:g}x point: made with other presets than today's")
            continue
        kept.append(old)
    return kept


def config_label(config: Path) -> str:
    """The config as the JSON names it: relative to the repository when inside it (no machine path)."""
    resolved = Path(os.path.abspath(config))  # not resolve(): configs/ may be a link into the package
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else config.name


def plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(points, key=lambda p: p["scale"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (("sasrec_recall@10", "SASRec R@10"), ("knn_recall@10", "knn R@10")):
        measured = [p for p in points if key in p]
        ax.plot([p["scale"] for p in measured], [p[key] for p in measured], marker="o", label=label)
        for p in measured:
            if p.get("precision"):  # the wall time behind a point depends on it
                ax.annotate(p["precision"], (p["scale"], p[key]), textcoords="offset points", xytext=(4, 4),
                            fontsize=7)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks([p["scale"] for p in points], [f"{p['scale']:g}×" for p in points])
    ax.set_xlabel("LLM-stage budget (× the cpu presets)")
    ax.set_ylabel("test Recall@10 of the LLM2Rec row")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "cpu-small.yaml")
    parser.add_argument("--out-root", type=Path, required=True, help="one run dir per scale under it")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--reuse", nargs="*", default=[], help="SCALE=RUN_DIR: an existing run for a scale")
    parser.add_argument("--plot-only", action="store_true", help="read the run dirs, train nothing")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "budget_curve.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs" / "images" / "budget_curve.png")
    args = parser.parse_args(argv)
    reused = {float(k): Path(v) for k, v in (item.split("=", 1) for item in args.reuse)}
    config = config_label(args.config)
    points = kept_points(args.json, config, args.seed, set(args.scales))
    for scale in args.scales:
        run_dir = reused.get(scale, args.out_root / f"scale-{scale:g}")
        if scale not in reused and not args.plot_only:
            subprocess.run(run_command(args.config, run_dir, scale, args.seed), check=True)
        points.append(point(run_dir, scale))
        print(json.dumps(points[-1]))
    points.sort(key=lambda p: p["scale"])
    from llm2rec.io import atomic_write_json

    atomic_write_json(args.json, {"config": config, "seed": args.seed, "points": points})
    plot(points, args.png)
    return points


if __name__ == "__main__":
    main()
