"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """One pipeline per folder of ``pipelines/``; ``__default__`` runs them all on the embedded world.

    ``from_traces`` (every stage but ``world``) is what runs on real trace files and models:
    ``kedro run --env real --pipeline from_traces``.
    """
    pipelines = find_pipelines(raise_errors=True)
    # from_traces only regroups other stages: leaving it out of the sum keeps each node in once.
    stages = [pipeline for name, pipeline in pipelines.items() if name != "from_traces"]
    pipelines["__default__"] = sum(stages, Pipeline([]))
    return pipelines
