"""`make experiment` as a user runs it, on a tiny plan: each seed a new world, a stopped run resumes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import tiny_world_params
from tracesieve.provenance import PROJECT_ROOT


@pytest.mark.e2e
def test_every_seed_draws_its_own_world_and_a_rerun_resumes_without_redoing_one(tmp_path):
    world = tiny_world_params(tmp_path) | {"checkpoint_dir": "data/06_models/checkpoints"}
    plan = {
        "dev_seeds": [1], "test_seeds": [5, 6], "regimes": ["silent"],
        "variants": ["full_sft", "selective_sft", "random_sft", "oracle_sft"],
        "controls": {"selective_sft": "random_sft"},
        "parameters": {
            "world": world,
            "fine_tuning": {"max_steps": 2, "batch_size": 4, "save_steps": 2, "logging_steps": 1},
            "evaluation": {"max_new_tokens": 16, "batch_size": 5},
            "leaf": {"check_max_new_tokens": 16, "check_batch_size": 5,
                     "distillation": {"max_steps": 2, "batch_size": 4, "save_steps": 2, "logging_steps": 1}},
        },
        "sampling": {"num_samples": 2, "temperature": 0.6, "top_p": 0.95, "pass_at_k": [1, 2], "max_problems": 4},
        "sampled_worlds_per_regime": 1,
    }
    (tmp_path / "plan.yml").write_text(yaml.safe_dump(plan))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "1"}
    command = [sys.executable, str(PROJECT_ROOT / "benchmarks/experiment.py"), "--plan", str(tmp_path / "plan.yml"),
               "--work", str(tmp_path / "work"), "--output", str(tmp_path / "experiment.json")]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1500, check=False)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    result = json.loads((tmp_path / "experiment.json").read_text())
    assert result["complete"] and set(result["worlds"]) == {"test-silent-5", "test-silent-6"}
    assert result["provenance"]["commit"] and result["plan_hash"] and result["test_seeds"] == [5, 6]
    assert all(world["wall_seconds"] > 0 for world in result["worlds"].values())

    # Each seed is a new world: other problems (the same ids, other gold answers), so other traces and models.
    five = pd.read_parquet(tmp_path / "work/test-silent-5/greedy/base.parquet").set_index("problem_id")["answer"]
    six = pd.read_parquet(tmp_path / "work/test-silent-6/greedy/base.parquet").set_index("problem_id")["answer"]
    assert list(five.index) == list(six.index) and (five != six).any()
    summary = result["by_regime"]["silent"]
    assert summary["greedy"]["selective_sft"]["worlds"] == 2 and "accuracy_vs_control" in summary["greedy"]["selective_sft"]
    assert summary["sampled_worlds"] == ["test-silent-5"]
    assert not (tmp_path / "work/test-silent-5/project/data").exists()  # models and stores go once read

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["tracesieve"], filter_string=f"tags.experiment = '{result['experiment']}'",
                              output_format="list")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert sorted(run.data.tags["experiment.world_seed"] for run in parents if run.data.tags["pipeline"] == "__default__") == ["5", "6"]

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0 and "kedro run ..." not in again.stdout  # every world finished: nothing reruns
