"""The OpenVLA adapter on a tiny Hugging Face vision-language model built here, offline: transformers' own
LlavaForConditionalGeneration (tiny CLIP vision tower, tiny Llama text model) with a Llama-style tokenizer trained on
a few sentences and laid out like OpenVLA's (32000 base ids, the last 256 the action tokens, an added <PAD>, logits
padded to 32064), saved to disk and loaded through the same Auto classes and adapter code a real checkpoint goes
through.
"""

from __future__ import annotations

import inspect
import json
import math
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("peft")
# peft asks transformers 5 a deprecated question; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")

from vla_ood_envs import spec  # noqa: E402
from vla_ood_envs.policies.base import PolicyInputError  # noqa: E402
from vla_ood_envs.policies.openvla import DEFAULT_LORA_TARGETS, CheckpointError, OpenVLAAdapter  # noqa: E402
from vla_ood_envs.policies.tokenizer import ActionNormalizer, StatisticsError  # noqa: E402

VOCAB = 32000  # Llama-2's, so the action ids are OpenVLA's 31744..31999
LOGITS = 32064  # OpenVLA pads its output layer to a multiple of 64
ACTION_CHAR0 = 0x4E00  # the action tokens are single CJK characters, as the rare last ids of Llama-2's vocabulary are
KEY = "vla_ood_test"
CORPUS = [
    "In: What action should the robot take to pick up the red cube and put it on the plate?\nOut:",
    "put the carrot on the plate", "pick up the orange ball", "move the green can to the left of the bowl",
    "place the yellow duck in the basket", "What action should the robot take to open the drawer?",
]
INSTRUCTIONS = ["Pick up the red cube and put it on the plate", "grab it"]


def _statistics(gripper_min: float) -> dict:
    q01 = [-0.05, -0.04, -0.03, -0.2, -0.1, -0.3, gripper_min]
    q99 = [0.05, 0.06, 0.03, 0.2, 0.1, 0.3, 1.0]
    return {"q01": q01, "q99": q99, "min": [v * 1.2 for v in q01[:6]] + [gripper_min],
            "max": [v * 1.2 for v in q99[:6]] + [1.0], "mask": list(spec.NORMALIZE_MASK)}


