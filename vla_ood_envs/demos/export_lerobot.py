"""Export a native demonstration dataset to the LeRobot dataset format, codebase version "v3.0".

Layout written (the one LeRobot >= 0.4 reads; paths relative to the export folder):

    meta/info.json                                   schema, totals, path templates
    meta/stats.json                                  per-feature min/max/mean/std/count/q01..q99 over all frames
    meta/tasks.parquet                               one row per task: index "task" (the instruction), task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode: tasks, length, frame range, file
                                                     location, per-episode stats ("stats/<feature>/<stat>")
    data/chunk-CCC/file-FFF.parquet                  one row per frame, one row group per episode; a new file
                                                     starts when the current one would pass
                                                     `data_files_size_in_mb`, a new chunk every 1000 files
    meta/vla_ood_envs.json                           provenance: the native seed and manifest of each episode
                                                     (an extra file; LeRobot ignores it)
    README.md                                        a minimal Hub dataset card

Images are stored in the parquet files as Hugging Face `datasets` Image values ({bytes: PNG, path}), which LeRobot
calls an "image" feature (as opposed to "video", which would need an MP4 encoder). PNG is lossless, so a decoded
frame equals the native one exactly.

Only pyarrow, pillow and numpy are used: neither `lerobot` nor `datasets` nor `pandas` is imported. The schema
metadata those libraries rely on (the "huggingface" feature types of the data files, the "pandas" index of
tasks.parquet) is written by hand.

The export is built in a hidden sibling folder and renamed into place at the end, so a folder at `out_dir` is always
a complete export.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from .. import spec
from ..errors import ConfigError, DatasetError
from .store import DemoDataset, Episode, atomic_dir

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # LeRobot's default: at most this many files per chunk folder
DATA_FILES_SIZE_IN_MB = 100  # LeRobot's defaults for when to start a new data / video file
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
# info.json's robot_type for each of the envs' robots (the manifest's "robot"; datasets made before it was
# recorded are the Panda's).
ROBOT_TYPES = {"panda_vla": "panda", "widowx250s_vla": "widowx"}

IMAGE_KEY = "observation.image"
STATE_NAMES = list(spec.PROPRIO_NAMES)  # the `names` of info.json's features (lists, as JSON reads them back)
ACTION_NAMES = list(spec.ACTION_NAMES)
# info.json's own key for what the names do not say (units, rotation convention, gripper sign): spec.metadata().
CONVENTIONS_KEY = "vla_ood_envs_conventions"
# Frame-level columns LeRobot adds to every dataset (its DEFAULT_FEATURES), in its order.
INDEX_FEATURES = {
    "timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64", "task_index": "int64",
}


# ---------------------------------------------------------------- schema

def lerobot_features(height: int, width: int) -> dict[str, dict]:
    """The `features` entry of info.json: user features first, then LeRobot's index columns (its order)."""
    scalar = lambda dtype: {"dtype": dtype, "shape": [1], "names": None}  # noqa: E731
    features = {
        IMAGE_KEY: {"dtype": "image", "shape": [height, width, 3], "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": list(STATE_NAMES)},
        "action": {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": list(ACTION_NAMES)},
        # The native reward and success are "after the action", i.e. what LeRobot names next.*.
        "next.reward": scalar("float32"),
        "next.success": scalar("bool"),
    }
    features.update({key: scalar(dtype) for key, dtype in INDEX_FEATURES.items()})
    return features


def _arrow_type(ft: dict) -> pa.DataType:
    if ft["dtype"] == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    value = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
    return value if ft["shape"] == [1] else pa.list_(value, ft["shape"][0])  # fixed-size list, as `datasets` does


def _hf_feature(ft: dict) -> dict:
    """The `datasets` (>= 4) serialisation of the feature type LeRobot maps `ft` to when it loads the data files."""
    if ft["dtype"] == "image":
        return {"_type": "Image"}
    value = {"dtype": ft["dtype"], "_type": "Value"}
    return value if ft["shape"] == [1] else {"feature": value, "length": ft["shape"][0], "_type": "List"}


def data_schema(features: dict[str, dict]) -> pa.Schema:
    """Arrow schema of the data files, with the metadata `datasets` reads to know the image column is an Image."""
    hf = {"info": {"features": {key: _hf_feature(ft) for key, ft in features.items()}}}
    return pa.schema([pa.field(key, _arrow_type(ft)) for key, ft in features.items()],
                     metadata={"huggingface": json.dumps(hf)})


# ---------------------------------------------------------------- statistics

def _quantile_from_histogram(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """np.quantile's default (linear) interpolation, computed from a histogram of exact values."""
    n = int(counts.sum())
    pos = q * (n - 1)
    lo = int(np.floor(pos))
    cum = np.cumsum(counts)
    v_lo = values[np.searchsorted(cum, lo, side="right")]
    v_hi = values[np.searchsorted(cum, min(lo + 1, n - 1), side="right")]
    return float(v_lo + (pos - lo) * (v_hi - v_lo))


def vector_stats(x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-dimension stats of (N,) or (N, D) values, shaped like LeRobot's: (1,) for scalars, (D,) for vectors.

    Exact quantiles (LeRobot approximates them with histograms); population std, as LeRobot."""
    x = x.reshape(len(x), -1)
    if x.dtype == bool:
        x = x.astype(np.float32)  # LeRobot promotes bools to floats too
    f = x.astype(np.float64)
    stats = {"min": x.min(0), "max": x.max(0), "mean": f.mean(0), "std": f.std(0), "count": np.array([len(x)])}
    stats.update({key: np.quantile(f, q, axis=0) for key, q in QUANTILES.items()})
    return stats


def image_histogram(images: np.ndarray) -> np.ndarray:
    """(3, 256) pixel-value counts per channel of (T, H, W, 3) uint8 images: exact stats without keeping frames."""
    return np.stack([np.bincount(images[..., c].ravel(), minlength=256) for c in range(images.shape[-1])])


def image_stats(hist: np.ndarray, frames: int) -> dict[str, np.ndarray]:
    """Per-channel stats of uint8 images from their histogram, scaled to [0, 1] and shaped (3, 1, 1) like LeRobot's.

    `count` is the number of frames (LeRobot counts the frames it sampled; here every frame is used)."""
    values = np.arange(hist.shape[1], dtype=np.float64) / 255.0
    out: dict[str, list[float]] = {key: [] for key in ("min", "max", "mean", "std", *QUANTILES)}
    for counts in hist:
        present = values[counts > 0]
        mean = float((values * counts).sum() / counts.sum())
        out["min"].append(float(present.min()))
        out["max"].append(float(present.max()))
        out["mean"].append(mean)
        out["std"].append(float(np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum())))
        for key, q in QUANTILES.items():
            out[key].append(_quantile_from_histogram(values, counts, q))
    stats = {key: np.array(v).reshape(-1, 1, 1) for key, v in out.items()}
    stats["count"] = np.array([frames])
    return stats


def _order(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: stats[key] for key in ("min", "max", "mean", "std", "count", *QUANTILES)}


def _jsonable(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, list]]:
    return {feature: {key: v.tolist() for key, v in _order(s).items()} for feature, s in stats.items()}


# ---------------------------------------------------------------- per-episode tables

def _png(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")  # lossless: the decoded frame equals the native one
    return buf.getvalue()


def episode_columns(ep: Episode, episode_index: int, first_index: int, task_index: int, fps: int) -> dict:
    """The frame-level values of one episode, keyed by feature (numpy arrays; images as uint8 frames)."""
    t = len(ep)
    frame_index = np.arange(t, dtype=np.int64)
    return {
        IMAGE_KEY: ep.images,
        "observation.state": ep.proprio.astype(np.float32),
        "action": ep.actions.astype(np.float32),
        "next.reward": ep.rewards.astype(np.float32),
        "next.success": ep.success.astype(bool),
        "timestamp": (frame_index / fps).astype(np.float32),
        "frame_index": frame_index,
        "episode_index": np.full(t, episode_index, dtype=np.int64),
        "index": first_index + frame_index,
        "task_index": np.full(t, task_index, dtype=np.int64),
    }


def episode_table(columns: dict[str, np.ndarray], schema: pa.Schema) -> pa.Table:
    arrays = []
    for field in schema:
        x = columns[field.name]
        if field.name == IMAGE_KEY:
            # `path` is the frame's file name, as LeRobot leaves it after embedding the PNG bytes.
            arrays.append(pa.array([{"bytes": _png(f), "path": f"frame-{i:06d}.png"} for i, f in enumerate(x)],
                                   type=field.type))
        elif pa.types.is_fixed_size_list(field.type):
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), field.type.value_type),
                                                            field.type.list_size))
        else:
            arrays.append(pa.array(x, type=field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def episode_stats(columns: dict[str, np.ndarray]) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray]:
    """Per-feature stats of one episode, and the episode's image histogram (to aggregate exact dataset stats)."""
    hist = image_histogram(columns[IMAGE_KEY])
    stats = {key: image_stats(hist, len(x)) if key == IMAGE_KEY else vector_stats(x) for key, x in columns.items()}
    return stats, hist


# ---------------------------------------------------------------- data files

class DataFiles:
    """Writes episode tables into data/chunk-CCC/file-FFF.parquet, one row group per episode, starting a new file
    when the current one would pass the size limit (uncompressed Arrow bytes; PNG data barely compresses)."""

    def __init__(self, root: Path, schema: pa.Schema, size_limit_mb: int, chunks_size: int = CHUNKS_SIZE):
        self.root, self.schema = root, schema
        self.limit = size_limit_mb * 1024 ** 2
        self.chunks_size = chunks_size
        self.chunk, self.file, self.bytes = 0, 0, 0
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> tuple[int, int]:
        """Append one episode; returns the (chunk_index, file_index) it went to."""
        if self.writer is not None and self.bytes + table.nbytes >= self.limit:
            self.close()
            self.file += 1
            if self.file == self.chunks_size:
                self.chunk, self.file = self.chunk + 1, 0
        if self.writer is None:
            path = self.root / DATA_PATH.format(chunk_index=self.chunk, file_index=self.file)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writer = pq.ParquetWriter(path, self.schema, compression="snappy")
            self.bytes = 0
        self.writer.write_table(table, row_group_size=max(len(table), 1))
        self.bytes += table.nbytes
        return self.chunk, self.file

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# ---------------------------------------------------------------- metadata files

def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False) + "\n")


def write_tasks(root: Path, tasks: list[str]) -> None:
    """meta/tasks.parquet as pandas writes a DataFrame indexed by "task" with a "task_index" column: LeRobot reads
    it with pandas and looks the task string up as the row's index label, so the pandas index metadata matters."""
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
    }
    schema = pa.schema([("task_index", pa.int64()), ("task", pa.string())],
                       metadata={"pandas": json.dumps(pandas_meta)})
    table = pa.Table.from_arrays([pa.array(range(len(tasks)), pa.int64()), pa.array(tasks, pa.string())],
                                 schema=schema)
    path = root / "meta" / "tasks.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def write_episodes(root: Path, rows: list[dict]) -> None:
    """meta/episodes/chunk-000/file-000.parquet: one row per episode (always one file: it is small)."""
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    path = root / EPISODES_PATH.format(chunk_index=0, file_index=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict(columns), path, compression="snappy")


