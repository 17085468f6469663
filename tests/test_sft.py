"""Supervised fine-tuning (training/sft.py) on a small synthetic dataset: it learns, resumes exactly, runs data
parallel under torchrun with identical replicas, and refuses held-out data."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sft_data import make_dataset
from vla_ood_envs.cli import main as cli_main
from vla_ood_envs.demos.store import DemoDataset
from vla_ood_envs.policies import load_policy
from vla_ood_envs.policies.tiny_vla import TinyVLA
from vla_ood_envs.training.data import HeldOutDataError, load_transitions, manifest_held_out
from vla_ood_envs.training.sft import SFTConfig, SFTError, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("sft") / "demos", episodes=10, steps=12, size=32)


def _cfg(dataset, out, **kw):
    base = dict(dataset=str(dataset), out=str(out), image_size=32, batch_size=16, lr=2e-3, warmup_steps=2,
                val_fraction=0.2, progress=False, threads=1)
    base.update(kw)
    return SFTConfig(**base)


def _metrics(out):
    return [json.loads(ln) for ln in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_sft_lowers_validation_loss_and_writes_a_loadable_policy(dataset, tmp_path):
    summary = train(_cfg(dataset, tmp_path / "run", steps=40, val_every=20))
    vals = [r for r in _metrics(tmp_path / "run") if "val_loss" in r]
    assert vals[0]["step"] == 0 and vals[-1]["step"] == 40
    assert vals[-1]["val_loss"] < 0.6 * vals[0]["val_loss"], vals
    assert summary["train_episodes"] == 8 and summary["val_episodes"] == 2
    policy = load_policy(tmp_path / "run" / "model", device="cpu")
    assert isinstance(policy, TinyVLA) and policy.image_size == 32
    # The policy decodes with the training data's statistics (its dataset_statistics.json).
    stats = json.loads((tmp_path / "run" / "model" / "dataset_statistics.json").read_text())
    assert list(stats) == ["VLAPick-v0"] and stats["VLAPick-v0"]["action"]["mask"] == [True] * 6 + [False]
    out = policy.act(np.zeros((2, 64, 64, 3), np.uint8), ["put apple on plate"] * 2, greedy=True)
    assert out.actions.shape == (2, 7)
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()


def test_interrupted_run_resumes_to_the_same_weights(dataset, tmp_path):
    kw = dict(steps=7, save_every=3, augment=True, val_every=4, crop_scale=(0.7, 1.0), crop_ratio=(0.8, 1.25))
    full = train(_cfg(dataset, tmp_path / "full", **kw))

    class Interrupt(Exception):
        pass

    def stop_at_5(step, row):
        if step == 5:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(_cfg(dataset, tmp_path / "cut", **kw), on_step=stop_at_5)
    state = torch.load(tmp_path / "cut" / "checkpoint" / "trainer_state.pt", weights_only=False)
    assert state["step"] == 3  # the last checkpoint before the interruption; steps 4-5 are replayed
    resumed = train(_cfg(dataset, tmp_path / "cut", **{**kw, "save_every": 2}))  # save_every may change
    assert resumed["weights_sha256"] == full["weights_sha256"]
    # Tensor by tensor: safetensors may write its header keys in another order, so the files' bytes can differ.
    from safetensors.torch import load_file

    a = load_file(str(tmp_path / "full" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in _metrics(tmp_path / "cut") if "val_loss" in r]
    assert steps == [0, 4, 7]  # the interrupted attempt's lines past step 3 were dropped, none repeated
    with pytest.raises(SFTError, match="other settings.*lr"):
        train(_cfg(dataset, tmp_path / "cut", **{**kw, "lr": 1e-3}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_keep_replicas_identical(dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "vla_ood_envs.cli", "sft",
           "--dataset", str(dataset), "--out", str(out), "--steps", "4", "--batch-size", "8", "--image-size", "32",
           "--threads", "1", "--device", "cpu", "--augment", "--val-every", "2"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["replicas_identical"] is True
    assert load_policy(out / "model", device="cpu") is not None


def test_held_out_data_is_refused(tmp_path):
    ood_env = make_dataset(tmp_path / "ood_env", episodes=2, env_id="VLAPick-UnseenObjects-v0")
    with pytest.raises(HeldOutDataError, match="OOD condition"):
        train(_cfg(ood_env, tmp_path / "a", steps=2))
    test_object = make_dataset(tmp_path / "test_obj", episodes=2, manifest_changes={"object": "dice"})
    with pytest.raises(HeldOutDataError, match=r"seed 0 .*held-out objects: \['dice'\]"):
        train(_cfg(test_object, tmp_path / "b", steps=2))
    renamed = make_dataset(tmp_path / "renamed", episodes=2, manifest_changes={"pools": "train+unseen_table"})
    with pytest.raises(HeldOutDataError, match="train\\+unseen_table"):
        load_transitions(DemoDataset(renamed), 32)
    # The CLI reports it as an error line, not a traceback.
    assert cli_main(["sft", "--dataset", str(ood_env), "--out", str(tmp_path / "c"), "--steps", "2"]) == 1


def test_manifest_split_check_reads_each_factor():
    from sft_data import train_manifest

    m = train_manifest(3)
    assert manifest_held_out(m) == []
    assert any("template" in p for p in manifest_held_out({**m, "template": "set {O} on {R}"}))
    assert any("positions" in p for p in manifest_held_out({**m, "object_xy": [0.105, 0.0]}))
    assert any("distractors" in p for p in manifest_held_out({**m, "distractor_objects": [{"name": "apple"}]}))
    assert any("robot start" in p for p in manifest_held_out({**m, "robot_qpos_offset": [0.1] + [0.0] * 6}))


def test_preprocessing_and_idle_padding(dataset):
    ds = DemoDataset(dataset)
    plain = load_transitions(ds, 32, max_episodes=3)
    padded = load_transitions(ds, 32, max_episodes=3, idle_pad=4)
    assert len(padded) == len(plain) + 12
    last = padded.actions[np.flatnonzero(padded.episode == 0)][-4:]
    np.testing.assert_array_equal(last[:, :6], 0.0)
    np.testing.assert_array_equal(last[:, 6], -1.0)  # the final gripper command is kept
    full = load_transitions(ds, None, max_episodes=1)
    assert full.images.shape[1:] == (32, 32, 3) and len(full) == 12


def test_policy_errors(dataset, tmp_path):
    with pytest.raises(SFTError, match="OpenVLA adapter"):
        train(_cfg(dataset, tmp_path / "a", steps=2, policy="openvla"))
    with pytest.raises(SFTError, match="checkpoint folder"):
        train(_cfg(dataset, tmp_path / "b", steps=2, policy=str(tmp_path / "missing")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SFTError, match="no config.json"):
        train(_cfg(dataset, tmp_path / "c", steps=2, policy=str(tmp_path / "empty")))
    with pytest.raises(SFTError, match="fewer than one batch"):
        train(_cfg(dataset, tmp_path / "d", steps=2, batch_size=4096))