def _build_tokenizer(llama_class: bool = False):
    """A BPE trained on CORPUS with Llama's conventions (metaspace "▁", <s> first), re-laid to VOCAB ids.
    llama_class: wrap it as LlamaTokenizerFast (older LlavaProcessors insist on it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaTokenizerFast, PreTrainedTokenizerFast

    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789?:.,'-\n\u2581")
    trained = Tokenizer(models.BPE(unk_token="<unk>"))
    trained.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first")
    trained.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>"],
                                                            initial_alphabet=alphabet, show_progress=False))
    model = json.loads(trained.to_str())["model"]
    vocab = dict(model["vocab"])
    n = len(vocab)
    vocab.update({f"<unused{i}>": i for i in range(n, VOCAB - 256)})  # unreachable fillers up to the action ids
    vocab.update({chr(ACTION_CHAR0 + i): VOCAB - 256 + i for i in range(256)})
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tok.pre_tokenizer = trained.pre_tokenizer
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="first")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    cls = LlamaTokenizerFast if llama_class else PreTrainedTokenizerFast
    hf = cls(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    hf.add_special_tokens({"pad_token": "<PAD>", "additional_special_tokens": ["<image>"]})  # ids 32000, 32001
    return hf


def build_tiny_vla(path, *, statistics: dict | None = None) -> None:
    """Write a tiny Llava checkpoint (model, tokenizer, CLIP image processor, processor) to `path`."""
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    import transformers
    from packaging.version import Version

    tok = _build_tokenizer(llama_class=Version(transformers.__version__) < Version("4.47"))
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=32)
    text = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=LOGITS, max_position_embeddings=256,
                       pad_token_id=tok.pad_token_id, bos_token_id=1, eos_token_id=2)
    image_id = tok.convert_tokens_to_ids("<image>")
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_id=image_id, image_token_index=image_id,
                      vision_feature_select_strategy="default", vision_feature_layer=-1, image_seq_length=16)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(cfg)
    with torch.no_grad():  # a sharper, varied action distribution than the 0.02-std initialisation gives
        model.get_output_embeddings().weight.mul_(40.0)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    extra = dict(patch_size=8, vision_feature_select_strategy="default", image_token="<image>",
                 num_additional_image_tokens=1)  # transformers >= 4.47 expands <image> in the processor
    accepted = inspect.signature(LlavaProcessor.__init__).parameters
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok,
                               **{k: v for k, v in extra.items() if k in accepted})
    model.save_pretrained(str(path))
    processor.save_pretrained(str(path))
    if statistics is not None:
        (path / "dataset_statistics.json").write_text(json.dumps(statistics))


# A checkpoint that brings its own code, laid out like OpenVLA's: no image placeholder in the text, the image patches
# spliced in after the first token (<BOS>), no position ids passed to the language model, statistics in config.json.
PRISMATIC_STYLE = '''
import torch
from torch import nn
from transformers import (AutoModelForCausalLM, BatchFeature, CLIPVisionConfig, CLIPVisionModel, LlamaConfig,
                          PretrainedConfig, PreTrainedModel, ProcessorMixin)


class TinyPrismaticProcessor(ProcessorMixin):
    attributes = ["image_processor", "tokenizer"]
    image_processor_class = "AutoImageProcessor"
    tokenizer_class = "AutoTokenizer"

    def __call__(self, text=None, images=None, padding=False, return_tensors="pt", **kwargs):
        pixel_values = self.image_processor(images, return_tensors=return_tensors)["pixel_values"]
        enc = self.tokenizer(text, padding=padding, return_tensors=return_tensors)
        return BatchFeature(data={**enc, "pixel_values": pixel_values})


class TinyPrismaticConfig(PretrainedConfig):
    model_type = "tiny_prismatic"

    def __init__(self, vision=None, text=None, **kwargs):
        self.vision = vision or {}
        self.text = text or {}
        super().__init__(**kwargs)


class TinyPrismaticForActionPrediction(PreTrainedModel):
    config_class = TinyPrismaticConfig

    def __init__(self, config):
        super().__init__(config)
        self.vision_backbone = CLIPVisionModel(CLIPVisionConfig(**config.vision))
        text = LlamaConfig(**config.text)
        self.projector = nn.Linear(config.vision["hidden_size"], text.hidden_size)
        self.language_model = AutoModelForCausalLM.from_config(text)
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self):
        return self.language_model.get_output_embeddings()

    def get_decoder(self):
        return self.language_model.get_decoder()

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, use_cache=None, **kwargs):
        assert pixel_values is not None and input_ids.shape[1] > 1, "multimodal prompts only, as OpenVLA for B > 1"
        emb = self.get_input_embeddings()(input_ids)
        patches = self.projector(self.vision_backbone(pixel_values=pixel_values).last_hidden_state[:, 1:])
        emb = torch.cat([emb[:, :1], patches.to(emb.dtype), emb[:, 1:]], 1)
        ones = attention_mask.new_ones(patches.shape[:2])
        mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], 1)
        use_cache = bool(use_cache) and not self.training
        return self.language_model(inputs_embeds=emb, attention_mask=mask, use_cache=use_cache)
'''


def build_prismatic_style(path) -> None:
    """Write a tiny checkpoint that brings its own model and processor code (loaded through trust_remote_code)."""
    import importlib.util

    from transformers import CLIPImageProcessor

    (path / "tiny_prismatic.py").write_text(PRISMATIC_STYLE)
    mod_spec = importlib.util.spec_from_file_location("tiny_prismatic_build", path / "tiny_prismatic.py")
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    tok = _build_tokenizer()
    cfg = mod.TinyPrismaticConfig(
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                    patch_size=8),
        text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, vocab_size=LOGITS, max_position_embeddings=256, pad_token_id=tok.pad_token_id),
        norm_stats={"bridge_orig": {"action": _statistics(0.0)}, "fractal": {"action": _statistics(0.0)}})
    cfg.auto_map = {"AutoConfig": "tiny_prismatic.TinyPrismaticConfig",
                    "AutoModelForVision2Seq": "tiny_prismatic.TinyPrismaticForActionPrediction",
                    "AutoModelForImageTextToText": "tiny_prismatic.TinyPrismaticForActionPrediction"}
    torch.manual_seed(1)
    model = mod.TinyPrismaticForActionPrediction(cfg)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(40.0)
    model.save_pretrained(str(path))
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    mod.TinyPrismaticProcessor(image_processor=image_processor, tokenizer=tok).save_pretrained(str(path))
    for name in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        cfg_file = path / name  # where AutoProcessor looks for the class (which of them exist varies by version)
        if not cfg_file.is_file():
            continue
        data = json.loads(cfg_file.read_text())
        data["auto_map"] = {**data.get("auto_map", {}), "AutoProcessor": "tiny_prismatic.TinyPrismaticProcessor"}
        data["processor_class"] = "TinyPrismaticProcessor"
        cfg_file.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_vla")
    build_tiny_vla(path, statistics={KEY: {"action": _statistics(-1.0)}})
    return path


@pytest.fixture(scope="module")
def policy(ckpt):
    import transformers
    from packaging.version import Version

    if Version(transformers.__version__) < Version("4.47"):
        # Its Llava expands <image> inside the model and cannot batch rows padded on the left (B = 1 works); the
        # prismatic-style tests cover OpenVLA's pinned stack.
        pytest.skip(f"the tiny Llava cannot batch on transformers {transformers.__version__}")
    p = OpenVLAAdapter(ckpt, device="cpu", seed=0)
    _perturb(p, seed=1)
    return p


@pytest.fixture(scope="module")
def prismatic(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_prismatic")
    build_prismatic_style(path)
    p = OpenVLAAdapter(path, device="cpu", unnorm_key="bridge_orig", seed=0)
    _perturb(p, seed=2)
    return p


def _perturb(p: OpenVLAAdapter, seed: int) -> None:
    """Give the LoRA and value-head weights non-trivial values (LoRA starts as a no-op)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for prm in p.parameter_groups()["policy"] + p.parameter_groups()["value_head"]:
            prm.add_(torch.randn(prm.shape, generator=g) * 0.05)


