"""Project pipelines, one folder each, and what the parameter files decide about how they are built:
which namespaces fine-tuning builds (``configured_variants``) and what ``kedro run`` runs without
``--pipeline`` (``default_pipeline_name``)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from kedro.framework.project import settings
from kedro.utils import find_kedro_project

from tracesieve.config import FineTuningConfig

# The run's --env, recorded by EnvironmentHooks when the context is created; Kedro builds the pipelines
# lazily, after that hook, so the registry sees the same env as the run's config loader.
_active_env: str | None = None


def set_active_env(env: str | None) -> None:
    global _active_env
    _active_env = env


def active_env() -> str:
    """The run's environment: --env when a session recorded it, else $KEDRO_ENV, else ``local``."""
    return _active_env or os.environ.get("KEDRO_ENV") or "local"


def configured_variants() -> tuple[str, ...]:
    """The ``fine_tuning.variants`` of the parameter files of conf/base and the run's env.

    Kedro builds pipelines before it reads a run's parameters, so the variant namespaces follow the
    parameter files, not ``--params``; the comparison node checks at run time that the run's parameters
    name the same variants and stops with a message saying what to change when they do not.
    """
    return FineTuningConfig.from_params(env_parameters("fine_tuning"), name="fine_tuning").variants


def default_pipeline_name() -> str | None:
    """The env's ``default_pipeline`` parameter: the registered pipeline ``kedro run`` runs without
    ``--pipeline`` (e.g. ``from_traces`` where the models are provided); None means every stage."""
    name = env_parameters("default_pipeline") or None
    if name is not None and not isinstance(name, str):
        raise ValueError(f"default_pipeline (env {active_env()}): expected a pipeline name, got {name!r}")
    return name


def env_parameters(key: str):
    """One top-level parameter as conf/base merged with the run's env says, read as plain YAML."""
    project = find_kedro_project(Path.cwd())
    if project is None:  # imported outside a project (a notebook elsewhere, a packaged install)
        return {}
    # Plain YAML, merged key by key like the project's loader does: building a second OmegaConfigLoader
    # here would re-register OmegaConf's process-wide `globals` resolver with this env's globals, and the
    # run's catalog (e.g. conf/paper's ${globals:...} paths) would then resolve against the wrong ones.
    conf = project / settings.CONF_SOURCE
    value = {}
    for env in ("base", active_env()):
        for file in sorted((conf / env).glob("parameters*.yml")) + sorted((conf / env).glob("parameters*/**/*.yml")):
            parameters = yaml.safe_load(file.read_text()) or {}
            if key in parameters:
                value = _merged(value, parameters[key]) if isinstance(value, dict) and isinstance(parameters[key], dict) else parameters[key]
    return value


def _merged(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged
