"""Export a native demonstration dataset to RLDS: a TensorFlow Datasets (TFDS) folder that OpenVLA fine-tunes on.

Layout written (`<out_dir>/<name>/<version>/`, the folder `tfds.builder_from_directory` opens and that
`tfds.builder(name, data_dir=out_dir)` finds):

    <name>-train.tfrecord-SSSSS-of-NNNNN   TFRecord shards, one `tf.train.Example` per episode; a new shard starts
                                          when the current one would pass `shard_size_mb`
    dataset_info.json                      name, version, file format and the train split's shard lengths and bytes
                                          (written last)
    features.json                          the TFDS FeaturesDict the records decode with (see `features_json`)
    dataset_statistics.json                OpenVLA's normalisation statistics, {name: stats}: the form OpenVLA keeps
                                          under its unnorm key (copied from the native dataset.json)
    vla_ood_envs.json                      provenance: env id, source folder, the native seed and manifest of each
                                          episode (TFDS ignores this file)

Each episode follows the Open-X / RLDS conventions OpenVLA's `prismatic/vla/datasets/rlds` code reads: a `steps`
sequence of {observation: {image, state}, action, reward, discount, is_first, is_last, is_terminal,
language_instruction} and `episode_metadata` {file_path, seed}. TFDS stores a nested `Dataset` feature in a plain
`tf.train.Example` (not a SequenceExample): every step field becomes one flat key ("steps/observation/image", ...)
holding all T steps' values concatenated.

TensorFlow is not needed to write: the `Example` message classes are built at run time from their descriptors with
the `protobuf` package, and the TFRecord framing (length, masked CRC32C, data, masked CRC32C) is written by hand with
`google-crc32c`. Install them with the `rlds` extra.

The version folder is built in a hidden sibling and renamed into place at the end, so a folder at
`<out_dir>/<name>/<version>` is always a complete export.
"""

from __future__ import annotations

import functools
import io
import json
import re
import struct
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np
from PIL import Image

from .. import spec
from ..errors import ConfigError, MissingExtraError
from .store import DatasetError, DemoDataset, Episode, atomic_dir, episode_path

SPLIT = "train"
SHARD_SIZE_MB = 256  # OpenVLA reads shards in parallel and shuffles their order; TFDS itself aims at 64 MiB - 1 GiB
IMAGE_FORMATS = ("png", "jpeg")
JPEG_QUALITY = 95  # what TFDS uses when it encodes a JPEG image feature
FILEPATH_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"  # TFDS's default shard naming
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # TFDS dataset names are snake_case
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_TFDS = "tensorflow_datasets.core.features."


# ---------------------------------------------------------------- tf.train.Example without TensorFlow

def _example_file_proto() -> Any:
    """The descriptor of tensorflow/core/example/{example,feature}.proto (only the messages an Example needs)."""
    from google.protobuf import descriptor_pb2 as d

    f = d.FieldDescriptorProto
    file = d.FileDescriptorProto(name="vla_ood_envs/tf_example.proto", package="tensorflow", syntax="proto3")

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> d.DescriptorProto:
        msg = file.message_type.add(name=name)
        for field_name, number, label, ftype, type_name in fields:
            field = msg.field.add(name=field_name, number=number, label=label, type=ftype)
            if type_name:  # only message fields name a type (an empty one is an error)
                field.type_name = type_name
        return msg

    rep, opt = f.LABEL_REPEATED, f.LABEL_OPTIONAL
    message("BytesList", ("value", 1, rep, f.TYPE_BYTES, ""))
    message("FloatList", ("value", 1, rep, f.TYPE_FLOAT, ""))  # proto3: packed, as TF declares it
    message("Int64List", ("value", 1, rep, f.TYPE_INT64, ""))
    feature = message("Feature", ("bytes_list", 1, opt, f.TYPE_MESSAGE, ".tensorflow.BytesList"),
                      ("float_list", 2, opt, f.TYPE_MESSAGE, ".tensorflow.FloatList"),
                      ("int64_list", 3, opt, f.TYPE_MESSAGE, ".tensorflow.Int64List"))
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    features = message("Features", ("feature", 1, rep, f.TYPE_MESSAGE, ".tensorflow.Features.FeatureEntry"))
    entry = features.nested_type.add(name="FeatureEntry")  # how protoc spells map<string, Feature>
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=opt, type=f.TYPE_STRING)
    entry.field.add(name="value", number=2, label=opt, type=f.TYPE_MESSAGE, type_name=".tensorflow.Feature")
    message("Example", ("features", 1, opt, f.TYPE_MESSAGE, ".tensorflow.Features"))
    return file


