"""OpenVLA's action normaliser and tokenizer (policies/tokenizer.py) against ids computed here independently."""

import json

import numpy as np
import pytest
import torch

from vla_ood_envs.policies.tokenizer import ActionNormalizer, ActionTokenizer, StatisticsError

Q01 = np.array([-0.04, -0.03, -0.05, 0.0, 0.0, -0.25, -1.0])
Q99 = np.array([0.04, 0.05, 0.03, 0.0, 0.0, 0.25, 1.0])
MIN = np.array([-0.045, -0.035, -0.06, 0.0, 0.0, -0.25, -1.0])
MAX = np.array([0.045, 0.055, 0.04, 0.0, 0.0, 0.25, 1.0])


def _tok() -> ActionTokenizer:
    return ActionTokenizer(ActionNormalizer(q01=Q01, q99=Q99, min=MIN, max=MAX))


def _openvla_ids(x: np.ndarray) -> np.ndarray:
    """OpenVLA's rule written out: digitize against 256 uniform edges on [-1, 1], id = 32000 - index."""
    edges = np.linspace(-1, 1, 256)
    return 32000 - np.digitize(np.clip(x, -1, 1), edges)


def test_ids_at_bin_edges_and_centres_match_openvla():
    tok = _tok()
    edges = np.linspace(-1, 1, 256)
    centres = (edges[:-1] + edges[1:]) / 2
    for x in (edges, centres, np.array([-1.5, -1.0, 0.0, 1.0, 2.0])):
        ids = tok.normalized_to_ids(x)
        np.testing.assert_array_equal(ids, _openvla_ids(x))
        assert ids.dtype == np.int64
    assert tok.normalized_to_ids(np.array([-1.0]))[0] == 31999
    assert tok.normalized_to_ids(np.array([1.0]))[0] == 31744
    # Decoding a centre's id gives that centre back.
    np.testing.assert_allclose(tok.ids_to_normalized(_openvla_ids(centres)), centres, atol=1e-6)


def test_encode_matches_openvla_on_env_actions():
    tok = _tok()
    rng = np.random.default_rng(0)
    acts = rng.uniform(MIN, MAX, size=(500, 7))
    acts[:, 6] = rng.choice([-1.0, 1.0], size=500)
    norm = np.clip(2 * (acts - Q01) / (Q99 - Q01 + 1e-8) - 1, -1, 1)
    norm[:, 6] = acts[:, 6]  # the gripper is not normalised
    norm[:, 3:5] = 0.0  # dimensions with min == max map to 0
    np.testing.assert_array_equal(tok.encode(acts), _openvla_ids(norm))


def test_round_trip_within_half_a_bin_on_masked_dims():
    tok = _tok()
    rng = np.random.default_rng(1)
    acts = rng.uniform(Q01, Q99, size=(1000, 7))
    acts[:, 3:5] = 0.0
    acts[:, 6] = rng.choice([-1.0, 1.0], size=1000)
    back = tok.decode(tok.encode(acts))
    half_bin = (Q99 - Q01) / 255 / 2  # bin width 2/255 in normalised units, times (q99 - q01)/2
    err = np.abs(back - acts)[:, :6]
    assert (err <= half_bin[:6] + 1e-6).all(), err.max(0)
    np.testing.assert_array_equal(back[:, 3:5], 0.0)


def test_gripper_passes_through_unnormalised():
    # q01/q99 of the gripper far from +-1 would move it if it were normalised; the mask leaves it alone.
    norm = ActionNormalizer(q01=np.r_[Q01[:6], 0.2], q99=np.r_[Q99[:6], 0.4], min=np.r_[MIN[:6], -1.0],
                            max=np.r_[MAX[:6], 1.0])
    acts = np.zeros((2, 7))
    acts[:, 6] = [1.0, -1.0]
    np.testing.assert_array_equal(norm.normalize(acts)[:, 6], [1.0, -1.0])
    tok = ActionTokenizer(norm)
    ids = tok.encode(acts)
    np.testing.assert_array_equal(ids[:, 6], [31744, 31999])
    dec = tok.decode(ids)[:, 6]
    assert dec[0] > 0.99 and dec[1] < -0.99  # bin centres nearest +-1, polarity kept


