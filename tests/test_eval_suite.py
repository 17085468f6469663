"""The evaluation suite (vla_ood_envs.evaluation): paired episodes, resuming, the report, policies by spec."""

import csv
import hashlib
import json

import gymnasium as gym
import numpy as np
import pytest

import vla_ood_envs.policies as policies
from vla_ood_envs.evaluation import EvaluationError, PolicySpecError, episode_seed, run_suite
from vla_ood_envs.evaluation.report import write_report
from vla_ood_envs.evaluation.results import read_records
from vla_ood_envs.rollout import run_expert_episode
from vla_ood_envs.policies import Policy, PolicyOutput
from vla_ood_envs.policies.base import check_inputs

TINY = dict(camera_size=32, progress=False)
PAIRED = dict(conditions=["MultiObjectSeen", "MidEpisodeReposition"], episodes=1, seeds=2, max_steps=8, strips=1,
              **TINY)


def _factor_records(path):
    return {r["key"]: {k: v for k, v in r["manifest"].items() if k != "events"} for r in read_records(path)}


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    """The scripted expert and the random policy on two conditions, in one output folder."""
    out = tmp_path_factory.mktemp("paired")
    scripted = run_suite("scripted", out_dir=out, **PAIRED)
    random = run_suite("random", out_dir=out, **PAIRED)
    return out, scripted, random


def test_two_policies_see_the_same_factor_records(paired):
    _, scripted, random = paired
    a, b = _factor_records(scripted), _factor_records(random)
    assert sorted(a) == sorted(b) and len(a) == 4
    assert a == b
    recs = {r["key"]: r for r in read_records(scripted)}
    for key, rec in recs.items():
        assert rec["seed"] == episode_seed(rec["seed_index"], rec["episode_index"])
        assert rec["manifest"]["seed"] == rec["seed"] and rec["status"] == "done" and rec["steps"] == 8
    multi = [r for r in recs.values() if r["condition"] == "VLAPick-MultiObjectSeen-v0"]
    assert all(len(r["manifest"]["distractor_objects"]) == 1 for r in multi)
    # The reposition target is part of the factor record; the event itself (what the object was doing) is not.
    assert all(r["manifest"]["reposition_xy"] for r in recs.values() if "Reposition" in r["condition"])
    assert {r["policy"] for r in read_records(random)} == {"random"}


def test_report_pairs_the_policies_and_writes_tables_and_figures(paired):
    out, _, _ = paired
    summary = write_report(out, reference="scripted", n_boot=200)
    assert summary["policies"] == ["random", "scripted"]
    diffs = summary["differences"]["random"]
    assert set(diffs) == {"VLAPick-MultiObjectSeen-v0", "VLAPick-MidEpisodeReposition-v0"}
    assert all(d["paired"] and d["n"] == 2 for d in diffs.values())
    report = out / "report"
    table = (report / "table.md").read_text()
    assert "| axis | condition | random | scripted | random - scripted |" in table
    assert "Multi-object (both seen)" in table and "**Semantics mean**" in table and "never grasped" in table
    rows = list(csv.DictReader((report / "table.csv").open()))
    cond = [r for r in rows if r["row"] == "condition"]
    assert [r["key"] for r in cond] == ["VLAPick-MultiObjectSeen-v0", "VLAPick-MidEpisodeReposition-v0"]
    assert all(r["scripted_n"] == "2" and r["random_n"] == "2" for r in cond)
    assert (report / "success.png").stat().st_size > 1000
    assert (report / "strips.png").is_file() and len(list((report / "strips").glob("*.png"))) == 2
    assert json.loads((report / "summary.json").read_text())["reference"] == "scripted"


