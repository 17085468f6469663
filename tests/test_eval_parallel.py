"""The evaluation suite's worker processes and Ray actors give the results file one process gives."""

import pytest

from vla_ood_envs.evaluation import run_suite

RUN = dict(conditions=["IND"], episodes=2, seeds=1, max_steps=4, strips=0, camera_size=32, progress=False)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    return run_suite("scripted", out_dir=tmp_path_factory.mktemp("one"), workers=1, **RUN).read_bytes()


def test_two_worker_processes_give_the_same_results(in_process, tmp_path):
    path = run_suite("scripted", out_dir=tmp_path, workers=2, **RUN)
    assert path.read_bytes() == in_process


def test_ray_actors_give_the_same_results(in_process, tmp_path):
    pytest.importorskip("ray")
    path = run_suite("scripted", out_dir=tmp_path, workers=1, backend="ray", **RUN)
    assert path.read_bytes() == in_process
