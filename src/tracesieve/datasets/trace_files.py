"""Raw reasoning-trace files as a Kedro dataset.

``load`` returns the raw records of every file under ``path`` (a file, a folder or a glob), for the
ingestion pipeline to validate. ``save`` writes records as one JSON Lines file and exists only for the
embedded world, which produces its traces as a raw file like any other source: it refuses to run unless
``writable: true``, so that a catalog entry pointing at a user's own trace files can never be overwritten.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from tracesieve.traces import RawRecord, find_trace_files, read_raw_records


class TraceFilesDataset(AbstractDataset):
    def __init__(self, path: str, writable: bool = False, metadata: dict[str, Any] | None = None):
        self._path = path
        self._writable = writable
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path, "writable": self._writable}

    def load(self) -> list[RawRecord]:
        return read_raw_records(self._path)

    def missing(self) -> str | None:
        """Why there is nothing to read (for a check before a run starts), or None when there is."""
        if self._writable or Path(self._path).exists() or glob.glob(self._path, recursive=True):
            return None
        return f"no trace file matches {self._path}"

    def save(self, records: list[dict[str, Any]]) -> None:
        if not self._writable:
            raise DatasetError(
                f"Trace files at {self._path!r} are read-only: they are inputs. Only the embedded world writes "
                "raw traces; run the pipelines after it (`kedro run --pipeline from_traces`) on your own files."
            )
        path = Path(self._path)
        if path.suffix != ".jsonl" or any(char in self._path for char in "*?["):
            raise DatasetError(f"A writable trace dataset must name one .jsonl file, not {self._path!r}.")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, never appended: a re-run replaces the file instead of duplicating its records.
        with path.open("w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _exists(self) -> bool:
        try:
            return bool(find_trace_files(self._path))
        except (FileNotFoundError, ValueError):
            return False
