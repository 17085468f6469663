"""Supervised fine-tuning of a learnable policy on expert demonstrations (`vla-ood sft`).

Loss: token cross-entropy, i.e. minus the policy's `evaluate` log-probability of the demonstrated action tokens
at temperature 1, divided by the 7 dimensions (the mean per-token cross-entropy). It goes through the policy
protocol only, so any LearnablePolicy trains here; policies whose `evaluate` takes `crop_boxes` (the tiny VLA)
also get OpenVLA's random-crop augmentation (`--augment`), and see the matching centre crop at evaluation.

Data: the study's preprocessed demonstrations (`training.data`), decoded once into memory at the model's
resolution, split into training and validation by episode. Each epoch visits the training samples in a
permutation drawn from (seed, epoch); the augmentation of step s on rank r draws from (seed, s, r). So the run is
a pure function of its settings and the step counter, and a resumed run replays exactly what an uninterrupted one
would have done (the checkpoint holds the weights, AdamW's moments, the scheduler and the step).

Output folder:

    checkpoint/   latest save_pretrained folder + trainer_state.pt (optimizer, scheduler, step, RNG): resume point
    model/        the final weights (save_pretrained folder), written when the run finishes
    best/         the weights with the lowest validation loss so far (when there is a validation split)
    metrics.jsonl one JSON object per log line (train loss, lr, samples/s; val_loss, val_token_acc)
    sft_config.json, summary.json

Folders are written beside their final name and renamed into place, so an interrupted run leaves the previous
checkpoint whole. Data parallel: run under `torchrun --nproc_per_node N` (gloo on CPU, NCCL on GPU, rendezvous on
127.0.0.1); each rank scores its slice of every global batch and the gradients are averaged.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist

from ..demos.store import DemoDataset, atomic_dir
from ..policies.base import LearnablePolicy
from ..policies.tokenizer import ActionNormalizer
from .data import Transitions, load_transitions

STATE_FILE = "trainer_state.pt"
CONFIG_FILE = "sft_config.json"
METRICS_FILE = "metrics.jsonl"
# Settings that may differ when a run is resumed (they do not change what is computed).
RESUMABLE_CHANGES = ("save_every", "val_every", "log_every", "progress", "threads", "device")


class SFTError(ValueError):
    """The SFT settings, dataset or output folder do not allow the run; the message names the fix."""


@dataclass
class SFTConfig:
    """Settings of one SFT run (all of them are written to sft_config.json).

    dataset: a finished demo dataset folder; out: the run folder (resumed when it holds a checkpoint).
    policy: "tiny" (a fresh tiny VLA), "openvla" (the OpenVLA adapter, when installed) or a checkpoint folder of
        any learnable policy to continue from (its action statistics are kept).
    max_episodes: train on the dataset's first N episodes (None: all) -- validation episodes come out of these.
    steps / epochs: length of the run (steps wins; default 10 epochs); batch_size: global batch (split over ranks).
    lr: AdamW peak learning rate (linear warm-up over warmup_steps, cosine decay to 0); weight_decay; grad_clip.
    augment: random crops of area crop_scale (and aspect ratio crop_ratio) plus brightness/contrast jitter.
    truncate_after / filter_steps / idle_pad: the demo preprocessing (`training.data.load_transitions`).
    image_size, crop_area, include_proprio: the tiny VLA's settings (policy "tiny" only).
    val_fraction: share of the episodes held out for validation; val_every: steps between validations (0: once
        per epoch); save_every: steps between checkpoints; log_every: steps between metric lines.
    """

    dataset: str
    out: str
    policy: str = "tiny"
    max_episodes: int | None = None
    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 200
    grad_clip: float = 1.0
    augment: bool = False
    crop_scale: tuple[float, float] = (0.9, 0.9)
    crop_ratio: tuple[float, float] = (1.0, 1.0)
    jitter: float = 0.1
    seed: int = 0
    val_fraction: float = 0.1
    val_every: int = 0
    save_every: int = 500
    log_every: int = 25
    truncate_after: int = 6
    filter_steps: bool = True
    idle_pad: int = 0
    image_size: int = 96
    crop_area: float = 0.9
    include_proprio: bool = False
    threads: int | None = None
    device: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.crop_scale = tuple(float(x) for x in self.crop_scale)
        self.crop_ratio = tuple(float(x) for x in self.crop_ratio)
        if self.batch_size < 1:
            raise SFTError("batch_size must be >= 1")
        if self.steps is not None and self.steps < 1:
            raise SFTError("steps must be >= 1")
        if self.epochs is not None and self.epochs <= 0:
            raise SFTError("epochs must be > 0")
        if not 0.0 <= self.val_fraction < 1.0:
            raise SFTError(f"val_fraction must be in [0, 1), got {self.val_fraction}")

    def identity(self) -> dict:
        """The settings that define what the run computes (resuming requires them unchanged)."""
        d = json.loads(json.dumps(asdict(self)))
        for k in RESUMABLE_CHANGES + ("out",):
            d.pop(k, None)
        return d


# ------------------------------------------------------------------ distributed helpers
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | None) -> Dist:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1): NCCL when CUDA is available,
    gloo otherwise, over loopback. Single process: nothing to join."""
    want = device or ("cuda" if torch.cuda.is_available() else "cpu")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(0, 1, torch.device(want))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if want.startswith("cuda"):
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # gloo's pairs on loopback, not the network interface
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank, world, dev)