def episode_row(episode_index: int, task: str, length: int, first_index: int, location: tuple[int, int],
                stats: dict[str, dict[str, np.ndarray]]) -> dict:
    """One row of the episodes table, with the columns (and their order) LeRobot writes."""
    row = {
        "episode_index": episode_index,
        "tasks": [task],
        "length": length,
        "data/chunk_index": location[0],
        "data/file_index": location[1],
        "dataset_from_index": first_index,
        "dataset_to_index": first_index + length,
    }
    for feature, s in stats.items():
        row.update({f"stats/{feature}/{key}": v.tolist() for key, v in _order(s).items()})
    row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
    return row


def info_json(features: dict, fps: int, episodes: int, frames: int, tasks: int, data_mb: int,
              robot_type: str = ROBOT_TYPES["panda_vla"]) -> dict:
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": episodes,
        "total_frames": frames,
        "total_tasks": tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": data_mb,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": fps,
        "splits": {"train": f"0:{episodes}"},
        "data_path": DATA_PATH,
        "video_path": None,  # what LeRobot writes for a dataset without video features
        "features": features,
        # An extra top-level key (LeRobot reads the keys it knows and keeps the rest): "action" and
        # "observation.state" in the spec's words.
        CONVENTIONS_KEY: {"action": spec.metadata()["action"], "observation.state": spec.metadata()["proprio"]},
    }


