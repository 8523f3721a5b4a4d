"""Start-up of the commands that run no node, as ratios to ``kedro --version`` measured in the same run.

    python benchmarks/startup_bench.py                      # this checkout
    python benchmarks/startup_bench.py --before a25bc04     # and a commit before, side by side

Each tree is a clean copy of the project (``--before``: of that commit, through ``git archive``) with its own
MLflow store; each command runs ``--repeats`` times, interleaved across the trees so that a burst of load on
the machine hits both, and the least wall time is kept. Commands: ``kedro --version`` (the baseline),
``kedro registry list``, a run refused for missing models (``--env real --pipeline segment_method``) and a
run refused for a bad key (``--params world.no_such_key=1``); also whether a refused run left an MLflow store
behind. Goal (issue 43): every ratio at most 1.5. Writes ``benchmarks/results/startup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from tracesieve import provenance  # noqa: E402
from tracesieve.launch.project_copy import copy_project  # noqa: E402

GOAL_RATIO = 1.5
COMMANDS = {
    "version": ["--version"],
    "registry_list": ["registry", "list"],
    "refused_missing_models": ["run", "--env", "real", "--pipeline", "segment_method"],
    "refused_bad_key": ["run", "--params", "world.no_such_key=1"],
}


def tree_of_commit(commit: str, into: Path) -> Path:
    """The project as it was at ``commit``, copied the way the current one is (no conf/local, no data)."""
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "archive.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), commit], cwd=ROOT, check=True)
    source = into / "source"
    with tarfile.open(archive) as tar:
        tar.extractall(source, filter="data")
    return copy_project(source, into / "project")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a commit to time beside this checkout")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/startup.json")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="tracesieve-startup-"))
    trees = {"now": copy_project(ROOT, scratch / "now")}
    if args.before:
        trees[f"before ({args.before})"] = tree_of_commit(args.before, scratch / "before")
    kedro = str(Path(sys.executable).parent / "kedro")
    times: dict[str, dict[str, list[float]]] = {tree: {name: [] for name in COMMANDS} for tree in trees}
    for repeat in range(args.repeats):
        for name, command in COMMANDS.items():
            for tree, root in trees.items():
                env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "1"}
                started = time.perf_counter()
                subprocess.run([kedro, *command], cwd=root, env=env, capture_output=True, text=True, timeout=600)
                times[tree][name].append(time.perf_counter() - started)
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)

    results = {}
    for tree, root in trees.items():
        fastest = {name: min(values) for name, values in times[tree].items()}
        results[tree] = {
            "seconds": {name: round(value, 3) for name, value in fastest.items()},
            "ratio_to_version": {name: round(value / fastest["version"], 3) for name, value in fastest.items() if name != "version"},
            "refused_runs_left_an_mlflow_store": (root / "mlflow.db").exists(),
        }
        results[tree]["within_goal"] = max(results[tree]["ratio_to_version"].values()) <= GOAL_RATIO
    summary = {
        "benchmark": "start-up of commands that run no node, least of repeated runs, as ratios to kedro --version",
        "provenance": provenance.stamp(config={"commands": COMMANDS, "repeats": args.repeats, "before": args.before},
                                       command=["python", "benchmarks/startup_bench.py", *sys.argv[1:]]),
        "matmul_gflops": provenance.matmul_gflops(),
        "goal_ratio": GOAL_RATIO,
        "trees": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
