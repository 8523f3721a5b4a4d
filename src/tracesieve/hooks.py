"""Kedro hooks: the run's env for the pipeline registry, a preflight check before any node runs, and
each node's wall time in MLflow (``node_seconds.<node name>``)."""

from __future__ import annotations

import time

import mlflow
from kedro.framework.hooks import hook_impl


class EnvironmentHooks:
    """Tells the pipeline registry the run's ``--env`` before Kedro first builds the pipelines, so that
    an env's ``default_pipeline`` and ``fine_tuning.variants`` shape what ``kedro run --env ENV`` runs."""

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:
        from tracesieve.pipelines import set_active_env

        set_active_env(context.env)


class NodeTimingHooks:
    """Times every node, so a run's cost per stage can be read in MLflow and by ``benchmarks/``."""

    def __init__(self):
        self._started: dict[str, float] = {}

    @hook_impl
    def before_node_run(self, node) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node) -> None:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        if mlflow.active_run() is not None:  # kedro-mlflow opens one per kedro run
            mlflow.log_metric(f"node_seconds.{node.name}", seconds)


def _config_classes() -> dict:
    from tracesieve import config

    return {
        "world": config.WorldConfig,
        "ingestion": config.IngestionConfig,
        "attribution": config.AttributionConfig,
        "segmentation": config.SegmentationConfig,
        "selection": config.SelectionConfig,
        "fine_tuning": config.FineTuningConfig,
        "evaluation": config.EvaluationConfig,
        "reporting": config.ReportingConfig,
        "leaf": config.LeafConfig,
    }


def preflight_problems(pipeline, catalog, parameters: dict) -> list[str]:
    """What would make this run fail part-way, found before it starts: invalid parameters, a provided
    (read-only) model folder the pipeline would overwrite, a model or tokenizer folder it reads that is absent."""
    from tracesieve.datasets.hf import _FolderDataset
    from tracesieve.datasets.trace_files import TraceFilesDataset

    problems = []
    for name, schema in _config_classes().items():
        if name in parameters:
            try:
                schema.from_params(parameters[name], name=name)
            except ValueError as error:
                problems.append(str(error))
    for name in sorted(pipeline.all_outputs()):
        dataset = catalog.get(name) if name in catalog else None
        if isinstance(dataset, _FolderDataset) and not dataset.writable:
            problems.append(f"{name}: this pipeline would overwrite it, but it is read-only here ({dataset._path}); run a pipeline that only reads it, such as from_traces")
    for name in sorted(pipeline.inputs()):
        dataset = catalog.get(name) if name in catalog else None
        if isinstance(dataset, _FolderDataset | TraceFilesDataset) and (reason := dataset.missing()):
            problems.append(f"{name}: {reason}")
    return problems


class PreflightHooks:
    """Stops a run before its first node when it could not finish, naming every problem at once."""

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        parameters = catalog.load("parameters") if "parameters" in catalog else {}
        problems = preflight_problems(pipeline, catalog, parameters)
        if problems:
            env = run_params.get("env") or "base + local"
            raise ValueError(f"This run (env {env}) cannot start:\n- " + "\n- ".join(problems))
