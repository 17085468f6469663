"""OpenVLA's action normaliser and action tokenizer, vectorised over any leading batch shape (numpy or torch).

Scheme (OpenVLA, `prismatic/vla/action_tokenizer.py` and `prismatic/vla/datasets/rlds/utils/data_utils.py`;
docs: ../shared/docs/study.md section 5, training-design.md "Lessons from the anchors"):

- normalise: on the masked dimensions x -> clip(2 (x - q01) / (q99 - q01 + 1e-8) - 1, -1, 1); dimensions whose
  min equals their max (never moved in the data) -> 0; unmasked dimensions (the gripper, already +1/-1) pass
  through unchanged;
- tokenize: clip to [-1, 1], `np.digitize` against 256 uniform edges over [-1, 1] (bin index 1..256), token id =
  vocab_size - index (OpenVLA: vocab_size = 32000, so ids 31744..31999);
- detokenize: index = vocab_size - id, minus 1, clipped to 0..254, -> one of the 255 bin centres;
- de-normalise: on the masked dimensions a = 0.5 (x + 1) (q99 - q01) + q01 (OpenVLA's `predict_action`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import spec

OPENVLA_VOCAB_SIZE = 32000
N_BINS = 256


class StatisticsError(ValueError):
    """Action statistics are missing, malformed, or lack the requested unnorm key."""


def _like(ref: Any, x: np.ndarray) -> Any:
    if isinstance(ref, torch.Tensor):
        return torch.as_tensor(x, dtype=ref.dtype if ref.is_floating_point() else torch.float32, device=ref.device)
    return x


@dataclass
class ActionNormalizer:
    """Per-dimension q01/q99 bounds with OpenVLA's mask (the gripper is not normalised by default).

    q01, q99, min, max: (7,) float arrays of the dataset's actions; mask: (7,) bool, True = normalise.
    """

    q01: np.ndarray
    q99: np.ndarray
    min: np.ndarray
    max: np.ndarray
    mask: np.ndarray = field(default_factory=lambda: np.array(spec.NORMALIZE_MASK))

    def __post_init__(self) -> None:
        for name in ("q01", "q99", "min", "max"):
            v = np.asarray(getattr(self, name), dtype=np.float64)
            if v.shape != (spec.ACTION_DIM,) or not np.isfinite(v).all():
                raise StatisticsError(f"action statistic {name!r} must be {spec.ACTION_DIM} finite numbers, got {v}")
            setattr(self, name, v)
        self.mask = np.asarray(self.mask, dtype=bool).reshape(spec.ACTION_DIM)

    # ------------------------------------------------------------------ (de)normalisation
    def normalize(self, actions: Any) -> Any:
        """(..., 7) env-unit actions -> (..., 7) in [-1, 1] on the masked dims (numpy float32 or torch)."""
        is_t = isinstance(actions, torch.Tensor)
        x = actions.detach().cpu().numpy() if is_t else np.asarray(actions)
        x = x.astype(np.float64)
        norm = np.clip(2 * (x - self.q01) / (self.q99 - self.q01 + 1e-8) - 1, -1, 1)
        out = np.where(self.mask, norm, x)
        out = np.where(self.min == self.max, 0.0, out)
        out = out.astype(np.float32)
        return _like(actions, out) if is_t else out

    def denormalize(self, normalized: Any) -> Any:
        """(..., 7) normalised -> (..., 7) env units (OpenVLA's `predict_action` formula)."""
        is_t = isinstance(normalized, torch.Tensor)
        x = normalized.detach().cpu().numpy() if is_t else np.asarray(normalized)
        x = x.astype(np.float64)
        out = np.where(self.mask, 0.5 * (x + 1) * (self.q99 - self.q01) + self.q01, x).astype(np.float32)
        return _like(normalized, out) if is_t else out

    # ------------------------------------------------------------------ io
    def to_dict(self) -> dict:
        """OpenVLA's `dataset_statistics.json` layout of the "action" entry."""
        return {"q01": self.q01.tolist(), "q99": self.q99.tolist(), "min": self.min.tolist(),
                "max": self.max.tolist(), "mask": self.mask.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "ActionNormalizer":
        try:
            return cls(q01=d["q01"], q99=d["q99"], min=d.get("min", d["q01"]), max=d.get("max", d["q99"]),
                       mask=d.get("mask", spec.NORMALIZE_MASK))
        except KeyError as exc:
            raise StatisticsError(f"action statistics lack {exc.args[0]!r} (need q01 and q99 per dimension)") from None

    @classmethod
    def from_file(cls, path: str | Path, unnorm_key: str | None = None) -> "ActionNormalizer":
        """Read statistics from a demo dataset's `dataset.json` (or its folder), or from an OpenVLA-style
        `dataset_statistics.json` ({unnorm_key: {"action": {...}}}). unnorm_key None: the only key there is.

        Raises StatisticsError naming the file and the keys it has.
        """
        path = Path(path)
        if path.is_dir():
            candidates = [path / "dataset.json", path / "dataset_statistics.json"]
            found = [p for p in candidates if p.is_file()]
            if not found:
                raise StatisticsError(f"{path} holds neither dataset.json nor dataset_statistics.json")
            path = found[0]
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StatisticsError(f"cannot read action statistics from {path}: {exc}") from None
        if isinstance(data, dict) and "statistics" in data and "seeds" in data:  # a vla-ood dataset.json
            data = data["statistics"]
        return cls.from_statistics(data, unnorm_key, source=str(path))

    @classmethod
    def from_statistics(cls, data: Any, unnorm_key: str | None = None,
                        source: str = "statistics") -> "ActionNormalizer":
        """Pick one dataset's entry from a mapping {unnorm_key: {"action": {...}}} (OpenVLA's `norm_stats`, the
        contents of `dataset_statistics.json`, a dataset.json's "statistics"). unnorm_key None: the only key there is.

        Raises StatisticsError naming `source` and the keys it has.
        """
        key = select_unnorm_key(data, unnorm_key, source)
        entry = data[key]
        if not isinstance(entry, dict):
            raise StatisticsError(f"{source}: the statistics under {key!r} are not a mapping")
        return cls.from_dict(entry["action"] if "action" in entry else entry)


def select_unnorm_key(data: Any, unnorm_key: str | None, source: str = "statistics") -> str:
    """The key of `data` ({unnorm_key: statistics}) to use: `unnorm_key`, or the only key when it is None.

    Raises StatisticsError naming `source` and the keys it has (none, several without a choice, or not this one).
    """
    if not isinstance(data, dict) or not data:
        raise StatisticsError(f"{source} holds no statistics")
    keys = sorted(data)
    if unnorm_key is None:
        if len(keys) != 1:
            raise StatisticsError(f"{source} has statistics for several datasets ({keys}); pass unnorm_key=")
        return keys[0]
    if unnorm_key not in data:
        raise StatisticsError(f"{source} has no statistics under unnorm key {unnorm_key!r}; it has {keys}")
    return unnorm_key


class ActionTokenizer:
    """Actions <-> OpenVLA action-token ids (int64), through an ActionNormalizer.

    encode(actions (..., 7) env units) -> ids (..., 7) int64 in [vocab_size - 256, vocab_size - 1];
    decode(ids) -> actions (..., 7) float32 at the bin centres, de-normalised. Numpy in, numpy out; torch in, torch
    out (same device). `bins_to_ids` / `ids_to_bins` convert to and from bin indices 0..255 (index = bin - 1 of
    OpenVLA's digitize), the layout of a 256-way classification head.
    """

    def __init__(self, normalizer: ActionNormalizer, vocab_size: int = OPENVLA_VOCAB_SIZE, n_bins: int = N_BINS):
        if vocab_size < n_bins:
            raise ValueError(f"vocab_size {vocab_size} is smaller than the {n_bins} action tokens")
        self.normalizer = normalizer
        self.vocab_size = int(vocab_size)
        self.n_bins = int(n_bins)
        self.edges = np.linspace(-1.0, 1.0, self.n_bins)
        self.centers = (self.edges[:-1] + self.edges[1:]) / 2.0

    @property
    def first_id(self) -> int:
        """Smallest action-token id (31744 for OpenVLA)."""
        return self.vocab_size - self.n_bins

    def normalized_to_ids(self, x: Any) -> Any:
        is_t = isinstance(x, torch.Tensor)
        a = x.detach().cpu().numpy() if is_t else np.asarray(x)
        idx = np.digitize(np.clip(a, -1.0, 1.0), self.edges)  # 1..256
        ids = (self.vocab_size - idx).astype(np.int64)
        return torch.as_tensor(ids, device=x.device) if is_t else ids

    def ids_to_normalized(self, ids: Any) -> Any:
        is_t = isinstance(ids, torch.Tensor)
        i = ids.detach().cpu().numpy() if is_t else np.asarray(ids)
        self._check_ids(i)
        idx = np.clip(self.vocab_size - i.astype(np.int64) - 1, 0, self.n_bins - 2)
        out = self.centers[idx].astype(np.float32)
        return torch.as_tensor(out, device=ids.device) if is_t else out

    def encode(self, actions: Any) -> Any:
        """Env-unit actions (..., 7) -> token ids (..., 7) int64. Raises ValueError on NaN/inf."""
        a = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        if a.shape[-1:] != (spec.ACTION_DIM,):
            raise ValueError(f"actions must have a last axis of {spec.ACTION_DIM}, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("actions contain NaN or inf")
        ids = self.normalized_to_ids(self.normalizer.normalize(a))
        return torch.as_tensor(ids, device=actions.device) if isinstance(actions, torch.Tensor) else ids

    def decode(self, ids: Any) -> Any:
        """Token ids (..., 7) -> env-unit actions (..., 7) float32 (bin centres, de-normalised)."""
        out = self.normalizer.denormalize(self.ids_to_normalized(ids))
        return out

    def ids_to_bins(self, ids: Any) -> Any:
        """Token ids -> class indices 0..255 (class k <-> id vocab_size - 1 - k, i.e. OpenVLA bin k + 1)."""
        if isinstance(ids, torch.Tensor):
            self._check_ids(ids.detach().cpu().numpy())
            return self.vocab_size - 1 - ids
        self._check_ids(np.asarray(ids))
        return self.vocab_size - 1 - np.asarray(ids, dtype=np.int64)

    def bins_to_ids(self, bins: Any) -> Any:
        """Class indices 0..255 -> token ids."""
        if isinstance(bins, torch.Tensor):
            return self.vocab_size - 1 - bins.long()
        return (self.vocab_size - 1 - np.asarray(bins, dtype=np.int64)).astype(np.int64)

    def action_id_range(self) -> tuple[int, int]:
        """[lo, hi) of the action-token ids: slice logits by these values, never "the last 256 positions"
        (OpenVLA's logits are padded past the vocabulary, 32064 wide)."""
        return self.first_id, self.vocab_size

    def _check_ids(self, ids: np.ndarray) -> None:
        if ids.size and (ids.min() < self.first_id or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must lie in [{self.first_id}, {self.vocab_size - 1}] (the action tokens); "
                             f"got {int(ids.min())}..{int(ids.max())}")
