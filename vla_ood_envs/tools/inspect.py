"""`vla-ood inspect`: what a demonstration dataset holds, as numbers and pictures."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from ..demos.store import DemoDataset
from ..spec import ACTION_DIM, ACTION_NAMES


def summarize(ds: DemoDataset) -> dict:
    lengths = [len(e) for e in ds]
    objects = Counter(e.manifest["object"] for e in ds)
    tables = Counter(e.manifest["table"] for e in ds)
    stats = ds.index["statistics"][ds.index["env_id"]]["action"]
    return {
        "episodes": len(ds),
        "transitions": int(sum(lengths)),
        "length_mean": float(np.mean(lengths)),
        "length_range": (int(min(lengths)), int(max(lengths))),
        "expert_success_rate": ds.index["expert_success_rate"],
        "objects": dict(objects),
        "tables": dict(tables),
        "action_q01": stats["q01"],
        "action_q99": stats["q99"],
    }


def action_histograms(ds: DemoDataset, out: Path) -> Path:
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the action histograms need matplotlib: pip install matplotlib (or the package's "
                          "'train' or 'dev' extra)") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    actions = np.concatenate([e.actions for e in ds])
    fig, axes = plt.subplots(1, ACTION_DIM, figsize=(17, 2.6))
    for i, ax in enumerate(axes):
        ax.hist(actions[:, i], bins=40, color="#3b6ea5")
        ax.set_title(ACTION_NAMES[i], fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{ds.root.name}: {len(actions)} actions", fontsize=10)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def contact_sheet(ds: DemoDataset, out: Path, episodes: int = 8, frames: int = 6) -> Path:
    """Rows of evenly spaced frames from the first `episodes` episodes, captioned with step and instruction."""
    from ..sheets import grid

    images, captions = [], []
    for ep in list(ds)[:episodes]:
        for t in np.linspace(0, len(ep) - 1, frames).round().astype(int):
            images.append(ep.images[t])
            captions.append(f"{t}: {ep.instruction}" if t == 0 else f"step {t}")
    out.parent.mkdir(parents=True, exist_ok=True)
    grid(images, frames, captions).save(out)
    return out


def inspect(root: str | Path, out: str | Path | None = None, print_fn=print) -> dict:
    ds = DemoDataset(root)
    summary = summarize(ds)
    out = Path(out) if out else ds.root / "inspect"
    summary["histograms"] = str(action_histograms(ds, out / "actions.png"))
    summary["contact_sheet"] = str(contact_sheet(ds, out / "frames.png"))
    print_fn(f"{ds.root}: {summary['episodes']} episodes, {summary['transitions']} transitions, length "
             f"{summary['length_mean']:.1f} ({summary['length_range'][0]}-{summary['length_range'][1]}), expert "
             f"success {summary['expert_success_rate']:.0%}")
    print_fn(f"  objects: {summary['objects']}")
    print_fn(f"  tables:  {summary['tables']}")
    for name, lo, hi in zip(ACTION_NAMES, summary["action_q01"], summary["action_q99"]):
        print_fn(f"  {name:<7} q01 {lo:+.4f}  q99 {hi:+.4f}")
    print_fn(f"  wrote {summary['histograms']} and {summary['contact_sheet']}")
    return summary