def _images(b: int, seed: int = 0, h: int = 40, w: int = 48) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (b, h, w, 3), dtype=np.uint8)


def test_act_returns_protocol_shapes_and_dtypes(policy):
    imgs = _images(2)
    for greedy in (True, False):
        out = policy.act(imgs, INSTRUCTIONS, greedy=greedy)
        assert out.actions.shape == (2, 7) and out.actions.dtype == np.float32
        assert out.tokens.shape == (2, 7) and out.tokens.dtype == torch.int64
        assert int(out.tokens.min()) >= VOCAB - 256 and int(out.tokens.max()) < VOCAB
        for v in (out.log_prob, out.entropy, out.value):
            assert v.shape == (2,) and v.dtype == torch.float32 and torch.isfinite(v).all()
        assert (out.log_prob <= 0).all()
        assert ((out.entropy >= 0) & (out.entropy <= math.log(256) + 1e-4)).all()
        np.testing.assert_array_equal(out.actions, policy.tokens_to_actions(out.tokens))
    # The prompt ends with the separator the tokenizer puts before an action token ("▁", Llama-2's 29871).
    assert policy.separator_ids == [policy.text_tokenizer.convert_tokens_to_ids("\u2581")]
    enc = policy._encode(imgs, INSTRUCTIONS)
    assert (enc["input_ids"][:, -1] == policy.separator_ids[0]).all()


