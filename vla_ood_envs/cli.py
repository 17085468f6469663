"""`vla-ood`: a thin command line over the package."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from .errors import MissingExtraError, OutputExistsError, VLAOodError, WorkerError
from .tasks.arguments import CAMERA_MAX_SIDE


def _cmd_doctor(args) -> int:
    from .tools.doctor import run

    return run(Path(args.out))


def _cmd_list(args) -> int:
    from .registry import DECLARATIONS

    def severity(d) -> str:  # "alpha=0.3": what gym.make(ID, severity=...) changes
        s = d.severity
        if s is None:
            return "-"
        value = ",".join(f"{v:g}" for v in s.default) if isinstance(s.default, tuple) else f"{s.default:g}"
        return f"{s.param}={value}"

    width = max(len(d.env_id) for d in DECLARATIONS)
    print(f"{'ID':<{width}}  {'axis':<10} {'condition':<28} {'severity':<22} description")
    for d in DECLARATIONS:
        print(f"{d.env_id:<{width}}  {d.axis:<10} {d.display_name:<28} {severity(d):<22} {d.description}")
    return 0


def _robot_kwargs(args) -> dict:
    return {"robot_uids": args.robot} if args.robot else {}


def _check_env_id(env_id: str) -> None:
    """gymnasium.error.UnregisteredEnv listing the registered IDs, before anything is built."""
    from .registry import declaration

    declaration(env_id)


def _require(module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(f"this needs {module}, which is not installed: pip install 'vla_ood_envs[{extra}]'")


def _int_at_least(low: int, high: int | None = None):
    """An argparse type: an integer in [low, high]; argparse prints the message and the usage."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            allowed = f"from {low} to {high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"{value} is out of range: must be {allowed}")
        return value

    parse.__name__ = "integer"
    return parse


POSITIVE = _int_at_least(1)
NON_NEGATIVE = _int_at_least(0)
IMAGE_SIDE = _int_at_least(1, CAMERA_MAX_SIDE)


def _cmd_render(args) -> int:
    if not args.all:
        _check_env_id(args.env)
    from .tools.pictures import episode_sheet, episode_strip, overview_sheet
    from .registry import DECLARATIONS, TASKS, declaration
    from .tasks.robots import find_robot

    kwargs = _robot_kwargs(args)
    spec = find_robot(args.robot) if args.robot else None
    # With --all, the tasks the chosen robot plays (the WidowX plays VLAPick only).
    tasks = [t for t in TASKS if spec is None or t in spec.tasks]
    ids = [d.env_id for d in DECLARATIONS if d.task in tasks] if args.all else [args.env]
    suffix = f"-{spec.uid}" if spec else ""
    out = Path(args.out)
    for env_id in ids:
        path = episode_sheet(env_id, out / f"{env_id}{suffix}.png", episodes=args.episodes, size=args.size,
                             seed=args.seed, **kwargs)
        print(f"wrote {path}")
        names = {name for name, _ in declaration(env_id).wrappers}
        if names & {"DynamicTexture", "DynamicNoise", "MidEpisodeReposition"} or args.strip:
            path = episode_strip(env_id, out / f"{env_id}{suffix}-strip.png", seed=args.seed, size=args.size, **kwargs)
            print(f"wrote {path}")
    if args.all:
        for task in tasks:
            print(f"wrote {overview_sheet(out / f'overview-{task}{suffix}.png', seed=args.seed, task=task, **kwargs)}")
    return 0



def _cmd_assets(args) -> int:
    if args.regenerate:
        from .assets_gen.build import build, default_asset_dir

        build(default_asset_dir())
        print(f"regenerated {default_asset_dir()}")
    from .tools.pictures import articulated_sheet, asset_sheet

    sheet = Path(args.sheet)
    print(f"wrote {asset_sheet(sheet)}")
    print(f"wrote {articulated_sheet(sheet.with_name(sheet.stem + '-articulated' + sheet.suffix))}")
    return 0


