"""RLDS (TFDS) export, read back without TensorFlow: the TFRecord framing and CRCs are checked here with
google-crc32c, and the `tf.train.Example` records are decoded by a small protobuf wire-format reader written from the
spec (so a wrong field number or encoding in the exporter's descriptors would show). Everything must equal the native
store; PNG frames must decode to the native pixels."""

import io
import json
import struct

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("google.protobuf", reason="the RLDS export needs protobuf (pip install 'vla_ood_envs[rlds]')")
crc32c = pytest.importorskip("google_crc32c",
                             reason="the RLDS export needs google-crc32c (pip install 'vla_ood_envs[rlds]')")

from vla_ood_envs.demos import DemoDataset  # noqa: E402
from vla_ood_envs.demos.export_rlds import export_rlds  # noqa: E402

NAME, VERSION = "vla_ood_pick", "1.0.0"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_demos):
    base = tmp_path_factory.mktemp("rlds")
    out = export_rlds(tiny_demos, base / "export")
    return base, DemoDataset(tiny_demos), out


# ---------------------------------------------------------------- readers written from the specs

def _masked(data: bytes) -> int:
    crc = crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecord(path):
    """Records of a TFRecord file, checking both CRCs of every record."""
    data, pos, records = path.read_bytes(), 0, []
    while pos < len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        assert length_crc == _masked(header), f"{path}: bad length CRC at byte {pos}"
        record = data[pos + 12:pos + 12 + length]
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        assert data_crc == _masked(record), f"{path}: bad data CRC at byte {pos}"
        records.append(record)
        pos += 16 + length
    assert pos == len(data)
    return records


