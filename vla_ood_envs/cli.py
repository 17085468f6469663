"""`vla-ood`: a thin command line over the package."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_doctor(args) -> int:
    from .doctor import run

    return run(Path(args.out))


def _cmd_list(args) -> int:
    from .registry import DECLARATIONS

    width = max(len(d.env_id) for d in DECLARATIONS)
    print(f"{'ID':<{width}}  {'axis':<10} {'condition':<28} description")
    for d in DECLARATIONS:
        print(f"{d.env_id:<{width}}  {d.axis:<10} {d.display_name:<28} {d.description}")
    return 0


def _robot_kwargs(args) -> dict:
    return {"robot_uids": args.robot} if args.robot else {}


def _cmd_render(args) -> int:
    from .pictures import episode_sheet, episode_strip, overview_sheet
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
    from .pictures import articulated_sheet, asset_sheet

    sheet = Path(args.sheet)
    print(f"wrote {asset_sheet(sheet)}")
    print(f"wrote {articulated_sheet(sheet.with_name(sheet.stem + '-articulated' + sheet.suffix))}")
    return 0


def _cmd_generate(args) -> int:
    from .demos import GenerateConfig, generate

    cfg = GenerateConfig(out=args.out, env_id=args.env, episodes=args.episodes, seed=args.seed,
                         image_height=args.size[0], image_width=args.size[1], workers=args.workers,
                         stop_after_success=args.stop_after_success, backend="ray" if args.ray else "processes",
                         ray_address=args.ray_address, env_kwargs=_robot_kwargs(args))
    index = generate(cfg)
    print(f"dataset at {args.out}: {len(index['seeds'])} episodes, {index['num_transitions']} transitions, expert "
          f"success {index['expert_success_rate']:.0%} over {index['attempted_seeds']} seeds")
    return 0


def _cmd_export(args) -> int:
    if args.format == "lerobot":
        from .demos.export_lerobot import export_lerobot

        path = export_lerobot(args.dataset, args.out, repo_id=args.repo_id, overwrite=args.overwrite)
        print(f"wrote LeRobot v3.0 dataset {path}")
    else:
        from .demos.export_rlds import export_rlds

        path = export_rlds(args.dataset, args.out, name=args.name, overwrite=args.overwrite)
        print(f"wrote RLDS/TFDS dataset {path} (read it with tfds.builder_from_directory)")
    return 0


def _cmd_bench(args) -> int:
    from .bench import markdown, run

    result = run(args.quick, Path(args.out), size=args.size, docs=Path(args.docs) if args.docs else None)
    print(markdown(result))
    print(f"wrote {args.out}/bench.md and bench.json" + (f" and {args.docs}" if args.docs else ""))
    return 0


def _cmd_inspect(args) -> int:
    from .demos.inspect import inspect

    inspect(args.dataset, args.out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vla-ood", description="Out-of-distribution VLA environments on ManiSkill3.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("doctor", help="report versions, Vulkan driver, render device; render a test image")
    d.add_argument("--out", default="out/doctor.png", help="where to save the test render")
    d.set_defaults(func=_cmd_doctor)

    ls = sub.add_parser("list", help="list the registered environment IDs")
    ls.set_defaults(func=_cmd_list)

    r = sub.add_parser("render", help="save a sheet of first frames of several episodes of an env")
    r.add_argument("--env", default="VLAPick-v0")
    r.add_argument("--all", action="store_true", help="one sheet per registered ID")
    r.add_argument("--episodes", type=int, default=8)
    r.add_argument("--size", type=int, default=224)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--strip", action="store_true", help="also a strip of frames of one expert episode")
    r.add_argument("--out", default="out/render")
    r.add_argument("--robot", default=None, help="robot_uids: panda_vla (default) or widowx250s_vla")
    r.set_defaults(func=_cmd_render)

    g = sub.add_parser("generate", help="generate expert demonstrations (resumable; re-run the same command)")
    g.add_argument("--env", default="VLAPick-v0")
    g.add_argument("--episodes", type=int, default=100)
    g.add_argument("--out", default="out/demos/VLAPick-v0")
    g.add_argument("--seed", type=int, default=0, help="first seed tried")
    g.add_argument("--size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    g.add_argument("--workers", type=int, default=1)
    g.add_argument("--robot", default=None, help="robot_uids: panda_vla (default) or widowx250s_vla")
    g.add_argument("--stop-after-success", type=int, default=6,
                   help="end a rollout after this many consecutive success steps (0: record all 80 steps)")
    g.add_argument("--ray", action="store_true", help="run the workers as Ray actors (local Ray on 127.0.0.1)")
    g.add_argument("--ray-address", default=None,
                   help="with --ray: join this Ray cluster instead (e.g. auto); --out must be shared storage")
    g.set_defaults(func=_cmd_generate)

    e = sub.add_parser("export", help="export a demo dataset as LeRobot v3.0 or RLDS/TFDS (OpenVLA)")
    e.add_argument("dataset")
    e.add_argument("out")
    e.add_argument("--format", choices=["lerobot", "rlds"], default="lerobot")
    e.add_argument("--repo-id", default=None, help="lerobot: the dataset's repo id in its card")
    e.add_argument("--name", default="vla_ood_pick", help="rlds: the TFDS dataset name (OpenVLA's dataset key)")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(func=_cmd_export)

    i = sub.add_parser("inspect", help="counts, action statistics, histograms and a contact sheet of a dataset")
    i.add_argument("dataset")
    i.add_argument("--out", default=None, help="folder for the pictures (default: <dataset>/inspect)")
    i.set_defaults(func=_cmd_inspect)

    b = sub.add_parser("bench", help="steps/s next to ManiSkill's PickCube-v1 (each env in a fresh process), image "
                                     "condition costs")
    b.add_argument("--quick", action="store_true",
                   help="3 rounds of 12 steps per env: a quick check, its ratios are noisy (full mode: 7 x 60)")
    b.add_argument("--size", type=int, default=224)
    b.add_argument("--out", default="out/bench")
    b.add_argument("--docs", default=None, help="also write the table to this markdown file (docs/performance.md)")
    b.set_defaults(func=_cmd_bench)

    a = sub.add_parser("assets", help="picture sheet of every asset (optionally regenerate the shipped assets)")
    a.add_argument("--sheet", default="out/assets.png")
    a.add_argument("--regenerate", action="store_true")
    a.set_defaults(func=_cmd_assets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # noqa: BLE001 - known errors already carry a fix-it message
        from .demos import DatasetError, SplitError
        from .render.device import RenderDeviceError
        from .tasks.robots import RobotError

        if isinstance(exc, (RenderDeviceError, DatasetError, SplitError, RobotError)):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
