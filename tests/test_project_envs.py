"""`kedro viz build` and the paper env's checks, as a user runs them in a temporary copy of the project: neither
needs a run first, so they sit apart from test_project_run.py's module-wide run (a file is one worker's)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import copy_project

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project as checked out, with its own MLflow store."""
    root = tmp_path_factory.mktemp("project")
    copy_project(root)
    return root, {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "1"}


@pytest.mark.e2e
def test_kedro_viz_build_shows_the_pipelines(project):
    root, env = project
    result = subprocess.run([str(BIN / "kedro"), "viz", "build"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    main = json.loads((root / "build" / "api" / "main").read_text())
    pipelines = {pipeline["id"] for pipeline in main["pipelines"]}
    assert {
        "__default__", "world", "ingestion", "attribution", "segmentation", "selection", "planted_roles", "faithfulness", "from_traces",
        "fine_tuning", "evaluation", "reporting", "leaf",
    } <= pipelines
    names = {node["name"] for node in main["nodes"]}
    assert {"generate_world", "ingest_traces", "attribute_trace_tokens", "segment_traces", "select_loss_segments"} <= names
    assert {"compare_teacher_student_gradients", "build_counterfactuals", "check_counterfactuals", "compare_distillation"} <= names
    # Each variant is a collapsible namespace holding its training and its evaluation.
    assert {"full_sft", "selective_sft", "random_sft", "base", "teacher", "student", "kd", "leaf_distilled"} <= set(main["modular_pipelines"])
    assert main["modular_pipelines"]["selective_sft"]["children"]
    layers = set(main["layers"])
    assert {"raw", "intermediate", "primary", "feature", "model_input", "models", "reporting"} <= layers


@pytest.mark.e2e
def test_the_paper_environment_validates_and_names_its_missing_model_folders(project):
    """Without the papers' checkpoints, `kedro run --env paper` (its default pipeline is from_traces) stops
    before any work and says which folders are missing; the world, which would train into those read-only
    folders, is refused too."""
    root, env = project
    wide = {**env, "COLUMNS": "400"}  # rich wraps long lines at the terminal width
    result = subprocess.run([str(BIN / "kedro"), "run", "--env", "paper"], cwd=root, env=wide, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "This run (env paper) cannot start" in output
    assert "Parameter validation failed" not in output  # the papers' settings pass every schema
    for name, folder in (
        ("teacher.model", "DeepSeek-R1-Distill-Qwen-1.5B"), ("student.model", "DeepSeek-R1-Distill-Qwen-1.5B"),
        ("leaf_teacher.model", "Llama-3.1-8B-Instruct"), ("leaf_student.model", "Llama-3.2-1B-Instruct"),
    ):
        assert f"{name}: no folder at {root / 'data/06_models/paper' / folder}" in output
    assert "raw_traces: no trace file matches" in output
    everything = subprocess.run([str(BIN / "kedro"), "run", "--env", "paper", "--pipeline", "world"], cwd=root, env=wide, capture_output=True, text=True, timeout=300)
    assert everything.returncode != 0
    assert "teacher.model: this pipeline would overwrite it, but it is read-only" in everything.stdout + everything.stderr
    assert not (root / "data/06_models/paper").exists()  # nothing was written
