"""Gymnasium's RecordVideo works on the envs with the dev extra (it needs moviepy)."""

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
from gymnasium.wrappers import RecordVideo


def test_record_video_writes_an_mp4_of_the_episode(tmp_path):
    folder = tmp_path / "videos"
    env = RecordVideo(gym.make("VLAPick-v0", render_mode="rgb_array", camera_width=32, camera_height=32),
                      str(folder), episode_trigger=lambda episode: True, disable_logger=True)
    env.reset(seed=0)
    for _ in range(4):
        env.step(np.zeros(7, np.float32))
    env.close()
    videos = list(folder.glob("*.mp4"))
    assert len(videos) == 1
    frames = iio.imread(videos[0])
    assert frames.ndim == 4 and frames.shape[0] == 5 and frames.shape[-1] == 3  # the reset frame + 4 steps
