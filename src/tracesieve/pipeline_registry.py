"""Project pipelines."""

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline


def register_pipelines() -> dict[str, Pipeline]:
    """``__default__`` runs everything on the embedded world; ``from_traces`` skips the world.

    ``from_traces`` is what runs on real trace files and models (``kedro run --env real --pipeline
    from_traces``): the world would otherwise regenerate synthetic data in their place.
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(pipelines.values(), Pipeline([]))
    pipelines["from_traces"] = sum((pipe for name, pipe in pipelines.items() if name not in {"world", "__default__"}), Pipeline([]))
    return pipelines