def _average_gradients(params: list[torch.nn.Parameter], world: int) -> None:
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of all parameters' bytes (replicas of a data-parallel run must agree)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------ building blocks
def build_policy(cfg: SFTConfig, normalizer: ActionNormalizer, device: torch.device) -> LearnablePolicy:
    """A fresh tiny VLA, or the policy in the checkpoint folder cfg.policy. Raises SFTError for "openvla" when the
    adapter is not installed and for anything else that is not a policy."""
    if cfg.policy == "tiny":
        from ..policies.tiny_vla import TinyVLA, TinyVLAConfig

        torch.manual_seed(cfg.seed)
        return TinyVLA(TinyVLAConfig(image_size=cfg.image_size, crop_area=cfg.crop_area,
                                     include_proprio=cfg.include_proprio), normalizer, device=device)
    from ..policies.checkpoints import POLICY_TYPES, load_policy

    if cfg.policy == "openvla":
        raise SFTError("--policy openvla: pass an OpenVLA adapter checkpoint folder as --policy DIR (make one from an "
                       "OpenVLA checkpoint with OpenVLAAdapter.from_pretrained(CHECKPOINT).save_pretrained(DIR); "
                       "it needs the [train] extra, and the [openvla] extra for OpenVLA's own checkpoints)")
    path = Path(cfg.policy)
    if not path.exists():
        raise SFTError(f"--policy must be 'tiny', 'openvla' or a checkpoint folder; {cfg.policy!r} is none of these")
    try:
        return load_policy(path, device=str(device))
    except (FileNotFoundError, ValueError) as exc:
        raise SFTError(f"--policy {cfg.policy}: {exc}") from None


def split_episodes(n_episodes: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) episode indices: a seeded permutation, round(val_fraction * n) validation episodes (at least
    one when val_fraction > 0 and there are two or more episodes)."""
    if val_fraction <= 0 or n_episodes < 2:
        return np.arange(n_episodes), np.arange(0)
    n_val = min(n_episodes - 1, max(1, round(val_fraction * n_episodes)))
    perm = np.random.RandomState(seed).permutation(n_episodes)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch, 0x5F7]).permutation(n)


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0]))
    return g


def color_jitter(images: torch.Tensor, strength: float, g: torch.Generator) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> uint8 with per-image brightness (+-strength) and contrast (1 +- strength)."""
    if strength <= 0:
        return images
    b = images.shape[0]
    u = torch.rand((b, 2), generator=g)
    bright = (2 * u[:, 0] - 1) * strength * 255
    contrast = 1 + (2 * u[:, 1] - 1) * strength
    x = images.float()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.view(b, 1, 1, 1) + mean + bright.view(b, 1, 1, 1)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _accepts_crop_boxes(policy: LearnablePolicy) -> bool:
    import inspect

    return "crop_boxes" in inspect.signature(policy.evaluate).parameters


