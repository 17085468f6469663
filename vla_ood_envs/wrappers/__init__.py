"""Gymnasium wrappers of the VLA envs (observation layout now; the OOD perturbations join here)."""

from .observation import SingleEnvNumpy, VLAObservation

__all__ = ["SingleEnvNumpy", "VLAObservation"]
