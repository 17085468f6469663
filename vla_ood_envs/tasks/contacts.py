"""Contact forces of several body pairs from one contact query per step, and the grasp test on them.

ManiSkill's `scene.get_pairwise_contact_forces(a, b)` reads PhysX's whole contact list and scans it in Python for
every pair it is asked about; a task that checks a grasp (two finger pairs) and a placement (object-receptacle)
scans it three times per step, and the list holds every resting contact of the parked catalog items (about 110
contacts in VLAPick). `pair_forces` scans it once for all pairs and sums each pair's impulses with ManiSkill's own
`compute_total_impulse`, so every force is bit-identical to ManiSkill's. On the GPU simulation it calls ManiSkill's
per-pair GPU query unchanged.
"""

from __future__ import annotations

from typing import Sequence

import torch

from mani_skill.utils import common, sapien_utils


def pair_forces(scene, pairs: Sequence[tuple]) -> list[torch.Tensor]:
    """The contact force on pairs[i][0] from pairs[i][1], for every pair: a list of (num_envs, 3) float32 tensors
    in newtons, each equal to `scene.get_pairwise_contact_forces(*pairs[i])`.

    scene: ManiSkill's ManiSkillScene; pairs: (Actor | Link, Actor | Link) tuples of distinct bodies.
    """
    if scene.gpu_sim_enabled:
        return [scene.get_pairwise_contact_forces(a, b) for a, b in pairs]
    # CPU simulation holds one sub-scene. Bodies are matched by their PhysX component, the same object PhysX's
    # contact reports: ManiSkill matches by entity, and each actor or link entity holds exactly one such component.
    wanted: dict[tuple, list[tuple[int, bool]]] = {}
    for i, (a, b) in enumerate(pairs):
        ca, cb = a._bodies[0], b._bodies[0]
        wanted.setdefault((ca, cb), []).append((i, True))
        wanted.setdefault((cb, ca), []).append((i, False))
    found: list[list] = [[] for _ in pairs]
    for contact in scene.px.get_contacts():
        hits = wanted.get(tuple(contact.bodies))
        if hits is not None:
            for i, first in hits:
                found[i].append((contact, first))
    dt = scene.px.timestep
    # ManiSkill's get_pairwise_contact_impulses, then / timestep, on each pair's contacts in PhysX's order (no
    # contact: its zeros, directly).
    return [common.to_tensor(sapien_utils.compute_total_impulse(c))[None, :] / dt if c else torch.zeros((1, 3))
            for c in found]


def _y_axis(q: torch.Tensor) -> torch.Tensor:
    """Second column of the rotation matrix of quaternions q (N, 4, wxyz): the same arithmetic as ManiSkill's
    `quaternion_to_matrix(q)[..., :, 1]`, without the other six entries."""
    r, i, j, k = torch.unbind(q, -1)
    two_s = 2.0 / (q * q).sum(-1)
    return torch.stack((two_s * (i * j - k * r), 1 - two_s * (i * i + k * k), two_s * (j * k + i * r)), -1)


def _unit(x: torch.Tensor, norm: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / |x| row-wise, rows shorter than eps left as they are: ManiSkill's `common.normalize_vector` with its norm
    given, and a `where` in place of its masked assignment (same values)."""
    return torch.multiply(x, (1 / torch.where(norm < eps, 1.0, norm))[:, None])


def grasp_test(agent, left: torch.Tensor, right: torch.Tensor, min_force: float, max_angle: float) -> torch.Tensor:
    """Whether the agent grasps the body whose contact forces on its fingers are `left` and `right` (N, 3):
    ManiSkill 3.0.1's `Panda.is_grasping` / `WidowX250S.is_grasping` (both fingers pressed with >= min_force
    newtons, each force within max_angle degrees of the finger's opening direction) on forces already read, with
    the same arithmetic. Returns (N,) bool."""
    lnorm, rnorm = torch.linalg.norm(left, axis=1), torch.linalg.norm(right, axis=1)
    pressed = torch.logical_and(lnorm >= min_force, rnorm >= min_force)
    if not bool(pressed.any()):  # most steps: the directions cannot change the answer
        return pressed
    flags = []
    for force, norm, direction in ((left, lnorm, _y_axis(agent.finger1_link.pose.q)),
                                   (right, rnorm, -_y_axis(agent.finger2_link.pose.q))):
        # common.compute_angle_between(direction, force)
        cos = torch.einsum("ij,ij->i", _unit(direction, torch.linalg.norm(direction, axis=1)), _unit(force, norm))
        flags.append(torch.rad2deg(torch.arccos(torch.clip(cos, -1, 1))) <= max_angle)
    return torch.logical_and(pressed, torch.logical_and(*flags))
