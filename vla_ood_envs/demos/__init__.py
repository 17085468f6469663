"""Demonstration datasets: generation with the scripted expert, the native HDF5 store, the study's preprocessing."""

from .generate import GenerateConfig, SplitError, generate
from .preprocess import keep_mask, truncate_after_success
from .store import DatasetError, DemoDataset, Episode

__all__ = ["DatasetError", "DemoDataset", "Episode", "GenerateConfig", "SplitError", "generate", "keep_mask",
           "truncate_after_success"]