def test_numpy_and_torch_agree():
    tok = _tok()
    rng = np.random.default_rng(2)
    acts = rng.uniform(MIN, MAX, size=(4, 3, 7)).astype(np.float32)
    ids_np = tok.encode(acts)
    ids_t = tok.encode(torch.from_numpy(acts))
    assert isinstance(ids_t, torch.Tensor) and ids_t.dtype == torch.int64 and ids_t.shape == (4, 3, 7)
    np.testing.assert_array_equal(ids_t.numpy(), ids_np)
    dec_t = tok.decode(ids_t)
    assert isinstance(dec_t, torch.Tensor) and dec_t.dtype == torch.float32
    np.testing.assert_array_equal(dec_t.numpy(), tok.decode(ids_np))
    np.testing.assert_array_equal(tok.ids_to_bins(ids_t).numpy(), tok.ids_to_bins(ids_np))
    bins = tok.ids_to_bins(ids_np)
    assert bins.min() >= 0 and bins.max() <= 255
    np.testing.assert_array_equal(tok.bins_to_ids(bins), ids_np)
    np.testing.assert_array_equal(tok.bins_to_ids(torch.from_numpy(bins)).numpy(), ids_np)


def _stats_entry():
    return {"q01": Q01.tolist(), "q99": Q99.tolist(), "min": MIN.tolist(), "max": MAX.tolist(),
            "mask": [True] * 6 + [False]}


def test_statistics_from_a_dataset_json(tmp_path):
    index = {"format_version": 1, "env_id": "VLAPick-v0", "seeds": [0, 1],
             "statistics": {"VLAPick-v0": {"action": _stats_entry(), "num_transitions": 10}}}
    (tmp_path / "dataset.json").write_text(json.dumps(index))
    for src in (tmp_path, tmp_path / "dataset.json"):
        n = ActionNormalizer.from_file(src)
        np.testing.assert_allclose(n.q01, Q01)
        np.testing.assert_allclose(n.q99, Q99)
        np.testing.assert_array_equal(n.mask, [True] * 6 + [False])


def test_statistics_from_openvla_layout_with_unnorm_key(tmp_path):
    other = _stats_entry()
    other["q99"] = (Q99 * 2).tolist()
    path = tmp_path / "dataset_statistics.json"
    path.write_text(json.dumps({"bridge_orig": {"action": other}, "vla_pick": {"action": _stats_entry()}}))
    n = ActionNormalizer.from_file(path, unnorm_key="vla_pick")
    np.testing.assert_allclose(n.q99, Q99)
    np.testing.assert_allclose(ActionNormalizer.from_file(tmp_path, unnorm_key="bridge_orig").q99, Q99 * 2)
    # The written layout reads back.
    path2 = tmp_path / "rt.json"
    path2.write_text(json.dumps({"k": {"action": n.to_dict()}}))
    np.testing.assert_allclose(ActionNormalizer.from_file(path2).q01, Q01)


def test_statistics_errors(tmp_path):
    path = tmp_path / "dataset_statistics.json"
    path.write_text(json.dumps({"bridge_orig": {"action": _stats_entry()}, "fractal": {"action": _stats_entry()}}))
    with pytest.raises(StatisticsError, match=r"no statistics under unnorm key 'nope'.*bridge_orig.*fractal"):
        ActionNormalizer.from_file(path, unnorm_key="nope")
    with pytest.raises(StatisticsError, match="several datasets.*unnorm_key"):
        ActionNormalizer.from_file(path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StatisticsError, match="neither dataset.json nor dataset_statistics.json"):
        ActionNormalizer.from_file(tmp_path / "empty")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"k": {"action": {"q01": Q01.tolist()}}}))
    with pytest.raises(StatisticsError, match="lack 'q99'"):
        ActionNormalizer.from_file(bad)
    bad.write_text("{not json")
    with pytest.raises(StatisticsError, match="cannot read"):
        ActionNormalizer.from_file(bad)
    with pytest.raises(StatisticsError, match="7 finite numbers"):
        ActionNormalizer(q01=Q01[:6], q99=Q99[:6], min=MIN[:6], max=MAX[:6])


def test_encode_and_decode_errors():
    tok = _tok()
    with pytest.raises(ValueError, match="NaN"):
        tok.encode(np.full((1, 7), np.nan))
    with pytest.raises(ValueError, match="last axis of 7"):
        tok.encode(np.zeros((1, 6)))
    with pytest.raises(ValueError, match="action tokens"):
        tok.decode(np.array([[0] * 7]))
    with pytest.raises(ValueError, match="action tokens"):
        tok.ids_to_bins(torch.full((1, 7), 5))
