"""MLflow's two levels for one ``kedro run``: the parent run that kedro-mlflow opens (run-level tables, gates,
figures, viewer, report) and one child run per model variant (``full_sft``, ``selective_sft``, ``kd``, the
base models, ...), each with the same metric names, its own params and its model and generations.

MLflow's compare view, parallel coordinates and chart grouping line runs up by shared metric and param
names, so a variant must be a run, not a metric-name prefix. Children are written through
``MlflowClient`` with their run id, never made the active run: kedro-mlflow reopens the parent in every
node, and nothing here may change which run its datasets and hooks log to.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

VARIANT_TAG = "variant"
KIND_TAG = "kind"
RESUMED_TAG = "resumed_from"
# Tags the parent sets and every child copies, so a child found alone (search, compare view) says where it ran.
SHARED_TAGS = ("env", "pipeline", "git_commit", "overrides", "sweep")
# The experiment kind of MLflow's model-training pages (runs, charts, compare) rather than its GenAI ones. MLflow
# 3.17's UI reads it only with its global GenAI / Model training toggle off; `make mlflow-ui` prints a URL
# that sets the toggle (workflowType=machine_learning).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
MAX_RUN_NAME = 250  # MLflow's limit on a run name
# A sweep (tracesieve.launch.sweep) hands each kedro run its id and values through the environment.
SWEEP_ENV, SWEEP_VALUES_ENV = "TRACESIEVE_SWEEP", "TRACESIEVE_SWEEP_VALUES"
SWEEP_TAG, SWEEP_VALUES_TAG = "sweep", "sweep_values"
# The experiment across worlds (benchmarks/experiment.py) hands each world's kedro run the same way its id
# and what the world is (phase, regime, world seed): tags ``experiment`` and ``experiment.<name>``.
EXPERIMENT_ENV, EXPERIMENT_WORLD_ENV = "TRACESIEVE_EXPERIMENT", "TRACESIEVE_EXPERIMENT_WORLD"

_children: dict[tuple[str, str], str] = {}  # (parent run id, variant) -> child run id
_running: set[str] = set()  # children whose variant has a node running now


def parent_run_id() -> str | None:
    """The kedro run's MLflow run (kedro-mlflow reopens it in every node), or None when tracking is off."""
    run = mlflow.active_run()
    return run.info.run_id if run is not None else None


def variant_run_id(variant: str, parent: str | None = None, *, params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None) -> str | None:
    """The child run of ``variant`` under ``parent`` (the active run by default), created on first use with
    the parent's shared tags, ``tags`` and ``params``; None when there is no parent (tracking off)."""
    parent = parent or parent_run_id()
    if parent is None:
        return None
    key = (parent, variant)
    if key in _children:
        return _children[key]
    client = MlflowClient()
    parent_run = client.get_run(parent)
    found = client.search_runs(
        [parent_run.info.experiment_id],
        filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}' and tags.`{VARIANT_TAG}` = '{variant}'",
        max_results=1,
    )
    if found:  # another process of the same kedro run (a resumed node, a worker) made it already
        _children[key] = found[0].info.run_id
        return _children[key]
    shared = {name: parent_run.data.tags[name] for name in SHARED_TAGS if name in parent_run.data.tags}
    child = client.create_run(  # RUNNING until the node that made it ends
        parent_run.info.experiment_id,
        run_name=variant,
        tags={MLFLOW_PARENT_RUN_ID: parent, VARIANT_TAG: variant, **shared, **(tags or {})},
    )
    run_id = child.info.run_id
    if params:
        log_params(run_id, params)
    _children[key] = run_id
    _running.add(run_id)
    return run_id


def log_params(run_id: str, params: Mapping[str, Any]) -> None:
    """Params in one batch, values cut to MLflow's length limit (as kedro-mlflow's ``truncate`` does)."""
    from mlflow.entities import Param
    from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

    batch = [Param(name, str(value)[:MAX_PARAM_VAL_LENGTH]) for name, value in params.items()]
    MlflowClient().log_batch(run_id, params=batch)


def mark_running(run_id: str | None) -> None:
    """A child run is ``RUNNING`` while one of its variant's nodes runs, so that a stop names it."""
    if run_id is not None:
        MlflowClient().update_run(run_id, status="RUNNING")
        _running.add(run_id)


