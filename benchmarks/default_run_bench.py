"""Time the default ``kedro run`` from scratch, as a new user runs it, on a clean copy of the project.

Copies src/, conf/ (without conf/local) and pyproject.toml into a temporary folder, runs ``kedro run``
there with its own MLflow store, and writes the wall time and each node's seconds (from the run's
``node_seconds.*`` metrics) to ``benchmarks/results/default_run.json``, with the machine's measured matmul
rate (these machines differ by up to 2x), the disk the run left (checkpoints apart), every gate and the
commit. Goals: the default run, world included, within 10 minutes on a 2-core CPU; the checkpoints one
world keeps within about 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from tracesieve import provenance, tracking  # noqa: E402
from tracesieve.launch.project_copy import copy_project  # noqa: E402

BUDGET_SECONDS = 10 * 60
CHECKPOINT_BUDGET_BYTES = 300 * 2**20
LEAF_NODE_PREFIXES = {
    "compare_teacher_student_gradients", "build_counterfactuals", "check_counterfactuals", "kd", "leaf_distilled",
    "compare_distillation", "write_leaf_report", "score_against_planted_distractors",
}


def parameter_files() -> dict[str, str]:
    """The default run's settings: the text of every parameter file of conf/base (hashed into the provenance)."""
    return {path.name: path.read_text() for path in sorted((ROOT / "conf" / "base").glob("parameters*.yml"))}


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/default_run.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary project for inspection")
    args = parser.parse_args()

    work = copy_project(ROOT, Path(tempfile.mkdtemp(prefix="tracesieve-run-")))
    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "KEDRO_DISABLE_TELEMETRY": "1"}
    kedro = str(Path(sys.executable).parent / "kedro")
    gflops = provenance.matmul_gflops()
    print(f"kedro run in {work} (matmul {gflops:.0f} GFLOP/s) ...", flush=True)
    started = time.perf_counter()
    result = subprocess.run([kedro, "run"], cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"kedro run failed after {wall:.0f} s:\n{result.stderr[-4000:]}")

    mlflow.set_tracking_uri(tracking_uri)
    run = tracking.latest_kedro_run()
    run_metrics = tracking.flat_metrics(run)
    nodes = {name.removeprefix("node_seconds."): value for name, value in run_metrics.items() if name.startswith("node_seconds.")}
    checkpoints = folder_bytes(work / "data" / "06_models" / "checkpoints")
    summary = {
        "benchmark": "default kedro run from scratch (world, attribution, segmentation, selection, fine-tuning, evaluation, reporting, leaf)",
        "provenance": provenance.stamp(config=parameter_files(), wall_seconds=wall, command=["make", "bench-run", *sys.argv[1:]]),
        "matmul_gflops": gflops,
        "wall_seconds": wall,
        "budget_seconds": BUDGET_SECONDS,
        "within_budget": wall <= BUDGET_SECONDS,
        # What one world seed keeps on disk: the checkpoints (resuming, the "already finished" load) and the rest.
        "checkpoint_bytes": checkpoints,
        "checkpoint_budget_bytes": CHECKPOINT_BUDGET_BYTES,
        "checkpoints_within_budget": checkpoints <= CHECKPOINT_BUDGET_BYTES,
        "data_bytes": folder_bytes(work / "data"),
        "gates": {name: value for name, value in run_metrics.items() if name.startswith("gate.")},
        "node_seconds": dict(sorted(nodes.items(), key=lambda item: -item[1])),
        # What `kedro run --pipeline leaf` adds once the world's models exist (issue 5: within 10 minutes).
        "leaf_stage_seconds": sum(value for name, value in nodes.items() if name.split(".")[0] in LEAF_NODE_PREFIXES),
        "metrics": {
            name: value
            for name, value in run_metrics.items()
            if name.endswith(("accuracy", "mean_response_tokens", "accuracy_heldout_skeleton", "accuracy_seen_skeleton", "truncated_share"))
            or name.startswith(("leaf_check.", "leaf_distractor.", "leaf_comparison.leaf_distilled.all", "world.position_role_share"))
            or name.endswith(("counterfactual_item_share", "supervised_tokens"))
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({key: summary[key] for key in ("wall_seconds", "within_budget", "checkpoint_bytes", "gates")}, indent=2))
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
