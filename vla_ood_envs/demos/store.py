"""Native demonstration store: one HDF5 file per episode, written atomically, plus a dataset index.

Layout of a dataset folder:

    episodes/episode_<seed>.h5   one successful episode each (written to a temporary name, then renamed: a file
                                 that exists is complete)
    failed.jsonl                 seeds whose expert rollout failed (so a resumed run does not retry them)
    dataset.json                 written last, atomically: the episodes in the dataset, generation settings and
                                 statistics. Without it the dataset is incomplete and readers refuse it.

An episode file holds `observation/image` (T, H, W, 3) uint8, `observation/proprio` (T, 8) float32 and `action`
(T, 7) float32 (layouts, units and conventions: `vla_ood_envs.spec`; the action is the one taken after seeing
observation t), `reward` (T,) float32 and `success` (T,) bool (after the action), with attributes
`instruction`, `env_id`, `seed` and `manifest` (the episode's factor record, JSON).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np

from ..spec import NORMALIZE_MASK

INDEX = "dataset.json"
FORMAT_VERSION = 1


class DatasetError(RuntimeError):
    """A dataset folder or episode file is missing, incomplete or unreadable."""


@dataclass
class Episode:
    seed: int
    env_id: str
    instruction: str
    manifest: dict
    images: np.ndarray
    proprio: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    success: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)


def episode_path(root: Path, seed: int) -> Path:
    return Path(root) / "episodes" / f"episode_{seed:08d}.h5"


def write_episode(root: Path, ep: Episode) -> Path:
    path = episode_path(root, ep.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".h5.tmp")
    with h5py.File(tmp, "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["seed"] = ep.seed
        f.attrs["env_id"] = ep.env_id
        f.attrs["instruction"] = ep.instruction
        f.attrs["manifest"] = json.dumps(ep.manifest)
        f.create_dataset("observation/image", data=ep.images, compression="lzf", chunks=(1, *ep.images.shape[1:]))
        f.create_dataset("observation/proprio", data=ep.proprio.astype(np.float32))
        f.create_dataset("action", data=ep.actions.astype(np.float32))
        f.create_dataset("reward", data=ep.rewards.astype(np.float32))
        f.create_dataset("success", data=ep.success.astype(bool))
    os.replace(tmp, path)
    return path


def read_episode(path: Path) -> Episode:
    try:
        with h5py.File(path, "r") as f:
            return Episode(
                seed=int(f.attrs["seed"]), env_id=str(f.attrs["env_id"]), instruction=str(f.attrs["instruction"]),
                manifest=json.loads(f.attrs["manifest"]), images=f["observation/image"][()],
                proprio=f["observation/proprio"][()], actions=f["action"][()], rewards=f["reward"][()],
                success=f["success"][()],
            )
    except (OSError, KeyError) as exc:
        raise DatasetError(f"cannot read episode file {path}: {exc}. Delete it and re-run `vla-ood generate` with "
                           f"the same arguments to regenerate it.") from exc


def write_json_atomic(path: Path, data: dict) -> None:
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


@contextmanager
def atomic_dir(out_dir: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a hidden sibling folder to build in; rename it to `out_dir` only if the block finishes."""
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists (pass overwrite=True to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()  # not mkdtemp: its 0700 mode would stay on the finished export
    try:
        yield tmp
        if out_dir.exists():  # overwrite: move the old export aside first, so out_dir is never half-written
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.rename(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def statistics(actions: list[np.ndarray], proprio: list[np.ndarray]) -> dict:
    """Per-dimension statistics in the form OpenVLA registers under an unnorm key (its `mask`: the spec's
    NORMALIZE_MASK, which leaves the gripper unnormalised)."""
    def stats(x: np.ndarray) -> dict:
        return {
            "mean": x.mean(0).tolist(), "std": x.std(0).tolist(), "max": x.max(0).tolist(), "min": x.min(0).tolist(),
            "q01": np.quantile(x, 0.01, axis=0).tolist(), "q99": np.quantile(x, 0.99, axis=0).tolist(),
        }

    a = np.concatenate(actions).astype(np.float64)
    p = np.concatenate(proprio).astype(np.float64)
    return {
        "action": {**stats(a), "mask": list(NORMALIZE_MASK)},
        "proprio": stats(p),
        "num_transitions": int(len(a)),
        "num_trajectories": len(actions),
    }


class DemoDataset:
    """Read a finished dataset: `len(ds)`, `ds[i]` -> Episode, `ds.index` (settings and statistics)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index = self.root / INDEX
        if not self.root.is_dir():
            raise DatasetError(f"no dataset folder at {self.root}")
        if not index.is_file():
            raise DatasetError(f"{self.root} has no {INDEX}: the generation did not finish. Re-run the same "
                               f"`vla-ood generate` command to resume it.")
        try:
            self.index = json.loads(index.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{index} is not valid JSON: {exc}") from exc
        self.seeds = [int(s) for s in self.index["seeds"]]
        missing = [s for s in self.seeds if not episode_path(self.root, s).is_file()]
        if missing:
            raise DatasetError(f"{self.root}: episode files missing for seeds {missing[:5]}")

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> Episode:
        return read_episode(episode_path(self.root, self.seeds[i]))

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]