def _cmd_generate(args) -> int:
    from .demos import GenerateConfig, generate
    from .demos.generate import _done_and_failed

    _check_env_id(args.env)
    if args.ray:
        _require("ray", "ray")
    cfg = GenerateConfig(out=args.out, env_id=args.env, episodes=args.episodes, seed=args.seed,
                         image_height=args.size[0], image_width=args.size[1], workers=args.workers,
                         stop_after_success=args.stop_after_success, backend="ray" if args.ray else "processes",
                         ray_address=args.ray_address, env_kwargs=_robot_kwargs(args), shrink=args.shrink)

    def kept() -> str:
        root = Path(args.out)
        n = len(_done_and_failed(root)[0]) if (root / "episodes").is_dir() else 0
        return f"{n} finished episode{'s' if n != 1 else ''} kept in {root / 'episodes'}"

    resume = f"resume with: vla-ood {shlex.join(args.argv)}"
    try:
        index = generate(cfg)
    except KeyboardInterrupt:
        print(f"\ninterrupted: {kept()}; {resume}", file=sys.stderr)
        return 130
    except WorkerError as exc:
        print(f"error: {exc}; {kept()}; {resume}", file=sys.stderr)
        return 1
    print(f"dataset at {args.out}: {len(index['seeds'])} episodes, {index['num_transitions']} transitions, expert "
          f"success {index['expert_success_rate']:.0%} over {index['attempted_seeds']} seeds")
    root = Path(args.out)
    extra = len(_done_and_failed(root)[0]) - len(index["seeds"])
    if extra > 0:
        print(f"{extra} more episode file{'s' if extra != 1 else ''} in {root / 'episodes'} (workers ran ahead, or an "
              f"earlier run was longer) {'are' if extra != 1 else 'is'} kept but not part of the dataset; a run with "
              f"more --episodes reuses {'them' if extra != 1 else 'it'}")
    return 0


def _cmd_export(args) -> int:
    try:
        if args.format == "lerobot":
            from .demos.export_lerobot import export_lerobot

            path = export_lerobot(args.dataset, args.out, repo_id=args.repo_id, overwrite=args.overwrite)
            print(f"wrote LeRobot v3.0 dataset {path}")
        else:
            from .demos.export_rlds import export_rlds

            path = export_rlds(args.dataset, args.out, name=args.name, overwrite=args.overwrite)
            print(f"wrote RLDS/TFDS dataset {path} (read it with tfds.builder_from_directory)")
    except OutputExistsError:
        # The library's message names the keyword argument; here the switch is a flag.
        raise OutputExistsError(f"{args.out} already exists; add --overwrite to replace it, or choose another "
                                f"output folder") from None
    return 0


def _cmd_bench(args) -> int:
    from .tools.bench import markdown, run

    result = run(args.quick, Path(args.out), size=args.size, docs=Path(args.docs) if args.docs else None)
    print(markdown(result))
    print(f"wrote {args.out}/bench.md and bench.json" + (f" and {args.docs}" if args.docs else ""))
    return 0


def _cmd_inspect(args) -> int:
    from .tools.inspect import inspect

    inspect(args.dataset, args.out)
    return 0


