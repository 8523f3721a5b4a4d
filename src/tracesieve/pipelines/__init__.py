"""Project pipelines, one folder each, and what the run's parameters decide about how they are built:
which namespaces fine-tuning builds (``configured_variants``) and what ``kedro run`` runs without
``--pipeline`` (``default_pipeline_name``).

Both are read through Kedro's own config loader for the run, the one its context uses (same env, same
soft merge, same ``--params``). Kedro builds pipelines lazily through a ``register_pipelines()`` that takes
no argument, after the context exists, so the loader reaches the registry through ``use_config_loader``,
which ``hooks.RunConfigHooks`` calls for every new context. Outside a Kedro session (a notebook, a test
that builds a pipeline directly) a loader is built the way a session builds it, for ``$KEDRO_ENV``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kedro.config import AbstractConfigLoader
from kedro.framework.project import settings
from kedro.utils import find_kedro_project

from tracesieve.config import DEFAULT_VARIANT_STRATEGIES, FineTuningConfig

_run_config_loader: AbstractConfigLoader | None = None


def use_config_loader(loader: AbstractConfigLoader | None) -> None:
    """Build the pipelines from this loader's parameters (the hook hands over each new context's loader)."""
    global _run_config_loader
    _run_config_loader = loader


def run_parameters() -> dict[str, Any]:
    """The run's parameters as Kedro merges them (base, the env, ``--params``); empty outside a project."""
    loader = _run_config_loader
    if loader is None:
        project = find_kedro_project(Path.cwd())
        if project is None:  # imported outside a project (a packaged install): the schemas' defaults
            return {}
        loader = settings.CONFIG_LOADER_CLASS(
            conf_source=str(project / settings.CONF_SOURCE), env=os.environ.get("KEDRO_ENV"), **settings.CONFIG_LOADER_ARGS
        )
    return loader["parameters"]


def configured_variants() -> tuple[str, ...]:
    """The run's ``fine_tuning.variants``: the namespaces fine-tuning, evaluation and reporting build.

    Only this key is read here; Kedro validates the whole block once, before the first node. The
    comparison node checks that the run's parameters name the variants the pipeline was built with.
    """
    variants = run_parameters().get("fine_tuning", {}).get("variants", FineTuningConfig.model_fields["variants"].default)
    if isinstance(variants, str) or not all(isinstance(variant, str) for variant in variants):
        raise ValueError(f"fine_tuning.variants must be a list of variant names, got {variants!r}")
    return tuple(variants)


def configured_teacher_init() -> str:
    """The run's ``world.teacher.init`` (the schema's default where the run does not say): whether the world
    pipeline wires the trained student into the teacher's training."""
    from tracesieve.config import ModelSpec

    teacher = run_parameters().get("world", {}).get("teacher") or {}
    return teacher.get("init", ModelSpec.model_fields["init"].default)


def configured_strategy(variant: str) -> str | None:
    """The selection strategy ``fine_tuning.strategies.<variant>`` of the run (the schema's default where the
    run's parameters do not say): it decides which selection table the variant's namespace reads."""
    strategies = {**DEFAULT_VARIANT_STRATEGIES, **(run_parameters().get("fine_tuning", {}).get("strategies") or {})}
    return strategies.get(variant)


def default_pipeline_name() -> str | None:
    """The env's ``default_pipeline`` parameter: the registered pipeline ``kedro run`` runs without
    ``--pipeline`` (e.g. ``from_traces`` where the models are provided); None means every stage."""
    name = run_parameters().get("default_pipeline") or None
    if name is not None and not isinstance(name, str):
        raise ValueError(f"default_pipeline: expected a pipeline name, got {name!r}")
    return name
