"""A parameter sweep: one ``kedro run --params`` per value (or per combination), lined up in MLflow.

    python -m tracesieve.launch.sweep selection.tau=0.5,0.7,0.9
    python -m tracesieve.launch.sweep selection.tau=0.5,0.7,0.9 -- --from-nodes select_loss_segments   # reuse what is upstream
    python -m tracesieve.launch.sweep selection.tau=0.5,0.9 selection.beta=0.6,0.8 -- --env real_cpu    # a grid: 4 runs
    make sweep ARGS="selection.tau=0.5,0.7,0.9 -- --from-nodes select_loss_segments"

Everything after ``--`` goes to every ``kedro run``. Each run is an ordinary parent run with its children
(one per variant), named by what it changed (``base · __default__ · tau=0.5``) and tagged ``sweep`` (the
sweep's id) and ``sweep.<name>`` (its value): in MLflow, filter ``tags.sweep = '<id>'``, select the runs'
children and compare them. The sweep's id is a digest of its values and arguments, so a sweep that was
stopped, started again, skips the runs that finished and redoes only the others. At the end, one table and
one figure (accuracy and mean response length of every variant against the swept value) go to
``data/08_reporting/sweeps/<id>.{csv,png}``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from tracesieve.tracking import SWEEP_ENV, SWEEP_TAG, SWEEP_VALUES_ENV, SWEEP_VALUES_TAG

logger = logging.getLogger(__name__)


def parse_axis(text: str) -> tuple[str, list]:
    """``selection.tau=0.5,0.7,0.9`` -> ``("selection.tau", [0.5, 0.7, 0.9])``, each value read as YAML."""
    name, sep, values = text.partition("=")
    if not sep or not name or not values:
        raise ValueError(f"{text!r}: a swept parameter is written NAME=V1,V2,... (e.g. selection.tau=0.5,0.7,0.9)")
    parsed = [yaml.safe_load(value) for value in values.split(",")]
    if len(set(map(repr, parsed))) != len(parsed):
        raise ValueError(f"{text!r}: a value is listed twice")
    return name, parsed


def sweep_id(axes: dict[str, list], kedro_args: list[str]) -> str:
    """A digest of what the sweep runs: the same command continues the same sweep."""
    spec = json.dumps({"axes": axes, "kedro_args": kedro_args}, sort_keys=True, default=str)
    return hashlib.sha256(spec.encode()).hexdigest()[:10]


def finished_points(identifier: str) -> dict[str, str]:
    """The sweep's parent runs that finished, by their values (JSON), to skip on a restart."""
    import mlflow

    if mlflow.get_experiment_by_name("tracesieve") is None:
        return {}
    runs = mlflow.search_runs(
        experiment_names=["tracesieve"], filter_string=f"tags.{SWEEP_TAG} = '{identifier}' and attributes.status = 'FINISHED'", output_format="list"
    )
    return {run.data.tags[SWEEP_VALUES_TAG]: run.info.run_id for run in runs if "mlflow.parentRunId" not in run.data.tags}


def sweep_table(run_ids: dict[str, str]) -> pd.DataFrame:
    """One row per (sweep point, variant): the point's values and the variant's accuracy (with its interval)
    and mean response tokens, read from the children of each finished parent run."""
    from tracesieve import tracking

    rows = []
    for values, run_id in run_ids.items():
        for variant, child in tracking.variant_runs(run_id).items():
            metrics = child.data.metrics
            if "accuracy" not in metrics:
                continue  # a model that was not graded in this pipeline
            rows.append(
                {**json.loads(values), "variant": variant, "run_id": child.info.run_id}
                | {name: metrics.get(name) for name in ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "mean_response_tokens", "supervised_tokens")}
            )
    return pd.DataFrame(rows)


def plot_sweep(table: pd.DataFrame, parameter: str):
    """Accuracy (95% interval) and mean response tokens of every variant against one swept parameter."""
    from tracesieve.reporting import plt

    figure, (accuracy, length) = plt.subplots(1, 2, figsize=(10, 4))
    for variant, rows in table.sort_values(parameter).groupby("variant"):
        x = rows[parameter].astype(float)
        accuracy.errorbar(
            x, rows["accuracy"], yerr=[rows["accuracy"] - rows["accuracy_ci_low"], rows["accuracy_ci_high"] - rows["accuracy"]],
            marker="o", capsize=3, label=variant,
        )
        length.plot(x, rows["mean_response_tokens"], marker="o", label=variant)
    accuracy.set(xlabel=parameter, ylabel="accuracy (95% interval)", title=f"Accuracy against {parameter}")
    length.set(xlabel=parameter, ylabel="mean response tokens", title=f"Response length against {parameter}")
    accuracy.legend(fontsize=7)
    figure.tight_layout()
    return figure


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    kedro_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description="Run kedro once per value of the swept parameters; MLflow lines the runs up.")
    parser.add_argument("axes", nargs="+", metavar="NAME=V1,V2,...", help="a parameter and its values; several make a grid")
    parser.add_argument("--output", type=Path, default=Path("data/08_reporting/sweeps"), help="where the table and figure go")
    args = parser.parse_args(own)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import mlflow

    mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))  # as conf/base/mlflow.yml
    axes = dict(parse_axis(axis) for axis in args.axes)
    identifier = sweep_id(axes, kedro_args)
    points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    done = finished_points(identifier)
    kedro = str(Path(sys.executable).parent / "kedro")
    for number, point in enumerate(points, 1):
        values = json.dumps(point, sort_keys=True)
        if values in done:
            logger.info("sweep %s: %d/%d %s finished before (run %s), skipped", identifier, number, len(points), point, done[values])
            continue
        params = ",".join(f"{name}={value}" for name, value in point.items())
        logger.info("sweep %s: %d/%d kedro run --params %s %s", identifier, number, len(points), params, " ".join(kedro_args))
        env = {**os.environ, SWEEP_ENV: identifier, SWEEP_VALUES_ENV: values}
        result = subprocess.run([kedro, "run", "--params", params, *kedro_args], env=env, check=False)  # a failure is reported below
        if result.returncode != 0:
            logger.error("sweep %s: the run with %s failed (exit %d); rerun the same command to continue", identifier, params, result.returncode)
            return result.returncode
    runs = finished_points(identifier)
    table = sweep_table(runs)
    args.output.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.output / f"{identifier}.csv", index=False)
    logger.info("sweep %s: %d runs; table %s", identifier, len(runs), args.output / f"{identifier}.csv")
    if len(axes) == 1 and not table.empty:
        figure = plot_sweep(table, next(iter(axes)))
        figure.savefig(args.output / f"{identifier}.png", dpi=120)
        logger.info("figure %s", args.output / f"{identifier}.png")
    logger.info("In MLflow (make mlflow-ui): search runs with  tags.sweep = '%s'  and compare their children.", identifier)
    return 0


if __name__ == "__main__":
    sys.exit(main())
