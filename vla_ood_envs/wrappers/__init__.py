"""Gymnasium wrappers of the VLA envs: the observation layout and one OOD perturbation per study condition.

Each perturbation has a `layer` ("scene", "image", "language", "event"); see `vla_ood_envs.wrappers.base`.
"""

from .base import Perturbation, PerturbationError
from .execution import MidEpisodeReposition, PlacementSampler, RobotInitPose, robot_init_offsets
from .observation import SingleEnvNumpy, VLAObservation
from .sb3 import SB3Observation
from .semantics import DistractorObject, DistractorReceptacle, InstructionParaphrase, ObjectSampler, ReceptacleSampler
from .vision import DynamicNoise, DynamicTexture, UnseenTable

__all__ = [
    "DistractorObject", "DistractorReceptacle", "DynamicNoise", "DynamicTexture", "InstructionParaphrase",
    "MidEpisodeReposition", "ObjectSampler", "Perturbation", "PerturbationError", "PlacementSampler",
    "ReceptacleSampler", "RobotInitPose", "SB3Observation", "SingleEnvNumpy", "UnseenTable", "VLAObservation", "robot_init_offsets",
]
