"""Kedro hooks: the run's config loader for the pipeline registry, a preflight check before any node runs,
parameters logged to MLflow as flat names, each node's wall time in MLflow (``node_seconds.<node>``), and
no MLflow run left ``RUNNING`` by a killed or failed ``kedro run``."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import sys
import threading
import time

import click
import mlflow
from kedro.framework.hooks import hook_impl
from kedro_mlflow.framework.hooks import MlflowHook
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from pydantic import BaseModel

from tracesieve import tracking
from tracesieve.pipelines.shape import project_parameters

logger = logging.getLogger(__name__)


class RunConfigHooks:
    """Keeps the config loader of the session's context for ``pipeline_registry.register_pipelines``, which
    Kedro calls without arguments after the context exists: so an env's ``default_pipeline`` and
    ``fine_tuning.variants`` (read through Kedro's own loader: same env, merge and ``--params`` as the run)
    shape what ``kedro run --env ENV`` runs. This loader is the only state the pipelines' wiring reads."""

    def __init__(self):
        self._loader = None

    @hook_impl(tryfirst=True)
    def after_context_created(self, context) -> None:
        self._loader = context.config_loader

    def parameters(self) -> dict | None:
        """The current context's parameters as Kedro merges them; None before any context was created."""
        return None if self._loader is None else self._loader["parameters"]


class RunLockHooks:
    """One ``kedro run`` at a time per project: checkpoints, result stores and outputs are shared by every run
    of a project, so a second run started beside the first is refused at once, with the holder's pid and
    command, before it opens an MLflow run or touches anything. The lock is the kernel's (``flock`` on
    ``LOCK_FILE``), so a run that is killed, even with SIGKILL, never leaves a stale one behind."""

    LOCK_FILE = ".tracesieve-run.lock"

    def __init__(self):
        self._project_path = None
        self._handle = None

    @hook_impl
    def after_context_created(self, context) -> None:
        self._project_path = context.project_path

    @hook_impl(tryfirst=True)  # before kedro-mlflow opens the run: a refused run leaves no MLflow run behind
    def before_pipeline_run(self, run_params) -> None:
        if self._project_path is None or self._handle is not None:
            return
        path = self._project_path / self.LOCK_FILE
        handle = open(path, "a+")  # noqa: SIM115 (held for the whole run)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RuntimeError(
                f"Another kedro run of this project is running ({holder}); it holds {path}. Runs of one project share "
                "their checkpoints and stores, so this one does not start: wait for it to end, or stop it "
                "(a stopped run resumes where it stopped)."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}, {' '.join(sys.argv)}")
        handle.flush()
        self._handle = handle

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._release()

    @hook_impl
    def on_pipeline_error(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._handle is not None:
            self._handle.truncate(0)
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


class ConfigMlflowHook(MlflowHook):
    """kedro-mlflow's hook, fed each validated parameter block as the dictionary it was written as, naming
    and tagging the run, and opening a child run per model variant (``tracesieve.tracking``).

    Kedro hands nodes their ``params:`` blocks as validated config objects (typed parameters);
    kedro-mlflow flattens only dictionaries into MLflow params (``world.teacher.hidden_size``, ...), so
    it sees the blocks dumped back, defaults included. Registered in settings.py in place of the
    plugin's own instance (``DISABLE_HOOKS_FOR_PLUGINS``).

    The parent run is named ``<env> · <pipeline> · <what differs from the env's parameters>`` and tagged
    ``env``, ``pipeline``, ``git_commit``, ``seed`` (``fine_tuning.seed``), ``overrides`` and ``partial``
    (a run of ``--nodes``, ``--from-nodes``, ``--tags``, ... is ``true``, named ``<pipeline> (partial: --nodes
    ...)`` and tagged ``partial_selection``), plus
    ``resumed_from`` when it reruns a killed or failed run of the same settings (whose finished work it
    reuses), and ``sweep`` when a sweep launched it. A node in a
    namespace (``full_sft.train_variant``, ``base.evaluate_model``) runs with its variant's child run
    ``RUNNING`` and ends it ``FINISHED``; a stopped run ends it ``KILLED`` or ``FAILED``.
    """

    @hook_impl
    def after_context_created(self, context) -> None:
        # kedro-mlflow's own set-up (tracking URI, store, experiment) waits for before_pipeline_run: opening the
        # store imports SQLAlchemy and checks its migrations (seconds), which a command that never runs a
        # pipeline (kedro viz build, kedro registry list) or a run the preflight refuses does not need.
        self._context = context

    @hook_impl
    def after_catalog_created(self, catalog, conf_catalog, conf_creds, parameters, save_version, load_versions) -> None:
        # kedro-mlflow names its metrics datasets here by building every dataset of the catalog (importing
        # matplotlib among others): that too waits for a run that starts.
        self._catalog_created = {"catalog": catalog, "conf_catalog": conf_catalog, "conf_creds": conf_creds, "parameters": parameters,
                                 "save_version": save_version, "load_versions": load_versions}

    @hook_impl
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        context = self._context
        # As configured (dictionaries, --params merged in): context.params holds the validated config objects.
        self._parameters = context.config_loader["parameters"]
        self._command_line = list(tracking.flatten(context.config_loader.runtime_params or {}))
        self._defaults = _env_defaults(context)
        self._project_path = context.project_path
        super().after_context_created(context)
        super().after_catalog_created(**self._catalog_created)
        super().before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
        run = mlflow.active_run()
        if run is None or not self._is_mlflow_enabled:
            return
        env = run_params.get("env") or "base"
        pipeline_name = "+".join(run_params.get("pipeline_names") or ["__default__"])
        changed = tracking.overrides(self._parameters, self._defaults)
        tags = {"env": env, "pipeline": pipeline_name, "seed": str((self._parameters.get("fine_tuning") or {}).get("seed", 0))}
        tags["overrides"] = "; ".join(f"{name}={value}" for name, value in changed.items()) or "none"
        if (commit := tracking.git_commit(self._project_path)) is not None:
            tags["git_commit"] = commit
        tags |= tracking.sweep_tags() | tracking.experiment_tags()
        partial = tracking.partial_selection(run_params)
        tags["partial"] = "true" if partial else "false"
        if partial:
            tags["partial_selection"] = partial
        if not self.mlflow_config.tracking.run.name:  # a name set in mlflow.yml is the user's
            shown = f"{pipeline_name} (partial: {partial})" if partial else pipeline_name
            tags[MLFLOW_RUN_NAME] = tracking.run_name(env, shown, changed, first=self._command_line)
        mlflow.set_tags(tags)
        tracking.open_on_model_training(run.info.experiment_id)
        if (previous := tracking.tag_resumed(run.info.run_id)) is not None:
            logger.info("MLflow run %s continues the unfinished run %s (tag resumed_from)", run.info.run_id, previous)

    @hook_impl
    def before_node_run(self, node, catalog, inputs, is_async) -> None:
        as_written = {
            name: value.model_dump(mode="json", by_alias=True) if isinstance(value, BaseModel) else value for name, value in inputs.items()
        }
        # Nothing is returned: a dictionary returned here would replace the node's inputs.
        super().before_node_run(node=node, catalog=catalog, inputs=as_written, is_async=is_async)
        if node.namespace and self._is_mlflow_enabled and mlflow.active_run() is not None:
            params, tags = tracking.variant_description(node.namespace, self._parameters)
            tracking.mark_running(tracking.variant_run_id(node.namespace, params=params, tags=tags))

    @hook_impl
    def after_node_run(self, node) -> None:
        if self._is_mlflow_enabled and mlflow.active_run() is not None:
            # Its outputs are saved after this hook; MLflow takes metrics and artifacts on a finished run.
            tracking.end_variant_runs(mlflow.active_run().info.run_id, "FINISHED")

    @hook_impl
    def after_pipeline_run(self, run_params, pipeline, catalog) -> None:
        if (parent := tracking.parent_run_id()) is not None:
            tracking.end_variant_runs(parent, "FINISHED", forget=True)
        super().after_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)

    @hook_impl
    def on_pipeline_error(self, error, run_params, pipeline, catalog) -> None:
        if (parent := tracking.parent_run_id()) is not None:
            tracking.end_variant_runs(parent, "FAILED", forget=True)
        super().on_pipeline_error(error=error, run_params=run_params, pipeline=pipeline, catalog=catalog)


