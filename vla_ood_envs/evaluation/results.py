"""The results file of an evaluation run: one JSON line per episode, appended as episodes finish.

Each append is one `write` of a whole line followed by flush and fsync, so a crash loses at most the line being
written; a reader ignores a last line without its newline (and `repair` cuts it off before a resumed run appends).
When a run completes, the file is rewritten in a canonical order (condition, seed index, episode index) through a
temporary file and an atomic rename, so an interrupted-and-resumed run ends with the same bytes as one that ran
through. Where a key appears twice (an abandoned episode retried), the later line wins.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable

RESULTS = "results.jsonl"
RUN = "run.json"


def episode_key(condition: str, seed_index: int, episode_index: int) -> str:
    return f"{condition}/s{seed_index}/e{episode_index}"


def read_records(path: Path) -> list[dict]:
    """Complete lines of a results file, the last record per key kept (in file order of their last write)."""
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n")
    records: dict[str, dict] = {}
    for line in data[: end + 1].splitlines():
        if line.strip():
            rec = json.loads(line)
            records.pop(rec["key"], None)
            records[rec["key"]] = rec
    return list(records.values())


def repair(path: Path) -> int:
    """Cut off a partial last line (an interrupted append); returns the bytes removed."""
    path = Path(path)
    if not path.is_file():
        return 0
    size = path.stat().st_size
    with open(path, "rb+") as f:
        data = f.read()
        end = data.rfind(b"\n") + 1
        if end < size:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
    return size - end


class ResultsWriter:
    """Appends records to a results file, one durable line each."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair(self.path)
        self._f = open(self.path, "ab")

    def append(self, record: dict) -> None:
        line = (json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=True) + "\n").encode()
        self._f.write(line)
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def rewrite_sorted(path: Path, sort_key: Callable[[dict], tuple]) -> list[dict]:
    """Rewrite the file with one line per key in `sort_key` order (atomic); returns the records."""
    path = Path(path)
    records = sorted(read_records(path), key=sort_key)
    write_lines_atomic(path, (json.dumps(r, sort_keys=True, separators=(",", ":"), allow_nan=True)
                              for r in records))
    return records


def write_lines_atomic(path: Path, lines: Iterable[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        for line in lines:
            f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
