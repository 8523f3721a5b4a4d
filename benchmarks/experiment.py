"""The pre-registered experiment: every variant on many worlds, both regimes, world-level intervals.

    make experiment                                   # the test worlds of benchmarks/experiment_plan.yml
    python benchmarks/experiment.py --phase dev       # the dev worlds (where a setting may be chosen)
    python benchmarks/experiment.py --regimes silent --seeds 1000 1001   # some of the plan's worlds

Each world is its own copy of the project under ``data/experiment/<phase>-<regime>-<seed>/`` whose
conf/local sets the plan's frozen parameters and the seed everywhere a draw is made
(``tracesieve.experiment.world_overrides``): a new world, teacher, student, attributions, random masks,
counterfactuals and training order per seed. One ``kedro run`` per world (the default pipeline, every
variant of the plan), then, on the first ``sampled_worlds_per_regime`` worlds of each regime, the
``evaluation`` pipeline sampling as the authors evaluate. A finished world leaves ``world.json`` and its
generations and is never run again, so a stopped experiment resumes at the next world; the world's models
and stores are deleted once read (a world keeps its generations and figures, a few MB).

MLflow: each world's run is an ordinary parent run with its children in ./mlflow.db, tagged
``experiment`` (this experiment's id: the plan's hash and the phase) and ``experiment.phase``,
``experiment.regime``, ``experiment.world_seed``; filter ``tags.experiment = '<id>'`` and compare a variant's
children across worlds.

The test phase writes ``benchmarks/results/experiment.json``: the provenance (commit, machine, command,
the plan's hash), the dev and test seeds, per world its wall time, every model's figures and the gates, and
per regime every model's world-level means and t intervals, its differences from its reference and its
matched control (pooled per-problem intervals beside), the share of the oracle's headroom it recovers,
the verdicts, and the Markdown that docs/results.md shows. The dev phase writes the same under
``data/experiment/dev.json`` only: dev worlds are never reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tracesieve import experiment, provenance, tracking  # noqa: E402
from tracesieve.launch.project_copy import copy_project  # noqa: E402

LEAF_MODELS = ("kd", "leaf_distilled")
BASE = "base"
RUN_ONE = """
import json, sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
project = Path.cwd()
bootstrap_project(project)
with KedroSession.create(project_path=project, runtime_params=json.loads(sys.argv[1])) as session:
    session.run(pipeline_name=sys.argv[2] or None)
