"""The tiny VLA behind the policy protocol: shapes, log-probabilities computed independently, act/evaluate
agreement, greedy decoding, checkpoints, input errors."""

import json

import numpy as np
import pytest
import torch

from vla_ood_envs.policies import PolicyInputError, load_policy, register_policy_type
from vla_ood_envs.policies.image_ops import centre_boxes, crop_resize, random_boxes, resize_images
from vla_ood_envs.policies.tiny_vla import TinyVLA, TinyVLAConfig
from vla_ood_envs.policies.tokenizer import ActionNormalizer, StatisticsError
from vla_ood_envs.policies.words import WordTokenizer, default_vocabulary

INSTR = ["put carrot on plate", "put soda can on plate", "Place the dice on the saucer"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    lo = np.array([-0.04, -0.04, -0.05, 0.0, 0.0, -0.25, -1.0])
    hi = np.array([0.04, 0.05, 0.04, 0.0, 0.0, 0.25, 1.0])
    m = TinyVLA(TinyVLAConfig(image_size=32, temperature=0.7), ActionNormalizer(q01=lo, q99=hi, min=lo, max=hi),
                device="cpu")
    with torch.no_grad():  # sharper logits than the initialisation, so sampling and argmax differ visibly
        m.action_head.weight.mul_(20)
    return m


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, size=(3, 48, 48, 3), dtype=np.uint8)


def _logits(model, images, instructions):
    with torch.no_grad():
        logits, _ = model.heads(model.features(model.preprocess(images), instructions))
    return logits


def test_act_shapes_dtypes_and_token_range(model, images):
    out = model.act(images, INSTR)
    assert out.actions.shape == (3, 7) and out.actions.dtype == np.float32 and isinstance(out.actions, np.ndarray)
    assert out.tokens.shape == (3, 7) and out.tokens.dtype == torch.int64
    assert int(out.tokens.min()) >= 31744 and int(out.tokens.max()) <= 31999
    for v in (out.log_prob, out.entropy, out.value):
        assert v.shape == (3,) and v.dtype == torch.float32
    np.testing.assert_array_equal(out.actions, model.action_tokenizer.decode(out.tokens.numpy()))
    # torch input (and any resolution) gives the same decisions as numpy input
    g1 = model.act(images, INSTR, greedy=True)
    g2 = model.act(torch.from_numpy(images), INSTR, greedy=True)
    assert torch.equal(g1.tokens, g2.tokens) and torch.allclose(g1.log_prob, g2.log_prob)
    assert model.act(np.zeros((1, 200, 120, 3), np.uint8), INSTR[:1]).actions.shape == (1, 7)


def test_log_prob_is_the_sum_of_per_dimension_log_softmax(model, images):
    torch.manual_seed(1)
    out = model.act(images, INSTR)
    logits = _logits(model, images, INSTR).double()
    classes = 31999 - out.tokens  # OpenVLA: id = 32000 - bin index (1..256); class = bin index - 1
    expected = torch.zeros(3, dtype=torch.float64)
    for b in range(3):
        for d in range(7):
            z = logits[b, d] / 0.7
            expected[b] += z[classes[b, d]] - torch.logsumexp(z, 0)
    torch.testing.assert_close(out.log_prob.double(), expected, rtol=1e-5, atol=1e-4)
    p = torch.softmax(logits / 0.7, -1)
    torch.testing.assert_close(out.entropy.double(), -(p * p.log()).sum(-1).mean(-1), rtol=1e-5, atol=1e-4)


def test_evaluate_rescores_act_with_gradients(model, images):
    torch.manual_seed(2)
    out = model.act(images, INSTR)
    scores = model.evaluate(images, INSTR, out.tokens)
    assert scores.log_prob.requires_grad
    torch.testing.assert_close(scores.log_prob.detach(), out.log_prob, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores.entropy.detach(), out.entropy, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scores.value.detach(), out.value, rtol=1e-5, atol=1e-5)
    scores.log_prob.sum().backward()
    assert model.action_head.weight.grad is not None and model.stem[0].weight.grad.abs().sum() > 0
    model.zero_grad()
    # another temperature scores differently, and evaluate(temperature=t) matches act at t
    assert not torch.allclose(model.evaluate(images, INSTR, out.tokens, temperature=1.0).log_prob.detach(),
                              out.log_prob)


def test_greedy_and_temperature_zero_agree(model, images):
    greedy = model.act(images, INSTR, greedy=True)
    torch.testing.assert_close(greedy.tokens - 31999, -_logits(model, images, INSTR).argmax(-1))
    model.temperature = 0.0
    try:
        zero = model.act(images, INSTR)
        cold = None
        model.temperature = 1e-4
        cold = model.act(images, INSTR)
    finally:
        model.temperature = 0.7
    assert torch.equal(zero.tokens, greedy.tokens) and torch.equal(cold.tokens, greedy.tokens)
    np.testing.assert_array_equal(zero.actions, greedy.actions)
    # sampling at temperature 0.7 does not always pick the argmax
    torch.manual_seed(3)
    sampled = torch.stack([model.act(images, INSTR).tokens for _ in range(5)])
    assert (sampled != greedy.tokens).any()


