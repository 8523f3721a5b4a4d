"""transformers models and tokenizers as Kedro datasets: local folders, safetensors, no remote code."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from tracesieve.lazy import lazy_module

modeling = lazy_module("tracesieve.modeling")  # torch, transformers: loaded when a model or tokenizer loads



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

    def _write_folder(self, write: Callable[[Path], None]) -> None:
        """``write`` fills a fresh folder beside the target, which then takes the target's place: a failed save
        (a full disk, an unwritable folder) stops the run naming the path and leaves the previous folder as it
        was, and a new model never has an older one's stale shards beside it."""
        if not self.writable:
            raise DatasetError(
                f"{self._path} is read-only (writable: false): it holds a model or tokenizer you provided. "
                "Run the pipelines that read it (e.g. --pipeline from_traces), not the world, which trains its own."
            )
        staging = self._path.with_name(f".{self._path.name}.saving-{os.getpid()}")
        previous = self._path.with_name(f".{self._path.name}.previous-{os.getpid()}")
        try:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            write(staging)
            if self._path.exists():
                self._path.rename(previous)
            staging.rename(self._path)
        except OSError as error:
            shutil.rmtree(staging, ignore_errors=True)
            if previous.exists() and not self._path.exists():
                previous.rename(self._path)  # the swap failed half-way: the previous folder goes back
            raise DatasetError(
                f"could not save {self._path}: {error.strerror or error} ({type(error).__name__}). The previous "
                f"{'folder is unchanged' if self._path.exists() else 'folder did not exist'}; free space or make the folder writable, then run again."
            ) from error
        shutil.rmtree(previous, ignore_errors=True)


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
        return modeling.load_causal_lm(
            self._path, dtype=self._dtype, trust_remote_code=self._trust_remote_code, attn_implementation=self._attn_implementation
        )

    def save(self, model) -> None:
        self._write_folder(lambda folder: model.save_pretrained(folder, safe_serialization=True))
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
        return modeling.load_tokenizer(self._path, trust_remote_code=self._trust_remote_code)

    def save(self, tokenizer) -> None:
        self._write_folder(tokenizer.save_pretrained)
        _log_folder_to_mlflow(self._path, self._mlflow_artifact_path)
