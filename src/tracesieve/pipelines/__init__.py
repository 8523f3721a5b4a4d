"""Project pipelines, one folder each; ``configured_variants`` decides which namespaces fine-tuning builds."""

from __future__ import annotations

import os
from pathlib import Path

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
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project / settings.CONF_SOURCE), env=os.environ.get("KEDRO_ENV"), **settings.CONFIG_LOADER_ARGS
    )
    return FineTuningConfig.from_params(loader["parameters"].get("fine_tuning", {}), name="fine_tuning").variants
