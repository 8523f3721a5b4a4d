"""Project pipelines, built from the run's parameters.

Kedro calls ``register_pipelines()`` without arguments, lazily, inside ``session.run`` (it has no sanctioned
way to hand it the run's config: kedro-org/kedro#3093). ``hooks.RunConfigHooks`` keeps the config loader of
the session's context, the one Kedro itself uses for this run (same env, soft merge and ``--params``);
``register_pipelines`` reads it once into a ``PipelineShape`` and ``build_pipelines`` does the rest as a
pure function of that shape.
"""

from __future__ import annotations

import importlib

from kedro.pipeline import Pipeline

from tracesieve.pipelines.shape import PipelineShape

# The stages: each a package of pipelines/, summed (in this order) into ``__default__`` on the embedded world.
STAGES = (
    "world", "ingestion", "attribution", "segmentation", "selection", "faithfulness", "planted_roles",
    "fine_tuning", "evaluation", "leaf", "reporting",
)
# Pipelines that regroup stages for one use (real traces, a real model, one method): summing them with the
# stages would list nodes twice, so ``__default__`` never includes them.
COMPOSITES = ("from_traces", "real_model", "segment_method", "leaf_method")


def build_pipelines(shape: PipelineShape) -> dict[str, Pipeline]:
    """Every stage and composite built for ``shape``, and ``__default__``: ``shape.default_pipeline``
    (conf/real and conf/paper: ``from_traces``; conf/real_cpu: ``real_model``), else every stage."""
    pipelines = {name: importlib.import_module(f"tracesieve.pipelines.{name}").create_pipeline(shape) for name in (*STAGES, *COMPOSITES)}
    if shape.default_pipeline is None:
        pipelines["__default__"] = sum((pipelines[name] for name in STAGES), Pipeline([]))
    elif shape.default_pipeline in pipelines:
        pipelines["__default__"] = pipelines[shape.default_pipeline]
    else:
        raise ValueError(f"default_pipeline is {shape.default_pipeline!r}, which is not a pipeline; choose one of {sorted(pipelines)}")
    return pipelines


def register_pipelines() -> dict[str, Pipeline]:
    """The pipelines of this run: its context's parameters where a Kedro session runs, else the project's."""
    from tracesieve.settings import RUN_CONFIG

    parameters = RUN_CONFIG.parameters()
    return build_pipelines(PipelineShape.from_parameters(parameters) if parameters is not None else PipelineShape.of_project())