def end_variant_runs(parent: str, status: str, *, forget: bool = False) -> None:
    """End the parent's running children (``FINISHED``, ``FAILED`` or ``KILLED``); ``forget`` drops them
    from the lookup too, when the parent itself ends."""
    client = MlflowClient()
    for key, child in list(_children.items()):
        if key[0] != parent:
            continue
        if child in _running:
            client.set_terminated(child, status)
            _running.discard(child)
        if forget:
            del _children[key]


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"selection": {"tau": 0.7}}`` -> ``{"selection.tau": 0.7}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for name, value in params.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and value:
            flat |= flatten(value, f"{key}.")
        else:
            flat[key] = value
    return flat


def overrides(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The flat parameters whose value differs from ``defaults`` (or that ``defaults`` lacks), sorted."""
    run, default = flatten(params), flatten(defaults)
    missing = object()
    return {name: run[name] for name in sorted(run) if default.get(name, missing) != run[name]}


def short_names(changed: Mapping[str, Any]) -> dict[str, Any]:
    """Each override under its last name component where that is unambiguous (``tau`` for
    ``selection.tau``), else its full dotted name: what a run name has room for."""
    last = [name.rsplit(".", 1)[-1] for name in changed]
    return {(short if last.count(short) == 1 else name): value for (name, value), short in zip(changed.items(), last)}


# kedro run's options that run part of a pipeline, as run_params names them, and as a user types them.
PARTIAL_SELECTORS = {
    "node_names": "--nodes", "from_nodes": "--from-nodes", "to_nodes": "--to-nodes", "tags": "--tags",
    "from_inputs": "--from-inputs", "to_outputs": "--to-outputs", "namespaces": "--namespaces",
}


def partial_selection(run_params: Mapping[str, Any]) -> str | None:
    """What part of the pipeline a ``kedro run`` ran (``--nodes a,b; --tags x``), or None for a whole run: a
    partial run is named and tagged so, so that the compare view and scripts never take it for a whole one."""
    chosen = []
    for key, option in PARTIAL_SELECTORS.items():
        value = run_params.get(key)
        if value:
            chosen.append(f"{option} {','.join(value) if not isinstance(value, str) else value}")
    return "; ".join(chosen) or None


def run_name(env: str, pipeline: str, changed: Mapping[str, Any], first: Sequence[str] = ()) -> str:
    """``base · __default__ · tau=0.5``: what ran and what differed from the defaults, the names in
    ``first`` (the command line's ``--params``, a sweep's values) ahead of the others, which a long name cuts."""
    changed = {name: changed[name] for name in first if name in changed} | dict(changed)
    parts = [env, pipeline]
    if changed:
        parts.append(", ".join(f"{name}={value}" for name, value in short_names(changed).items()))
    name = " · ".join(parts)
    return name if len(name) <= MAX_RUN_NAME else name[: MAX_RUN_NAME - 1] + "…"


def git_commit(project_path: Path) -> str | None:
    """HEAD of the project's git checkout, ``-dirty`` when tracked files differ; None outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_path, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=project_path, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head


def sweep_tags() -> dict[str, str]:
    """``sweep``, ``sweep_values`` and ``sweep.<name>`` for a run that a sweep launched, else nothing."""
    if not (identifier := os.environ.get(SWEEP_ENV)):
        return {}
    values = os.environ.get(SWEEP_VALUES_ENV, "{}")
    return {SWEEP_TAG: identifier, SWEEP_VALUES_TAG: values} | {f"sweep.{name}": str(value) for name, value in json.loads(values).items()}


def experiment_tags() -> dict[str, str]:
    """``experiment`` and ``experiment.<name>`` (phase, regime, world_seed) for a world of the experiment."""
    if not (identifier := os.environ.get(EXPERIMENT_ENV)):
        return {}
    world = json.loads(os.environ.get(EXPERIMENT_WORLD_ENV, "{}"))
    return {"experiment": identifier} | {f"experiment.{name}": str(value) for name, value in world.items()}


def interrupted_run(run) -> Any | None:
    """The kedro run that ``run`` continues: the newest earlier parent run with the same env, pipeline and
    overrides, if that one did not finish (``KILLED``, ``FAILED``, or ``RUNNING`` left by a lost machine).
    Finished work is keyed by content (attribution store, checkpoints), so such a rerun resumes it."""
    same = ("env", "pipeline", "overrides")
    earlier = mlflow.search_runs(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` IS NULL and attributes.start_time < {run.info.start_time}",
        order_by=["attributes.start_time DESC"],
        max_results=50,
        output_format="list",
    )
    for candidate in earlier:
        if all(candidate.data.tags.get(name) == run.data.tags.get(name) for name in same):
            return candidate if candidate.info.status != "FINISHED" else None
    return None


def tag_resumed(run_id: str) -> str | None:
    """Tag a new kedro run ``resumed_from`` the run it continues, and that one ``resumed_by`` it."""
    client = MlflowClient()
    previous = interrupted_run(client.get_run(run_id))
    if previous is None:
        return None
    client.set_tag(run_id, RESUMED_TAG, previous.info.run_id)
    client.set_tag(previous.info.run_id, "resumed_by", run_id)
    return previous.info.run_id


def open_on_model_training(experiment_id: str) -> None:
    """Tag the experiment as a model-training one (runs, charts, compare) for MLflow UIs that decide per
    experiment; 3.17's global GenAI / Model training toggle ignores it (``make mlflow-ui`` prints a URL that
    sets the toggle). A kind someone chose in the UI is kept."""
    client = MlflowClient()
    if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)


def variant_description(variant: str, parameters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The params and tags of a variant's child run, from the run's parameters (validated, so defaults
    fill what the config leaves out): the same names for every variant of a kind, so that MLflow's
    compare view and parallel coordinates line them up.

    - fine-tuning variants (kind ``sft``): ``strategy``, ``tau``, ``beta``, ``always_keep``,
      ``selection_seed`` and the optimisation (``seed``, ``max_steps``, ``learning_rate``, ...);
    - distillation variants (kind ``distillation``): ``lambda``, ``counterfactuals``, ``temperature`` and the
      optimisation;
    - the models the loop starts from (kind ``base``): only what grades them.
    Every child also gets the evaluation's sampling params.
    """
    from tracesieve.config import DISTILLATION_VARIANTS, EvaluationConfig, FineTuningConfig, LeafConfig, SelectionConfig

    def optimisation(config) -> dict[str, Any]:
        return {name: getattr(config, name) for name in ("seed", "max_steps", "batch_size", "learning_rate", "lr_scheduler", "warmup_ratio")} | {
            "lora": config.lora is not None
        }

    evaluation = EvaluationConfig.model_validate(parameters.get("evaluation") or {})
    graded = {f"eval_{name}": getattr(evaluation, name) for name in ("num_samples", "temperature", "top_p", "max_new_tokens", "seed")}
    fine_tuning = FineTuningConfig.model_validate(parameters.get("fine_tuning") or {})
    if variant in DISTILLATION_VARIANTS:
        leaf = LeafConfig.model_validate(parameters.get("leaf") or {})
        setting = leaf.variants[variant]
        params = {"lambda": setting.original_weight, "counterfactuals": setting.counterfactuals, "temperature": leaf.distillation.temperature}
        params |= optimisation(leaf.distillation)
        kind, seed = "distillation", leaf.distillation.seed
    elif variant in fine_tuning.strategies:
        selection = SelectionConfig.model_validate(parameters.get("selection") or {})
        params = {"strategy": fine_tuning.strategies[variant], "tau": selection.tau, "beta": selection.beta}
        params |= {"always_keep": ",".join(selection.always_keep) or "none", "selection_seed": selection.seed} | optimisation(fine_tuning)
        kind, seed = "sft", fine_tuning.seed
    else:
        params, kind, seed = {}, "base", None
    tags = {KIND_TAG: kind} | ({"seed": str(seed)} if seed is not None else {})
    return {"variant": variant, "kind": kind, **params, **graded}, tags


def latest_kedro_run(experiment: str = "tracesieve"):
    """The newest parent run (one per ``kedro run``) of the experiment, or None."""
    runs = mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` IS NULL",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0] if runs else None


def variant_runs(parent: str) -> dict[str, Any]:
    """The child runs of a kedro run's parent run, by variant."""
    experiment_id = MlflowClient().get_run(parent).info.experiment_id
    children = mlflow.search_runs(
        experiment_ids=[experiment_id], filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent}'", output_format="list"
    )
    return {child.data.tags.get(VARIANT_TAG, child.info.run_name): child for child in children}


def flat_metrics(parent) -> dict[str, float]:
    """A kedro run's latest metrics in one dictionary: the parent's under their names, each child's as
    ``<variant>.<metric>`` (``selective_sft.accuracy``): what a script or notebook that reads one run wants."""
    metrics = dict(parent.data.metrics)
    for variant, child in variant_runs(parent.info.run_id).items():
        metrics |= {f"{variant}.{name}": value for name, value in child.data.metrics.items()}
    return metrics