def test_an_interrupted_evaluation_resumes_to_the_same_results_file(paired, tmp_path):
    _, reference, _ = paired

    def stop_after_first(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_suite("scripted", out_dir=tmp_path, on_result=stop_after_first, **PAIRED)
    results = tmp_path / "scripted" / "results.jsonl"
    assert len(read_records(results)) == 1
    with open(results, "a") as f:
        f.write('{"key": "VLAPick-MidEpisodeReposition-v0/s1/e0", "status": "do')  # a crash mid-append
    assert len(read_records(results)) == 1
    run_suite("scripted", out_dir=tmp_path, **PAIRED)
    assert results.read_bytes() == reference.read_bytes()
    sessions = json.loads((tmp_path / "scripted" / "run.json").read_text())["sessions"]
    assert [s["completed"] for s in sessions] == [False, True] and sessions[1]["already_done"] == 1


def test_scripted_expert_through_the_suite_scores_as_alone(tmp_path):
    path = run_suite("scripted", out_dir=tmp_path, conditions=["IND"], episodes=2, seeds=1, max_steps=40, strips=0,
                     **TINY)
    recs = sorted(read_records(path), key=lambda r: r["seed"])
    env = gym.make("VLAPick-v0", camera_width=32, camera_height=32)
    try:
        alone = [run_expert_episode(env, r["seed"], options={"reconfigure": True}, max_steps=40) for r in recs]
    finally:
        env.close()
    assert [r["success"] for r in recs] == [a["success"] for a in alone]
    assert [r["grasped_ever"] for r in recs] == [bool(a["info"]["grasped_ever"]) for a in alone]
    assert sum(r["success"] for r in recs) >= 1


class _FakeCheckpointPolicy(Policy):
    """Stands in for a learnable checkpoint: records how the suite asked it to act."""

    learnable = True
    image_size = 32
    calls = []

    def __init__(self, fail_first=False):
        self.temperature = 1.0
        self.fail_first = fail_first
        self.name = "fake-vla"

    def eval(self):
        return self

    def act(self, images, instructions, proprio=None, *, greedy=False):
        b = check_inputs(images, instructions, proprio)
        type(self).calls.append((tuple(np.asarray(images).shape), greedy, self.temperature))
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("the model ran out of memory")
        a = np.zeros((b, 7), np.float32)
        a[:, 6] = 1.0
        return PolicyOutput(actions=a)


def test_checkpoint_policies_load_through_load_policy(tmp_path, monkeypatch):
    ckpt = tmp_path / "tiny-vla"
    ckpt.mkdir()
    (ckpt / "model.safetensors").write_bytes(b"weights")
    (ckpt / "config.json").write_text(json.dumps({"image_size": 32}))
    loaded = []
    monkeypatch.setattr(policies, "load_policy", lambda path, **kw: loaded.append(path) or _FakeCheckpointPolicy(),
                        raising=False)
    _FakeCheckpointPolicy.calls = []
    path = run_suite(str(ckpt), out_dir=tmp_path / "eval", conditions=["IND"], episodes=1, seeds=1, max_steps=2,
                     temperature=0.6, strips=0, progress=False)
    sha = hashlib.sha256(b"weights").hexdigest()
    assert path.parent.name == f"tiny-vla-{sha[:8]}-t0.6" and loaded == [str(ckpt)]
    rec = read_records(path)[0]
    assert rec["checkpoint_sha256"] == sha and rec["policy_name"] == "fake-vla"
    # The camera follows the checkpoint's image_size; sampling at the given temperature, not greedy.
    assert _FakeCheckpointPolicy.calls[0] == ((1, 32, 32, 3), False, 0.6)
    _FakeCheckpointPolicy.calls = []
    run_suite(str(ckpt), out_dir=tmp_path / "eval", conditions=["IND"], episodes=1, seeds=1, max_steps=2, strips=0,
              progress=False)
    assert _FakeCheckpointPolicy.calls[0][1] is True  # greedy by default


def test_abandoned_episodes_are_reported_and_retried(tmp_path, monkeypatch):
    ckpt = tmp_path / "flaky.pt"
    ckpt.write_bytes(b"w")
    policy = _FakeCheckpointPolicy(fail_first=True)
    monkeypatch.setattr(policies, "load_policy", lambda path, **kw: policy, raising=False)
    kw = dict(out_dir=tmp_path / "eval", conditions=["IND"], episodes=2, seeds=1, max_steps=2, strips=0, **TINY)
    path = run_suite(str(ckpt), **kw)
    recs = {r["episode_index"]: r for r in read_records(path)}
    assert recs[0]["status"] == "abandoned" and "out of memory" in recs[0]["error"]
    assert recs[1]["status"] == "done"
    summary = write_report(tmp_path / "eval", n_boot=100, figures=False)
    cell = summary["cells"][path.parent.name]["VLAPick-v0"]
    assert (cell["n"], cell["abandoned"], cell["missing"]) == (1, 1, 0)
    assert "1 abandoned" in (tmp_path / "eval" / "report" / "table.md").read_text()
    run_suite(str(ckpt), **kw)
    assert [r["status"] for r in read_records(path)] == ["done", "done"]


def test_bad_requests_name_the_problem(tmp_path, paired):
    out, _, _ = paired
    with pytest.raises(ValueError, match="no VLAPick condition 'UnseenSky'.*UnseenTable"):
        run_suite("scripted", out_dir=tmp_path, conditions=["UnseenSky"], **TINY)
    with pytest.raises(PolicySpecError, match="neither 'scripted', 'random' nor an existing checkpoint"):
        run_suite(str(tmp_path / "nope"), out_dir=tmp_path, **TINY)
    with pytest.raises(EvaluationError, match="other settings"):
        run_suite("scripted", out_dir=out, **{**PAIRED, "max_steps": 9})


def test_sweep_conditions_change_the_wrappers_alpha():
    from vla_ood_envs.evaluation import select_conditions

    conds = select_conditions("VLAPick", ["IND"], sweep=[0.7])
    assert [c.key for c in conds] == ["VLAPick-v0", "VLAPick-DynamicTexture@alpha=0.7",
                                      "VLAPick-DynamicNoise@alpha=0.7"]
    noise = conds[2]
    env = gym.make(noise.env_id, camera_width=32, camera_height=32, **noise.make_kwargs())
    try:
        _, info = env.reset(seed=3)
        assert info["manifest"]["overlay_alpha"] == pytest.approx(0.7) and info["manifest"]["overlay"]
    finally:
        env.close()
    with pytest.raises(ValueError, match="no wrapper DynamicTexture to override; its wrappers: DynamicNoise"):
        gym.make(noise.env_id, camera_width=32, camera_height=32,
                 wrapper_overrides={"DynamicTexture": {"alpha": 0.2}})


def test_cli_eval_prints_the_table(tmp_path, capsys):
    from vla_ood_envs.cli import main

    assert main(["eval", "--policy", "random", "--conditions", "IND", "--episodes", "1", "--seeds", "1", "--size",
                 "32", "--max-steps", "2", "--strips", "0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| axis | condition | random |" in out and "| - | IND |" in out
    assert (tmp_path / "report" / "table.csv").is_file()
    assert main(["eval", "--policy", "random", "--conditions", "Sky", "--out", str(tmp_path)]) == 1
    assert "error: no VLAPick condition 'Sky'" in capsys.readouterr().err
    assert main(["eval", "--report-only", "--out", str(tmp_path / "empty")]) == 1
    assert "no evaluation runs in" in capsys.readouterr().err
