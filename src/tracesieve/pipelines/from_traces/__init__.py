"""Every stage that runs on trace files, without the embedded world: what real data and real models use.

It is a package of its own (not only a sum in the registry) because ``kedro run --pipeline NAME`` imports
just ``tracesieve.pipelines.NAME``. Each new stage that consumes traces is added to the list below.
"""

from kedro.pipeline import Pipeline

from tracesieve.pipelines import attribution, evaluation, faithfulness, fine_tuning, ingestion, leaf, reporting, segmentation, selection


def create_pipeline(**kwargs) -> Pipeline:
    stages = [ingestion, attribution, segmentation, selection, faithfulness, fine_tuning, evaluation]
    pipelines = [stage.create_pipeline() for stage in stages]
    pipelines += [reporting.create_pipeline(embedded_world=False), leaf.create_pipeline(embedded_world=False)]
    # Summing merges the nodes stages share (the base model's evaluation); Pipeline([...]) would reject them.
    return sum(pipelines, Pipeline([]))
