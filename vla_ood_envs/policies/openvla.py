"""A thin adapter that puts a Hugging Face vision-language-action checkpoint (OpenVLA, or any image-text-to-text model
whose logits are its output embedding applied to its decoder's last hidden state) behind the policy protocol.

What it adds to the user's checkpoint, and nothing more (docs: ../shared/docs/study.md sections 5-6,
training-design.md "Lessons from the anchors"):

- the study's prompt, `In: What action should the robot take to {instruction lowercased}?\\nOut:`, followed by the
  separator the model saw before its first action token in training (OpenVLA's `predict_action` appends Llama-2's
  29871 "▁"; here it is derived from the loaded tokenizer, see `separator_ids`), batched with the padding on the
  left (for OpenVLA after each row's <BOS>, where it splices in its image patches) so the last position predicts
  the first action token in every row, and with position ids counted over real tokens only: a row gets the same
  numbers in a batch as alone;
- action tokens sampled from the 256 action ids only (selected by id value, `ActionTokenizer.action_id_range`;
  OpenVLA's logits are 32064 wide), 7 of them one at a time over a KV cache, greedy or at a temperature;
- `evaluate`: one teacher-forced forward pass over the prompt and the 7 given tokens, with gradients;
- a value head (hidden -> 512 -> 128 -> 1, GELU) on the last-layer hidden state at the position that predicts the
  first action token; it reads that state without detaching it, so the value loss reaches the LoRA weights;
- LoRA (peft; rank 32, alpha 16 as in the study) on the language model's projections; only the LoRA and value-head
  parameters train;
- the action statistics (q01/q99 under an unnorm key) and the gripper convention at the adapter edge.

Real OpenVLA checkpoints bring their own modelling code (`trust_remote_code`), which runs on OpenVLA's pinned stack:
`pip install -e .[openvla]` (transformers 4.40.1, tokenizers 0.19.1, timm 0.9.10, peft 0.11.1). The tests drive the
same code with a tiny `LlavaForConditionalGeneration` and a tiny checkpoint that brings its own OpenVLA-like code
(patches spliced in after <BOS>, no position ids), both built on the spot.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from .. import spec
from .base import LearnablePolicy, PolicyInputError, PolicyOutput, TokenScores, check_inputs
from .tokenizer import N_BINS, ActionNormalizer, ActionTokenizer, StatisticsError, select_unnorm_key

POLICY_TYPE = "openvla_adapter"
FORMAT_VERSION = 1
# The study's prompt (study.md section 5; OpenVLA's `PurePromptBuilder` for the `openvla-7b` checkpoints).
PROMPT = "In: What action should the robot take to {instruction}?\nOut:"
# LoRA on every projection of the language model (the study's rank 32 / alpha 16; target names are Llama's).
DEFAULT_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_LORA_SCOPE = "language_model"
VALUE_HEAD_SIZES = (512, 128)  # RL4VLA's value head: hidden -> 512 -> 128 -> 1 with GELU
GRIPPER_CONVENTIONS = ("auto", "signed", "zero_one")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
LORA_DIR = "lora"
VALUE_HEAD_FILE = "value_head.safetensors"
STATISTICS_FILE = "dataset_statistics.json"


class CheckpointError(FileNotFoundError):
    """A checkpoint folder is missing, holds no model, or is not the kind the loader expected."""


def _require_hf() -> Any:
    try:
        import transformers
    except ImportError as exc:  # the env plugin installs without the model stack
        raise ImportError("the OpenVLA adapter needs transformers, peft and safetensors: pip install -e .[train] "
                          "(or .[openvla] for OpenVLA's own checkpoints)") from exc
    return transformers


def _model_class(checkpoint: Path) -> Any:
    """AutoModelForVision2Seq where this transformers has it (OpenVLA's checkpoints register there), else
    AutoModelForImageTextToText (transformers 5 removed the former)."""
    transformers = _require_hf()
    cls = getattr(transformers, "AutoModelForVision2Seq", None)
    if cls is not None:
        return cls
    auto_map = json.loads((checkpoint / "config.json").read_text()).get("auto_map", {})
    if "AutoModelForVision2Seq" in auto_map and "AutoModelForImageTextToText" not in auto_map:
        raise CheckpointError(
            f"{checkpoint} brings its own model code for AutoModelForVision2Seq, which transformers "
            f"{transformers.__version__} no longer has; install OpenVLA's stack with pip install -e .[openvla]")
    return transformers.AutoModelForImageTextToText


def check_checkpoint(path: str | os.PathLike) -> Path:
    """The folder of a Hugging Face checkpoint with a model in it. Raises CheckpointError naming what is missing."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise CheckpointError(f"checkpoint folder {p} does not exist; pass the folder holding the model's "
                              f"config.json and weights")
    if not (p / "config.json").is_file():
        raise CheckpointError(f"{p} has no config.json: it is not a Hugging Face checkpoint folder")
    if not any((p / f).is_file() for f in WEIGHT_FILES) and not any(p.glob("*.safetensors")):
        raise CheckpointError(f"{p} has a config.json but no model weights (expected one of {list(WEIGHT_FILES)}); "
                              f"point at the folder the checkpoint was downloaded or saved to")
    return p.resolve()