@functools.lru_cache(maxsize=1)
def example_class() -> type:
    """The `tensorflow.Example` message class, in a private descriptor pool (no clash with TensorFlow's own)."""
    try:
        from google.protobuf import descriptor_pool, message_factory
    except ImportError as exc:
        raise MissingExtraError("the RLDS export needs protobuf and google-crc32c: pip install 'vla_ood_envs[rlds]'") from exc
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_example_file_proto())
    descriptor = pool.FindMessageTypeByName("tensorflow.Example")
    if not hasattr(message_factory, "GetMessageClass"):  # protobuf < 4.22, e.g. 3.20 in TF 2.15 environments
        return message_factory.MessageFactory(pool).GetPrototype(descriptor)
    return message_factory.GetMessageClass(descriptor)


@functools.lru_cache(maxsize=1)
def _crc32c() -> Callable[[bytes], int]:
    try:
        import google_crc32c
    except ImportError as exc:
        raise MissingExtraError("the RLDS export needs protobuf and google-crc32c: pip install 'vla_ood_envs[rlds]'") from exc
    return google_crc32c.value


def masked_crc32c(data: bytes) -> int:
    """TFRecord's checksum: CRC32C rotated right by 15 bits plus a constant (so CRCs of CRCs stay well spread)."""
    crc = _crc32c()(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(data: bytes) -> bytes:
    """One TFRecord: uint64 length, masked CRC of those 8 bytes, the data, masked CRC of the data (little-endian)."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc32c(length)) + data + struct.pack("<I", masked_crc32c(data))


# ---------------------------------------------------------------- episodes

def encode_image(frame: np.ndarray, image_format: str) -> bytes:
    buf = io.BytesIO()
    if image_format == "jpeg":
        Image.fromarray(frame).save(buf, format="JPEG", quality=JPEG_QUALITY)
    else:
        Image.fromarray(frame).save(buf, format="PNG")  # lossless: the decoded frame equals the native one
    return buf.getvalue()


def step_flags(ep: Episode) -> dict[str, np.ndarray]:
    """RLDS step flags. The native episode ends when the task succeeded (the generator stops a few steps after
    success), so its last step is terminal exactly when that step is a success; discount is 1 throughout."""
    t = len(ep)
    is_last = np.arange(t) == t - 1
    return {"is_first": np.arange(t) == 0, "is_last": is_last,
            "is_terminal": is_last & bool(ep.success[-1]), "discount": np.ones(t, np.float32)}


def episode_features(ep: Episode, image_format: str) -> dict[str, tuple[str, list]]:
    """Flat TFDS keys of one episode -> (list kind, values): the layout TFDS gives a `steps` Dataset feature."""
    flags = step_flags(ep)
    t = len(ep)
    return {
        "steps/observation/image": ("bytes", [encode_image(f, image_format) for f in ep.images]),
        "steps/observation/state": ("float", ep.proprio.astype(np.float32).ravel().tolist()),
        "steps/action": ("float", ep.actions.astype(np.float32).ravel().tolist()),
        "steps/reward": ("float", ep.rewards.astype(np.float32).tolist()),
        "steps/discount": ("float", flags["discount"].tolist()),
        "steps/is_first": ("int64", flags["is_first"].astype(np.int64).tolist()),  # TFDS stores bools as int64
        "steps/is_last": ("int64", flags["is_last"].astype(np.int64).tolist()),
        "steps/is_terminal": ("int64", flags["is_terminal"].astype(np.int64).tolist()),
        "steps/language_instruction": ("bytes", [ep.instruction.encode("utf-8")] * t),
        # Relative to the native dataset folder (named in vla_ood_envs.json): the export does not depend on where
        # the source lies.
        "episode_metadata/file_path": ("bytes", [episode_path(Path(), ep.seed).as_posix().encode("utf-8")]),
        "episode_metadata/seed": ("int64", [int(ep.seed)]),
    }


def serialize_episode(ep: Episode, image_format: str) -> bytes:
    example = example_class()()
    for key, (kind, values) in episode_features(ep, image_format).items():
        getattr(example.features.feature[key], f"{kind}_list").value.extend(values)
    return example.SerializeToString(deterministic=True)  # sorted map keys: the same dataset gives the same bytes


# ---------------------------------------------------------------- shards

class ShardWriter:
    """Writes framed records into numbered shards, starting a new one when the current one would pass the limit.
    Shards get temporary names until `finish` knows their count (TFDS names them "-SSSSS-of-NNNNN")."""

    def __init__(self, root: Path, name: str, size_limit_mb: float):
        self.root, self.prefix = root, f"{name}-{SPLIT}.tfrecord"
        self.limit = int(size_limit_mb * 1024 ** 2)
        self.lengths: list[int] = []  # records per shard
        self.shard_bytes = 0
        self.num_bytes = 0  # serialized examples, without framing: what TFDS reports as the split's numBytes
        self.file: BinaryIO | None = None

    def _part(self, index: int) -> Path:
        return self.root / f".{self.prefix}-{index:05d}.part"

    def write(self, record: bytes) -> None:
        frame = tfrecord_frame(record)
        if self.file is not None and self.shard_bytes + len(frame) > self.limit:
            self.file.close()
            self.file = None
        if self.file is None:
            self.file = open(self._part(len(self.lengths)), "wb")
            self.lengths.append(0)
            self.shard_bytes = 0
        self.file.write(frame)
        self.lengths[-1] += 1
        self.shard_bytes += len(frame)
        self.num_bytes += len(record)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def finish(self) -> list[Path]:
        """Close and give the shards their final names; returns them in order."""
        self.close()
        n = len(self.lengths)
        final = [self.root / f"{self.prefix}-{i:05d}-of-{n:05d}" for i in range(n)]
        for i, path in enumerate(final):
            self._part(i).rename(path)
        return final


# ---------------------------------------------------------------- metadata files

def _feature(cls: str, **content: Any) -> dict:
    return {"pythonClassName": _TFDS + cls, **content}


def _tensor(shape: tuple[int, ...], dtype: str, doc: str = "", scalar: bool = False) -> dict:
    dims = {"dimensions": [str(d) for d in shape]} if shape else {}
    out = _feature("scalar.Scalar" if scalar else "tensor_feature.Tensor",
                   tensor={"dtype": dtype, "encoding": "none", "shape": dims})
    return {"description": doc, **out} if doc else out


def _text(doc: str = "") -> dict:
    out = _feature("text_feature.Text", text={})
    return {"description": doc, **out} if doc else out


def _features_dict(features: dict[str, dict]) -> dict:
    return _feature("features_dict.FeaturesDict", featuresDict={"features": dict(sorted(features.items()))})


def features_json(height: int, width: int, image_format: str) -> dict:
    """features.json in the JSON form of TFDS's FeatureConnector proto (what TFDS >= 4.5 writes and reads)."""
    image = _feature("image_feature.Image", description="scene camera RGB", image={
        "dtype": "uint8", "encodingFormat": image_format,
        "shape": {"dimensions": [str(height), str(width), "3"]}})
    step = _features_dict({
        "observation": _features_dict({"image": image, "state": _tensor((spec.PROPRIO_DIM,), "float32",
                                                                            spec.PROPRIO_DOC)}),
        "action": _tensor((spec.ACTION_DIM,), "float32", spec.ACTION_DOC),
        "reward": _tensor((), "float32", "reward after the action", scalar=True),
        "discount": _tensor((), "float32", scalar=True),
        "is_first": _tensor((), "bool", scalar=True),
        "is_last": _tensor((), "bool", scalar=True),
        "is_terminal": _tensor((), "bool", scalar=True),
        "language_instruction": _text("the episode's instruction"),
    })
    steps = _feature("dataset_feature.Dataset", sequence={"feature": step, "length": "-1"})
    metadata = _features_dict({"file_path": _text("native episode file"),
                               "seed": _tensor((), "int64", "native episode seed", scalar=True)})
    return _features_dict({"steps": steps, "episode_metadata": metadata})


def dataset_info_json(name: str, version: str, env_id: str, shard_lengths: list[int], num_bytes: int) -> dict:
    """dataset_info.json (JSON form of TFDS's DatasetInfo proto: 64-bit integers as strings)."""
    return {
        "name": name,
        "version": version,
        "description": f"Scripted-expert demonstrations of {env_id} (vla_ood_envs) in RLDS format.",
        "fileFormat": "tfrecord",
        "splits": [{
            "name": SPLIT,
            "filepathTemplate": FILEPATH_TEMPLATE,
            "numBytes": str(num_bytes),
            "shardLengths": [str(n) for n in shard_lengths],
        }],
    }


def openvla_statistics(ds: DemoDataset, name: str, episodes: int, transitions: int) -> dict:
    """{name: stats} from the native index, after checking they describe the episodes exported."""
    env_id = ds.index["env_id"]
    stats = ds.index.get("statistics", {}).get(env_id)
    if stats is None:
        raise DatasetError(f"{ds.root}/dataset.json has no statistics for {env_id}")
    if (stats["num_trajectories"], stats["num_transitions"]) != (episodes, transitions):
        raise DatasetError(f"{ds.root}/dataset.json statistics cover {stats['num_trajectories']} episodes / "
                           f"{stats['num_transitions']} steps but the dataset has {episodes} / {transitions}")
    return {name: stats}


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


# ---------------------------------------------------------------- export

def _check_args(name: str, version: str, image_format: str, shard_size_mb: float) -> None:
    if not _NAME.match(name):
        raise ConfigError(f"name {name!r}: a TFDS dataset name is snake_case (lowercase letters, digits, _)")
    if not _VERSION.match(version):
        raise ConfigError(f"version {version!r}: TFDS versions are MAJOR.MINOR.PATCH")
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(f"image_format {image_format!r}: one of {IMAGE_FORMATS}")
    if shard_size_mb <= 0:
        raise ConfigError("shard_size_mb must be positive")


class _Written:
    """What the metadata files need from the episodes, gathered while writing them."""

    def __init__(self) -> None:
        self.transitions = 0
        self.manifests: list[dict] = []


def _write_shards(ds: DemoDataset, root: Path, name: str, image_format: str, shard_size_mb: float,
                  shape: tuple[int, ...]) -> tuple[ShardWriter, _Written]:
    """Write every episode (one in memory at a time); returns the writer (shard lengths, bytes) and the totals."""
    shards = ShardWriter(root, name, shard_size_mb)
    written = _Written()
    try:
        for ep in ds:
            if ep.images.shape[1:] != shape:
                raise DatasetError(f"episode seed {ep.seed}: image shape {ep.images.shape[1:]} differs from {shape}; "
                                 f"a TFDS image feature has one shape")
            shards.write(serialize_episode(ep, image_format))
            written.transitions += len(ep)
            written.manifests.append(ep.manifest)
    finally:
        shards.close()
    shards.finish()
    return shards, written


def export_rlds(dataset_root: str | Path, out_dir: str | Path, name: str = "vla_ood_pick", version: str = "1.0.0",
                image_format: str = "png", overwrite: bool = False, shard_size_mb: float = SHARD_SIZE_MB) -> Path:
    """Export the native dataset at `dataset_root` as the TFDS dataset `name` under `out_dir`; return the version
    folder `out_dir/name/version` (what `tfds.builder_from_directory` takes; OpenVLA takes `out_dir` as its
    data_dir and `name` as the dataset name). One split, "train", in the native order (ascending seed).

    `image_format` "png" is lossless; "jpeg" (quality 95) is smaller and what most Open-X datasets use. Images keep
    their native size: OpenVLA resizes them (to 224 x 224) when it loads them."""
    _check_args(name, version, image_format, shard_size_mb)
    ds = DemoDataset(dataset_root)
    if len(ds) == 0:
        raise DatasetError(f"{dataset_root} has no episodes to export")
    first = ds[0]
    height, width = first.images.shape[1:3]
    target = Path(out_dir) / name / version
    with atomic_dir(target, overwrite) as tmp:
        shards, written = _write_shards(ds, tmp, name, image_format, shard_size_mb, first.images.shape[1:])
        write_json(tmp / "features.json", features_json(height, width, image_format))
        write_json(tmp / "dataset_statistics.json", openvla_statistics(ds, name, len(ds), written.transitions))
        write_json(tmp / "vla_ood_envs.json", {
            "name": name, "version": version, "env_id": first.env_id, "source": str(ds.root.resolve()),
            "image_format": image_format, "conventions": spec.metadata(), "seeds": ds.seeds,
            "manifests": written.manifests,
        })
        # Last: TFDS treats a folder with dataset_info.json as a finished dataset.
        write_json(tmp / "dataset_info.json",
                   dataset_info_json(name, version, first.env_id, shards.lengths, shards.num_bytes))
    return target