def test_low_temperature_sampling_equals_greedy_and_seeds_repeat(policy):
    imgs = _images(2, seed=3)
    greedy = policy.act(imgs, INSTRUCTIONS, greedy=True).tokens
    t0 = policy.temperature
    try:
        policy.temperature = 1e-6
        assert torch.equal(policy.act(imgs, INSTRUCTIONS).tokens, greedy)
        policy.temperature = 5.0  # a flat distribution: seeded draws repeat, and differ from the argmax somewhere
        policy.set_seed(7)
        a = policy.act(imgs, INSTRUCTIONS).tokens
        policy.set_seed(7)
        assert torch.equal(policy.act(imgs, INSTRUCTIONS).tokens, a)
        assert not torch.equal(a, greedy)
    finally:
        policy.temperature = t0


def _independent_log_prob(policy, image, instruction, tokens, temperature):
    """The restricted log-probability of `tokens` for one unpadded row, from the model's raw logits."""
    from PIL import Image
    from transformers import LlavaProcessor

    tok = policy.text_tokenizer
    placeholder = "<image>" if isinstance(policy.processor, LlavaProcessor) else ""
    text = placeholder + f"In: What action should the robot take to {instruction.lower()}?\nOut:"
    enc = policy.processor(text=[text], images=[Image.fromarray(image)], return_tensors="pt")
    ids = torch.cat([enc["input_ids"], torch.tensor([[tok.convert_tokens_to_ids("\u2581")]]), tokens[None]], 1)
    with torch.no_grad():
        logits = policy.hf(input_ids=ids, attention_mask=torch.ones_like(ids),
                           pixel_values=enc["pixel_values"]).logits[0]
    assert logits.shape[-1] == LOGITS
    per_dim = logits[-8:-1, VOCAB - 256:VOCAB].float() / temperature  # sliced by id value, not "the last 256"
    return torch.log_softmax(per_dim, -1).gather(-1, (tokens - (VOCAB - 256))[:, None]).sum()