def dataset_card(repo_id: str, env_id: str, info: dict) -> str:
    return (
        "---\ntask_categories:\n- robotics\ntags:\n- LeRobot\n- vla_ood_envs\n"
        "configs:\n- config_name: default\n  data_files: data/*/*.parquet\n---\n\n"
        f"# {repo_id}\n\nScripted-expert demonstrations of `{env_id}` (vla_ood_envs), exported to the LeRobot "
        f"dataset format {CODEBASE_VERSION}.\n\n[meta/info.json](meta/info.json):\n\n```json\n"
        f"{json.dumps(info, indent=4)}\n```\n"
    )


# ---------------------------------------------------------------- atomic output

# ---------------------------------------------------------------- export

class _Totals:
    """What the dataset-level files need, gathered episode by episode (frames are not kept: images go into a
    histogram, the small numeric columns are kept to compute exact dataset stats)."""

    def __init__(self) -> None:
        self.tasks: dict[str, int] = {}
        self.rows: list[dict] = []
        self.seeds: list[int] = []
        self.manifests: list[dict] = []
        self.numeric: dict[str, list[np.ndarray]] = {}
        self.hist = np.zeros((3, 256), dtype=np.int64)
        self.frames = 0

    def add(self, ep: Episode, columns: dict[str, np.ndarray], hist: np.ndarray, row: dict) -> None:
        for key, x in columns.items():
            if key != IMAGE_KEY:
                self.numeric.setdefault(key, []).append(x)
        self.hist += hist
        self.rows.append(row)
        self.frames += len(ep)
        self.seeds.append(ep.seed)
        self.manifests.append(ep.manifest)

    def dataset_stats(self, features: dict) -> dict[str, dict[str, np.ndarray]]:
        """Computed over all frames at once (exact), not aggregated from the episodes' stats as LeRobot does."""
        stats = {key: vector_stats(np.concatenate(xs)) for key, xs in self.numeric.items()}
        stats[IMAGE_KEY] = image_stats(self.hist, self.frames)
        return {key: stats[key] for key in features}


