"""A tiny vision-language-action model that trains from scratch on a CPU (docs: ../shared/docs/training-design.md,
"A tiny VLA that learns on a CPU").

Image (any (B, H, W, 3) uint8) -> resized to `image_size`, centre-cropped to `crop_area` (the evaluation side of
the SFT random-crop augmentation: `image_ops`) -> a small conv encoder (GroupNorm, GELU) whose blocks are
modulated by FiLM from the instruction -> flattened spatial features -> a shared hidden vector h -> an action
head with 7 x 256 logits over OpenVLA's action tokens (class k <-> token id vocab_size - 1 - k,
`ActionTokenizer.bins_to_ids`) and a value head (h -> 512 -> 128 -> 1, GELU: RL4VLA's critic, read from the same
h the action logits come from). The instruction is a mean of word embeddings over a word vocabulary built from
the tasks' templates and the catalog's names (`policies.words`). `include_proprio` adds the (B, 8) proprio
through a small MLP into h (off by default: the study's VLA sees images and instructions only).

Checkpoints are Hugging Face-style folders: config.json ("policy_type": "tiny_vla", the architecture, the word
list), model.safetensors, dataset_statistics.json (OpenVLA's layout, {unnorm_key: {"action": {...}}}).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import spec
from .base import LearnablePolicy, PolicyInputError, PolicyOutput, TokenScores, check_inputs
from .checkpoints import CONFIG_FILE, read_config
from .image_ops import centre_boxes, crop_resize, resize_images
from .tokenizer import N_BINS, OPENVLA_VOCAB_SIZE, ActionNormalizer, ActionTokenizer
from .words import WordTokenizer, default_vocabulary

POLICY_TYPE = "tiny_vla"
WEIGHTS_FILE = "model.safetensors"
STATS_FILE = "dataset_statistics.json"


@dataclass
class TinyVLAConfig:
    """Architecture and inference settings (all of it goes to config.json).

    image_size: the square resolution the encoder sees (px); crop_area: area fraction of the evaluation centre
    crop (1.0: none); channels: conv widths, each block halves the resolution (after a stride-2 stem);
    hidden: width of h; word_dim: word-embedding width; include_proprio: read the (B, 8) proprio;
    temperature: sampling temperature of `act` (<= 0: greedy); unnorm_key: the key of the action statistics.
    """

    image_size: int = 96
    crop_area: float = 0.9
    channels: tuple[int, ...] = (16, 32, 64, 128)
    hidden: int = 512
    word_dim: int = 64
    include_proprio: bool = False
    temperature: float = 1.0
    n_bins: int = N_BINS
    vocab_size: int = OPENVLA_VOCAB_SIZE
    unnorm_key: str = "VLAPick-v0"
    words: list[str] = field(default_factory=default_vocabulary)

    def __post_init__(self) -> None:
        self.channels = tuple(int(c) for c in self.channels)
        if self.image_size < 16 or self.image_size % 2 ** (len(self.channels) + 1):
            raise ValueError(f"image_size {self.image_size} must be at least 16 and divisible by "
                             f"{2 ** (len(self.channels) + 1)} (the stem and {len(self.channels)} stride-2 blocks)")
        if not 0.1 <= self.crop_area <= 1.0:
            raise ValueError(f"crop_area must be in [0.1, 1], got {self.crop_area}")


def _groups(c: int) -> int:
    return 8 if c % 8 == 0 else 1


class _FiLMBlock(nn.Module):
    """conv3x3 stride 2 -> GN -> GELU -> conv3x3 -> GN -> FiLM (1 + gamma, beta) -> GELU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 2, 1, bias=False)
        self.gn1 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.gn2 = nn.GroupNorm(_groups(cout), cout)

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.gn1(self.conv1(x)))
        h = self.gn2(self.conv2(h))
        return F.gelu(h * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])