def batch_loss(policy: LearnablePolicy, data: Transitions, tokens: torch.Tensor, idx: np.ndarray,
               boxes: torch.Tensor | None = None, images: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-token cross-entropy of the samples `idx` (minus log_prob / 7 at temperature 1)."""
    t = torch.from_numpy(idx)
    imgs = data.images[t] if images is None else images
    instr = [data.instructions[k] for k in data.instruction_ids[t].tolist()]
    proprio = data.proprio[t] if policy.needs_proprio else None
    kwargs = {"crop_boxes": boxes} if boxes is not None else {}
    scores = policy.evaluate(imgs, instr, tokens[t], proprio, temperature=1.0, **kwargs)
    return -scores.log_prob.mean() / tokens.shape[1]


@torch.no_grad()
def validate(policy: LearnablePolicy, data: Transitions, tokens: torch.Tensor, d: Dist,
             batch_size: int = 256) -> dict:
    """Validation loss (mean per-token cross-entropy) and greedy token accuracy, over this rank's share."""
    was = policy.training
    policy.eval()
    idx_all = np.arange(d.rank, len(data), d.world)
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.float64)
    for s in range(0, len(idx_all), batch_size):
        idx = idx_all[s:s + batch_size]
        t = torch.from_numpy(idx)
        instr = [data.instructions[k] for k in data.instruction_ids[t].tolist()]
        proprio = data.proprio[t] if policy.needs_proprio else None
        scores = policy.evaluate(data.images[t], instr, tokens[t], proprio, temperature=1.0)
        loss_sum += -scores.log_prob.double().sum().cpu() / tokens.shape[1]
        out = policy.act(data.images[t], instr, proprio, greedy=True)
        correct += (out.tokens.cpu() == tokens[t]).double().mean(1).sum()
    stats = torch.stack([loss_sum, correct, torch.tensor(float(len(idx_all)), dtype=torch.float64)])
    if d.world > 1:
        dist.all_reduce(stats)
    policy.train(was)
    n = max(stats[2].item(), 1.0)
    return {"val_loss": stats[0].item() / n, "val_token_acc": stats[1].item() / n}


def _lr_lambda(warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return f


def _write_checkpoint(out: Path, name: str, policy: LearnablePolicy, state: dict | None, cfg: SFTConfig) -> Path:
    with atomic_dir(out / name, overwrite=True) as tmp:
        policy.save_pretrained(str(tmp))
        if state is not None:
            torch.save(state, tmp / STATE_FILE)
        (tmp / CONFIG_FILE).write_text(json.dumps(asdict(cfg), indent=1) + "\n")
    return out / name


def _append_metrics(out: Path, row: dict) -> None:
    with open(out / METRICS_FILE, "a") as f:
        f.write(json.dumps(row) + "\n")


def _trim_metrics(out: Path, step: int) -> None:
    """Drop metric lines past the resumed step (they belong to the interrupted attempt)."""
    path = out / METRICS_FILE
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(ln + "\n" for ln in keep))
    os.replace(tmp, path)


# ------------------------------------------------------------------ the run
def train(cfg: SFTConfig, on_step: Callable[[int, dict], None] | None = None) -> dict:
    """Run (or resume) SFT; returns the summary written to <out>/summary.json.

    on_step(step, row) is called after every optimiser step (progress hooks, tests that interrupt a run).
    Raises SFTError for settings that conflict with an existing run in `out`, DatasetError for an unfinished
    or unreadable dataset and HeldOutDataError for data from held-out pools.
    """
    d = init_distributed(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.batch_size % d.world:
        raise SFTError(f"batch_size {cfg.batch_size} must be a multiple of the {d.world} processes")
    out = Path(cfg.out)
    ckpt = out / "checkpoint"
    resume = (ckpt / STATE_FILE).is_file()
    if resume:
        previous = json.loads((ckpt / CONFIG_FILE).read_text())
        prev_id = SFTConfig(**previous).identity()
        if prev_id != cfg.identity():
            diff = sorted(k for k in set(prev_id) | set(cfg.identity()) if prev_id.get(k) != cfg.identity().get(k))
            raise SFTError(f"{out} holds a run with other settings ({', '.join(diff)} differ); resume it with the "
                           f"same settings or use another --out")
    dataset = DemoDataset(cfg.dataset)
    t_load = time.perf_counter()
    bar = None
    if cfg.progress and d.main:
        from tqdm import tqdm

        bar = tqdm(total=min(len(dataset), cfg.max_episodes or len(dataset)), desc="loading demos", unit="ep")
    policy_size = cfg.image_size if cfg.policy == "tiny" else None
    data = load_transitions(dataset, image_size=policy_size, max_episodes=cfg.max_episodes,
                            truncate_after=cfg.truncate_after, filter_steps=cfg.filter_steps, idle_pad=cfg.idle_pad,
                            progress=(lambda i, n: bar.update(1)) if bar is not None else None)
    if bar is not None:
        bar.close()
    load_seconds = time.perf_counter() - t_load
    train_eps, val_eps = split_episodes(len(data.seeds), cfg.val_fraction, cfg.seed)
    train_data, val_data = data.subset(train_eps), data.subset(val_eps)
    del data

    if resume:
        from ..policies.checkpoints import load_policy

        policy = load_policy(ckpt, device=str(d.device))
    else:
        stats = train_data.action_statistics()["action"]
        policy = build_policy(cfg, ActionNormalizer.from_dict(stats), d.device)
    policy_image_size = getattr(policy, "image_size", None)
    if policy_image_size is not None and policy_size is not None and policy_image_size != policy_size:
        raise SFTError(f"the policy sees {policy_image_size} px but the data was decoded at {policy_size} px")
    if cfg.augment and not _accepts_crop_boxes(policy):
        raise SFTError(f"--augment needs a policy whose evaluate takes crop_boxes; {type(policy).__name__} does not")
    policy.train()
    tok = policy.action_tokenizer
    train_tokens = torch.as_tensor(tok.encode(train_data.actions))
    val_tokens = torch.as_tensor(tok.encode(val_data.actions)) if len(val_data) else None

    steps_per_epoch = len(train_data) // cfg.batch_size
    if steps_per_epoch < 1:
        raise SFTError(f"{len(train_data)} training samples are fewer than one batch of {cfg.batch_size}; lower "
                       f"--batch-size or use more episodes")
    total = cfg.steps if cfg.steps is not None else max(1, round((cfg.epochs or 10.0) * steps_per_epoch))
    groups = policy.parameter_groups()
    params = [p for ps in groups.values() for p in ps]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(min(cfg.warmup_steps, total // 10 + 1), total))
    step = 0
    best = math.inf
    if resume:
        state = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, best = int(state["step"]), float(state["best_val_loss"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["total_steps"] != total:
            raise SFTError(f"the checkpoint in {out} was made for {state['total_steps']} steps, this run has {total}")
    if d.world > 1:
        for p in policy.state_dict().values():
            dist.broadcast(p, 0)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / CONFIG_FILE).write_text(json.dumps(asdict(cfg), indent=1) + "\n")
        _trim_metrics(out, step)
        if not resume:
            (out / METRICS_FILE).unlink(missing_ok=True)
            _append_metrics(out, {"step": 0, "event": "start", "train_samples": len(train_data),
                                  "val_samples": len(val_data), "train_episodes": len(train_eps),
                                  "val_episodes": len(val_eps), "steps": total, "steps_per_epoch": steps_per_epoch,
                                  "load_seconds": round(load_seconds, 1), "world_size": d.world,
                                  "parameters": sum(p.numel() for p in params)})
    if not resume and val_tokens is not None:  # the untrained model's numbers, the baseline of the curve
        row0 = validate(policy, val_data, val_tokens, d)
        if d.main:
            _append_metrics(out, {"step": 0, "epoch": 0.0, **row0})
    val_every = cfg.val_every or steps_per_epoch
    local_bs = cfg.batch_size // d.world
    bar = None
    if cfg.progress and d.main:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=step, desc="sft", unit="step")
    t0, seen, run_loss, run_n = time.perf_counter(), 0, 0.0, 0
    loop_start = time.perf_counter()

    def save(kind: str) -> None:
        if not d.main:
            return
        state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": step,
                 "total_steps": total, "best_val_loss": best, "rng": {"torch": torch.get_rng_state()}}
        _write_checkpoint(out, kind, policy, state if kind == "checkpoint" else None, cfg)

    while step < total:
        epoch, pos = divmod(step, steps_per_epoch)
        order = epoch_order(len(train_data), cfg.seed, epoch)
        idx = order[pos * cfg.batch_size:(pos + 1) * cfg.batch_size][d.rank * local_bs:(d.rank + 1) * local_bs]
        g = step_generator(cfg.seed, step, d.rank)
        boxes, images = None, None
        if cfg.augment:
            boxes = _random_boxes(len(idx), cfg, g)
            images = color_jitter(train_data.images[torch.from_numpy(idx)], cfg.jitter, g)
        loss = batch_loss(policy, train_data, train_tokens, idx, boxes, images)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if d.world > 1:
            _average_gradients(params, d.world)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        step += 1
        seen += cfg.batch_size
        run_loss += loss.item()
        run_n += 1
        row: dict[str, Any] = {"step": step, "epoch": round(step / steps_per_epoch, 3)}
        if step % cfg.log_every == 0 or step == total:
            elapsed = time.perf_counter() - t0
            row.update(loss=run_loss / run_n, lr=sched.get_last_lr()[0], samples_per_s=seen / max(elapsed, 1e-9))
            t0, seen, run_loss, run_n = time.perf_counter(), 0, 0.0, 0
        if val_tokens is not None and (step % val_every == 0 or step == total):
            row.update(validate(policy, val_data, val_tokens, d))
            if row["val_loss"] < best:
                best = row["val_loss"]
                save("best")
            t0, seen = time.perf_counter(), 0  # samples/s counts training steps only
        if d.main and len(row) > 2:
            _append_metrics(out, row)
        if bar is not None:
            bar.update(1)
            if "loss" in row:
                bar.set_postfix({k: f"{v:.4g}" for k, v in row.items() if k in ("loss", "val_loss", "val_token_acc")})
        if step % cfg.save_every == 0 or step == total:
            save("checkpoint")
        if on_step is not None:
            on_step(step, row)
    if bar is not None:
        bar.close()
    summary = {"steps": total, "train_samples": len(train_data), "val_samples": len(val_data),
               "train_episodes": len(train_eps), "val_episodes": len(val_eps), "best_val_loss": best,
               "world_size": d.world, "seconds_this_run": round(time.perf_counter() - loop_start, 1),
               "load_seconds": round(load_seconds, 1)}
    digest = weights_digest(policy)
    if d.world > 1:
        digests: list[str] = [""] * d.world
        dist.all_gather_object(digests, digest)
        summary["replicas_identical"] = len(set(digests)) == 1
        if not summary["replicas_identical"]:
            raise RuntimeError(f"data-parallel replicas diverged: weight digests {digests}")
    summary["weights_sha256"] = digest
    if d.main:
        _write_checkpoint(out, "model", policy, None, cfg)
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if d.world > 1:
        dist.barrier()
    return summary


def _random_boxes(n: int, cfg: SFTConfig, g: torch.Generator) -> torch.Tensor:
    from ..policies.image_ops import random_boxes

    return random_boxes(n, cfg.crop_scale, cfg.crop_ratio, g)
