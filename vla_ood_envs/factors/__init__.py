"""Episodes as factor records, and the pools factors are drawn from.

- `pools`: what every task shares (the nominal robot start, reading a record back from a manifest, pool checks and
  copies, the uniform draw);
- `pick`: VLAPick's record (`PickFactors`), pools (`PickPools`), the study's grid, ring and templates;
- `open`: VLAOpen's record (`OpenFactors`), pools (`OpenPools`), placements and templates.

Every public name of the three is importable from here (`from vla_ood_envs.factors import PickFactors`).
"""

from .open import (
    KINDS, OPEN_PITCH, OPEN_TEST_POSITIONS, OPEN_TEST_TEMPLATES, OPEN_TEST_YAWS, OPEN_TRAIN_POSITIONS,
    OPEN_TRAIN_TEMPLATE, OPEN_TRAIN_YAWS, OpenFactors, OpenPools, articulated_names, open_held_out_factors,
    open_train_pools, sample_open_factors,
)
from .pick import (
    DISTRACTOR_MIN_DISTANCE, FOOTPRINT_CLEARANCE, GRID_OFFSETS, GRID_PITCH, MAX_TRIES, MIN_PAIR_DISTANCE,
    REPOSITION_POSITIONS, RING_OFFSETS, RING_POSITIONS, TEST_TEMPLATES, TEST_YAWS, TRAIN_POSITIONS, TRAIN_TEMPLATE,
    TRAIN_YAWS, PickFactors, PickPools, Placement, held_out_factors, sample_factors, train_pools,
    valid_position_pairs,
)
from .pools import MANIFEST_KEYS, ZERO_OFFSET, PoolError, PoolOps, is_nominal_start, pick_one, record_fields

__all__ = [
    # pools
    "MANIFEST_KEYS", "ZERO_OFFSET", "PoolError", "PoolOps", "is_nominal_start", "pick_one", "record_fields",
    # pick
    "DISTRACTOR_MIN_DISTANCE", "FOOTPRINT_CLEARANCE", "GRID_OFFSETS", "GRID_PITCH", "MAX_TRIES", "MIN_PAIR_DISTANCE",
    "REPOSITION_POSITIONS", "RING_OFFSETS", "RING_POSITIONS", "TEST_TEMPLATES", "TEST_YAWS", "TRAIN_POSITIONS",
    "TRAIN_TEMPLATE", "TRAIN_YAWS", "PickFactors", "PickPools", "Placement", "held_out_factors", "sample_factors",
    "train_pools", "valid_position_pairs",
    # open
    "KINDS", "OPEN_PITCH", "OPEN_TEST_POSITIONS", "OPEN_TEST_TEMPLATES", "OPEN_TEST_YAWS", "OPEN_TRAIN_POSITIONS",
    "OPEN_TRAIN_TEMPLATE", "OPEN_TRAIN_YAWS", "OpenFactors", "OpenPools", "articulated_names",
    "open_held_out_factors", "open_train_pools", "sample_open_factors",
]
