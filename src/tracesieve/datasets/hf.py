"""transformers models and tokenizers as Kedro datasets: local folders, safetensors, no remote code."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from tracesieve.modeling import load_causal_lm, load_tokenizer


def _log_folder_to_mlflow(path: Path, artifact_path: str | None, weights: bool = True, variant: str | None = None) -> None:
    """Log a saved folder to the active MLflow run, if there is one (kedro-mlflow opens it per kedro run),
    or with ``variant`` to that variant's child run (``tracesieve.tracking``).

    ``weights=False`` logs everything but the safetensors shards and tags the run with the folder instead:
    a real model's weights (hundreds of MB per variant and run) stay on disk, once.
    """
    if artifact_path is None:
        return
    from mlflow.tracking import MlflowClient

    from tracesieve import tracking

    run_id = tracking.variant_run_id(variant) if variant else tracking.parent_run_id()
    if run_id is None:
        return
    client = MlflowClient()
    if weights:
        client.log_artifacts(run_id, str(path), artifact_path)
        return
    for file in sorted(path.iterdir()):
        if file.is_file() and ".safetensors" not in file.name:
            client.log_artifact(run_id, str(file), artifact_path)
    client.set_tag(run_id, f"{artifact_path}.folder", str(path.resolve()))


class _FolderDataset(AbstractDataset):
    """A folder the pipelines read and, unless ``writable: false`` (a user's own checkpoint), write."""

    required_file = "config.json"

    def __init__(self, path: str, mlflow_artifact_path: str | None = None, metadata: dict[str, Any] | None = None, writable: bool = True):
        self._path = Path(path)
        self._mlflow_artifact_path = mlflow_artifact_path
        self.metadata = metadata
        self.writable = writable

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "mlflow_artifact_path": self._mlflow_artifact_path, "writable": self.writable}

    def _exists(self) -> bool:
        return self._path.is_dir()

    def missing(self) -> str | None:
        """Why the folder cannot be loaded (for a check before a run starts), or None when it can."""
        if not self._path.is_dir():
            return f"no folder at {self._path}"
        if not (self._path / self.required_file).is_file():
            return f"{self._path} has no {self.required_file}"
        return None

    def _replace_folder(self) -> None:
        if not self.writable:
            raise DatasetError(
                f"{self._path} is read-only (writable: false): it holds a model or tokenizer you provided. "
                "Run the pipelines that read it (e.g. --pipeline from_traces), not the world, which trains its own."
            )
        # Saving over an older model must not leave its stale shards beside the new ones.
        if self._path.exists():
            shutil.rmtree(self._path)
        self._path.mkdir(parents=True)


class HFModelDataset(_FolderDataset):
    """A causal LM folder written with ``save_pretrained`` (safetensors) and read with ``from_pretrained``.

    ``mlflow_weights: false`` keeps the weights out of MLflow (config, generation config and a tag naming
    the folder are logged): what real-size models want, where each variant's weights are hundreds of MB.
    ``attn_implementation`` defaults to ``sdpa``; ``eager`` is there for architectures without it.
    ``mlflow_variant`` logs the folder to that variant's child run instead of the kedro run's own.
    """

    def __init__(
        self,
        path: str,
        dtype: str = "float32",
        trust_remote_code: bool = False,
        mlflow_artifact_path: str | None = None,
        metadata: dict[str, Any] | None = None,
        writable: bool = True,
        mlflow_weights: bool = True,
        attn_implementation: str = "sdpa",
        mlflow_variant: str | None = None,
    ):
        super().__init__(path, mlflow_artifact_path, metadata, writable)
        self._mlflow_weights = mlflow_weights
        self._mlflow_variant = mlflow_variant
        self._attn_implementation = attn_implementation
        self._dtype = dtype
        self._trust_remote_code = trust_remote_code

    def load(self):
        return load_causal_lm(
            self._path, dtype=self._dtype, trust_remote_code=self._trust_remote_code, attn_implementation=self._attn_implementation
        )

    def save(self, model) -> None:
        self._replace_folder()
        model.save_pretrained(self._path, safe_serialization=True)
        _log_folder_to_mlflow(self._path, self._mlflow_artifact_path, weights=self._mlflow_weights, variant=self._mlflow_variant)


class HFTokenizerDataset(_FolderDataset):
    """A tokenizer folder written with ``save_pretrained``."""

    required_file = "tokenizer_config.json"

    def __init__(
        self,
        path: str,
        trust_remote_code: bool = False,
        mlflow_artifact_path: str | None = None,
        metadata: dict[str, Any] | None = None,
        writable: bool = True,
    ):
        super().__init__(path, mlflow_artifact_path, metadata, writable)
        self._trust_remote_code = trust_remote_code

    def load(self):
        return load_tokenizer(self._path, trust_remote_code=self._trust_remote_code)

    def save(self, tokenizer) -> None:
        self._replace_folder()
        tokenizer.save_pretrained(self._path)
        _log_folder_to_mlflow(self._path, self._mlflow_artifact_path)
