"""Speed work must not change the simulation: fixed seeds and actions give the infos and rewards they gave before.

tests/data/step_infos.npz holds expert episodes of both tasks (80 steps each, grasps and successes included)
recorded by tests/data/record_step_infos.py with the code before the per-step speed-ups (one contact query per
step, the cheaper controller). Replaying the stored actions must reproduce every step's success, grasp, contact
force, potential, staged reward and dense reward.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


def _recorder():
    spec = importlib.util.spec_from_file_location("record_step_infos", DATA / "record_step_infos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RECORDER = _recorder()
STORED = np.load(DATA / "step_infos.npz")


@pytest.mark.parametrize("env_id,seed", RECORDER.EPISODES)
def test_recorded_episode_replays_to_the_same_infos(env_id, seed):
    key = f"{env_id}/{seed}"
    stored = {k[len(key) + 1:]: STORED[k] for k in STORED.files if k.startswith(key + "/")}
    assert stored["is_grasped"].any() and stored["success"][-1]  # the episode exercises grasp and success
    replayed = RECORDER.replay(env_id, seed, stored.pop("actions"))
    assert set(stored) <= set(replayed)  # info keys added since the recording are not compared
    for name, want in stored.items():
        got = replayed[name]
        if want.dtype == bool:
            first = np.flatnonzero(got != want)
            assert first.size == 0, f"{name} differs first at step {first[:1]}: {got[first[:1]]} vs {want[first[:1]]}"
        else:
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)
