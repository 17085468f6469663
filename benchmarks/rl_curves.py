"""Learning curves of RL runs from their metrics.jsonl logs: success (sampled training episodes, and greedy
evaluation on held-aside seeds), grasp rate and return against env steps, one colour per run.

    python benchmarks/rl_curves.py RUN_DIR [RUN_DIR ...] --out docs/rl_curves.png [--window 40] [--title ...]

Needs matplotlib (`pip install -e .[train]`). A run's label is its config.json "algo" (or the folder name).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from vla_ood_envs.training.runs import read_metrics


def _rolling(x: np.ndarray, w: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last `window` episodes: x holds per-iteration means of w episodes each (runs with
    different episodes per iteration are smoothed alike)."""
    out = np.empty_like(x, dtype=float)
    ends = np.cumsum(w)
    for i in range(len(x)):
        lo = int(np.searchsorted(ends, ends[i] - window, side="right"))
        out[i] = np.average(x[lo:i + 1], weights=w[lo:i + 1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--out", default="docs/rl_curves.png")
    parser.add_argument("--window", type=int, default=40, help="episodes in the trailing mean of training curves")
    parser.add_argument("--title", default=None)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for k, run in enumerate(args.runs):
        color = f"C{k}"
        root = Path(run)
        cfg = json.loads((root / "config.json").read_text()) if (root / "config.json").exists() else {}
        label = cfg.get("algo", root.name).upper()
        records = read_metrics(root)
        train = [r for r in records if r.get("iteration", 0) >= 1 and "success" in r]
        evals = [r for r in records if "eval_success" in r]
        if train:
            steps = np.array([r["env_steps"] for r in train], float)
            eps = np.array([r["episodes"] for r in train], float)
            for ax, key in ((axes[0], "success"), (axes[2], "return")):
                ax.plot(steps, _rolling(np.array([r[key] for r in train], float), eps, args.window), color=color,
                        label=f"{label} (sampled, training)")
            axes[1].plot(steps, _rolling(np.array([r["grasp"] for r in train], float), eps, args.window),
                         color=color, label=f"{label} (sampled, training)")
        if evals:
            n_eval = int(evals[0]["eval_episodes"])
            axes[0].plot([r["env_steps"] for r in evals], [r["eval_success"] for r in evals], "o--", color=color,
                         alpha=0.7, label=f"{label} greedy eval ({n_eval} held-aside ep.)")
            axes[1].plot([r["env_steps"] for r in evals], [r["eval_grasp"] for r in evals], "o--", color=color,
                         alpha=0.7, label=f"{label} greedy eval ({n_eval} ep.)")
    axes[0].set_title(f"success at the last step (training: mean of the last {args.window} episodes)")
    axes[1].set_title("grasped at least once")
    axes[2].set_title("episode return (staged reward, max 1.2)")
    for ax in axes:
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
