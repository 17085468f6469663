"""Where the CPU time of one env step goes, by component, in fresh processes; optionally against another checkout.

Each measurement runs in its own fresh process (`--child`), which builds one env, plays `--steps` steps of fixed
actions from a fixed seed, first untimed-per-component (the total), then with every component wrapped in a timer:

- physics: PhysX substeps (`scene.step`, 100 per step at 500 Hz / 5 Hz);
- substep loop: the rest of the substep loop (the agent's and the env's per-substep hooks, loop overhead);
- controller: `agent.set_action` (the delta-pose target and the IK);
- evaluate: the task's `evaluate` (success, grasp, contact forces);
- observation: ManiSkill's `get_obs` (for image modes: the render, the picture read-back and its conversion);
- reward: `get_reward`;
- wrappers: everything outside ManiSkill's step (action validation, observation layout, image conditions,
  numpy conversion).

Times are CPU time of the main thread (time.thread_time) per step, which a loaded machine disturbs much less
than wall-clock time, plus the process CPU (every thread, lavapipe's included) and wall time of the whole step.
With `--compare DIR`, DIR is another checkout of the package (e.g. `git worktree add /tmp/old <commit>`); the
two trees are measured in alternating fresh processes and their medians printed side by side.

    python benchmarks/step_cost.py [--env VLAPick-v0] [--obs-mode state] [--steps 80] [--runs 3] [--compare DIR]
                                   [--user-process]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMPONENTS = ("physics", "substep loop", "controller", "evaluate", "observation", "reward", "wrappers")


class _Timer:
    """Accumulates main-thread CPU seconds spent inside wrapped callables (outermost call only)."""

    def __init__(self):
        self.total: dict[str, float] = {}
        self.depth = 0

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            t = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.total[name] = self.total.get(name, 0.0) + time.thread_time() - t
        return timed


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child(env_id: str, obs_mode: str, steps: int, size: int, seed: int, user_process: bool = False) -> dict:
    import warnings

    import gymnasium as gym
    import numpy as np

    import vla_ood_envs  # noqa: F401
    from vla_ood_envs.runtime.device import env_worker_defaults

    if not user_process:
        env_worker_defaults()  # as in the env worker processes the package spawns: torch on one thread
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make(env_id, obs_mode=obs_mode, camera_width=size, camera_height=size)
    rng = np.random.default_rng(0)
    low, high = env.action_space.low, env.action_space.high
    actions = [(rng.uniform(low, high) * 0.3).astype(np.float32) for _ in range(steps)]

    def play() -> tuple[float, float, float]:
        env.reset(seed=seed)
        cpu, thread, wall = _cpu(), time.thread_time(), time.perf_counter()
        for a in actions:
            env.step(a)
        return _cpu() - cpu, time.thread_time() - thread, time.perf_counter() - wall

    play()  # warm-up
    cpu, thread, wall = play()
    base = env.unwrapped
    timer = _Timer()
    scene, agent = base.scene, base.agent
    scene.step = timer.wrap("physics", scene.step)
    agent.set_action = timer.wrap("controller", agent.set_action)
    base._step_action = timer.wrap("step_action", base._step_action)
    base.evaluate = timer.wrap("evaluate", base.evaluate)
    base.get_obs = timer.wrap("observation", base.get_obs)
    base.get_reward = timer.wrap("reward", base.get_reward)
    base.step = timer.wrap("base_step", base.step)
    _, thread_timed, _ = play()
    t = {k: v / steps * 1000 for k, v in timer.total.items()}
    out = {
        "physics": t["physics"],
        "substep loop": t["step_action"] - t["physics"] - t["controller"],
        "controller": t["controller"],
        "evaluate": t["evaluate"],
        "observation": t["observation"],
        "reward": t["reward"],
        "wrappers": thread_timed / steps * 1000 - t["base_step"],
        "main thread total": thread / steps * 1000,
        "process CPU total": cpu / steps * 1000,
        "wall total": wall / steps * 1000,
    }
    env.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="VLAPick-v0")
    parser.add_argument("--obs-mode", default="state")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per tree")
    parser.add_argument("--compare", default=None, help="another checkout of the package, measured alternately")
    parser.add_argument("--user-process", action="store_true",
                        help="leave torch's threads as in a user's own process (default: as in an env worker)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.env, args.obs_mode, args.steps, args.size, args.seed, args.user_process)))
        return
    here = str(Path(__file__).resolve().parents[1])
    trees = {"this tree": here}
    if args.compare:
        trees = {"compared tree": str(Path(args.compare).resolve()), **trees}
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    cmd = [sys.executable, __file__, "--child", "--env", args.env, "--obs-mode", args.obs_mode, "--size",
           str(args.size), "--steps", str(args.steps), "--seed", str(args.seed)]
    cmd += ["--user-process"] if args.user_process else []
    load = [os.getloadavg()[0]]
    for r in range(args.runs):
        for name, tree in trees.items() if r % 2 == 0 else reversed(list(trees.items())):
            env = {**os.environ, "PYTHONPATH": tree}
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tree)
            if proc.returncode != 0:
                sys.exit(f"child failed for {name} ({tree}):\n{proc.stderr[-3000:]}")
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"run {r + 1}/{args.runs} {name}: {runs[name][-1]['main thread total']:.2f} main-thread CPU ms/step",
                  file=sys.stderr)
    load.append(os.getloadavg()[0])
    keys = list(runs[next(iter(runs))][0])
    threads = "a user's process (torch's default threads)" if args.user_process else "an env worker (1 torch thread)"
    print(f"\n{args.env} {args.obs_mode}{'' if args.obs_mode == 'state' else f' {args.size}'}, as in {threads}: "
          f"ms per step, median "
          f"of {args.runs} fresh processes per tree ({args.steps} steps each), load average (1 min) {load[0]:.2f} "
          f"at the start, {load[1]:.2f} at the end\n")
    print("| component | " + " | ".join(trees) + " |")
    print("|---|" + "---|" * len(trees))
    for k in keys:
        cells = []
        for name in trees:
            vals = [x[k] for x in runs[name]]
            cells.append(f"{statistics.median(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})")
        label = k if k not in COMPONENTS else f"{k} (main-thread CPU)"
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
