"""Record scripted-expert demonstrations and export them as a LeRobot v3.0 dataset.

    python examples/demos_to_lerobot.py --episodes 20 --out out/examples/demos

The native store (one HDF5 file per episode, dataset.json with OpenVLA-style statistics) is written first and is
resumable; the export is written next to it (`<out>-lerobot`). The same two steps on the command line:
`vla-ood generate --episodes 20 --out DIR` and `vla-ood export DIR OUT` (add `--format rlds` for OpenVLA).
"""

import argparse
import json
from pathlib import Path

from vla_ood_envs.demos import DemoDataset, GenerateConfig, generate
from vla_ood_envs.demos.export_lerobot import export_lerobot


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="VLAPick-v0", help="a training-distribution ID (held-out ones are refused)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=224, help="image width and height (px)")
    parser.add_argument("--out", default="out/examples/demos")
    parser.add_argument("--tiny", action="store_true", help="one 32 px episode (what the tests run)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.episodes, args.size = 1, 32

    native = Path(args.out)
    index = generate(GenerateConfig(out=str(native), env_id=args.env, episodes=args.episodes, seed=args.seed,
                                    image_height=args.size, image_width=args.size), progress=not args.tiny)
    ds = DemoDataset(native)
    print(f"{native}: {len(ds)} episodes, {sum(len(e) for e in ds)} transitions, expert success "
          f"{index['expert_success_rate']:.0%}; first instruction {ds[0].instruction!r}")

    lerobot = export_lerobot(native, native.with_name(native.name + "-lerobot"), overwrite=True)
    info = json.loads((lerobot / "meta" / "info.json").read_text())
    print(f"{lerobot}: LeRobot {info['codebase_version']}, {info['total_episodes']} episodes, "
          f"{info['total_frames']} frames, features {sorted(info['features'])}")
    print("action:", info["vla_ood_envs_conventions"]["action"]["description"])


if __name__ == "__main__":
    main()
