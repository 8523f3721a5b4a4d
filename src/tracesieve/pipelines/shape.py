"""What a run's parameters decide about how the pipelines are wired, as one frozen value.

Four keys shape the pipelines rather than the nodes' work: which variant namespaces fine-tuning,
evaluation and reporting build (``fine_tuning.variants``), which selection table each variant reads
(``fine_tuning.strategies``), whether the world's teacher trains on from the student (``world.teacher.init``)
and what ``kedro run`` runs without ``--pipeline`` (``default_pipeline``). They are read and validated once,
here, with the same schemas Kedro validates the blocks with before the first node; every ``create_pipeline``
takes the result as an argument, so building a pipeline is a pure function of it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from tracesieve.choices import ORACLE_STRATEGIES, SCORER_STRATEGIES, WARMUP_INITS
from tracesieve.config import FineTuningConfig, ModelSpec

ORACLE_SELECTIONS = "oracle_selections"  # the world's planted roles (planted_roles.select_oracle_segments)
SCORER_SELECTIONS = "scorer_selections"  # the paper's ablation scorers (faithfulness.select_by_every_scorer)
IG_SELECTIONS = "selections"  # integrated gradients' strategies (selection.select_loss_segments)


@dataclass(frozen=True)
class PipelineShape:
    """The wiring a run's parameters choose; ``PipelineShape()`` is the schemas' defaults."""

    variants: tuple[str, ...] = FineTuningConfig.model_fields["variants"].default
    strategies: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(FineTuningConfig().strategies))
    teacher_init: str = ModelSpec.model_fields["init"].default
    default_pipeline: str | None = None

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> PipelineShape:
        """The shape of a run with these parameters (a config loader's ``parameters``: base, env, ``--params``).

        ``fine_tuning`` is validated whole (an unknown variant or strategy fails here, naming the key);
        of ``world`` only ``teacher.init`` is read, since Kedro validates the block before the first node.
        """
        fine_tuning = FineTuningConfig.model_validate(parameters.get("fine_tuning") or {})
        teacher_init = ((parameters.get("world") or {}).get("teacher") or {}).get("init", cls.teacher_init)
        if teacher_init not in WARMUP_INITS:
            raise ValueError(f"world.teacher.init must be one of {list(WARMUP_INITS)}, got {teacher_init!r}")
        default_pipeline = parameters.get("default_pipeline") or None
        if default_pipeline is not None and not isinstance(default_pipeline, str):
            raise ValueError(f"default_pipeline: expected a pipeline name, got {default_pipeline!r}")
        return cls(fine_tuning.variants, MappingProxyType(dict(fine_tuning.strategies)), teacher_init, default_pipeline)

    @classmethod
    def of_project(cls, project: Path | None = None, env: str | None = None) -> PipelineShape:
        """The shape ``kedro run --env ENV`` builds in this project (``env`` defaults to ``$KEDRO_ENV``, then
        Kedro's default run env): what a notebook or a test gets from a bare ``create_pipeline()``.
        Outside a project (a packaged install), the schemas' defaults."""
        return cls.from_parameters(project_parameters(project, env))

    def selection_table(self, variant: str) -> str:
        """The selection table a variant reads its loss masks from: the oracle's comes from the world's planted
        roles (world runs only), a scorer's from ``faithfulness``, IG's strategies' from ``selection``."""
        strategy = self.strategies.get(variant)
        if strategy in ORACLE_STRATEGIES:
            return ORACLE_SELECTIONS
        return SCORER_SELECTIONS if strategy in SCORER_STRATEGIES else IG_SELECTIONS

    @property
    def reads_scorer_selections(self) -> bool:
        """Whether a variant trains on an ablation scorer's selection (so ``faithfulness`` must run)."""
        return any(self.selection_table(variant) == SCORER_SELECTIONS for variant in self.variants)


def project_parameters(project: Path | None = None, env: str | None = None) -> dict[str, Any]:
    """The parameters of a project's env merged the way a Kedro session merges them; empty outside a project.

    ``env`` defaults to ``$KEDRO_ENV``; ``"base"`` reads conf/base alone, without conf/local.
    """
    from kedro.framework.project import settings
    from kedro.utils import find_kedro_project

    project = project or find_kedro_project(Path.cwd())
    if project is None:
        return {}
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(Path(project) / settings.CONF_SOURCE), env=env or os.environ.get("KEDRO_ENV"), **settings.CONFIG_LOADER_ARGS
    )
    return loader["parameters"]


def shape_or_project(shape: PipelineShape | None) -> PipelineShape:
    """``shape``, or where a caller passes none, the project's (``PipelineShape.of_project``)."""
    return shape if shape is not None else PipelineShape.of_project()