def _varint(buf: bytes, pos: int):
    value = shift = 0
    while True:
        b = buf[pos]
        value |= (b & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not b & 0x80:
            return value, pos


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message: int for varints, bytes otherwise."""
    pos, out = 0, []
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.append((number, wire, value))
    return out


def _list_values(kind: int, buf: bytes) -> list:
    """Values of a BytesList (1), FloatList (2) or Int64List (3), packed or not."""
    values = []
    for number, wire, value in _fields(buf):
        assert number == 1
        if kind == 1:
            values.append(value)
        elif kind == 2:
            values.extend(np.frombuffer(value, "<f4").tolist())  # packed float32, or one fixed32
        elif wire == 0:
            values.append(value)
        else:
            pos = 0
            while pos < len(value):
                v, pos = _varint(value, pos)
                values.append(v)
    if kind == 3:
        values = [v - (1 << 64) if v >= 1 << 63 else v for v in values]
    return values


def parse_example(record: bytes) -> dict:
    """tf.train.Example -> {key: list of values} (Example.features = 1, Features.feature = map field 1)."""
    (features,) = [v for n, _, v in _fields(record) if n == 1]
    out = {}
    for number, _, entry in _fields(features):
        assert number == 1
        entry = {n: v for n, _, v in _fields(entry)}
        (kind, _, payload), = _fields(entry[2])
        out[entry[1].decode()] = _list_values(kind, payload)
    return out


def read_episodes(version_dir):
    info = json.loads((version_dir / "dataset_info.json").read_text())
    (split,) = info["splits"]
    n = len(split["shardLengths"])
    records = []
    for i, expected in enumerate(split["shardLengths"]):
        shard = read_tfrecord(version_dir / f"{info['name']}-train.tfrecord-{i:05d}-of-{n:05d}")
        assert len(shard) == int(expected)
        records += shard
    return info, records


# ---------------------------------------------------------------- tests

def test_layout_and_dataset_info(exported):
    base, native, out = exported
    assert out == base / "export" / NAME / VERSION
    assert sorted(p.name for p in out.parent.iterdir()) == [VERSION]  # no temporary folder left behind
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "dataset_info.json", "features.json", "dataset_statistics.json", "vla_ood_envs.json",
        f"{NAME}-train.tfrecord-00000-of-00001"])
    info, records = read_episodes(out)
    assert (info["name"], info["version"], info["fileFormat"]) == (NAME, VERSION, "tfrecord")
    (split,) = info["splits"]
    assert split["name"] == "train" and split["shardLengths"] == [str(len(native))]
    assert split["filepathTemplate"] == "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    assert int(split["numBytes"]) == sum(len(r) for r in records)


def test_episodes_equal_native(exported):
    _, native, out = exported
    _, records = read_episodes(out)
    assert len(records) == len(native) == 2
    for record, ep in zip(records, native, strict=True):
        ex = parse_example(record)
        t = len(ep)
        np.testing.assert_array_equal(np.array(ex["steps/action"], np.float32).reshape(t, 7), ep.actions)
        np.testing.assert_array_equal(np.array(ex["steps/observation/state"], np.float32).reshape(t, 8), ep.proprio)
        np.testing.assert_array_equal(np.array(ex["steps/reward"], np.float32), ep.rewards)
        assert ex["steps/discount"] == [1.0] * t
        assert ex["steps/language_instruction"] == [ep.instruction.encode()] * t
        assert ex["steps/is_first"] == [1] + [0] * (t - 1)
        assert ex["steps/is_last"] == [0] * (t - 1) + [1]
        assert ex["steps/is_terminal"] == [0] * (t - 1) + [int(ep.success[-1])]
        assert ex["episode_metadata/seed"] == [ep.seed]
        assert ex["episode_metadata/file_path"] == [f"episodes/episode_{ep.seed:08d}.h5".encode()]
        frames = ex["steps/observation/image"]
        assert len(frames) == t and all(f.startswith(b"\x89PNG") for f in frames)
        decoded = np.stack([np.asarray(Image.open(io.BytesIO(f))) for f in frames])
        np.testing.assert_array_equal(decoded, ep.images)  # PNG: exactly the native pixels


def test_features_json(exported):
    _, _, out = exported
    features = json.loads((out / "features.json").read_text())
    top = features["featuresDict"]["features"]
    assert features["pythonClassName"].endswith("features_dict.FeaturesDict")
    steps = top["steps"]
    assert steps["pythonClassName"].endswith("dataset_feature.Dataset") and steps["sequence"]["length"] == "-1"
    step = steps["sequence"]["feature"]["featuresDict"]["features"]
    assert sorted(step) == ["action", "discount", "is_first", "is_last", "is_terminal", "language_instruction",
                            "observation", "reward"]
    obs = step["observation"]["featuresDict"]["features"]
    assert obs["image"]["image"] == {"dtype": "uint8", "encodingFormat": "png",
                                     "shape": {"dimensions": ["32", "32", "3"]}}
    assert obs["state"]["tensor"]["shape"] == {"dimensions": ["8"]}
    assert step["action"]["tensor"] == {"dtype": "float32", "encoding": "none", "shape": {"dimensions": ["7"]}}
    assert step["is_terminal"]["tensor"]["dtype"] == "bool"
    assert sorted(top["episode_metadata"]["featuresDict"]["features"]) == ["file_path", "seed"]


def test_statistics_and_provenance(exported):
    _, native, out = exported
    stats = json.loads((out / "dataset_statistics.json").read_text())
    assert list(stats) == [NAME]
    assert stats[NAME] == native.index["statistics"][native.index["env_id"]]
    assert stats[NAME]["num_trajectories"] == 2
    assert stats[NAME]["num_transitions"] == sum(len(ep) for ep in native)
    assert len(stats[NAME]["action"]["q99"]) == 7 and stats[NAME]["action"]["mask"] == [True] * 6 + [False]
    provenance = json.loads((out / "vla_ood_envs.json").read_text())
    assert provenance["seeds"] == native.seeds and len(provenance["manifests"]) == 2


def test_jpeg_shards_and_overwrite(exported):
    base, native, _ = exported
    src = native.root
    with pytest.raises(FileExistsError):
        export_rlds(src, base / "export")
    out = export_rlds(src, base / "export", name="pick_jpeg", image_format="jpeg", shard_size_mb=1e-6)
    names = sorted(p.name for p in out.iterdir() if p.name.startswith("pick_jpeg-"))
    assert names == [f"pick_jpeg-train.tfrecord-{i:05d}-of-00002" for i in range(2)]  # one episode per shard
    info, records = read_episodes(out)
    assert info["splits"][0]["shardLengths"] == ["1", "1"]
    for record, ep in zip(records, native, strict=True):
        frames = parse_example(record)["steps/observation/image"]
        decoded = np.stack([np.asarray(Image.open(io.BytesIO(f))) for f in frames])
        assert frames[0].startswith(b"\xff\xd8") and decoded.shape == ep.images.shape
        assert np.abs(decoded.astype(int) - ep.images).mean() < 8  # lossy, but the same picture
    # overwrite replaces the whole version folder: the two small shards give way to one default-size shard
    assert export_rlds(src, base / "export", name="pick_jpeg", image_format="jpeg", overwrite=True) == out
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("pick_jpeg-")) == [
        "pick_jpeg-train.tfrecord-00000-of-00001"]
    assert sorted(p.name for p in out.parent.iterdir()) == [VERSION]


@pytest.mark.parametrize("kwargs", [{"name": "Bad-Name"}, {"version": "1.0"}, {"image_format": "webp"}])
def test_rejects_bad_arguments(exported, kwargs):
    base, native, _ = exported
    with pytest.raises(ValueError):
        export_rlds(native.root, base / "bad", **kwargs)
    assert not (base / "bad").exists()
