"""Finished per-trace results on disk, so a long stage killed part-way resumes where it was.

Attribution and LeaF's gradient comparison write each trace's result as soon as it is done. Results live
under a folder named by the run's fingerprint (``content_keys.content_key`` of the model weights, the
tokenizer and the settings) and are named by ``content_keys.trace_key``: a changed model, setting or trace
is never served a stale result.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

logger = logging.getLogger(__name__)


@dataclass(kw_only=True)
class ResumableResult:
    """What every resumable per-trace stage returns beside its table: the traces it rejected, with their
    reasons, and how many traces the store served (``resumed``) and how many were computed now."""

    rejects: pd.DataFrame
    resumed: int
    computed: int


class ResultStore:
    """One Parquet file per finished trace. Each file is written to a temporary name and renamed, so a
    crash never leaves half a file."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _file(self, fingerprint: str, key: str) -> Path:
        return self.root / fingerprint / f"{key}.parquet"

    def has(self, fingerprint: str, key: str) -> bool:
        return self._file(fingerprint, key).is_file()

    def load(self, fingerprint: str, key: str) -> dict | None:
        file = self._file(fingerprint, key)
        return pq.read_table(file).to_pylist()[0] if file.is_file() else None

    def finished(self, fingerprint: str, keys: list[str], stage: str) -> dict[str, dict]:
        """The stored records among ``keys``, by key: what a resumed stage does not compute again (logged)."""
        done = {key: record for key in keys if (record := self.load(fingerprint, key)) is not None}
        if done:
            logger.info("Resuming %s: %d of %d traces already done in %s", stage, len(done), len(keys), self.root / fingerprint)
        return done

    def save(self, fingerprint: str, key: str, record: dict) -> None:
        file = self._file(fingerprint, key)
        file.parent.mkdir(parents=True, exist_ok=True)
        partial = file.with_suffix(".partial")
        pq.write_table(pa.Table.from_pylist([record]), partial)
        os.replace(partial, file)
