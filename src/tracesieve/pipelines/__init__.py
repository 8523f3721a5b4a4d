"""Project pipelines, one folder each; ``configured_variants`` decides which namespaces fine-tuning builds."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from kedro.framework.project import settings
from kedro.utils import find_kedro_project

from tracesieve.config import FineTuningConfig


def configured_variants() -> tuple[str, ...]:
    """The ``fine_tuning.variants`` of the parameter files: conf/base + conf/local, or the env in $KEDRO_ENV.

    Kedro builds pipelines before it reads a run's parameters, so the variant namespaces follow the
    parameter files, not ``--params`` or ``--env``; the comparison node checks at run time that the run's
    parameters name the same variants and stops with a message saying what to change when they do not.
    """
    project = find_kedro_project(Path.cwd())
    if project is None:  # imported outside a project (a notebook elsewhere, a packaged install)
        return FineTuningConfig().variants
    # Plain YAML, merged key by key like the project's loader does: building a second OmegaConfigLoader
    # here would re-register OmegaConf's process-wide `globals` resolver with this env's globals, and the
    # run's catalog (e.g. conf/paper's ${globals:...} paths) would then resolve against the wrong ones.
    conf = project / settings.CONF_SOURCE
    block: dict = {}
    for env in ("base", os.environ.get("KEDRO_ENV") or "local"):
        for file in sorted((conf / env).glob("parameters*.yml")) + sorted((conf / env).glob("parameters*/**/*.yml")):
            block = _merged(block, (yaml.safe_load(file.read_text()) or {}).get("fine_tuning", {}))
    return FineTuningConfig.from_params(block, name="fine_tuning").variants


def _merged(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merged(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged
