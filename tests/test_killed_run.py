"""A `kedro run` that is killed or fails leaves its MLflow run ended, never RUNNING, with the node it was in;
the rerun that continues it says so."""

import fcntl
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
from tracesieve import tracking

BIN = Path(sys.executable).parent


def _create_store(uri: str) -> None:
    """Make the MLflow store, schema and all, before any run starts: a run's process migrating a new SQLite
    store while this one reads it (and so migrates it too) fails one of the two migrations."""
    mlflow.set_tracking_uri(uri)
    mlflow.search_experiments()


def _parent_runs() -> list:
    """The store's kedro runs, newest first (none before the run has made its experiment)."""
    if mlflow.get_experiment_by_name("tracesieve") is None:
        return []
    runs = mlflow.search_runs(experiment_names=["tracesieve"], order_by=["attributes.start_time DESC"], output_format="list")
    return [run for run in runs if "mlflow.parentRunId" not in run.data.tags]


def _run_and_kill(root: Path, env: dict, ready, number: int) -> str:
    """Start `kedro run --pipeline world`, wait until ``ready(newest run)`` holds, then SIGTERM it."""
    process = subprocess.Popen([str(BIN / "kedro"), "run", "--pipeline", "world"], cwd=root, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            runs = _parent_runs()
            if len(runs) == number and ready(runs[0]):
                time.sleep(5)  # into the teacher's training
                break
            time.sleep(1)
        assert process.poll() is None, "the run ended before it could be killed:\n" + process.stdout.read()[-3000:]
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0, output[-3000:]
    return output


@pytest.mark.e2e
def test_a_killed_kedro_run_ends_its_mlflow_run_as_killed_and_its_rerun_is_tagged(tmp_path):
    copy_project(tmp_path)
    params = tiny_world_params(tmp_path / "data")
    params["teacher"]["train_steps"] = 100_000  # a node that is surely still running when the signal comes
    (tmp_path / "conf" / "local" / "parameters_world.yml").write_text(yaml.safe_dump({"world": params}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "KEDRO_DISABLE_TELEMETRY": "1"}
    _create_store(uri)
    # Killed once the nodes before the warm-ups have finished (their timings are in MLflow) and the teacher trains:
    # waiting for the tokenizer alone left summarize_world running when the machine was loaded (a CI run).
    before_warmups = ("build_world_tokenizer", "summarize_world")
    output = _run_and_kill(tmp_path, env, lambda run: all(f"node_seconds.{node}" in run.data.metrics for node in before_warmups), number=1)
    run = tracking.latest_kedro_run()
    assert run.info.status == "KILLED", output[-3000:]
    assert run.data.tags["stopped_by"] == "SIGTERM" and run.data.tags["stopped_at_node"] == "teacher.train_warmup_model", run.data.tags
    assert tracking.variant_runs(run.info.run_id)["teacher"].info.status == "KILLED"  # the variant that was training
    assert "ended as KILLED" in " ".join(output.split())  # the console handler wraps long lines

    # The same command again continues it (finished work is keyed by content) and says which run it continues.
    _run_and_kill(tmp_path, env, lambda rerun: "resumed_from" in rerun.data.tags, number=2)
    rerun = tracking.latest_kedro_run()
    assert rerun.info.run_id != run.info.run_id and rerun.data.tags["resumed_from"] == run.info.run_id
    assert mlflow.MlflowClient().get_run(run.info.run_id).data.tags["resumed_by"] == rerun.info.run_id
    assert rerun.info.status == "KILLED"


@pytest.mark.e2e
def test_a_second_run_of_the_same_project_is_refused_while_the_first_holds_the_lock(tmp_path):
    from tracesieve.hooks import RunLockHooks

    copy_project(tmp_path)
    params = tiny_world_params(tmp_path / "data")
    (tmp_path / "conf" / "local" / "parameters_world.yml").write_text(yaml.safe_dump({"world": params}))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = str(Path(sys.executable).parent / "kedro")
    with open(tmp_path / RunLockHooks.LOCK_FILE, "w") as held:  # what a running kedro run holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242, started 2026-12-02 12:00:00, kedro run")
        held.flush()
        refused = subprocess.run([kedro, "run", "--pipeline", "world"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode != 0 and "Another kedro run of this project is running (pid 4242" in said, said[-3000:]
    assert not (tmp_path / "data" / "01_raw" / "world_traces.jsonl").exists()  # nothing was touched
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name("tracesieve")
    assert experiment is None or not mlflow.search_runs([experiment.experiment_id], output_format="list")  # no MLflow run opened