class TinyVLA(LearnablePolicy):
    """The tiny VLA (see the module docstring). `TinyVLA(config, normalizer, device=...)`.

    normalizer: the action statistics (`ActionNormalizer`); None uses the env's action bounds as q01/q99 until
    SFT sets the dataset's (`set_normalizer`). device: None picks CUDA when available, else CPU.
    """

    name = "tiny_vla"

    def __init__(self, config: TinyVLAConfig | None = None, normalizer: ActionNormalizer | None = None,
                 device: str | torch.device | None = None):
        super().__init__()
        self.config = config = config or TinyVLAConfig()
        self.temperature = config.temperature
        self.needs_proprio = config.include_proprio
        self.words = WordTokenizer(config.words)
        self.set_normalizer(normalizer)
        ch = config.channels
        self.stem = nn.Sequential(nn.Conv2d(5, ch[0], 5, 2, 2, bias=False), nn.GroupNorm(_groups(ch[0]), ch[0]),
                                  nn.GELU())
        self.blocks = nn.ModuleList(_FiLMBlock(a, b) for a, b in zip((ch[0],) + ch[:-1], ch))
        self.word_emb = nn.Embedding(len(self.words), config.word_dim, padding_idx=0)
        self.text_mlp = nn.Sequential(nn.Linear(config.word_dim, 256), nn.GELU())
        self.film = nn.Linear(256, 2 * sum(ch))
        nn.init.zeros_(self.film.weight)  # FiLM starts as the identity
        nn.init.zeros_(self.film.bias)
        side = config.image_size // 2 ** (len(ch) + 1)
        self.img_proj = nn.Linear(ch[-1] * side * side, config.hidden)
        self.text_proj = nn.Linear(256, config.hidden)
        self.proprio_mlp = nn.Sequential(nn.Linear(spec.PROPRIO_DIM, 128), nn.GELU(),
                                         nn.Linear(128, config.hidden)) if config.include_proprio else None
        self.trunk = nn.Sequential(nn.GELU(), nn.Linear(config.hidden, config.hidden), nn.GELU())
        self.action_head = nn.Linear(config.hidden, spec.ACTION_DIM * config.n_bins)
        self.value_head = nn.Sequential(nn.Linear(config.hidden, 512), nn.GELU(), nn.Linear(512, 128), nn.GELU(),
                                        nn.Linear(128, 1))
        side_px = config.image_size
        coords = torch.linspace(-1, 1, side_px)
        self.register_buffer("coords", torch.stack(torch.meshgrid(coords, coords, indexing="ij"))[None],
                             persistent=False)
        # oneDNN's convolutions run about 15% faster on channels-last tensors (measured on this CPU)
        self.stem.to(memory_format=torch.channels_last)
        self.blocks.to(memory_format=torch.channels_last)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.to(device)

    # ------------------------------------------------------------------ set-up
    @property
    def device(self) -> torch.device:
        return self.action_head.weight.device

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def set_normalizer(self, normalizer: ActionNormalizer | None) -> None:
        """Use these action statistics to decode tokens (None: the env's action bounds, gripper unmasked)."""
        if normalizer is None:
            lo, hi = spec.action_bounds()
            normalizer = ActionNormalizer(q01=lo, q99=hi, min=lo, max=hi)
        self.normalizer = normalizer
        self.action_tokenizer = ActionTokenizer(normalizer, vocab_size=self.config.vocab_size,
                                                n_bins=self.config.n_bins)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        value = list(self.value_head.parameters())
        ids = {id(p) for p in value}
        return {"policy": [p for p in self.parameters() if id(p) not in ids], "value_head": value}

    # ------------------------------------------------------------------ forward
    def _check(self, images: Any, instructions: Sequence[str], proprio: Any) -> int:
        n = check_inputs(images, instructions, proprio)
        if self.needs_proprio and proprio is None:
            raise PolicyInputError("this tiny VLA was built with include_proprio=True: pass proprio (B, 8) (make "
                                   "the env with include_proprio=True)")
        return n

    def preprocess(self, images: Any, boxes: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, 3, S, S) float 0..255 as the encoder sees it: resize to image_size, then the
        evaluation centre crop (or the given crop boxes, (B, 4) as in `image_ops`)."""
        x = resize_images(images, self.config.image_size, self.device)
        if boxes is None:
            if self.config.crop_area >= 1.0:
                return x.float()
            boxes = centre_boxes(x.shape[0], self.config.crop_area, self.device)
        return crop_resize(x, boxes)

    def features(self, pixels: torch.Tensor, instructions: Sequence[str], proprio: Any = None) -> torch.Tensor:
        """(B, 3, S, S) float 0..255 pixels (from `preprocess`) -> h (B, hidden)."""
        b = pixels.shape[0]
        x = torch.cat([pixels / 127.5 - 1.0, self.coords.expand(b, -1, -1, -1)], 1)
        x = x.contiguous(memory_format=torch.channels_last)
        ids = self.words(instructions, self.device)
        mask = (ids > 0).float()
        emb = (self.word_emb(ids) * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1.0)
        t = self.text_mlp(emb)
        film = self.film(t)
        h = self.stem(x)
        offset = 0
        for block in self.blocks:
            c = block.conv1.out_channels
            gamma, beta = film[:, offset:offset + c], film[:, offset + c:offset + 2 * c]
            offset += 2 * c
            h = block(h, gamma, beta)
        z = self.img_proj(h.contiguous().flatten(1)) + self.text_proj(t)
        if self.proprio_mlp is not None:
            p = torch.as_tensor(np.asarray(proprio) if not isinstance(proprio, torch.Tensor) else proprio,
                                dtype=torch.float32).to(self.device)
            z = z + self.proprio_mlp(p)
        return self.trunk(z)

    def heads(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h (B, hidden) -> (logits (B, 7, n_bins) over action classes, value (B,))."""
        logits = self.action_head(h).view(h.shape[0], spec.ACTION_DIM, self.config.n_bins)
        return logits, self.value_head(h).squeeze(-1)

    @staticmethod
    def _scores(logits: torch.Tensor, bins: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """log_prob (B,) = sum over dims of log-softmax at `temperature` (<= 0: the raw logits, temperature 1)
        at `bins`; entropy (B,) = mean per-dimension entropy of that distribution."""
        t = temperature if temperature > 0 else 1.0
        logp = torch.log_softmax(logits.float() / t, dim=-1)
        log_prob = logp.gather(-1, bins[..., None]).squeeze(-1).sum(-1)
        entropy = -(logp.exp() * logp).sum(-1).mean(-1)
        return log_prob, entropy

    # ------------------------------------------------------------------ the protocol
    @torch.no_grad()
    def act(self, images: Any, instructions: Sequence[str], proprio: Any = None, *,
            greedy: bool = False) -> PolicyOutput:
        """Sample (B, 7) action tokens at `self.temperature` (greedy=True or temperature <= 0: the argmax).

        Returns actions (B, 7) float32 numpy (bin centres, de-normalised), tokens (B, 7) int64 vocabulary ids,
        log_prob (B,), entropy (B,), value (B,) float32 torch tensors on the model's device.
        Raises PolicyInputError for inputs that break the protocol (shapes, dtype, counts, missing proprio).
        """
        self._check(images, instructions, proprio)
        was_training = self.training
        self.eval()
        try:
            h = self.features(self.preprocess(images), instructions, proprio)
            logits, value = self.heads(h)
            t = float(self.temperature)
            if greedy or t <= 0:
                bins = logits.argmax(-1)
            else:
                probs = torch.softmax(logits.float() / t, dim=-1)
                bins = torch.multinomial(probs.view(-1, self.config.n_bins), 1).view(logits.shape[:2])
            log_prob, entropy = self._scores(logits, bins, t)
        finally:
            self.train(was_training)
        tokens = self.action_tokenizer.bins_to_ids(bins)
        actions = self.action_tokenizer.decode(tokens.cpu().numpy()).astype(np.float32)
        return PolicyOutput(actions=actions, tokens=tokens, log_prob=log_prob, entropy=entropy, value=value.float())

    def evaluate(self, images: Any, instructions: Sequence[str], tokens: torch.Tensor, proprio: Any = None, *,
                 temperature: float | None = None, crop_boxes: torch.Tensor | None = None) -> TokenScores:
        """Score (B, 7) int64 token ids with gradients, at `temperature` (None: self.temperature), the numbers
        `act` reported for the same inputs. crop_boxes (B, 4): training-time random crops instead of the
        evaluation centre crop (`image_ops.random_boxes`); SFT passes them when augmenting."""
        n = self._check(images, instructions, proprio)
        tokens = torch.as_tensor(tokens).to(self.device)
        if tuple(tokens.shape) != (n, spec.ACTION_DIM):
            raise PolicyInputError(f"tokens must have shape ({n}, {spec.ACTION_DIM}), got {tuple(tokens.shape)}")
        bins = self.action_tokenizer.ids_to_bins(tokens.long())
        h = self.features(self.preprocess(images, crop_boxes), instructions, proprio)
        logits, value = self.heads(h)
        t = float(self.temperature if temperature is None else temperature)
        log_prob, entropy = self._scores(logits, bins, t)
        return TokenScores(log_prob=log_prob, entropy=entropy, value=value)

    # ------------------------------------------------------------------ checkpoints
    def config_dict(self) -> dict:
        d = asdict(self.config)
        d["channels"] = list(d["channels"])
        return {"policy_type": POLICY_TYPE, **d}

    def save_pretrained(self, path: str | Path) -> None:
        """Write config.json, model.safetensors and dataset_statistics.json into the folder `path` (created)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.config.temperature = float(self.temperature)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path / WEIGHTS_FILE), metadata={"format": "pt", "policy_type": POLICY_TYPE})
        (path / CONFIG_FILE).write_text(json.dumps(self.config_dict(), indent=1) + "\n")
        stats = {self.config.unnorm_key: {"action": self.normalizer.to_dict()}}
        (path / STATS_FILE).write_text(json.dumps(stats, indent=1) + "\n")

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device | None = None,
                        **overrides: Any) -> "TinyVLA":
        """Load a folder written by `save_pretrained`. overrides: config fields to change (e.g. temperature).

        Raises FileNotFoundError naming the missing file, ValueError for another policy type or weights that do
        not fit the config.
        """
        from safetensors.torch import load_file

        path = Path(path)
        cfg = read_config(path)
        if cfg.get("policy_type") != POLICY_TYPE:
            raise ValueError(f"{path} holds a {cfg.get('policy_type')!r} policy, not a tiny VLA; load it with "
                             f"vla_ood_envs.policies.load_policy")
        for name in (WEIGHTS_FILE, STATS_FILE):
            if not (path / name).is_file():
                raise FileNotFoundError(f"{path} has no {name}: not a complete tiny-VLA checkpoint (write one "
                                        f"with save_pretrained)")
        cfg = {k: v for k, v in cfg.items() if k != "policy_type"}
        cfg.update(overrides)
        config = TinyVLAConfig(**cfg)
        normalizer = ActionNormalizer.from_file(path / STATS_FILE, unnorm_key=config.unnorm_key)
        model = cls(config, normalizer, device="cpu")
        state = load_file(str(path / WEIGHTS_FILE))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path / WEIGHTS_FILE} does not fit its config.json: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return model.to(device)
