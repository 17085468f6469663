"""Tiny VLA speed next to the simulator's: SFT samples/s, inference observations/s at batch 1 and 16, and the cost
of one VLAPick-v0 env step measured in the same run (docs: ../shared/docs/training-design.md wants inference
well under the env step, so RL throughput is bounded by the simulator).

    python benchmarks/policy_throughput.py [--threads 1] [--image-size 96] [--env-size 128 224] [--seconds 10]

SFT is timed on the trainer's own step (`training.sft.batch_loss` with augmentation, backward, AdamW) over
random in-memory frames; inference is `act(greedy=True)` on frames of the env's size (the model resizes them).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vla_ood_envs.policies.tiny_vla import TinyVLA, TinyVLAConfig
from vla_ood_envs.training.data import Transitions
from vla_ood_envs.training.sft import SFTConfig, batch_loss, step_generator, _random_boxes


def _timed(fn, seconds: float, warmup: int = 2) -> tuple[int, float, float]:
    """(calls, wall seconds, CPU seconds of this process): on a shared machine the CPU time says what the work
    costs, the wall time what this run got."""
    for _ in range(warmup):
        fn()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n, time.perf_counter() - t0, time.process_time() - c0


def sft_samples_per_s(model: TinyVLA, batch: int, seconds: float) -> tuple[float, float]:
    """(samples per wall second, samples per CPU second)."""
    s = model.image_size
    n = 1024
    rng = np.random.default_rng(0)
    data = Transitions(images=torch.from_numpy(rng.integers(0, 256, (n, s, s, 3), dtype=np.uint8)),
                       actions=rng.uniform(-0.03, 0.03, (n, 7)).astype(np.float32),
                       proprio=torch.zeros((n, 8)), instruction_ids=torch.zeros(n, dtype=torch.int64),
                       instructions=["put carrot on plate"], episode=np.zeros(n, dtype=np.int64), seeds=[0])
    tokens = torch.as_tensor(model.action_tokenizer.encode(data.actions))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cfg = SFTConfig(dataset="", out="")
    model.train()
    step = [0]

    def one() -> None:
        idx = rng.integers(0, n, batch)
        boxes = _random_boxes(batch, cfg, step_generator(0, step[0], 0))
        loss = batch_loss(model, data, tokens, idx, boxes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step[0] += 1

    k, dt, cpu = _timed(one, seconds)
    return k * batch / dt, k * batch / cpu


def inference_obs_per_s(model: TinyVLA, batch: int, size: int, seconds: float) -> tuple[float, float, float]:
    """(observations per wall second, wall ms per call, CPU ms per call)."""
    img = np.random.default_rng(1).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    instr = ["put carrot on plate"] * batch
    k, dt, cpu = _timed(lambda: model.act(img, instr, greedy=True), seconds)
    return k * batch / dt, dt / k * 1000, cpu / k * 1000


def env_step_ms(size: int, steps: int = 60) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) per step of a single VLAPick-v0 env (rendering included)."""
    import gymnasium as gym

    import vla_ood_envs  # noqa: F401

    env = gym.make("VLAPick-v0", camera_width=size, camera_height=size)
    env.reset(seed=0)
    action = np.zeros(7, np.float32)
    for _ in range(5):
        env.step(action)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(steps):
        _, _, term, trunc, _ = env.step(action)
        if term or trunc:
            env.reset(seed=i)
    ms = (time.perf_counter() - t0) / steps * 1000
    cpu = (time.process_time() - c0) / steps * 1000
    env.close()
    return ms, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--env-size", type=int, nargs="+", default=[128, 224])
    parser.add_argument("--batch", type=int, default=64, help="SFT batch size")
    parser.add_argument("--seconds", type=float, default=10.0, help="time per measurement")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TinyVLA(TinyVLAConfig(image_size=args.image_size), device="cpu")
    params = sum(p.numel() for p in model.parameters())
    print(f"tiny VLA {params / 1e6:.2f}M parameters at {args.image_size} px, torch {torch.__version__}, "
          f"{args.threads} thread(s)\n")
    sft, sft_cpu = sft_samples_per_s(model, args.batch, args.seconds)
    print("| measurement | wall clock | CPU time of this process |")
    print("|---|---|---|")
    print(f"| SFT (batch {args.batch}, augmentation, AdamW) | {sft:.0f} samples/s | {sft_cpu:.0f} samples per CPU s |")
    for size in args.env_size:
        for b in (1, 16):
            rate, ms, cpu = inference_obs_per_s(model, b, size, args.seconds)
            print(f"| inference, batch {b}, {size} px frames | {rate:.0f} obs/s ({ms:.1f} ms per call) | "
                  f"{cpu:.1f} ms per call |")
        ms, cpu = env_step_ms(size)
        print(f"| one VLAPick-v0 env step, rgb {size} px, single env | {ms:.1f} ms | {cpu:.1f} ms |")


if __name__ == "__main__":
    main()