def _write_data(ds: DemoDataset, root: Path, features: dict, fps: int, data_files_size_in_mb: int) -> _Totals:
    """Write the data files episode by episode (one episode in memory at a time)."""
    schema = data_schema(features)
    shape = tuple(features[IMAGE_KEY]["shape"])
    files = DataFiles(root, schema, data_files_size_in_mb)
    totals = _Totals()
    try:
        for episode_index in range(len(ds)):
            ep = ds[episode_index]
            if ep.images.shape[1:] != shape:
                raise DatasetError(f"episode seed {ep.seed}: image shape {ep.images.shape[1:]} differs from {shape}; "
                                 f"a LeRobot image feature has one shape")
            task_index = totals.tasks.setdefault(ep.instruction, len(totals.tasks))
            columns = episode_columns(ep, episode_index, totals.frames, task_index, fps)
            location = files.write(episode_table(columns, schema))
            stats, hist = episode_stats(columns)
            totals.add(ep, columns, hist, episode_row(episode_index, ep.instruction, len(ep), totals.frames,
                                                      location, stats))
    finally:
        files.close()
    return totals


def _write_meta(root: Path, totals: _Totals, features: dict, fps: int, data_files_size_in_mb: int, repo_id: str,
                env_id: str, source: Path) -> None:
    robots = {m.get("robot", "panda_vla") for m in totals.manifests}
    if len(robots) != 1:
        raise DatasetError(f"{source} mixes episodes of several robots {sorted(robots)}; export one robot's at a time")
    info = info_json(features, fps, len(totals.rows), totals.frames, len(totals.tasks), data_files_size_in_mb,
                     ROBOT_TYPES[robots.pop()])
    write_episodes(root, totals.rows)
    write_tasks(root, list(totals.tasks))
    write_json(root / "meta" / "stats.json", _jsonable(totals.dataset_stats(features)))
    write_json(root / "meta" / "vla_ood_envs.json", {
        "repo_id": repo_id, "env_id": env_id, "source": str(source), "seeds": totals.seeds,
        "manifests": totals.manifests,
    })
    (root / "README.md").write_text(dataset_card(repo_id, env_id, info))
    write_json(root / "meta" / "info.json", info)


def export_lerobot(dataset_root: str | Path, out_dir: str | Path, repo_id: str | None = None, fps: int = 5,
                   data_files_size_in_mb: int = DATA_FILES_SIZE_IN_MB, overwrite: bool = False) -> Path:
    """Export the native dataset at `dataset_root` to a LeRobot v3.0 dataset folder `out_dir`; return `out_dir`.

    `repo_id` (default "vla_ood_envs/<env_id>") only names the dataset in its card and provenance file: LeRobot
    takes the repo id as an argument, not from the files. `fps` is the control rate (5 Hz in this project);
    timestamps are frame_index / fps. Episodes keep the native dataset's order (ascending seed); episode i's
    seed is in meta/vla_ood_envs.json."""
    ds = DemoDataset(dataset_root)
    if len(ds) == 0:
        raise DatasetError(f"{dataset_root} has no episodes to export")
    if int(fps) != fps or fps <= 0 or data_files_size_in_mb <= 0:
        raise ConfigError("fps must be a positive integer and data_files_size_in_mb positive (LeRobot requires it)")
    repo_id = repo_id or f"vla_ood_envs/{ds.index['env_id']}"
    out_dir = Path(out_dir)
    first = ds[0]
    features = lerobot_features(*first.images.shape[1:3])
    with atomic_dir(out_dir, overwrite) as tmp:
        totals = _write_data(ds, tmp, features, int(fps), int(data_files_size_in_mb))
        _write_meta(tmp, totals, features, int(fps), int(data_files_size_in_mb), repo_id, first.env_id, ds.root)
    return out_dir