class ValueHead(nn.Module):
    """hidden (B, H) -> value (B,): Linear(H, 512), GELU, Linear(512, 128), GELU, Linear(128, 1) (RL4VLA's head).

    Kept in float32 whatever the backbone's dtype; the input is cast to it.
    """

    def __init__(self, in_features: int, sizes: Sequence[int] = VALUE_HEAD_SIZES):
        super().__init__()
        dims = [int(in_features), *map(int, sizes)]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.GELU()]
        layers.append(nn.Linear(dims[-1], 1))
        self.net = nn.Sequential(*layers)
        self.in_features = int(in_features)
        self.sizes = tuple(int(s) for s in sizes)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden.float()).squeeze(-1)


class _DecoderTap:
    """While active, fills the decoder's position ids from the attention mask it is given (cumulative count of real
    tokens, so left padding does not shift positions; OpenVLA's own forward never passes position ids) and keeps
    the mask and the last hidden state of its latest call.

    The mask is the one the decoder sees, i.e. after a model inserts its image patches (OpenVLA adds 256 after
    <BOS>), which is what the cached decoding steps must extend.
    """

    def __init__(self, decoder: nn.Module):
        self.decoder = decoder
        self.mask: torch.Tensor | None = None
        self.hidden: torch.Tensor | None = None
        self._handles: list[Any] = []

    def __enter__(self) -> "_DecoderTap":
        self._handles = [self.decoder.register_forward_pre_hook(self._pre, with_kwargs=True),
                         self.decoder.register_forward_hook(self._post, with_kwargs=True)]
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def _pre(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        mask = kwargs.get("attention_mask")
        if not isinstance(mask, torch.Tensor) or mask.dim() != 2:
            raise RuntimeError(f"{type(module).__name__} was called without a 2-D attention mask (got "
                               f"{type(mask).__name__}); the adapter needs one to left-pad batches")
        self.mask = mask
        if kwargs.get("position_ids") is None:
            x = kwargs.get("inputs_embeds")
            if x is None:
                x = kwargs.get("input_ids", args[0] if args else None)
            n = x.shape[1]
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp_(min=0)[:, -n:]
        return args, kwargs

    def _post(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        self.hidden = output[0] if isinstance(output, (tuple, list)) else output.last_hidden_state


def _cache_of(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else getattr(out, "past_key_values", None)


def _center_crop(images: torch.Tensor, area: float) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> the central crop covering `area` of the frame, resized back to (H, W) (bilinear).
    OpenVLA evaluates models trained with random-resized-crop augmentation this way (its `center_crop`, area 0.9).
    """
    b, h, w, _ = images.shape
    s = math.sqrt(area)
    ch, cw = max(1, round(h * s)), max(1, round(w * s))
    top, left = (h - ch) // 2, (w - cw) // 2
    x = images[:, top:top + ch, left:left + cw].permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


class OpenVLAAdapter(LearnablePolicy):
    """An OpenVLA-style checkpoint behind the policy protocol, with LoRA and a value head for RL.

    Args:
        checkpoint: folder of a Hugging Face checkpoint (config.json, weights, processor files), loaded with
            AutoModelForVision2Seq (AutoModelForImageTextToText on transformers 5) and AutoProcessor,
            `trust_remote_code=True`, `local_files_only=True`.
        unnorm_key: which dataset's action statistics to use (e.g. "bridge_orig"); None: the only one there is.
        statistics: a vla-ood dataset (its dataset.json or folder), a `dataset_statistics.json`, or an
            ActionNormalizer; None: the checkpoint's `dataset_statistics.json` and its config's `norm_stats`.
        gripper: the gripper convention of the model's 7th action dimension. "signed": +1 open / -1 close, this
            package's (checkpoints fine-tuned on its demos or their RLDS export); "zero_one": 1 open / 0 closed,
            OpenVLA's Bridge checkpoints (converted to +1 when > 0.5, else -1, as SimplerEnv does); "auto" (default):
            "signed" when the statistics' gripper minimum is below 0, else "zero_one".
        device: "cuda" when available, else "cpu". dtype: bfloat16 on CUDA, float32 on CPU.
        lora_rank, lora_alpha, lora_dropout: LoRA settings (study: 32, 16; dropout 0 keeps `act` and `evaluate`
            equal). lora_targets: module names that get LoRA; lora_scope: a module-path component they must lie
            under ("language_model": not the vision tower, whose attention uses the same names); None: anywhere.
        temperature: sampling temperature of `act` and `evaluate` (study: 1.0 in training rollouts, 0.6 in eval).
        center_crop: area fraction of a central crop applied before the processor (0.9 for models trained with
            random-resized crops); None: off.
        separator_ids: token ids between the prompt and the first action token; None: derived from the tokenizer.
        action_vocab_size: the vocabulary the action ids count back from; None: the tokenizer's base vocabulary
            (32000 for OpenVLA, whose added <PAD> is not counted).
        attn_implementation: passed to from_pretrained (None: the model's default).
        seed: seeds the sampling generator (same seed and inputs -> same tokens).

    Raises CheckpointError (folder without a model), StatisticsError (no statistics, or none under unnorm_key),
    ValueError (bad options).
    """

    def __init__(self, checkpoint: str | os.PathLike, *, unnorm_key: str | None = None,
                 statistics: str | os.PathLike | ActionNormalizer | None = None, gripper: str = "auto",
                 device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                 lora_rank: int = 32, lora_alpha: float = 16, lora_dropout: float = 0.0,
                 lora_targets: Sequence[str] = DEFAULT_LORA_TARGETS, lora_scope: str | None = DEFAULT_LORA_SCOPE,
                 temperature: float = 1.0, center_crop: float | None = None,
                 separator_ids: Sequence[int] | None = None, action_vocab_size: int | None = None,
                 attn_implementation: str | None = None, seed: int | None = None,
                 _lora_dir: str | os.PathLike | None = None):
        super().__init__()
        if gripper not in GRIPPER_CONVENTIONS:
            raise ValueError(f"gripper must be one of {GRIPPER_CONVENTIONS}, got {gripper!r}")
        if center_crop is not None and not 0.0 < center_crop <= 1.0:
            raise ValueError(f"center_crop is an area fraction in (0, 1], got {center_crop}")
        self._set_temperature(temperature)
        transformers = _require_hf()
        ckpt = check_checkpoint(checkpoint)
        self.checkpoint = ckpt
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = dtype or (torch.bfloat16 if self.device.type == "cuda" else torch.float32)
        self.center_crop = center_crop
        self.name = f"openvla-adapter:{ckpt.name}"

        # --- processor and model (the checkpoint's own code where it brings some)
        self.processor = transformers.AutoProcessor.from_pretrained(str(ckpt), trust_remote_code=True,
                                                                    local_files_only=True)
        self.text_tokenizer = getattr(self.processor, "tokenizer", None)
        if self.text_tokenizer is None:
            raise CheckpointError(f"the processor of {ckpt} ({type(self.processor).__name__}) has no tokenizer")
        from packaging.version import Version

        dtype_kw = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
        load_kw: dict[str, Any] = {dtype_kw: self.dtype, "trust_remote_code": True, "local_files_only": True}
        if attn_implementation is not None:
            load_kw["attn_implementation"] = attn_implementation
        if self.device.type == "cuda":
            load_kw["device_map"] = {"": str(self.device)}
        base = _model_class(ckpt).from_pretrained(str(ckpt), **load_kw).to(self.device)
        base.eval()

        # --- LoRA (new, or the adapter folder's)
        import peft

        if _lora_dir is not None:
            self.model = peft.PeftModel.from_pretrained(base, str(_lora_dir), is_trainable=True)
        else:
            targets = [str(t) for t in lora_targets]
            if not targets:
                raise ValueError("lora_targets is empty: name the modules that get LoRA (e.g. q_proj, v_proj)")
            names = "|".join(re.escape(t) for t in targets)
            pattern = (rf"(.*\.)?{re.escape(lora_scope)}\..*\.({names})" if lora_scope else rf"(.*\.)?({names})")
            cfg = peft.LoraConfig(r=int(lora_rank), lora_alpha=lora_alpha, lora_dropout=float(lora_dropout),
                                  target_modules=pattern, bias="none")
            try:
                self.model = peft.get_peft_model(base, cfg)
            except ValueError as exc:
                raise ValueError(f"LoRA found no module named {targets} under {lora_scope!r} in {ckpt}: {exc}; "
                                 f"set lora_targets / lora_scope for this model") from None
        self.model.eval()
        self.hf = self.model.get_base_model()  # the same modules, LoRA layers injected in place
        self.decoder = self.hf.get_decoder()
        self.lm_head = self.hf.get_output_embeddings()
        self._cache_kw = "cache" if "cache" in inspect.signature(self.decoder.forward).parameters \
            else "past_key_values"
        top_params = inspect.signature(self.hf.forward).parameters
        self._keep_kw = "logits_to_keep" if "logits_to_keep" in top_params else None

        # --- value head on the last-layer hidden state
        hidden = getattr(self.lm_head, "in_features", None)
        if hidden is None:
            raise CheckpointError(f"cannot read the hidden size of {ckpt}'s output layer "
                                  f"({type(self.lm_head).__name__})")
        self.value_head = ValueHead(hidden).to(self.device)

        # --- action ids, statistics, gripper, prompt separator
        vocab = int(action_vocab_size or getattr(self.text_tokenizer, "vocab_size", 0) or 0)
        width = int(self.lm_head.out_features)
        if vocab < N_BINS or vocab > width:
            raise CheckpointError(f"action vocabulary size {vocab} does not fit the model's {width} logits; pass "
                                  f"action_vocab_size= (OpenVLA: 32000)")
        self.normalizer, self.unnorm_key, self.statistics_source = self._load_statistics(statistics, unnorm_key)
        self.action_tokenizer = ActionTokenizer(self.normalizer, vocab_size=vocab)
        self.id_lo, self.id_hi = self.action_tokenizer.action_id_range()
        self.gripper = self._resolve_gripper(gripper)
        self.image_token = self._image_placeholder()
        self.separator_ids = ([int(i) for i in separator_ids] if separator_ids is not None
                              else self._derive_separator())
        pad = self.text_tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.text_tokenizer.eos_token_id or 0))
        self.lora_settings = {"rank": int(self.model.peft_config["default"].r),
                              "alpha": float(self.model.peft_config["default"].lora_alpha),
                              "dropout": float(self.model.peft_config["default"].lora_dropout),
                              "target_modules": self.model.peft_config["default"].target_modules}
        self.seed = seed
        self.generator: torch.Generator | None = None
        if seed is not None:
            self.set_seed(seed)

    # ------------------------------------------------------------------ set-up helpers
    def _set_temperature(self, t: float) -> None:
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be a positive number, got {t!r} (use greedy=True for argmax)")
        self.temperature = float(t)

    def set_seed(self, seed: int) -> None:
        """Reseed the sampling generator (on the model's device)."""
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        self.seed = int(seed)

    def _load_statistics(self, statistics: Any, unnorm_key: str | None) -> tuple[ActionNormalizer, str, str]:
        if isinstance(statistics, ActionNormalizer):
            return statistics, unnorm_key or "vla_ood", "given ActionNormalizer"
        if statistics is not None:
            path = Path(statistics)
            if path.is_dir():
                found = [path / f for f in ("dataset.json", STATISTICS_FILE) if (path / f).is_file()]
                if not found:
                    raise StatisticsError(f"{path} holds neither dataset.json nor {STATISTICS_FILE}")
                path = found[0]
            try:
                data = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise StatisticsError(f"cannot read action statistics from {path}: {exc}") from None
            if isinstance(data, dict) and "statistics" in data and "seeds" in data:  # a vla-ood dataset.json
                data = data["statistics"]
            key = select_unnorm_key(data, unnorm_key, str(path))
            return ActionNormalizer.from_statistics(data, key, str(path)), key, str(path)
        # The checkpoint's own: OpenVLA keeps `norm_stats` in config.json, fine-tuned ones also write the file.
        merged: dict = {}
        sources = []
        norm_stats = getattr(self.hf.config, "norm_stats", None)
        if isinstance(norm_stats, dict) and norm_stats:
            merged.update(norm_stats)
            sources.append(f"{self.checkpoint / 'config.json'} (norm_stats)")
        stats_file = self.checkpoint / STATISTICS_FILE
        if stats_file.is_file():
            try:
                merged.update(json.loads(stats_file.read_text()))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise StatisticsError(f"cannot read action statistics from {stats_file}: {exc}") from None
            sources.append(str(stats_file))
        if not merged:
            raise StatisticsError(f"{self.checkpoint} has no action statistics (no {STATISTICS_FILE}, no norm_stats "
                                  f"in config.json); pass statistics= a vla-ood dataset.json or a "
                                  f"{STATISTICS_FILE}")
        source = " + ".join(sources)
        key = select_unnorm_key(merged, unnorm_key, source)
        return ActionNormalizer.from_statistics(merged, key, source), key, source

    def _resolve_gripper(self, gripper: str) -> str:
        if gripper != "auto":
            return gripper
        return "signed" if float(self.normalizer.min[spec.GRIPPER_INDEX]) < 0.0 else "zero_one"

    def _image_placeholder(self) -> str:
        """Models that splice image features in at a placeholder token (Llava: the processor's `image_token`, or
        the config's image token id on older transformers) need it in the text; OpenVLA inserts its patches after
        <BOS> by itself and has none."""
        tok = getattr(self.processor, "image_token", None)
        if not isinstance(tok, str) or not tok:
            cfg = self.hf.config
            idx = getattr(cfg, "image_token_id", None)
            idx = idx if idx is not None else getattr(cfg, "image_token_index", None)
            tok = self.text_tokenizer.convert_ids_to_tokens(idx) if isinstance(idx, int) and idx >= 0 else None
        if isinstance(tok, str) and tok and tok in self.text_tokenizer.get_vocab():
            return tok
        return ""

    def _derive_separator(self) -> list[int]:
        """The ids the tokenizer puts between the prompt and an action token when it reads them as one text, as in
        OpenVLA's training ("...Out: " + action characters; Llama-2 gives "▁", id 29871, which `predict_action`
        appends). Falls back to the word-boundary piece "▁" where the vocabulary has one.
        """
        tok = self.text_tokenizer
        prompt = PROMPT.format(instruction="pick up the object")
        action = tok.convert_ids_to_tokens(self.id_lo)
        base = tok(prompt, add_special_tokens=False)["input_ids"]
        if isinstance(action, str):
            full = tok(prompt + " " + tok.convert_tokens_to_string([action]), add_special_tokens=False)["input_ids"]
            if full[:len(base)] == base and len(full) > len(base) and full[-1] == self.id_lo:
                return [int(i) for i in full[len(base):-1]]
        piece = tok.get_vocab().get("\u2581")
        if piece is not None:
            return [int(piece)]
        raise CheckpointError("cannot tell which token separates the prompt from the first action token with this "
                              "tokenizer; pass separator_ids= (OpenVLA / Llama-2: [29871])")

    # ------------------------------------------------------------------ conventions at the edge
    def tokens_to_actions(self, tokens: Any) -> np.ndarray:
        """(..., 7) action-token ids -> (..., 7) float32 env-unit actions (bin centres, de-normalised, gripper in this
        package's +1 open / -1 close)."""
        t = tokens.detach().cpu().numpy() if isinstance(tokens, torch.Tensor) else np.asarray(tokens)
        a = np.asarray(self.action_tokenizer.decode(t), dtype=np.float32).copy()
        if self.gripper == "zero_one":
            a[..., spec.GRIPPER_INDEX] = np.where(a[..., spec.GRIPPER_INDEX] > 0.5, spec.GRIPPER_OPEN,
                                                  spec.GRIPPER_CLOSE)
        return a

    def actions_to_tokens(self, actions: Any) -> torch.Tensor:
        """(..., 7) env-unit actions -> (..., 7) int64 action-token ids in the model's convention (SFT targets)."""
        a = actions.detach().cpu().numpy() if isinstance(actions, torch.Tensor) else np.asarray(actions)
        a = a.astype(np.float64).copy()
        if a.shape[-1:] != (spec.ACTION_DIM,):
            raise ValueError(f"actions must have a last axis of {spec.ACTION_DIM}, got shape {a.shape}")
        if self.gripper == "zero_one":
            a[..., spec.GRIPPER_INDEX] = (a[..., spec.GRIPPER_INDEX] > 0).astype(np.float64)
        return torch.as_tensor(self.action_tokenizer.encode(a), dtype=torch.long)

    def prompt(self, instruction: str) -> str:
        """The study's prompt for one instruction (lowercased, as OpenVLA does)."""
        return PROMPT.format(instruction=instruction.lower())

    # ------------------------------------------------------------------ batching
    def _encode(self, images: Any, instructions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Model inputs: input_ids and attention_mask (B, L), every row ending with the separator in the last column,
        plus the processor's image tensors in the model's dtype. Rows are padded on the left; for models without an
        image placeholder in the text (OpenVLA), after their first token (`_first_token_first`)."""
        from PIL import Image

        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))
        x = x.detach().cpu()
        if self.center_crop is not None and self.center_crop < 1.0:
            x = _center_crop(x, self.center_crop)
        pil = [Image.fromarray(a) for a in x.numpy()]  # the processors take PIL images (OpenVLA's requires them)
        texts = [self.image_token + self.prompt(s) for s in instructions]
        enc = self.processor(text=texts, images=pil, padding=True, return_tensors="pt")
        ids = torch.as_tensor(enc["input_ids"], dtype=torch.long)
        mask = torch.as_tensor(enc["attention_mask"], dtype=torch.long)
        sep = torch.tensor(self.separator_ids, dtype=torch.long)
        k = len(sep)
        ids, mask = self._right_align(ids, mask)
        if k:
            # Append the separator where a row does not already end with it.
            has = (ids[:, -k:] == sep).all(1) & (mask[:, -k:] == 1).all(1)
            ids = torch.cat([ids, sep.expand(len(ids), k)], 1)
            mask = torch.cat([mask, (~has).long()[:, None].expand(-1, k)], 1)
            ids, mask = self._right_align(ids, mask)
        if not self.image_token:
            ids, mask = self._first_token_first(ids, mask)
        out = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}
        for key, v in enc.items():
            if key in out or not isinstance(v, torch.Tensor):
                continue
            out[key] = v.to(self.device, self.dtype if v.is_floating_point() else v.dtype)
        return out

    def _right_align(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Move every row's real tokens to the right end (padding on the left), dropping all-padding columns."""
        if bool((mask.sum(1) == 0).any()):
            raise PolicyInputError("the processor returned an empty prompt for a row")
        order = torch.argsort(mask, dim=1, stable=True)  # padding (0) first, real tokens (1) in their order after
        ids, mask = ids.gather(1, order), mask.gather(1, order)
        ids = torch.where(mask.bool(), ids, torch.full_like(ids, self.pad_id))
        keep = int(mask.sum(1).max())
        return ids[:, -keep:], mask[:, -keep:]

    @staticmethod
    def _first_token_first(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-aligned rows -> the first real token (<BOS>) in column 0, then the padding, then the rest.

        Every row still ends at the last column (the position that predicts the first action token), and a model
        that splices its image features in after the first token (OpenVLA puts 256 patches after <BOS>) sees each
        row exactly as it would alone: with position ids counted over real tokens (`_DecoderTap`) the padding
        changes no position.
        """
        pads = (mask == 0).sum(1, keepdim=True)  # row i: its first real token sits at column pads[i]
        cols = torch.arange(ids.shape[1]).expand_as(ids)
        order = torch.where(cols == 0, pads, torch.where(cols <= pads, cols - 1, cols))
        return ids.gather(1, order), mask.gather(1, order)

    def _forward(self, inputs: dict[str, torch.Tensor], keep: int, use_cache: bool) -> tuple[torch.Tensor, Any,
                                                                                             torch.Tensor]:
        """Run the model; returns (hidden of the last `keep` positions (B, keep, H), the cache, the decoder's
        attention mask)."""
        kw = dict(inputs, use_cache=use_cache)
        if self._keep_kw:
            kw[self._keep_kw] = 1  # the adapter applies the output layer itself, to the positions it needs
        with _DecoderTap(self.decoder) as tap:
            out = self.hf(**kw)
        if tap.hidden is None or tap.mask is None:
            raise RuntimeError(f"{type(self.hf).__name__} did not run its decoder {type(self.decoder).__name__}")
        return tap.hidden[:, -keep:], (_cache_of(out) if use_cache else None), tap.mask

    def _decode_step(self, token: torch.Tensor, mask: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        """Feed one token (B,) through the decoder over the cache; returns (hidden (B, H), cache)."""
        with _DecoderTap(self.decoder) as tap:
            out = self.decoder(input_ids=token[:, None], attention_mask=mask, use_cache=True,
                               **{self._cache_kw: cache})
        return tap.hidden[:, -1], _cache_of(out)

    def _action_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., H) -> (..., 256) float32 logits of the action ids, selected by id value."""
        return self.lm_head(hidden)[..., self.id_lo:self.id_hi].float()

    # ------------------------------------------------------------------ the protocol
    def act(self, images: Any, instructions: Sequence[str], proprio: Any = None, *,
            greedy: bool = False) -> PolicyOutput:
        """Choose 7 action tokens per row (argmax with greedy=True, else sampled at self.temperature) from the 256
        action ids only, one at a time over a KV cache.

        Returns actions (B, 7) float32 numpy (env units), tokens (B, 7) int64, log_prob (B,) float32 (sum over
        the 7 dimensions of the restricted log-softmax at self.temperature, greedy or not), entropy (B,) float32,
        value (B,) float32; tensors on the CPU.
        """
        b = check_inputs(images, instructions, proprio)
        t = self.temperature
        with torch.no_grad():
            inputs = self._encode(images, instructions)
            h, cache, mask = self._forward(inputs, keep=1, use_cache=True)
            value = self.value_head(h[:, -1])
            h = h[:, -1]
            tokens, logps, ents = [], [], []
            for d in range(spec.ACTION_DIM):
                logp = torch.log_softmax(self._action_logits(h) / t, dim=-1)
                if greedy:
                    idx = logp.argmax(-1)
                else:
                    idx = torch.multinomial(logp.exp(), 1, generator=self.generator).squeeze(-1)
                tokens.append(idx + self.id_lo)
                logps.append(logp.gather(-1, idx[:, None]).squeeze(-1))
                ents.append(-(logp.exp() * logp).sum(-1))
                if d + 1 < spec.ACTION_DIM:
                    mask = torch.cat([mask, mask.new_ones(b, 1)], 1)
                    h, cache = self._decode_step(tokens[-1], mask, cache)
        tok = torch.stack(tokens, 1).cpu()
        return PolicyOutput(actions=self.tokens_to_actions(tok), tokens=tok,
                            log_prob=torch.stack(logps, 1).sum(1).cpu(), entropy=torch.stack(ents, 1).mean(1).cpu(),
                            value=value.float().cpu())

    def evaluate(self, images: Any, instructions: Sequence[str], tokens: torch.Tensor, proprio: Any = None, *,
                 temperature: float | None = None) -> TokenScores:
        """Score given action tokens (B, 7) in one teacher-forced forward pass, with gradients.

        Returns log_prob (B,) (sum of the restricted log-softmax at the temperature), entropy (B,) (mean
        per-dimension entropy) and value (B,), float32 on the model's device. Raises PolicyInputError for tokens
        of the wrong shape or outside the action ids.
        """
        b = check_inputs(images, instructions, proprio)
        t = self.temperature if temperature is None else float(temperature)
        if not (math.isfinite(t) and t > 0):
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        tok = torch.as_tensor(tokens).to(self.device)
        if tuple(tok.shape) != (b, spec.ACTION_DIM) or tok.is_floating_point():
            raise PolicyInputError(f"tokens must be integer ids of shape ({b}, {spec.ACTION_DIM}), got "
                                   f"{tuple(tok.shape)} {tok.dtype}")
        tok = tok.long()
        if bool(((tok < self.id_lo) | (tok >= self.id_hi)).any()):
            raise PolicyInputError(f"tokens must be action ids in [{self.id_lo}, {self.id_hi - 1}]; got "
                                   f"{int(tok.min())}..{int(tok.max())}")
        inputs = self._encode(images, instructions)
        inputs["input_ids"] = torch.cat([inputs["input_ids"], tok], 1)
        inputs["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(tok)], 1)
        # Positions -8..-2 predict the 7 tokens; -8 is the one that predicts the first (the value head's input).
        h, _, _ = self._forward(inputs, keep=spec.ACTION_DIM + 1, use_cache=False)
        logp = torch.log_softmax(self._action_logits(h[:, :-1]) / t, dim=-1)
        chosen = logp.gather(-1, (tok - self.id_lo)[..., None]).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        return TokenScores(log_prob=chosen.sum(1), entropy=entropy.mean(1), value=self.value_head(h[:, 0]))

    def value(self, images: Any, instructions: Sequence[str], proprio: Any = None) -> torch.Tensor:
        """(B,) value estimates from one prompt forward pass, no gradients, on the CPU."""
        check_inputs(images, instructions, proprio)
        with torch.no_grad():
            h, _, _ = self._forward(self._encode(images, instructions), keep=1, use_cache=False)
            return self.value_head(h[:, -1]).float().cpu()

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """{"policy": the LoRA parameters, "value_head": the value head's}; nothing else trains."""
        return {"policy": [p for p in self.model.parameters() if p.requires_grad],
                "value_head": list(self.value_head.parameters())}

    def train(self, mode: bool = True) -> "OpenVLAAdapter":
        """Sets the flag, but keeps the backbone in eval mode: dropout would make `evaluate` disagree with the
        log-probabilities `act` reported, and OpenVLA's forward turns its KV cache off in training mode."""
        super().train(mode)
        self.model.eval()
        return self

    # ------------------------------------------------------------------ checkpoints
    def config_dict(self) -> dict:
        return {"policy_type": POLICY_TYPE, "format_version": FORMAT_VERSION, "base_model": str(self.checkpoint),
                "unnorm_key": self.unnorm_key, "statistics_source": self.statistics_source,
                "gripper": self.gripper, "temperature": self.temperature, "center_crop": self.center_crop,
                "separator_ids": self.separator_ids, "action_vocab_size": self.action_tokenizer.vocab_size,
                "lora": self.lora_settings, "lora_dir": LORA_DIR,
                "value_head": {"in_features": self.value_head.in_features, "sizes": list(self.value_head.sizes),
                               "file": VALUE_HEAD_FILE},
                "statistics_file": STATISTICS_FILE, "seed": self.seed}

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write the folder `path`: config.json ("policy_type": "openvla_adapter", the base checkpoint's path),
        lora/ (peft's adapter files), value_head.safetensors and dataset_statistics.json. The base checkpoint is
        referenced, not copied. Written next to the target and renamed into place (replacing an older save)."""
        from safetensors.torch import save_file

        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        self.model.save_pretrained(str(tmp / LORA_DIR))
        save_file({k: v.detach().cpu().contiguous() for k, v in self.value_head.state_dict().items()},
                  str(tmp / VALUE_HEAD_FILE))
        (tmp / STATISTICS_FILE).write_text(json.dumps({self.unnorm_key: {"action": self.normalizer.to_dict()}},
                                                      indent=2))
        (tmp / "config.json").write_text(json.dumps(self.config_dict(), indent=2))
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            import shutil

            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, base_model: str | os.PathLike | None = None,
                        **kwargs: Any) -> "OpenVLAAdapter":
        """Load a folder written by `save_pretrained` (base_model: where the base checkpoint is now, if it moved;
        kwargs such as device, dtype, temperature override the saved settings). A plain Hugging Face checkpoint
        folder (no "policy_type") gives a fresh adapter on it, as `OpenVLAAdapter(path, **kwargs)`.

        Raises CheckpointError naming the missing file or a foreign policy_type.
        """
        from safetensors.torch import load_file

        p = Path(path).expanduser()
        cfg_file = p / "config.json"
        if not cfg_file.is_file():
            raise CheckpointError(f"{p} has no config.json: not an adapter folder or a Hugging Face checkpoint")
        cfg = json.loads(cfg_file.read_text())
        if "policy_type" not in cfg:
            return cls(p, **kwargs)
        if cfg["policy_type"] != POLICY_TYPE:
            raise CheckpointError(f"{p} holds a {cfg['policy_type']!r} policy, not an {POLICY_TYPE!r}; load it with "
                                  f"vla_ood_envs.policies.load_policy")
        for f in (cfg.get("lora_dir", LORA_DIR), cfg["value_head"]["file"], cfg["statistics_file"]):
            if not (p / f).exists():
                raise CheckpointError(f"adapter folder {p} lacks {f}; it was not written by save_pretrained or is "
                                      f"incomplete")
        base = Path(base_model) if base_model is not None else Path(cfg["base_model"])
        if not base.is_dir():
            raise CheckpointError(f"the base checkpoint {base} of adapter {p} is not there; pass base_model= where "
                                  f"it is now")
        opts: dict[str, Any] = dict(unnorm_key=cfg["unnorm_key"], statistics=p / cfg["statistics_file"],
                                    gripper=cfg["gripper"], temperature=cfg["temperature"],
                                    center_crop=cfg.get("center_crop"), separator_ids=cfg["separator_ids"],
                                    action_vocab_size=cfg["action_vocab_size"], seed=cfg.get("seed"))
        opts.update(kwargs)
        policy = cls(base, _lora_dir=p / cfg.get("lora_dir", LORA_DIR), **opts)
        vh = cfg["value_head"]
        if vh["in_features"] != policy.value_head.in_features or tuple(vh["sizes"]) != policy.value_head.sizes:
            raise CheckpointError(f"value head in {p} ({vh['in_features']} -> {vh['sizes']}) does not fit the base "
                                  f"model's hidden size {policy.value_head.in_features}")
        policy.value_head.load_state_dict(load_file(str(p / vh["file"])))
        policy.value_head.to(policy.device)
        return policy
