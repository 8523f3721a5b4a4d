"""`kedro run` and `kedro viz build` as a user runs them, in a temporary copy of the project."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import tiny_world_params

PROJECT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with a tiny world in conf/local and its own MLflow store."""
    root = tmp_path_factory.mktemp("project")
    shutil.copy(PROJECT / "pyproject.toml", root)
    shutil.copytree(PROJECT / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(PROJECT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    params = tiny_world_params(root / "data")
    params["checkpoint_dir"] = "data/06_models/checkpoints"
    (root / "conf" / "local" / "parameters_world.yml").write_text(yaml.safe_dump({"world": params}))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "1"}
    return root, env


@pytest.mark.slow
def test_kedro_run_logs_one_mlflow_run_with_every_stage(project):
    root, env = project
    result = subprocess.run([str(BIN / "kedro"), "run"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (root / "data/01_raw/world_traces.jsonl").is_file()
    assert (root / "data/06_models/teacher/model.safetensors").is_file()

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["tracesieve"], output_format="list")
    assert len(runs) == 1  # one MLflow run per kedro run
    run = runs[0]
    metrics, params = run.data.metrics, run.data.params
    assert metrics["world.problems_eval"] == 10
    assert 0 <= metrics["teacher.heldout_accuracy"] <= 1 and 0 <= metrics["student.heldout_accuracy"] <= 1
    assert metrics["ingestion.records_read"] == metrics["ingestion.traces_accepted"] == 12
    assert params["world.teacher.hidden_size"] == "32"
    assert metrics["attribution.traces_attributed"] + metrics.get("attribution.traces_rejected", 0) == 12
    assert metrics["segmentation.segments"] >= 12
    assert 0 < metrics["selection.paper.token_share_mean"] <= metrics["selection.all.token_share_mean"] == 1
    assert 0 <= metrics["planted_roles.auroc_strength_share_necessary_vs_filler"] <= 1
    assert 0 <= metrics["planted_roles.necessary.selected_share_paper"] <= 1
    client = mlflow.MlflowClient()
    folders = ("world", "ingestion", "attribution", "segmentation", "selection", "planted_roles", "models/teacher")
    artifacts = {item.path for folder in folders for item in client.list_artifacts(run.info.run_id, folder)}
    assert {"world/world_sample_traces.md", "world/world_problems.parquet", "ingestion/traces.parquet"} <= artifacts
    assert {
        "attribution/token_attributions.parquet",
        "attribution/attribution_diagnostics.csv",
        "attribution/attribution_rejects.csv",
        "segmentation/segments.parquet",
        "selection/segment_metrics.parquet",
        "selection/selections.parquet",
        "planted_roles/planted_roles.csv",
    } <= artifacts
    assert "models/teacher/model.safetensors" in artifacts
    assert (root / "mlflow.db").is_file()  # the run went to the store named by MLFLOW_TRACKING_URI

    # A rerun with unchanged settings resumes from the finished checkpoints instead of retraining.
    rerun = subprocess.run([str(BIN / "kedro"), "run", "--pipeline", "world"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming training from" in rerun.stdout + rerun.stderr

    # Any stage runs on its own from the catalog's saved inputs, including the composite from_traces.
    alone = subprocess.run([str(BIN / "kedro"), "run", "--pipeline", "from_traces"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert alone.returncode == 0, alone.stdout[-3000:] + alone.stderr[-3000:]
    latest = mlflow.search_runs(experiment_names=["tracesieve"], order_by=["start_time DESC"], output_format="list")[0]
    assert latest.data.metrics["attribution.traces_resumed"] == 12  # the store served every finished trace
    assert latest.data.metrics.get("attribution.traces_computed", 0) == 0


def test_kedro_viz_build_shows_the_pipelines(project):
    root, env = project
    result = subprocess.run([str(BIN / "kedro"), "viz", "build"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    main = json.loads((root / "build" / "api" / "main").read_text())
    pipelines = {pipeline["id"] for pipeline in main["pipelines"]}
    assert {"__default__", "world", "ingestion", "attribution", "segmentation", "selection", "planted_roles", "from_traces"} <= pipelines
    names = {node["name"] for node in main["nodes"]}
    assert {"generate_world", "ingest_traces", "attribute_trace_tokens", "segment_traces", "select_loss_segments"} <= names
    layers = set(main["layers"])
    assert {"raw", "intermediate", "primary", "feature", "model_input", "models", "reporting"} <= layers