"""


def _copy_project(project: Path, overrides: dict) -> None:
    """The project's code and configuration in ``project``, this world's parameters in its conf/local."""
    copy_project(ROOT, project)
    (project / "conf" / "local" / "parameters_experiment.yml").write_text(json.dumps(overrides))  # JSON is YAML


def _kedro_run(project: Path, params: dict, pipeline: str, env: dict, log: Path) -> float:
    started = time.perf_counter()
    with log.open("w") as handle:
        result = subprocess.run([sys.executable, "-c", RUN_ONE, json.dumps(params), pipeline], cwd=project, env=env,
                                stdout=handle, stderr=subprocess.STDOUT, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"kedro run ({pipeline or 'default'}) in {project} failed after {seconds:.0f} s; see {log}")
    return seconds


def _collect(project: Path, into: Path, models: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    into.mkdir(parents=True, exist_ok=True)
    tables = {}
    for model in models:
        source = project / "data/07_model_output" / f"{model}_generations.parquet"
        shutil.copy(source, into / f"{model}.parquet")
        tables[model] = pd.read_parquet(source)
    return tables


def _read(folder: Path) -> dict[str, pd.DataFrame]:
    return {path.stem: pd.read_parquet(path) for path in sorted(folder.glob("*.parquet"))}


def run_world(plan: experiment.Plan, phase: str, regime: str, seed: int, sampled: bool, work: Path, identifier: str,
              tracking_uri: str) -> dict:
    """One world from nothing to its figures; a finished world is read back, never run again."""
    folder = work / experiment.world_name(phase, regime, seed)
    done = folder / "world.json"
    if done.exists() and (not sampled or (folder / "sampled_done").exists()):
        return json.loads(done.read_text())
    project = folder / "project"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1",
           tracking.EXPERIMENT_ENV: identifier,
           tracking.EXPERIMENT_WORLD_ENV: json.dumps({"phase": phase, "regime": regime, "world_seed": seed})}
    models = (BASE, *plan.variants, *LEAF_MODELS)
    if not done.exists():
        _copy_project(project, experiment.world_overrides(plan, regime, seed))
        print(f"{folder.name}: kedro run ...", flush=True)
        seconds = _kedro_run(project, {}, "", env, folder / "run.log")
        generations = _collect(project, folder / "greedy", models)
        mlflow.set_tracking_uri(tracking_uri)
        metrics = tracking.flat_metrics(tracking.latest_kedro_run())
        result = experiment.world_result(generations, metrics, seconds)
        done.write_text(json.dumps(result, indent=1, default=float))
        print(f"{folder.name}: {seconds:.0f} s; gates " + ", ".join(
            f"{name.removesuffix('_passed')} {'yes' if value else 'no'}" for name, value in result["gates"].items() if name.endswith("_passed")), flush=True)
    result = json.loads(done.read_text())
    if sampled and not (folder / "sampled_done").exists():
        print(f"{folder.name}: sampled evaluation ...", flush=True)
        seconds = _kedro_run(project, {"evaluation": dict(plan.sampling)}, "evaluation", env, folder / "sampled.log")
        _collect(project, folder / "sampled", (BASE, *plan.variants))
        result["sampled_wall_seconds"] = seconds
        done.write_text(json.dumps(result, indent=1, default=float))
        (folder / "sampled_done").write_text("")
    # What resuming needs is world.json and the generations: the models, stores and checkpoints go.
    shutil.rmtree(project / "data", ignore_errors=True)
    return result


def summarize(plan: experiment.Plan, phase: str, regimes: list[str], seeds: list[int], work: Path, worlds: dict) -> dict:
    summary = {}
    for regime in regimes:
        names = [experiment.world_name(phase, regime, seed) for seed in seeds]
        present = {name: worlds[name] for name in names if name in worlds}
        greedy = {name: _read(work / name / "greedy") for name in present}
        across = experiment.across_worlds(present, greedy, plan)
        gates = experiment.gate_passes(present)
        verdicts = experiment.verdicts(across, gates)
        entry = {"worlds": list(present), "greedy": across, "gates": gates, "verdicts": verdicts,
                 "markdown": experiment.markdown(regime, across, verdicts, gates, plan.variants)}
        sampled_names = [name for name in present if (work / name / "sampled_done").exists()]
        if sampled_names:
            sampled_worlds = {name: experiment.world_result(_read(work / name / "sampled"), {}, 0.0) for name in sampled_names}
            entry["sampled"] = experiment.across_worlds(sampled_worlds, {name: _read(work / name / "sampled") for name in sampled_names}, plan)
            entry["sampled_worlds"] = sampled_names
        summary[regime] = entry
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, default=ROOT / "benchmarks/experiment_plan.yml")
    parser.add_argument("--phase", choices=experiment.PHASES, default="test")
    parser.add_argument("--regimes", nargs="+", default=None, help="some of the plan's regimes (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="some of the phase's seeds (default: all)")
    parser.add_argument("--work", type=Path, default=ROOT / "data/experiment")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    plan = experiment.load_plan(args.plan)
    regimes = args.regimes or list(plan.regimes)
    seeds = args.seeds or list(plan.seeds(args.phase))
    if unknown := (set(seeds) - set(plan.seeds(args.phase))) | (set(regimes) - set(plan.regimes)):
        sys.exit(f"{sorted(map(str, unknown))}: not among the plan's {args.phase} worlds ({args.plan})")
    identifier = f"{plan.digest}-{args.phase}"
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlflow.db'}")
    output = args.output or (ROOT / "benchmarks/results/experiment.json" if args.phase == "test" else args.work / "dev.json")
    worlds = {}
    # Seed by seed, both regimes each: a stopped experiment has as many worlds of one regime as of the other.
    for index, seed in enumerate(seeds):
        for regime in regimes:
            name = experiment.world_name(args.phase, regime, seed)
            worlds[name] = run_world(plan, args.phase, regime, seed, index < plan.sampled_worlds_per_regime, args.work,
                                     identifier, tracking_uri)
            _write(output, plan, args, identifier, regimes, seeds, worlds)
    for regime in regimes:
        print(json.loads(output.read_text())["by_regime"][regime]["markdown"], "\n")
    print(f"wrote {output}")


def _write(output: Path, plan: experiment.Plan, args, identifier: str, regimes: list[str], seeds: list[int], worlds: dict) -> None:
    """The result so far (after every world: a stopped experiment leaves what it measured, marked incomplete)."""
    done_seeds = sorted({int(name.rsplit("-", 1)[1]) for name in worlds})
    result = {
        "benchmark": "the pre-registered experiment across worlds (make experiment)",
        "provenance": provenance.stamp(config={"plan": plan.text, "regimes": regimes, "seeds": seeds, "phase": args.phase}),
        "experiment": identifier,
        "plan_hash": plan.digest,
        "phase": args.phase,
        "complete": len(worlds) == len(regimes) * len(seeds),
        "dev_seeds": list(plan.dev_seeds),
        "test_seeds": list(plan.test_seeds),
        "regimes": regimes,
        "seeds": seeds,
        "variants": list(plan.variants),
        "worlds": worlds,
        "by_regime": summarize(plan, args.phase, regimes, done_seeds, args.work, worlds),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
