"""The RL trainers on real envs (16 px frames, a few steps, a small conv policy): GRPO groups start from identical
frames, a PPO update raises the log-probs of high-advantage actions, every trainer logs and checkpoints, an
interrupted run resumes exactly, 2 torchrun ranks keep identical replicas, OOD IDs and held-out pools are refused."""

import json
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from rl_policy import ConvTokenPolicy  # noqa: E402

from vla_ood_envs.registry import make_env  # noqa: E402
from vla_ood_envs.rollout import collect  # noqa: E402
from vla_ood_envs.training import common  # noqa: E402
from vla_ood_envs.training.advantages import gae, normalize  # noqa: E402
from vla_ood_envs.training.buffer import RolloutBuffer  # noqa: E402
from vla_ood_envs.training.distributed import DistInfo  # noqa: E402
from vla_ood_envs.training.runs import RunError, read_metrics  # noqa: E402

STEPS = 4
SMALL = dict(image_size=16, max_episode_steps=STEPS, reward_mode="normalized_dense", num_envs=1,
             vectorization="single", eval_every=0, progress=False, tensorboard=False, micro_batch_size=4,
             grad_accum_steps=2)


@pytest.fixture(scope="module")
def env():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = make_env("VLAPick-v0", camera_width=16, camera_height=16, max_episode_steps=STEPS,
                     reward_mode="normalized_dense")
    yield e
    e.close()


def test_grpo_group_starts_from_identical_first_frames():
    """Equal seeds give equal episodes on the CPU vector env, also from the second collect on (Gymnasium 1.4's
    async workers kept a pending autoreset across reset(): the first action of the next collect was dropped)."""
    from vla_ood_envs.training.grpo import GRPOConfig

    cfg = GRPOConfig(num_envs=2, group_size=2, episodes_per_iteration=4, image_size=16)
    seeds, groups = common.train_seeds(cfg, 0, DistInfo(), group_size=2)
    assert seeds[0] == seeds[1] != seeds[2] == seeds[3] and groups == [groups[0]] * 2 + [groups[2]] * 2
    venv = __import__("gymnasium").make_vec("VLAPick-v0", num_envs=2, camera_width=16, camera_height=16,
                                            max_episode_steps=2)
    try:
        policy = ConvTokenPolicy()
        same = collect(venv, policy, seeds[:2], greedy=True)
        other = collect(venv, policy, [seeds[0], seeds[2]], greedy=True)
        again = collect(venv, policy, seeds[:2], greedy=True)
    finally:
        venv.close()
    assert all(t.truncated and len(t) == 2 for t in same + other + again)
    np.testing.assert_array_equal(same[0].images[0], same[1].images[0])
    assert json.dumps(same[0].manifest, default=str) == json.dumps(same[1].manifest, default=str)
    assert not np.array_equal(other[0].images[0], other[1].images[0])
    for a, b in zip(same, again):  # a later collect replays the seeded episodes step for step
        np.testing.assert_array_equal(a.images, b.images)
        assert a.instruction == b.instruction


def test_ppo_update_raises_log_probs_of_high_advantage_actions(env):
    from vla_ood_envs.training.ppo import PPOConfig, _ppo_update

    torch.manual_seed(0)
    cfg = PPOConfig(**{**SMALL, "episodes_per_iteration": 3, "lr_policy": 3e-3, "grad_accum_steps": 3})
    policy = ConvTokenPolicy()
    buffer = RolloutBuffer(3, STEPS)
    common.collect_iteration(env, policy, buffer, [11, 12, 13], [0, 1, 2], cfg, bootstrap=True)
    assert (buffer.bootstrap != 0).all() and buffer.lengths.tolist() == [STEPS] * 3  # all truncated
    adv, ret = gae(buffer.rewards, buffer.values, buffer.lengths, buffer.bootstrap, gamma=cfg.gamma,
                   lam=cfg.gae_lambda)
    adv = normalize(adv, buffer.valid)
    index = buffer.step_indices()
    with torch.no_grad():
        before = policy.evaluate(*buffer.batch(index)).log_prob
    torch.testing.assert_close(before, buffer.log_probs[index[:, 0], index[:, 1]], rtol=1e-4, atol=1e-4)
    optimizer = common.make_optimizer(policy, {"policy": cfg.lr_policy, "value_head": cfg.lr_value}, cfg)
    stats = _ppo_update(policy, optimizer, buffer, adv, ret, cfg, DistInfo())
    with torch.no_grad():
        after = policy.evaluate(*buffer.batch(index)).log_prob
    a = adv[index[:, 0], index[:, 1]]
    change = after - before
    assert stats["optimizer_steps"] == 1 and stats["value_loss"] > 0
    assert float((a * change).sum()) > 0  # the surrogate improved
    assert float(change[a > 0.5].mean()) > 0 > float(change[a < -0.5].mean())