@pytest.mark.parametrize("model", ["policy", "prismatic"])
def test_evaluate_equals_act_and_the_raw_logits(model, request):
    policy = request.getfixturevalue(model)
    imgs = _images(2, seed=5)
    t0 = policy.temperature
    try:
        policy.temperature = 0.8
        out = policy.act(imgs, INSTRUCTIONS)
        scores = policy.evaluate(imgs, INSTRUCTIONS, out.tokens)
        torch.testing.assert_close(scores.log_prob.detach(), out.log_prob, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(scores.entropy.detach(), out.entropy, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(scores.value.detach(), out.value, atol=1e-5, rtol=1e-5)
        for i in range(2):
            ref = _independent_log_prob(policy, imgs[i], INSTRUCTIONS[i], out.tokens[i], 0.8)
            torch.testing.assert_close(scores.log_prob[i].detach(), ref, atol=1e-4, rtol=1e-4)
        # An explicit temperature rescores the same tokens differently.
        other = policy.evaluate(imgs, INSTRUCTIONS, out.tokens, temperature=2.0).log_prob.detach()
        assert not torch.allclose(other, out.log_prob, atol=1e-3)
    finally:
        policy.temperature = t0


@pytest.mark.parametrize("model", ["policy", "prismatic"])
def test_only_lora_and_value_head_train_and_the_value_loss_reaches_lora(model, request):
    policy = request.getfixturevalue(model)
    groups = policy.parameter_groups()
    trainable = {n for n, p in policy.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("value_head.") for n in trainable)
    assert sum(len(g) for g in groups.values()) == len(trainable)
    assert all(p.requires_grad for g in groups.values() for p in g)
    lora_names = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert lora_names and all("language_model" in n for n in lora_names)  # not the vision tower's q_proj
    assert {n.split(".")[-3] for n in lora_names} == {"lora_A", "lora_B"}  # ...q_proj.lora_A.default.weight
    assert {n.split(".")[-4] for n in lora_names} == set(DEFAULT_LORA_TARGETS)

    policy.zero_grad(set_to_none=True)
    imgs = _images(2, seed=9)
    tokens = policy.act(imgs, INSTRUCTIONS, greedy=True).tokens
    policy.evaluate(imgs, INSTRUCTIONS, tokens).value.sum().backward()  # the value loss alone
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in groups["policy"])
    assert all(p.grad is not None for p in groups["value_head"])
    frozen = [p for n, p in policy.named_parameters() if not p.requires_grad]
    assert all(p.grad is None for p in frozen)
    policy.zero_grad(set_to_none=True)


@pytest.mark.parametrize("model", ["policy", "prismatic"])
def test_left_padding_gives_each_row_what_it_gets_alone(model, request):
    policy = request.getfixturevalue(model)
    imgs = _images(2, seed=11)
    enc = policy._encode(imgs, INSTRUCTIONS)
    mask, ids = enc["attention_mask"], enc["input_ids"]
    # The short instruction is padded on the left; where the model splices its image patches in after <BOS>
    # (OpenVLA, the prismatic-style model) after its <BOS>. Both rows end in the last column, with the separator.
    assert mask[0].all() and (mask[1] == 0).any()
    if model == "prismatic":
        assert (ids[:, 0] == 1).all() and (mask[:, 0] == 1).all() and (mask[1, 1] == 0)
    else:
        assert mask[1, 0] == 0
    assert (ids[:, -1] == policy.separator_ids[0]).all() and (mask[:, -1] == 1).all()
    both = policy.act(imgs, INSTRUCTIONS, greedy=True)
    scores = policy.evaluate(imgs, INSTRUCTIONS, both.tokens)
    for i in range(2):
        alone = policy.act(imgs[i:i + 1], INSTRUCTIONS[i:i + 1], greedy=True)
        assert torch.equal(alone.tokens[0], both.tokens[i])
        torch.testing.assert_close(alone.log_prob[0], both.log_prob[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(alone.value[0], both.value[i], atol=1e-5, rtol=1e-5)
        s = policy.evaluate(imgs[i:i + 1], INSTRUCTIONS[i:i + 1], both.tokens[i:i + 1])
        torch.testing.assert_close(s.log_prob.detach()[0], scores.log_prob.detach()[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(s.value.detach()[0], scores.value.detach()[i], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", ["policy", "prismatic"])
def test_save_and_load_round_trip(model, request, tmp_path):
    policy = request.getfixturevalue(model)
    out_dir = tmp_path / "adapter"
    policy.save_pretrained(out_dir)
    cfg = json.loads((out_dir / "config.json").read_text())
    assert cfg["policy_type"] == "openvla_adapter" and cfg["base_model"] == str(policy.checkpoint)
    assert cfg["lora"]["rank"] == 32 and cfg["lora"]["alpha"] == 16 and cfg["gripper"] == policy.gripper
    assert (out_dir / "value_head.safetensors").is_file() and (out_dir / "lora" / "adapter_config.json").is_file()
    assert policy.unnorm_key in json.loads((out_dir / "dataset_statistics.json").read_text())

    loaded = OpenVLAAdapter.from_pretrained(out_dir, device="cpu")
    imgs = _images(2, seed=13)
    a, b = policy.act(imgs, INSTRUCTIONS, greedy=True), loaded.act(imgs, INSTRUCTIONS, greedy=True)
    assert torch.equal(a.tokens, b.tokens) and np.array_equal(a.actions, b.actions)
    assert torch.equal(a.log_prob, b.log_prob) and torch.equal(a.value, b.value)
    policy.set_seed(3)
    loaded.set_seed(3)
    assert torch.equal(policy.act(imgs, INSTRUCTIONS).tokens, loaded.act(imgs, INSTRUCTIONS).tokens)
    assert all(p.requires_grad for g in loaded.parameter_groups().values() for p in g)
    # Saving again over the folder replaces it.
    loaded.save_pretrained(out_dir)
    assert json.loads((out_dir / "config.json").read_text())["policy_type"] == "openvla_adapter"


def test_gripper_conventions_and_statistics_sources(ckpt, tmp_path):
    # A dataset.json of this package (+1/-1 gripper) -> "signed"; OpenVLA's Bridge-style stats (0/1) -> "zero_one".
    ds = tmp_path / "dataset.json"
    ds.write_text(json.dumps({"seeds": [0], "statistics": {"VLAPick-v0": {"action": _statistics(-1.0)}}}))
    p = OpenVLAAdapter(ckpt, device="cpu", statistics=ds)
    assert p.gripper == "signed" and p.unnorm_key == "VLAPick-v0"

    zero_one = ActionNormalizer.from_dict(_statistics(0.0))
    q = OpenVLAAdapter(ckpt, device="cpu", statistics=zero_one)
    assert q.gripper == "zero_one"
    open_close = np.zeros((2, 7), np.float32)
    open_close[:, 6] = [spec.GRIPPER_OPEN, spec.GRIPPER_CLOSE]
    tokens = q.actions_to_tokens(open_close)
    # The model's gripper tokens are those of 1 (open) and 0 (closed) ...
    assert torch.equal(tokens[:, 6], torch.as_tensor(q.action_tokenizer.encode(
        np.array([[0] * 6 + [1.0], [0] * 6 + [0.0]]))[:, 6]))
    # ... and come back as this package's +1 / -1.
    np.testing.assert_array_equal(q.tokens_to_actions(tokens)[:, 6], [1.0, -1.0])
    with pytest.raises(ValueError, match="gripper"):
        OpenVLAAdapter(ckpt, device="cpu", gripper="inverted")


def test_checkpoint_with_its_own_code_like_openvla(prismatic):
    # Loaded through trust_remote_code; no image placeholder; statistics from config.json's norm_stats (0/1 gripper).
    assert type(prismatic.hf).__name__ == "TinyPrismaticForActionPrediction" and prismatic.image_token == ""
    assert prismatic.unnorm_key == "bridge_orig" and prismatic.gripper == "zero_one"
    out = prismatic.act(_images(2, seed=19), INSTRUCTIONS)
    assert out.tokens.shape == (2, 7) and set(np.unique(out.actions[:, 6])) <= {-1.0, 1.0}
    lora = [n for n, p in prismatic.model.named_parameters() if p.requires_grad]
    assert lora and all("language_model" in n for n in lora)
    # from_pretrained on a plain checkpoint (no "policy_type") starts a fresh adapter: LoRA a no-op at first.
    fresh = OpenVLAAdapter.from_pretrained(prismatic.checkpoint, device="cpu", unnorm_key="bridge_orig")
    assert isinstance(fresh, OpenVLAAdapter)
    assert all(not p.detach().any() for n, p in fresh.model.named_parameters() if "lora_B" in n)


def test_statistics_from_config_norm_stats_and_unnorm_key_errors(ckpt, tmp_path):
    # OpenVLA keeps several datasets' statistics in config.json as norm_stats.
    alt = tmp_path / "with_norm_stats"
    alt.mkdir()
    for f in ckpt.iterdir():
        if f.name != "dataset_statistics.json":
            (alt / f.name).symlink_to(f)
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["norm_stats"] = {"bridge_orig": {"action": _statistics(0.0)}, "fractal": {"action": _statistics(0.0)}}
    (alt / "config.json").unlink()
    (alt / "config.json").write_text(json.dumps(cfg))
    p = OpenVLAAdapter(alt, device="cpu", unnorm_key="bridge_orig")
    assert p.unnorm_key == "bridge_orig" and p.gripper == "zero_one"
    with pytest.raises(StatisticsError, match=r"no statistics under unnorm key 'nope'.*bridge_orig.*fractal"):
        OpenVLAAdapter(alt, device="cpu", unnorm_key="nope")
    with pytest.raises(StatisticsError, match="several datasets"):
        OpenVLAAdapter(alt, device="cpu")
    with pytest.raises(StatisticsError, match="unnorm key 'nope'"):
        OpenVLAAdapter(ckpt, device="cpu", unnorm_key="nope")


def test_clear_errors(ckpt, tmp_path, policy):
    with pytest.raises(CheckpointError, match="does not exist"):
        OpenVLAAdapter(tmp_path / "missing", device="cpu")
    empty = tmp_path / "config_only"
    empty.mkdir()
    shutil.copy(ckpt / "config.json", empty / "config.json")
    with pytest.raises(CheckpointError, match="no model weights"):
        OpenVLAAdapter(empty, device="cpu")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        OpenVLAAdapter(tmp_path / "nothing", device="cpu")
    bare = tmp_path / "no_stats"
    bare.mkdir()
    for f in ckpt.iterdir():
        if f.name != "dataset_statistics.json":
            (bare / f.name).symlink_to(f)
    with pytest.raises(StatisticsError, match="no action statistics"):
        OpenVLAAdapter(bare, device="cpu")
    with pytest.raises(ValueError, match="temperature"):
        OpenVLAAdapter(ckpt, device="cpu", temperature=0.0)
    other = tmp_path / "tiny_vla_policy"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"policy_type": "tiny_vla"}))
    with pytest.raises(CheckpointError, match="'tiny_vla' policy"):
        OpenVLAAdapter.from_pretrained(other)
    imgs = _images(2)
    with pytest.raises(PolicyInputError, match="action ids"):
        policy.evaluate(imgs, INSTRUCTIONS, torch.full((2, 7), 5))
    with pytest.raises(PolicyInputError, match="shape"):
        policy.evaluate(imgs, INSTRUCTIONS, torch.full((2, 6), VOCAB - 1))
    with pytest.raises(PolicyInputError):
        policy.act(imgs[0], INSTRUCTIONS[:1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the adapter's bf16 path)")
def test_bf16_on_cuda(ckpt):
    p = OpenVLAAdapter(ckpt, device="cuda", seed=0)
    assert p.dtype == torch.bfloat16
    assert next(p.hf.parameters()).dtype == torch.bfloat16 and next(p.hf.parameters()).is_cuda
    _perturb(p, seed=1)
    imgs = _images(2, seed=17)
    out = p.act(imgs, INSTRUCTIONS)
    assert out.tokens.shape == (2, 7) and torch.isfinite(out.log_prob).all() and torch.isfinite(out.value).all()
    scores = p.evaluate(imgs, INSTRUCTIONS, out.tokens)
    assert scores.log_prob.is_cuda and scores.log_prob.dtype == torch.float32
    # bf16 cached decoding vs one teacher-forced pass: equal to bf16 precision.
    torch.testing.assert_close(scores.log_prob.detach().cpu(), out.log_prob, atol=0.15, rtol=0.02)
    (scores.log_prob.sum() + scores.value.sum()).backward()
    assert any(q.grad is not None and q.grad.abs().sum() > 0 for q in p.parameter_groups()["policy"])
    greedy = p.act(imgs, INSTRUCTIONS, greedy=True).tokens
    p.temperature = 1e-6
    assert torch.equal(p.act(imgs, INSTRUCTIONS).tokens, greedy)


def test_center_crop_keeps_the_central_area():
    from vla_ood_envs.policies.openvla import _center_crop

    img = torch.zeros((1, 40, 40, 3), dtype=torch.uint8)
    img[:, 10:30, 10:30] = 255  # the central quarter of the area is white
    out = _center_crop(img, 0.25)
    assert out.shape == img.shape and out.dtype == torch.uint8
    assert int(out[:, 2:-2, 2:-2].min()) == 255  # the crop is that quarter, resized back to 40x40
    assert torch.equal(_center_crop(img, 1.0), img)
