"""Run folders of the RL trainers: the config used, the metrics log, TensorBoard, checkpoints that resume exactly.

Layout of `out/`:
    config.json            the configuration (a resumed run must match it, except the RESUMABLE settings)
    metrics.jsonl          one JSON record per completed iteration ("iteration" 1, 2, ...)
    tb/                    TensorBoard events (when the tensorboard package is installed)
    checkpoints/iter_NNNNNN/   policy/ (save_pretrained: load it for evaluation), trainer_state.pt (trainable
                           weights, optimizer, counters), rng_rank{R}.pt (every rank's RNG states)
    checkpoints/latest.json    {"iteration": N, "path": "iter_NNNNNN"}

Resuming loads the latest checkpoint and rewrites metrics.jsonl without the iterations after it (they are played
again, from the same seeds and RNG state), so the log never holds a duplicated or a missing iteration.
Every file is written to a temporary name first and renamed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .distributed import DistInfo, barrier

CONFIG = "config.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
LATEST = "latest.json"


class RunError(ValueError):
    """A run folder that cannot be resumed with this configuration."""


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl (a torn last line from a crash is skipped)."""
    p = Path(path)
    if p.is_dir():
        p = p / METRICS
    out = []
    if p.exists():
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def trainable_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that train, plus buffers (everything that changes during RL), on CPU."""
    names = {n for n, p in module.named_parameters() if p.requires_grad} | {n for n, _ in module.named_buffers()}
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if k in names}


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Run:
    """One run folder, shared by every rank (only rank 0 writes config, metrics and TensorBoard).

    config: the trainer's configuration as a dict; resumable: keys allowed to differ from a previous run's.
    Raises RunError when the folder holds a run with different settings.
    """

    def __init__(self, out: str | Path, config: dict, info: DistInfo, resumable: tuple[str, ...] = ()):
        self.root = Path(out)
        self.info = info
        self.ckpt_root = self.root / CHECKPOINTS
        self._tb = None
        old_path = self.root / CONFIG
        if old_path.exists() and self.latest() is not None:
            old = json.loads(old_path.read_text())
            diff = sorted(k for k in set(old) | set(config)
                          if k not in resumable and json.dumps(old.get(k), default=str) !=
                          json.dumps(config.get(k), default=str))
            if diff:
                shown = "; ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in diff)
                raise RunError(f"{self.root} holds a run with other settings ({shown}); resume it with the same "
                               f"settings, or pass a new --out")
        barrier(info)
        if info.is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            self.ckpt_root.mkdir(exist_ok=True)
            write_json_atomic(old_path, config)
        barrier(info)

    # -------------------------------------------------------------- metrics
    def start_logging(self, next_iteration: int, tensorboard: bool) -> None:
        """Drop logged iterations after `next_iteration` completed ones (they are played again after a resume);
        open TensorBoard."""
        if not self.info.is_main:
            return
        path = self.root / METRICS
        # A fresh start (no checkpoint) drops everything, including a previous attempt's iteration-0 record.
        kept = [r for r in read_metrics(path) if next_iteration > 0 and int(r.get("iteration", 0)) <= next_iteration]
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        os.replace(tmp, path)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional: the JSONL log is the record
                return
            self._tb = SummaryWriter(str(self.root / "tb"), purge_step=next_iteration + 1)

    def log(self, record: dict) -> None:
        """Append one iteration's record (flushed to disk before returning)."""
        if not self.info.is_main:
            return
        with open(self.root / METRICS, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self._tb is not None:
            step = int(record["iteration"])
            for k, v in record.items():
                if isinstance(v, (int, float)) and k != "iteration":
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    # -------------------------------------------------------------- checkpoints
    def latest(self) -> Path | None:
        p = self.ckpt_root / LATEST
        if not p.exists():
            return None
        path = self.ckpt_root / json.loads(p.read_text())["path"]
        return path if path.exists() else None

    def save(self, iteration: int, policy, optimizer: torch.optim.Optimizer, counters: dict) -> Path:
        """Checkpoint after `iteration` completed iterations (collective: every rank calls it)."""
        name = f"iter_{iteration:06d}"
        final, tmp = self.ckpt_root / name, self.ckpt_root / (name + ".tmp")
        if self.info.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        barrier(self.info)
        torch.save(rng_state(), tmp / f"rng_rank{self.info.rank}.pt")
        barrier(self.info)
        if self.info.is_main:
            policy.save_pretrained(str(tmp / "policy"))
            torch.save({"iteration": iteration, "policy": trainable_state(policy),
                        "optimizer": optimizer.state_dict(), "counters": counters,
                        "world_size": self.info.world_size}, tmp / "trainer_state.pt")
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            write_json_atomic(self.ckpt_root / LATEST, {"iteration": iteration, "path": name})
            self._prune(keep_latest=name)
        barrier(self.info)
        return final

    def _prune(self, keep_latest: str) -> None:
        keep = getattr(self, "keep", 2)
        done = sorted(p for p in self.ckpt_root.glob("iter_*") if not p.name.endswith(".tmp"))
        for p in done[:-keep] if keep > 0 else []:
            if p.name != keep_latest:
                shutil.rmtree(p, ignore_errors=True)

    def resume(self, policy, optimizer: torch.optim.Optimizer) -> tuple[int, dict]:
        """Load the latest checkpoint into policy and optimizer and restore this rank's RNG. Returns (completed
        iterations, counters); (0, {}) when there is none. Raises RunError for a checkpoint from another world
        size (its RNG streams and seeds would not line up)."""
        path = self.latest()
        if path is None:
            return 0, {}
        state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
        if state["world_size"] != self.info.world_size:
            raise RunError(f"{path} was written by {state['world_size']} ranks, this run has "
                           f"{self.info.world_size}; resume with the same torchrun --nproc-per-node")
        missing = set(state["policy"]) - set(policy.state_dict())
        if missing:
            raise RunError(f"{path} holds weights this policy does not have: {sorted(missing)[:5]}")
        policy.load_state_dict(state["policy"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(torch.load(path / f"rng_rank{self.info.rank}.pt", weights_only=False))
        return int(state["iteration"]), dict(state["counters"])
