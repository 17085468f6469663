"""A small real learnable policy for the RL trainer tests: a conv encoder on 16x16 frames, a 7 x 256 action-token
head and a value head, behind the LearnablePolicy protocol (OpenVLA token ids through the package's tokenizer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from vla_ood_envs.policies.base import LearnablePolicy, PolicyOutput, TokenScores, check_inputs
from vla_ood_envs.policies.tokenizer import ActionNormalizer, ActionTokenizer

STATS = {"q01": [-0.05, -0.05, -0.05, 0, 0, 0, -1], "q99": [0.05, 0.05, 0.05, 0, 0, 0, 1],
         "min": [-0.05, -0.05, -0.05, 0, 0, 0, -1], "max": [0.05, 0.05, 0.05, 0, 0, 0, 1]}


class ConvTokenPolicy(LearnablePolicy):
    """images (B, H, W, 3) uint8 -> 16x16 -> conv(3->8, stride 2) -> 64 features -> 7 x 256 logits and a value."""

    name = "conv-token"

    def __init__(self, size: int = 16, hidden: int = 64, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.size, self.hidden = size, hidden
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.GELU(), nn.Flatten(),
                                     nn.Linear(8 * (size // 2) ** 2, hidden), nn.GELU())
        self.action_head = nn.Linear(hidden, 7 * 256)
        self.value_head = nn.Sequential(nn.Linear(hidden, 32), nn.GELU(), nn.Linear(32, 1))
        self.tokenizer = ActionTokenizer(ActionNormalizer.from_dict(STATS))

    def _features(self, images) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
        x = x.to(self.action_head.weight.device).permute(0, 3, 1, 2).float() / 255.0
        x = F.interpolate(x, size=(self.size, self.size), mode="area")
        return self.encoder(x)

    def _heads(self, images, temperature):
        h = self._features(images)
        logits = self.action_head(h).view(-1, 7, 256) / temperature
        return F.log_softmax(logits, dim=-1), self.value_head(h).squeeze(-1)

    def act(self, images, instructions, proprio=None, *, greedy=False) -> PolicyOutput:
        check_inputs(images, instructions, proprio)
        with torch.no_grad():
            logp, value = self._heads(images, self.temperature)
            bins = logp.argmax(-1) if greedy else torch.distributions.Categorical(logits=logp).sample()
            tokens = self.tokenizer.bins_to_ids(bins)
            lp = logp.gather(-1, bins[..., None]).squeeze(-1).sum(-1)
            ent = -(logp.exp() * logp).sum(-1).mean(-1)
        actions = np.asarray(self.tokenizer.decode(tokens.cpu().numpy()), dtype=np.float32)
        return PolicyOutput(actions=actions, tokens=tokens, log_prob=lp, entropy=ent, value=value)

    def evaluate(self, images, instructions, tokens, proprio=None, *, temperature=None) -> TokenScores:
        logp, value = self._heads(images, temperature or self.temperature)
        bins = self.tokenizer.ids_to_bins(torch.as_tensor(tokens).to(logp.device))
        lp = logp.gather(-1, bins[..., None]).squeeze(-1).sum(-1)
        ent = -(logp.exp() * logp).sum(-1).mean(-1)
        return TokenScores(log_prob=lp, entropy=ent, value=value)

    def parameter_groups(self):
        return {"policy": list(self.encoder.parameters()) + list(self.action_head.parameters()),
                "value_head": list(self.value_head.parameters())}

    def save_pretrained(self, path):
        from safetensors.torch import save_file

        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        (p / "config.json").write_text(json.dumps({"size": self.size, "hidden": self.hidden}))
        (p / "dataset_statistics.json").write_text(json.dumps(STATS))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(p / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, path, **kwargs):
        from safetensors.torch import load_file

        p = Path(path)
        if not (p / "config.json").exists():
            raise FileNotFoundError(f"{p} has no config.json")
        model = cls(**json.loads((p / "config.json").read_text()))
        model.load_state_dict(load_file(str(p / "model.safetensors")))
        return model
