"""A folder where a long node keeps its finished per-trace results, handed to the node as a store object.

The node gets a ``ResultStore`` (``load``) and writes each trace's result into it as soon as it is done,
so a killed ``kedro run`` resumes without redoing finished traces. The folder's location is the catalog's
business, per environment; the node never sees a path. There is nothing to ``save``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from tracesieve.result_store import ResultStore


class ResultStoreDataset(AbstractDataset):
    def __init__(self, path: str, metadata: dict[str, Any] | None = None):
        self._path = path
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"path": self._path}

    def load(self) -> ResultStore:
        return ResultStore(Path(self._path))

    def save(self, data: Any) -> None:
        raise DatasetError(f"The result store at {self._path!r} is written trace by trace by its node, not saved.")

    def _exists(self) -> bool:
        return True