def _cmd_eval(args) -> int:
    from .evaluation.conditions import ConditionError
    from .evaluation.policy_spec import PolicySpecError
    from .evaluation.report import ReportError
    from .evaluation.suite import EvaluationError

    try:
        return _run_eval(args)
    except (ConditionError, PolicySpecError, ReportError, EvaluationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run_eval(args) -> int:
    from .evaluation.report import markdown_table, write_report
    from .evaluation.suite import run_suite

    from .evaluation.conditions import SWEEP_ALPHAS

    sweep = SWEEP_ALPHAS if args.sweep == [] else args.sweep
    if not args.report_only:
        if not args.policy:
            print("error: give --policy scripted|random|CHECKPOINT (or --report-only)", file=sys.stderr)
            return 2
        for policy in args.policy:
            path = run_suite(policy, task=args.task, episodes=args.episodes, seeds=args.seeds, out_dir=args.out,
                             workers=args.workers, conditions=args.conditions, sweep=sweep,
                             camera_size=args.size, temperature=args.temperature, max_steps=args.max_steps,
                             backend="ray" if args.ray else "processes", ray_address=args.ray_address,
                             strips=args.strips, env_kwargs=_robot_kwargs(args), device=args.device,
                             label=args.label if len(args.policy) == 1 else None)
            print(f"results: {path}")
    summary = write_report(args.out, labels=args.compare or None, reference=args.reference)
    print()
    print(markdown_table(summary))
    print(f"report: {Path(args.out) / 'report'} (table.md, table.csv, summary.json, figures)")
    return 0
ROBOT_HELP = "robot_uids: panda_vla (the default robot) or widowx250s_vla"


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (the usage is one --help away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_sft(args) -> int:
    import os

    from .training.data import HeldOutDataError
    from .training.sft import SFTConfig, SFTError, train

    try:
        cfg = SFTConfig(dataset=args.dataset, out=args.out, policy=args.policy, max_episodes=args.max_episodes,
                        steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        augment=args.augment, seed=args.seed, val_fraction=args.val_fraction,
                        save_every=args.save_every, val_every=args.val_every, idle_pad=args.idle_pad,
                        truncate_after=args.truncate_after, image_size=args.image_size,
                        include_proprio=args.include_proprio, threads=args.threads, device=args.device)
        summary = train(cfg)
    except (SFTError, HeldOutDataError) as exc:  # settings or data the run refuses; the message names the fix
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"trained {summary['steps']} steps on {summary['train_samples']} samples "
              f"(best validation loss {summary['best_val_loss']:.4g}); policy at {args.out}/model")
    return 0


def _cmd_rl(args) -> int:
    from .training import common

    if args.algo == "ppo":
        from .training.ppo import PPOConfig as Config, train
    elif args.algo == "grpo":
        from .training.grpo import GRPOConfig as Config, train
    else:
        from .training.dpo import DPOConfig as Config, train
    from .training.runs import RunError

    given = {k: v for k, v in {"init": args.init, "env_id": args.env, "out": args.out, "num_envs": args.num_envs,
                               "iterations": args.iterations, "image_size": args.image_size, "seed": args.seed,
                               "episodes_per_iteration": args.episodes_per_iteration, "device": args.device,
                               "temperature": args.temperature, "eval_every": args.eval_every,
                               "eval_episodes": args.eval_episodes, "checkpoint_every": args.checkpoint_every,
                               "progress": False if args.no_progress else None}.items() if v is not None}
    try:
        cfg = common.apply_overrides(Config(**given), args.set or [])
        run = train(cfg)
    except (common.SplitError, common.ConfigError, RunError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if run.info.is_main:
        print(f"{args.algo} run at {run.root}: metrics.jsonl, checkpoints/ (latest: {run.latest()})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    fmt = {"formatter_class": argparse.ArgumentDefaultsHelpFormatter}
    p = _Parser(prog="vla-ood", description="Out-of-distribution VLA environments on ManiSkill3.", **fmt)
    p.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("doctor", help="report versions, Vulkan driver, render device; render a test image", **fmt)
    d.add_argument("--out", default="out/doctor.png", help="where to save the test render")
    d.set_defaults(func=_cmd_doctor)

    ls = sub.add_parser("list", help="list the registered environment IDs", **fmt)
    ls.set_defaults(func=_cmd_list)

    r = sub.add_parser("render", help="save a sheet of first frames of several episodes of an env", **fmt)
    r.add_argument("--env", default="VLAPick-v0", help="registered ID (vla-ood list)")
    r.add_argument("--all", action="store_true", help="one sheet per registered ID")
    r.add_argument("--episodes", type=POSITIVE, default=8, help="episodes (first frames) per sheet")
    r.add_argument("--size", type=IMAGE_SIDE, default=224, help="camera width and height in pixels")
    r.add_argument("--seed", type=NON_NEGATIVE, default=0, help="seed of the first episode")
    r.add_argument("--strip", action="store_true", help="also a strip of frames of one expert episode")
    r.add_argument("--out", default="out/render", help="folder for the pictures")
    r.add_argument("--robot", default=None, help=ROBOT_HELP)
    r.set_defaults(func=_cmd_render)

    g = sub.add_parser("generate", help="generate expert demonstrations (resumable; re-run the same command)", **fmt)
    g.add_argument("--env", default="VLAPick-v0", help="registered ID of a training task (VLAPick-v0, VLAOpen-v0)")
    g.add_argument("--episodes", type=POSITIVE, default=100, help="successful episodes in the dataset")
    g.add_argument("--out", default="out/demos/VLAPick-v0", help="dataset folder (resumed if it holds a run)")
    g.add_argument("--seed", type=NON_NEGATIVE, default=0, help="first seed tried")
    g.add_argument("--size", type=IMAGE_SIDE, nargs=2, default=(224, 224), metavar=("H", "W"),
                   help="image height and width in pixels")
    g.add_argument("--workers", type=POSITIVE, default=1, help="parallel worker processes (one env each)")
    g.add_argument("--robot", default=None, help=ROBOT_HELP)
    g.add_argument("--stop-after-success", type=NON_NEGATIVE, default=6,
                   help="end a rollout after this many consecutive success steps (0: record all 80 steps)")
    g.add_argument("--shrink", action="store_true",
                   help="allow fewer --episodes than the folder's finished dataset holds (its first N stay the "
                        "dataset; no episode file is deleted)")
    g.add_argument("--ray", action="store_true", help="run the workers as Ray actors (local Ray on 127.0.0.1)")
    g.add_argument("--ray-address", default=None,
                   help="with --ray: join this Ray cluster instead (e.g. auto); --out must be shared storage")
    g.set_defaults(func=_cmd_generate)

    e = sub.add_parser("export", help="export a demo dataset as LeRobot v3.0 or RLDS/TFDS (OpenVLA)", **fmt)
    e.add_argument("dataset", help="folder of a finished `vla-ood generate` dataset")
    e.add_argument("out", help="output folder (must not exist, unless --overwrite)")
    e.add_argument("--format", choices=["lerobot", "rlds"], default="lerobot",
                   help="lerobot: LeRobot v3.0; rlds: RLDS/TFDS episodes for OpenVLA (needs the rlds extra)")
    e.add_argument("--repo-id", default=None, help="lerobot: the dataset's repo id in its card")
    e.add_argument("--name", default="vla_ood_pick", help="rlds: the TFDS dataset name (OpenVLA's dataset key)")
    e.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")
    e.set_defaults(func=_cmd_export)

    i = sub.add_parser("inspect", help="counts, action statistics, histograms and a contact sheet of a dataset",
                       **fmt)
    i.add_argument("dataset", help="folder of a finished `vla-ood generate` dataset")
    i.add_argument("--out", default=None, help="folder for the pictures (None: <dataset>/inspect)")
    i.set_defaults(func=_cmd_inspect)

    b = sub.add_parser("bench", help="steps/s next to ManiSkill's PickCube-v1 (each env in a fresh process), image "
                                     "condition costs", **fmt)
    b.add_argument("--quick", action="store_true",
                   help="3 rounds of 12 steps per env: a quick check, its ratios are noisy (full mode: 7 x 60)")
    b.add_argument("--size", type=IMAGE_SIDE, default=224, help="camera width and height in pixels")
    b.add_argument("--out", default="out/bench", help="folder for bench.md and bench.json")
    b.add_argument("--docs", default=None, help="also write the table to this markdown file (docs/performance.md)")
    b.set_defaults(func=_cmd_bench)

    ev = sub.add_parser("eval", help="evaluate a policy on every condition of a task (resumable), print the table",
                        **fmt)
    ev.add_argument("--policy", action="append", default=[],
                    help="scripted (the task's expert), random, or a checkpoint path; repeat to evaluate several")
    ev.add_argument("--task", default="VLAPick", help="task family: VLAPick or VLAOpen")
    ev.add_argument("--episodes", type=int, default=16, help="episodes per seed and condition")
    ev.add_argument("--seeds", type=int, default=3, help="seeds per condition (the study: 3 x 64 episodes)")
    ev.add_argument("--workers", type=int, default=1)
    ev.add_argument("--out", default="out/eval", help="one folder per policy inside; rerun to resume")
    ev.add_argument("--conditions", nargs="+", default=None,
                    help="only these conditions (env IDs, short names like UnseenTable, or display names)")
    ev.add_argument("--sweep", nargs="*", type=float, default=None, metavar="ALPHA",
                    help="also the dynamic texture/noise conditions at these alphas (no value: 0.1 0.2 0.4 0.6 0.8)")
    ev.add_argument("--size", type=int, default=None,
                    help="camera side in pixels (default: the policy's trained image size, else 224)")
    ev.add_argument("--temperature", type=float, default=None,
                    help="sample learnable policies at this temperature (the study: 0.6); default greedy")
    ev.add_argument("--max-steps", type=int, default=None, help="fewer steps than the task's 80 (smoke tests only)")
    ev.add_argument("--strips", type=int, default=2, help="episodes per condition whose frames are saved")
    ev.add_argument("--label", default=None, help="the policy's name in the table (one --policy only)")
    ev.add_argument("--device", default=None, help="where a learnable policy runs (cpu, cuda)")
    ev.add_argument("--robot", default=None, help="robot_uids: panda_vla (default) or widowx250s_vla")
    ev.add_argument("--ray", action="store_true", help="run the workers as Ray actors (local Ray on 127.0.0.1)")
    ev.add_argument("--ray-address", default=None, help="with --ray: join this Ray cluster instead (e.g. auto)")
    ev.add_argument("--compare", nargs="+", default=None, metavar="LABEL",
                    help="the policies (folder labels in --out) the table shows (default: all)")
    ev.add_argument("--reference", default=None, help="the policy others are compared with (default: the first)")
    ev.add_argument("--report-only", action="store_true", help="rebuild the report from --out without running")
    ev.set_defaults(func=_cmd_eval)

    s = sub.add_parser("sft", help="supervised fine-tuning of a policy on demonstrations (resumable; torchrun for "
                                   "data parallel)")
    s.add_argument("--dataset", required=True, help="a finished demo dataset folder (vla-ood generate)")
    s.add_argument("--out", required=True, help="run folder: checkpoint/, model/, best/, metrics.jsonl")
    s.add_argument("--policy", default="tiny", help="tiny (a fresh tiny VLA), openvla, or a checkpoint folder")
    s.add_argument("--max-episodes", type=int, default=None, help="train on the dataset's first N episodes")
    s.add_argument("--steps", type=int, default=None, help="optimiser steps (overrides --epochs)")
    s.add_argument("--epochs", type=float, default=None, help="passes over the training samples (default 10)")
    s.add_argument("--batch-size", type=int, default=64, help="global batch size (split over torchrun ranks)")
    s.add_argument("--lr", type=float, default=3e-4)
    s.add_argument("--augment", action="store_true", help="random crops (centre crop at evaluation) and jitter")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--val-fraction", type=float, default=0.1, help="share of episodes held out for validation")
    s.add_argument("--val-every", type=int, default=0, help="steps between validations (0: once per epoch)")
    s.add_argument("--save-every", type=int, default=500, help="steps between resumable checkpoints")
    s.add_argument("--idle-pad", type=int, default=0,
                   help="append N 'hold still' samples after each demo's success (0: the study's data as is)")
    s.add_argument("--truncate-after", type=int, default=6,
                   help="keep demo steps up to this many consecutive successes (0: keep all)")
    s.add_argument("--image-size", type=int, default=96, help="tiny VLA: input resolution (px)")
    s.add_argument("--include-proprio", action="store_true", help="tiny VLA: also read the 8-D proprio")
    s.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    s.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    s.set_defaults(func=_cmd_sft)

    a = sub.add_parser("assets", help="picture sheet of every asset (optionally regenerate the shipped assets)",
                       **fmt)
    a.add_argument("--sheet", default="out/assets.png", help="where to save the sheet")
    a.add_argument("--regenerate", action="store_true", help="rewrite the shipped assets first")
    a.set_defaults(func=_cmd_assets)

    rl = sub.add_parser("rl", help="RL fine-tuning of a learnable policy from an SFT checkpoint (PPO, GRPO, DPO; "
                                   "resumable: re-run the same command; scale out with torchrun)")
    rl.add_argument("--algo", choices=["ppo", "grpo", "dpo"], default="ppo")
    rl.add_argument("--init", default=None, help="SFT checkpoint folder (save_pretrained layout)")
    rl.add_argument("--env", default=None, help="training ID (default VLAPick-v0); OOD IDs are refused")
    rl.add_argument("--out", default=None, help="run folder (config.json, metrics.jsonl, checkpoints/)")
    rl.add_argument("--num-envs", type=int, default=None, help="parallel envs per rank")
    rl.add_argument("--iterations", type=int, default=None)
    rl.add_argument("--episodes-per-iteration", type=int, default=None, help="per rank; a multiple of --num-envs")
    rl.add_argument("--image-size", type=int, default=None, help="camera resolution (the study: 224)")
    rl.add_argument("--seed", type=int, default=None)
    rl.add_argument("--temperature", type=float, default=None, help="sampling temperature (1.0)")
    rl.add_argument("--eval-every", type=int, default=None, help="greedy evaluation period in iterations (0: off)")
    rl.add_argument("--eval-episodes", type=int, default=None)
    rl.add_argument("--checkpoint-every", type=int, default=None)
    rl.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    rl.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    rl.add_argument("--set", action="append", metavar="NAME=VALUE",
                    help="any other setting of the algorithm's config, e.g. --set gamma=1 --set gae_lambda=1 "
                         "(repeatable; see README 'RL fine-tuning')")
    rl.set_defaults(func=_cmd_rl)
    return p


def _known_error(exc: BaseException) -> bool:
    """Errors whose message already tells the user what to do: the package's own, Gymnasium's (an unknown ID
    lists the registered ones), and the operating system's (a path that cannot be read or written)."""
    import gymnasium as gym

    return isinstance(exc, (VLAOodError, gym.error.Error, OSError))


def main(argv: list[str] | None = None) -> int:
    """Run `vla-ood`; returns the exit status: 0, 1 for a known error (printed as one line on stderr), 2 for bad
    arguments (argparse), 130 when interrupted. Other exceptions are bugs and keep their traceback."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - known errors carry a fix-it message; the rest are re-raised
        if args.debug or not _known_error(exc):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
