"""A `kedro run` that is killed or fails leaves its MLflow run ended, never RUNNING, with the node it was in."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from tests.conftest import copy_project, tiny_world_params

BIN = Path(sys.executable).parent


@pytest.mark.slow
def test_a_killed_kedro_run_ends_its_mlflow_run_as_killed(tmp_path):
    copy_project(tmp_path)
    params = tiny_world_params(tmp_path / "data")
    params["teacher"]["train_steps"] = 100_000  # a node that is surely still running when the signal comes
    (tmp_path / "conf" / "local" / "parameters_world.yml").write_text(yaml.safe_dump({"world": params}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "KEDRO_DISABLE_TELEMETRY": "1"}
    process = subprocess.Popen([str(BIN / "kedro"), "run", "--pipeline", "world"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    mlflow.set_tracking_uri(uri)
    try:
        # Kill it once the tokenizer node has finished (its timing is in MLflow) and the teacher trains.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            runs = []
            if (tmp_path / "mlflow.db").is_file():  # never created from here: the run's process owns the store
                try:
                    runs = mlflow.search_runs(experiment_names=["tracesieve"], output_format="list")
                except Exception:  # noqa: BLE001 - the run's process may still be migrating the store's schema
                    pass
            if runs and "node_seconds.build_world_tokenizer" in runs[0].data.metrics:
                time.sleep(5)  # into the teacher's training, the node after the tokenizer
                break
            time.sleep(1)
        assert process.poll() is None, "the run ended before it could be killed:\n" + process.stdout.read()[-3000:]
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0, output[-3000:]
    (run,) = mlflow.search_runs(experiment_names=["tracesieve"], output_format="list")
    assert run.info.status == "KILLED", output[-3000:]
    assert run.data.tags["stopped_by"] == "SIGTERM" and run.data.tags["stopped_at_node"] == "teacher.train_warmup_model", run.data.tags
    assert "ended as KILLED" in " ".join(output.split())  # the console handler wraps long lines
