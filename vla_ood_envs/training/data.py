"""Demonstrations in memory for supervised fine-tuning, and the split check that keeps held-out factors out.

`load_transitions` reads a finished demo dataset once (HDF5 -> uint8 frames resized to the model's resolution),
applies the study's preprocessing (docs: ../shared/docs/study.md section 4: truncate after 6 consecutive success
steps, drop steps that barely move unless the gripper toggles) and keeps everything as tensors, so a training
step only indexes memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..demos.preprocess import keep_mask, truncate_after_success
from ..demos.store import DemoDataset, Episode, statistics
from ..policies.image_ops import resize_images


class HeldOutDataError(ValueError):
    """A dataset for training reaches into held-out (test) pools."""


def manifest_held_out(manifest: dict) -> list[str]:
    """Every way one episode's manifest (its factor record plus "task" and "pools") lies outside the training
    distribution: a pools name other than "train" (every OOD wrapper renames the pools it changes) and, read
    from the factors themselves, held-out objects, receptacles, tables, templates, placements, robot start
    offsets, distractors, overlays, backgrounds or repositioning (`factors.held_out_factors`)."""
    from ..catalog import default_catalog

    problems = []
    pools = manifest.get("pools")
    if pools != "train":
        problems.append(f"pools {pools!r} (training demonstrations come from the 'train' pools)")
    task = manifest.get("task")
    common = dict(templates=(manifest.get("template"),), tables=(manifest.get("table"),),
                  robot_qpos_offsets=(tuple(manifest.get("robot_qpos_offset") or ()),),
                  overlays=(manifest["overlay"],) if manifest.get("overlay") else (),
                  backgrounds=(manifest["background"],) if manifest.get("background") else ())
    try:
        if task == "VLAPick":
            from ..factors.pick import PickPools, held_out_factors

            pools_rec = PickPools(
                objects=(manifest["object"],), receptacles=(manifest["receptacle"],),
                object_positions=(tuple(manifest["object_xy"]),),
                receptacle_positions=(tuple(manifest["receptacle_xy"]),), yaws=(manifest["object_yaw"],),
                n_distractor_objects=len(manifest.get("distractor_objects") or ()),
                n_distractor_receptacles=len(manifest.get("distractor_receptacles") or ()),
                reposition_positions=((tuple(manifest["reposition_xy"]),) if manifest.get("reposition_xy")
                                      else ()), **common)
            problems += held_out_factors(pools_rec, default_catalog())
        elif task == "VLAOpen":
            from ..factors.open import OpenPools, open_held_out_factors

            pools_rec = OpenPools(objects=(manifest["object"],), object_positions=(tuple(manifest["object_xy"]),),
                                  yaws=(manifest["object_yaw"],), **common)
            problems += open_held_out_factors(pools_rec, default_catalog())
        else:
            problems.append(f"unknown task {task!r} in the manifest")
    except KeyError as exc:
        problems.append(f"the manifest lacks the factor {exc.args[0]!r}")
    return problems


def check_training_env(dataset: DemoDataset) -> None:
    """Raise HeldOutDataError if the dataset was generated on an OOD condition (or an unknown env ID)."""
    from ..registry import declaration

    env_id = dataset.index.get("env_id")
    try:
        decl = declaration(env_id)
    except Exception as exc:  # noqa: BLE001 - unregistered ID: say so in the split error
        raise HeldOutDataError(f"{dataset.root}: env_id {env_id!r} is not a registered training env ({exc})") from None
    if decl.wrappers or decl.axis != "IND":
        raise HeldOutDataError(f"{dataset.root} was generated on {env_id}, an OOD condition ({decl.display_name}); "
                               f"training data comes from {decl.task}-v0 only")


def check_training_episode(dataset: DemoDataset, ep: Episode) -> None:
    """Raise HeldOutDataError naming the episode's seed and what in its manifest is held out."""
    problems = manifest_held_out(ep.manifest)
    if problems:
        raise HeldOutDataError(f"{dataset.root}: episode seed {ep.seed} reaches into held-out pools "
                               f"({'; '.join(problems)}); training data comes from the training distribution only")


@dataclass
class Transitions:
    """Training samples in memory.

    images: (N, S, S, 3) uint8 at the model's resolution; actions: (N, 7) float32 env units; proprio: (N, 8)
    float32; instruction_ids: (N,) int64 indices into `instructions`; episode: (N,) int64 index of the episode in
    `seeds`; seeds: the episodes' seeds in load order.
    """

    images: torch.Tensor
    actions: np.ndarray
    proprio: torch.Tensor
    instruction_ids: torch.Tensor
    instructions: list[str]
    episode: np.ndarray
    seeds: list[int]

    def __len__(self) -> int:
        return len(self.actions)

    def subset(self, episodes: np.ndarray) -> "Transitions":
        """The transitions of the given episode indices (into `seeds`)."""
        idx = np.flatnonzero(np.isin(self.episode, episodes))
        t = torch.from_numpy(idx)
        return Transitions(self.images[t], self.actions[idx], self.proprio[t], self.instruction_ids[t],
                           self.instructions, self.episode[idx], self.seeds)

    def action_statistics(self) -> dict:
        """OpenVLA-layout statistics ({"action": {q01, q99, min, max, mask, ...}, ...}) of these actions."""
        return statistics([self.actions], [self.proprio.numpy()])


def preprocess_episode(ep: Episode, truncate_after: int = 6, filter_steps: bool = True) -> tuple[np.ndarray, int]:
    """(indices of `ep`'s steps used for training, in order; the index of the last step kept by truncation).

    The study's preprocessing: truncate_after keeps up to the truncate_after-th consecutive success step (0: keep
    all); filter_steps drops steps that move < 1 cm and < 0.06 rad unless the gripper toggles.
    """
    n = truncate_after_success(ep.success, truncate_after) if truncate_after else len(ep)
    keep = keep_mask(ep.actions[:n]) if filter_steps else np.ones(n, dtype=bool)
    return np.flatnonzero(keep), n - 1


def load_transitions(dataset: DemoDataset, image_size: int | None, max_episodes: int | None = None,
                     truncate_after: int = 6, filter_steps: bool = True, idle_pad: int = 0,
                     check_split: bool = True, progress: Callable[[int, int], None] | None = None) -> Transitions:
    """Read the first `max_episodes` episodes (all: None) into memory at `image_size` px (None: as stored).

    idle_pad > 0 appends, after each episode's kept steps, that many copies of the frame at the truncation point
    labelled with zero motion and the final gripper command (teaching the policy to hold still once the task is
    done; the frame is the last one recorded there, so it is an approximation of the settled scene).
    Raises HeldOutDataError (check_split) for data from held-out pools, DatasetError for unreadable episodes.
    """
    n_eps = len(dataset) if max_episodes is None else min(int(max_episodes), len(dataset))
    if n_eps < 1:
        raise ValueError(f"{dataset.root} holds no episodes to train on")
    if check_split:
        check_training_env(dataset)
    images, actions, proprio, instr_ids, ep_ids, seeds = [], [], [], [], [], []
    instructions: list[str] = []
    lookup: dict[str, int] = {}
    for i in range(n_eps):
        ep = dataset[i]
        if check_split:
            check_training_episode(dataset, ep)
        idx, last = preprocess_episode(ep, truncate_after, filter_steps)
        act = ep.actions[idx].astype(np.float32)
        if idle_pad:
            hold = np.zeros((idle_pad, act.shape[1]), dtype=np.float32)
            hold[:, 6] = ep.actions[last, 6]
            idx = np.concatenate([idx, np.full(idle_pad, last)])
            act = np.concatenate([act, hold])
        frames = ep.images[idx]
        images.append(resize_images(frames, image_size).permute(0, 2, 3, 1).contiguous()
                      if image_size is not None else torch.from_numpy(frames))
        actions.append(act)
        proprio.append(ep.proprio[idx].astype(np.float32))
        k = lookup.setdefault(ep.instruction, len(instructions))
        if k == len(instructions):
            instructions.append(ep.instruction)
        instr_ids.append(np.full(len(idx), k, dtype=np.int64))
        ep_ids.append(np.full(len(idx), i, dtype=np.int64))
        seeds.append(ep.seed)
        if progress is not None:
            progress(i + 1, n_eps)
    return Transitions(images=torch.cat(images), actions=np.concatenate(actions),
                       proprio=torch.from_numpy(np.concatenate(proprio)),
                       instruction_ids=torch.from_numpy(np.concatenate(instr_ids)), instructions=instructions,
                       episode=np.concatenate(ep_ids), seeds=seeds)
