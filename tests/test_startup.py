"""Start-up: commands that run no node load no framework (issue 43). Registering the pipelines imports no torch,
transformers, TRL, PEFT, scikit-learn or matplotlib; a run that cannot start is refused before kedro-mlflow
opens its store; and each of those commands costs at most 1.5x ``kedro --version``, timed in the same test."""

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import copy_project

BIN = Path(sys.executable).parent
HEAVY = ("torch", "transformers", "trl", "peft", "sklearn", "matplotlib", "mlflow.store.tracking.sqlalchemy_store")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("startup")
    copy_project(root)
    return root, {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "400"}


def test_registering_the_pipelines_imports_no_framework(project):
    root, env = project
    script = (
        "import sys\n"
        "from kedro.framework.startup import bootstrap_project\n"
        f"bootstrap_project({str(root)!r})\n"
        "from kedro.framework.project import pipelines\n"
        "assert len(pipelines['__default__'].nodes) > 50\n"
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_node_loads_its_library_when_it_runs():
    from tracesieve.lazy import lazy_module

    stand_in = lazy_module("tracesieve.world.warmup") if "tracesieve.world.warmup" not in sys.modules else None
    module = __import__("tracesieve.world.warmup", fromlist=["train_warmup_model"])
    if stand_in is not None:
        assert stand_in.train_warmup_model is module.train_warmup_model
    assert lazy_module("tracesieve.world.warmup") is module  # once imported, the module itself
    with pytest.raises(ModuleNotFoundError, match="tracesieve.no_such_module"):
        lazy_module("tracesieve.no_such_module")


def _least_cpu_seconds(commands: dict[str, list[str]], root: Path, env: dict, repeats: int = 3) -> tuple[dict, dict, dict]:
    """Per command, the least CPU time (user + system, the process and its children) of ``repeats`` runs, the
    least wall time, and the last run's result. The runs are interleaved and the ratio is taken in CPU time: under
    ``pytest -n 2`` the other worker's tests share the two cores, which stretches wall time unevenly, not CPU time."""
    cpu = {name: [] for name in commands}
    wall = {name: [] for name in commands}
    results = {}
    for _ in range(repeats):
        for name, command in commands.items():
            before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            results[name] = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {name: min(values) for name, values in cpu.items()}, {name: min(values) for name, values in wall.items()}, results


@pytest.mark.e2e
def test_commands_that_run_no_node_start_within_1_5x_of_kedro_itself(project):
    root, env = project
    kedro = str(BIN / "kedro")
    cpu, wall, results = _least_cpu_seconds({
        "version": [kedro, "--version"],
        "registry list": [kedro, "registry", "list"],
        "refused run": [kedro, "run", "--env", "real", "--pipeline", "segment_method"],
        "bad key": [kedro, "run", "--params", "world.no_such_key=1"],
    }, root, env)
    assert results["registry list"].returncode == 0 and "segment_method" in results["registry list"].stdout
    refused = results["refused run"]
    assert refused.returncode != 0 and "This run (env real) cannot start" in refused.stdout + refused.stderr
    invalid = results["bad key"]
    assert invalid.returncode != 0 and "no_such_key" in invalid.stdout + invalid.stderr
    # the refused runs never opened the MLflow store (migrating a fresh one alone takes seconds)
    assert not (root / "mlflow.db").exists()
    ratios = {name: seconds / cpu["version"] for name, seconds in cpu.items() if name != "version"}
    assert max(ratios.values()) <= 1.5, f"CPU seconds {cpu}, wall seconds {wall}; ratios to kedro --version {ratios}"
