"""`vla-ood` answers errors a user can act on with one line on stderr and a non-zero exit, keeps tracebacks for
bugs (and for everything under --debug), and shows its defaults in --help. None of these builds an env."""

import json
import os

import pytest

from vla_ood_envs import DatasetError
from vla_ood_envs.cli import build_parser, main


def _run(capsys, *argv):
    try:
        rc = main(list(argv))
    except SystemExit as exc:  # argparse
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.mark.parametrize("argv", [["render", "--env", "Nope-v0"], ["generate", "--env", "Nope-v0"]])
def test_unknown_env_id(capsys, argv, tmp_path):
    rc, _, err = _run(capsys, *argv, "--out", str(tmp_path / "x"))
    line = _one_line(err)
    assert rc == 1 and line.startswith("error: 'Nope-v0' is not a vla_ood_envs ID; registered IDs: VLAPick-v0")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv, message", [
    (["generate", "--episodes", "0"], "argument --episodes: 0 is out of range: must be >= 1"),
    (["generate", "--size", "0", "0"], "argument --size: 0 is out of range: must be from 1 to 16384"),
    (["generate", "--workers", "two"], "argument --workers: 'two' is not an integer"),
    (["render", "--size", "-5"], "argument --size: -5 is out of range"),
    (["render", "--episodes", "0"], "argument --episodes: 0 is out of range"),
])
def test_bad_numbers_are_argument_errors(capsys, argv, message):
    rc, _, err = _run(capsys, *argv)
    assert rc == 2 and message in _one_line(err) and "--help" in err


def _tiny_dataset(root):
    """A one-episode dataset of 3 steps at 8x8, written by the store itself (no env needed)."""
    import numpy as np

    from vla_ood_envs.demos.store import Episode, statistics, write_episode, write_json_atomic

    ep = Episode(seed=0, env_id="VLAPick-v0", instruction="put apple on plate",
                 manifest={"object": "apple", "table": "oak", "robot": "panda_vla"},
                 images=np.zeros((3, 8, 8, 3), np.uint8), proprio=np.zeros((3, 8), np.float32),
                 actions=np.zeros((3, 7), np.float32), rewards=np.zeros(3, np.float32), success=np.ones(3, bool))
    write_episode(root, ep)
    write_json_atomic(root / "dataset.json", {"env_id": "VLAPick-v0", "seeds": [0], "expert_success_rate": 1.0,
                                              "statistics": {"VLAPick-v0": statistics([ep.actions], [ep.proprio])}})
    return root


def test_export_into_an_existing_folder_names_the_flag(tmp_path, capsys):
    (tmp_path / "out").mkdir()
    rc, _, err = _run(capsys, "export", str(_tiny_dataset(tmp_path / "ds")), str(tmp_path / "out"))
    line = _one_line(err)
    assert rc == 1 and "already exists; add --overwrite to replace it" in line and "overwrite=True" not in line


@pytest.mark.parametrize("command", ["inspect", "export"])
def test_a_dataset_json_of_random_bytes(tmp_path, capsys, command):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset.json").write_bytes(os.urandom(64) + b"\xff\xfe")
    (tmp_path / "ds" / "settings.json").write_text("{}")
    argv = [command, str(tmp_path / "ds")] + ([str(tmp_path / "out")] if command == "export" else [])
    rc, _, err = _run(capsys, *argv)
    line = _one_line(err)
    assert rc == 1 and "dataset.json is not valid JSON" in line and "rewrite it" in line


def test_a_dataset_json_that_is_not_an_index(tmp_path, capsys):
    (tmp_path / "dataset.json").write_text(json.dumps([1, 2]))
    rc, _, err = _run(capsys, "inspect", str(tmp_path))
    assert rc == 1 and "holds a JSON list, not the dataset index" in _one_line(err)


def test_inspect_of_an_empty_folder_does_not_suggest_resuming(tmp_path, capsys):
    rc, _, err = _run(capsys, "inspect", str(tmp_path))
    line = _one_line(err)
    assert rc == 1 and "is not a demo dataset" in line and f"vla-ood generate --out {tmp_path}" in line
    assert "resume" not in line
    # A started but unfinished run is told to resume.
    (tmp_path / "settings.json").write_text("{}")
    rc, _, err = _run(capsys, "inspect", str(tmp_path))
    assert rc == 1 and "did not finish" in _one_line(err) and "resume" in err


def test_debug_shows_the_traceback_and_bugs_keep_theirs(tmp_path, capsys, monkeypatch):
    with pytest.raises(DatasetError):
        main(["--debug", "inspect", str(tmp_path)])

    def bug(args):
        raise ZeroDivisionError("a bug")

    parser = build_parser()
    real_parse = parser.parse_args

    def parse(argv):
        args = real_parse(argv)
        args.func = bug
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr("vla_ood_envs.cli.build_parser", lambda: parser)
    with pytest.raises(ZeroDivisionError):
        main(["list"])


def test_help_shows_defaults(capsys):
    for command, expected in [("generate", ["(default: 100)", "(default: VLAPick-v0)", "(default: 6)",
                                            "(default: out/demos/VLAPick-v0)", "(default: (224, 224))"]),
                              ("render", ["(default: 8)", "(default: out/render)"]),
                              ("export", ["(default: lerobot)", "(default: vla_ood_pick)"])]:
        rc, out, _ = _run(capsys, command, "--help")
        text = " ".join(out.split())
        assert rc == 0 and all(e in text for e in expected), (command, text)