def test_save_and_load_round_trip(model, images, tmp_path):
    model.save_pretrained(tmp_path / "ckpt")
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert cfg["policy_type"] == "tiny_vla" and cfg["words"] == model.config.words and cfg["temperature"] == 0.7
    stats = json.loads((tmp_path / "ckpt" / "dataset_statistics.json").read_text())
    assert set(stats) == {"VLAPick-v0"} and set(stats["VLAPick-v0"]["action"]) >= {"q01", "q99", "mask"}
    for loaded in (TinyVLA.from_pretrained(tmp_path / "ckpt", device="cpu"),
                   load_policy(tmp_path / "ckpt", device="cpu")):
        assert isinstance(loaded, TinyVLA) and loaded.temperature == 0.7
        a, b = model.act(images, INSTR, greedy=True), loaded.act(images, INSTR, greedy=True)
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.log_prob, b.log_prob)
        assert torch.equal(a.value, b.value)
        np.testing.assert_array_equal(a.actions, b.actions)


def test_checkpoint_errors(model, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        TinyVLA.from_pretrained(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no checkpoint folder"):
        load_policy(tmp_path / "nowhere")
    model.save_pretrained(tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_policy(tmp_path / "c")
    model.save_pretrained(tmp_path / "d")
    (tmp_path / "d" / "dataset_statistics.json").write_text(json.dumps({"bridge_orig": {"action": {}}}))
    with pytest.raises(StatisticsError, match="unnorm key 'VLAPick-v0'.*bridge_orig"):
        load_policy(tmp_path / "d")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "config.json").write_text(json.dumps({"policy_type": "mystery"}))
    with pytest.raises(ValueError, match="unknown policy_type 'mystery'.*tiny_vla"):
        load_policy(tmp_path / "e")
    register_policy_type("mystery", "vla_ood_envs.policies.tiny_vla:TinyVLA")
    with pytest.raises(ValueError, match="not a tiny VLA"):
        load_policy(tmp_path / "e")


def test_input_errors(model, images):
    with pytest.raises(PolicyInputError, match=r"shape \(B, H, W, 3\)"):
        model.act(images[0], INSTR[:1])
    with pytest.raises(PolicyInputError, match="uint8"):
        model.act(images.astype(np.float32), INSTR)
    with pytest.raises(PolicyInputError, match="3 images but 2 instructions"):
        model.act(images, INSTR[:2])
    with pytest.raises(PolicyInputError, match="list of B strings"):
        model.act(images[:1], "put carrot on plate")
    with pytest.raises(PolicyInputError, match=r"tokens must have shape \(3, 7\)"):
        model.evaluate(images, INSTR, torch.full((3, 6), 31900))
    with pytest.raises(ValueError, match="action tokens"):
        model.evaluate(images, INSTR, torch.full((3, 7), 5))
    proprio_model = TinyVLA(TinyVLAConfig(image_size=32, include_proprio=True), device="cpu")
    assert proprio_model.needs_proprio
    with pytest.raises(PolicyInputError, match="include_proprio"):
        proprio_model.act(images, INSTR)
    assert proprio_model.act(images, INSTR, np.zeros((3, 8), np.float32)).actions.shape == (3, 7)
    with pytest.raises(ValueError, match="divisible by 32"):
        TinyVLAConfig(image_size=100)


def test_parameter_groups_split_the_value_head(model):
    groups = model.parameter_groups()
    assert set(groups) == {"policy", "value_head"}
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert {id(p) for p in model.value_head.parameters()} == {id(p) for p in groups["value_head"]}
    n = sum(p.numel() for p in TinyVLA(TinyVLAConfig(), device="cpu").parameters())
    assert 1e6 < n < 1e7  # "a few million parameters" at the default 96 px


def test_word_vocabulary_is_deterministic_and_covers_the_templates():
    words = default_vocabulary()
    assert words == default_vocabulary() and words[:2] == ["<pad>", "<unk>"]
    tok = WordTokenizer(words)
    for text in ("Take the dice and put it on the saucer", "Would you open the microwave, please?"):
        assert 1 not in tok.ids(text)
    assert tok.ids("put zyzzyva on plate")[1] == 1
    ids = tok(["put carrot on plate", ""])
    assert ids.shape == (2, 4) and ids[1].sum() == 0


def test_image_ops_match_between_training_and_evaluation():
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    x = resize_images(img, 32)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.uint8
    assert torch.equal(resize_images(x.permute(0, 2, 3, 1), 32), x)  # frames at the size pass unchanged
    full = crop_resize(x, centre_boxes(2, 1.0))
    torch.testing.assert_close(full, x.float())  # a full box is the identity
    g = torch.Generator().manual_seed(0)
    boxes = random_boxes(500, (0.5, 1.0), (0.75, 1.333), g)
    w, h = boxes[:, 2], boxes[:, 3]
    assert (boxes[:, 0].abs() <= 1 - w + 1e-6).all() and (boxes[:, 1].abs() <= 1 - h + 1e-6).all()
    area = w * h
    assert area.min() >= 0.49 and area.max() <= 1.0 + 1e-6
