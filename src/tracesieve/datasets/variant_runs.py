"""Kedro datasets that write into a variant's child MLflow run (``tracesieve.tracking``) instead of the
kedro run's own: the variant's metrics under plain names (``accuracy``, not ``full_sft.accuracy``) and its
generations and training log as artifacts. Locally they save and load exactly as the dataset they wrap.

Nothing is logged where there is no active run (tracking off for the pipeline, a notebook without a run).
"""

from __future__ import annotations

import time
from pathlib import PurePath
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from kedro.io.core import parse_dataset_definition
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from tracesieve import tracking


class VariantMetricsDataset(AbstractDataset):
    """Metrics in kedro-mlflow's shape (``{name: {"value", "step"}}`` or a list of those for a curve),
    logged into the child run of ``variant`` under their own names.

    ``split_by_variant: true`` reads the first name component as the variant instead
    (``selective_sft.accuracy_diff_vs_full_sft`` -> ``accuracy_diff_vs_full_sft`` in ``selective_sft``'s run):
    for a table of every variant's figures, such as the comparison with the reference variant.

    Not a subclass of kedro-mlflow's metrics dataset: its hook replaces every unprefixed one in the catalog
    with a plain one logging to the parent run.
    """

    def __init__(self, variant: str | None = None, split_by_variant: bool = False, metadata: dict[str, Any] | None = None):
        if (variant is None) == (not split_by_variant):
            raise ValueError("VariantMetricsDataset: give either variant or split_by_variant: true")
        self._variant = variant
        self._split = split_by_variant
        self.metadata = metadata

    def save(self, data: dict[str, Any]) -> None:
        if tracking.parent_run_id() is None:
            return  # tracking is off for this run
        by_variant: dict[str, list[Metric]] = {}
        timestamp = int(time.time() * 1000)
        for name, value in data.items():
            variant, metric = name.split(".", 1) if self._split else (self._variant, name)
            points = value if isinstance(value, list) else [value]
            by_variant.setdefault(variant, []).extend(Metric(metric, float(point["value"]), timestamp, int(point.get("step", 0))) for point in points)
        client = MlflowClient()
        for variant, metrics in by_variant.items():
            run_id = tracking.variant_run_id(variant)
            for first in range(0, len(metrics), 1000):  # MLflow takes at most 1,000 metrics per batch
                client.log_batch(run_id, metrics=metrics[first : first + 1000])

    def load(self) -> dict[str, Any]:
        """The variant's metrics as saved (histories as lists), read back from its child run."""
        if self._split:
            raise DatasetError("a split_by_variant metrics dataset is write-only: read each variant's run instead")
        run_id = tracking.variant_run_id(self._variant)
        if run_id is None:
            raise DatasetError(f"no MLflow run is active, so there is no {self._variant} run to read metrics from")
        client = MlflowClient()
        metrics = {}
        for name in client.get_run(run_id).data.metrics:
            history = [{"value": point.value, "step": point.step} for point in client.get_metric_history(run_id, name)]
            metrics[name] = history if len(history) > 1 else history[0]
        return metrics

    def _describe(self) -> dict[str, Any]:
        return {"variant": self._variant, "split_by_variant": self._split}


class VariantArtifactDataset(AbstractDataset):
    """A file dataset (``dataset``: its kedro config) whose saves are also logged under ``artifact_path``
    in the child run of ``variant``. Loads read the local file."""

    def __init__(self, variant: str, dataset: dict[str, Any], artifact_path: str | None = None, metadata: dict[str, Any] | None = None):
        dataset_class, dataset_args = parse_dataset_definition(config=dataset)
        self._dataset = dataset_class(**dataset_args)
        self._variant = variant
        self._artifact_path = artifact_path
        self.metadata = metadata

    def load(self) -> Any:
        return self._dataset.load()

    def save(self, data: Any) -> None:
        self._dataset.save(data)
        if (run_id := tracking.variant_run_id(self._variant)) is not None:
            MlflowClient().log_artifact(run_id, str(PurePath(self._dataset._filepath)), self._artifact_path)

    def _exists(self) -> bool:
        return self._dataset.exists()

    def _describe(self) -> dict[str, Any]:
        return {"variant": self._variant, "artifact_path": self._artifact_path, "dataset": self._dataset._describe()}