def test_grpo_and_dpo_run_log_and_checkpoint(env, tmp_path):
    from vla_ood_envs.training import dpo, grpo

    g = grpo.train(grpo.GRPOConfig(**{**SMALL, "out": str(tmp_path / "grpo"), "iterations": 1, "group_size": 2,
                                      "episodes_per_iteration": 2, "dynamic_sampling": False}),
                   ConvTokenPolicy(), env=env)
    rec = read_metrics(g.root)
    assert [r["iteration"] for r in rec] == [1] and rec[0]["episodes"] == 2 and rec[0]["optimizer_steps"] == 1
    assert g.latest().name == "iter_000001" and (g.latest() / "policy" / "model.safetensors").exists()
    d = dpo.train(dpo.DPOConfig(**{**SMALL, "out": str(tmp_path / "dpo"), "iterations": 1, "group_size": 2,
                                   "episodes_per_iteration": 2, "lr_policy": 1e-2, "eval_every": 1,
                                   "eval_episodes": 1}), ConvTokenPolicy(), env=env)
    rec = read_metrics(d.root)[-1]
    assert read_metrics(d.root)[0]["iteration"] == 0 and "eval_success" in read_metrics(d.root)[0]
    assert rec["pairs"] == 1  # two dense-reward rollouts of 4 steps never tie
    assert rec["dpo_loss"] == pytest.approx(np.log(2), abs=1e-6)  # the policy equals its reference at step 0
    assert rec["grad_norm"] > 0 and rec["eval_episodes"] == 1
    reloaded = ConvTokenPolicy.from_pretrained(d.latest() / "policy")
    assert any(not torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(),
                                                    ConvTokenPolicy().state_dict().values()))


def test_interrupted_run_resumes_exactly(env, tmp_path):
    from vla_ood_envs.training.ppo import PPOConfig, train

    cfg = PPOConfig(**{**SMALL, "out": str(tmp_path / "run"), "iterations": 4, "checkpoint_every": 2,
                       "episodes_per_iteration": 1})
    first: dict[int, dict] = {}

    def stop_at_3(i, record):
        first[i] = record
        if i == 3:
            raise KeyboardInterrupt  # after iteration 3 is logged, before its checkpoint (at 4)

    with pytest.raises(KeyboardInterrupt):
        train(cfg, ConvTokenPolicy(), on_iteration=stop_at_3, env=env)
    assert [r["iteration"] for r in read_metrics(cfg.out)] == [1, 2, 3]
    # Resume from a fresh policy object: the weights come from the checkpoint of iteration 2.
    train(cfg, ConvTokenPolicy(seed=5), env=env)
    records = read_metrics(cfg.out)
    assert [r["iteration"] for r in records] == [1, 2, 3, 4]
    for key in ("return", "policy_loss", "value_loss", "approx_kl"):
        assert records[2][key] == pytest.approx(first[3][key], rel=1e-5, abs=1e-7), key
    assert json.loads((Path(cfg.out) / "checkpoints" / "latest.json").read_text())["iteration"] == 4
    with pytest.raises(RunError, match="other settings"):
        train(PPOConfig(**{**SMALL, "out": cfg.out, "iterations": 5, "gamma": 0.5, "episodes_per_iteration": 1}),
              ConvTokenPolicy(), env=env)


TORCHRUN_SCRIPT = """
import sys, json, torch
sys.path.insert(0, {tests!r})
from rl_policy import ConvTokenPolicy
from vla_ood_envs.training.ppo import PPOConfig, train
from vla_ood_envs.training.distributed import init_distributed, shutdown
from vla_ood_envs.training import common

def main():
    info = init_distributed()
    cfg = PPOConfig(**{small!r}, out={out!r}, iterations=2, episodes_per_iteration=1, torch_threads=1)
    policy = ConvTokenPolicy(seed=info.rank)  # different on purpose: rank 0's weights are broadcast
    train(cfg, policy)
    flat = torch.cat([p.detach().reshape(-1) for p in policy.parameters()])
    seeds = common.train_seeds(cfg, 0, info)[0]
    with open({out!r} + f"/rank{{info.rank}}.json", "w") as f:
        json.dump({{"sum": float(flat.double().sum()), "head": flat[:50].tolist(), "seeds": seeds,
                    "backend": info.backend}}, f)
    shutdown(info)

if __name__ == "__main__":
    main()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_torchrun_keeps_replicas_identical(tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    script = tmp_path / "ddp_run.py"
    script.write_text(TORCHRUN_SCRIPT.format(tests=str(Path(__file__).parent), small=SMALL, out=str(out)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parents[1])] + os.environ.get("PYTHONPATH", "").split(os.pathsep))}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["backend"] == "gloo"
    assert r0["seeds"] != r1["seeds"]  # each rank plays its own episodes
    assert r0["head"] == r1["head"] and r0["sum"] == r1["sum"]  # ... yet the replicas stay bit-identical
    records = read_metrics(out)
    assert [r["iteration"] for r in records] == [1, 2] and records[0]["episodes"] == 2  # both ranks counted


def test_cli_refuses_ood_ids_and_held_out_pools(tmp_path, capsys):
    from vla_ood_envs.catalog import default_catalog
    from vla_ood_envs.cli import main
    from vla_ood_envs.factors import train_pools

    rc = main(["rl", "--algo", "ppo", "--env", "VLAPick-UnseenObjects-v0", "--init", str(tmp_path),
               "--out", str(tmp_path / "run")])
    assert rc == 2
    assert "OOD evaluation condition" in capsys.readouterr().err and not (tmp_path / "run").exists()
    held = train_pools().renamed("test-objects", objects=tuple(default_catalog().names("objects", "test")))
    with pytest.raises(common.SplitError, match="held-out objects"):
        common.check_training_env("VLAPick-v0", {"pools": held})
