"""Shared fixtures. MLflow tracking is redirected to a temporary store: tests never touch the user's mlflow.db."""

from __future__ import annotations

import os

import pytest

os.environ["KEDRO_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(autouse=True, scope="session")
def isolated_mlflow(tmp_path_factory):
    """Point MLflow at a throwaway SQLite store for the whole session."""
    store = tmp_path_factory.mktemp("mlflow")
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    yield store
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


def tiny_world_params(tmp_path) -> dict:
    """World parameters small enough to train and evaluate in seconds."""
    return {
        "seed": 3,
        "n_train": 64,
        "n_traces": 12,
        "n_eval": 10,
        "n_sample_traces": 2,
        "problems": {"min_steps": 2, "max_steps": 2, "max_value": 20},
        "teacher": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "train_steps": 4, "batch_size": 8},
        "student": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "train_steps": 2, "batch_size": 8},
        "max_new_tokens": 24,
        "eval_batch_size": 5,
        "checkpoint_dir": str(tmp_path / "checkpoints"),
    }


@pytest.fixture
def world_params(tmp_path) -> dict:
    return tiny_world_params(tmp_path)
