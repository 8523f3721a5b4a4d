"""Project pipelines."""

import importlib.util

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

from tracesieve.pipelines import default_pipeline_name

# Pipelines that only regroup other stages: summing them with the rest would list nodes twice.
COMPOSITES = ("from_traces", "real_model", "segment_method", "leaf_method")


def register_pipelines() -> dict[str, Pipeline]:
    """One pipeline per folder of ``pipelines/``; ``__default__`` is the env's ``default_pipeline``
    (conf/real and conf/paper: ``from_traces``; conf/real_cpu: ``real_model``), else every stage on the
    embedded world."""
    pipelines = find_pipelines(raise_errors=True)
    default = default_pipeline_name()
    if default is None:
        stages = [pipeline for name, pipeline in pipelines.items() if name not in COMPOSITES]
        pipelines["__default__"] = sum(stages, Pipeline([]))
    elif default in pipelines:
        pipelines["__default__"] = pipelines[default]
    elif importlib.util.find_spec(f"tracesieve.pipelines.{default}") is None:
        # (`--pipeline NAME` and `--pipelines A,B` make Kedro import only those packages: a default that
        # exists but was not imported is simply not needed by this run.)
        raise ValueError(f"default_pipeline is {default!r}, which is not a pipeline; "
                         f"choose one of {sorted(pipelines)}")
    return pipelines