def _env_defaults(context) -> dict:
    """The parameters of the run's env as configured (base, then the env; no ``--params``): what a run
    name reports differences from. Without ``--env`` that is conf/base alone, so conf/local's edits show."""
    from kedro.framework.project import settings

    env = context.env if context.env not in (None, settings.CONFIG_LOADER_ARGS.get("default_run_env")) else "base"
    return project_parameters(context.project_path, env)  # env is never None here: no default_run_env applies


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


class RunEndingHooks:
    """Ends the MLflow run of a ``kedro run`` that is stopped: SIGTERM or SIGINT (Ctrl-C) end it as
    ``KILLED``, an exception as ``FAILED`` (kedro-mlflow ends it, this tags it), each with the node that
    was running (tags ``stopped_by``, ``stopped_at_node``). Without this, a killed run stays ``RUNNING``
    in MLflow forever."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self._node: str | None = None
        self._previous: dict[int, object] = {}

    @hook_impl
    def before_pipeline_run(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for number in self.SIGNALS:
            self._previous[number] = signal.signal(number, self._stop)

    @hook_impl
    def before_node_run(self, node) -> None:
        self._node = node.name

    @hook_impl(tryfirst=True)  # before kedro-mlflow closes the run
    def on_pipeline_error(self, error) -> None:
        if mlflow.active_run() is not None:
            mlflow.set_tags({"stopped_by": type(error).__name__, "stopped_at_node": self._node or ""})
        self._restore()

    @hook_impl
    def after_pipeline_run(self) -> None:
        self._restore()

    def _stop(self, number, frame) -> None:
        name = signal.Signals(number).name
        run = mlflow.active_run()
        if run is not None:
            mlflow.set_tags({"stopped_by": name, "stopped_at_node": self._node or ""})
            tracking.end_variant_runs(run.info.run_id, "KILLED", forget=True)  # the variant whose node was running
            while mlflow.active_run() is not None:  # nested runs first, then the kedro run's own
                mlflow.end_run("KILLED")
            logger.warning("%s during node %s: MLflow run %s ended as KILLED", name, self._node, run.info.run_id)
        self._restore()
        if number == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + number)

    def _restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


def _checked_inputs(pipeline, catalog) -> dict:
    """The pipeline's free inputs that must exist before it starts, by name: model and tokenizer folders,
    trace files, and file-backed tables (no node of the pipeline writes any of them)."""
    from tracesieve.datasets.hf import _FolderDataset
    from tracesieve.datasets.trace_files import TraceFilesDataset

    checked = {}
    for name in sorted(pipeline.inputs()):
        dataset = catalog.get(name) if name in catalog else None
        if isinstance(dataset, _FolderDataset | TraceFilesDataset) or getattr(dataset, "_filepath", None) is not None:
            checked[name] = dataset
    return checked


def _is_project_dataset(catalog, name: str, cls: type) -> bool:
    """Whether the catalog's dataset ``name`` is of this project's type ``cls`` (or a subclass), read from its
    configuration without building it: Kedro's ``get_type`` imports the class's module, matplotlib and all."""
    from kedro.utils import load_obj

    lazy = getattr(catalog, "_lazy_datasets", {}).get(name)  # Kedro's not-yet-built datasets, config and all
    qualified_type = lazy.config.get("type") if lazy is not None else catalog.get_type(name)
    if not isinstance(qualified_type, str) or not qualified_type.startswith("tracesieve."):
        return False  # every model folder dataset is the project's own
    try:
        found = load_obj(qualified_type)
    except (AttributeError, ImportError, ValueError):
        return False  # the catalog itself says why when the dataset is built
    return isinstance(found, type) and issubclass(found, cls)


def preflight_problems(pipeline, catalog) -> list[str]:
    """What would make this run fail part-way, found before it starts: a provided (read-only) model folder
    the pipeline would overwrite, or a model, tokenizer, trace file or table it reads that is absent.
    (Invalid parameters never get this far: Kedro validates every typed block before the pipeline starts.)"""
    from tracesieve.datasets.hf import _FolderDataset
    from tracesieve.datasets.trace_files import TraceFilesDataset

    problems = []
    for name in sorted(pipeline.all_outputs()):
        # Only model folders can be read-only; building every output dataset to find them would import
        # matplotlib and the rest of the catalog's dataset classes for nothing.
        if name not in catalog or not _is_project_dataset(catalog, name, _FolderDataset):
            continue
        dataset = catalog.get(name)
        if not dataset.writable:
            problems.append(f"{name}: this pipeline would overwrite it, but it is read-only here ({dataset._path}); run a pipeline that only reads it, such as from_traces")
    for name, dataset in _checked_inputs(pipeline, catalog).items():
        if isinstance(dataset, _FolderDataset | TraceFilesDataset):
            if reason := dataset.missing():
                problems.append(f"{name}: {reason}")
        elif not dataset.exists():
            problems.append(f"{name}: no file at {dataset._filepath}")
    return problems


def method_choice(pipeline, catalog, env: str) -> str | None:
    """For a run of both methods (``from_traces``) that cannot start: which models each method needs, which
    are there, and the command that runs the method whose inputs are all there. None for any other run."""
    from kedro.framework.project import pipelines  # as registered for this run's shape

    nodes = {node.name for node in pipeline.nodes}
    methods = {name: pipelines[name] for name in ("segment_method", "leaf_method")}
    if not all({node.name for node in method.nodes} <= nodes for method in methods.values()):
        return None
    lines, ready = [], []
    for name, method in methods.items():
        needed = list(_checked_inputs(method, catalog))
        missing = [problem.split(":")[0] for problem in preflight_problems(method, catalog)]
        lines.append(f"{name} needs {', '.join(needed)}: " + (f"missing {', '.join(missing)}" if missing else "all configured"))
        if not missing:
            ready.append(name)
    env_option = f" --env {env}" if env != "base + local" else ""
    advice = f"Run it alone: kedro run{env_option} --pipeline {ready[0]}" if ready else "Point the missing entries at your model folders (README: your traces and your model)."
    return "This pipeline runs both methods. " + "; ".join(lines) + ". " + advice


class RunRefused(click.ClickException, ValueError):
    """A run that cannot start: the CLI prints its message alone ("Error: ..."), without the traceback of a
    failure, and exits with status 1. A ValueError to Python callers of ``KedroSession.run``."""


class PreflightHooks:
    """Stops a run before its first node when it could not finish, naming every problem at once, and, for a
    run of both methods, which method its configured models allow."""

    @hook_impl(tryfirst=True)  # before kedro-mlflow sets up its store and opens the run: a refused run costs neither
    def before_pipeline_run(self, run_params, pipeline, catalog) -> None:
        problems = preflight_problems(pipeline, catalog)
        if problems:
            env = run_params.get("env") or "base + local"
            choice = method_choice(pipeline, catalog, env)
            raise RunRefused(f"This run (env {env}) cannot start:\n- " + "\n- ".join(problems) + (f"\n{choice}" if choice else ""))
