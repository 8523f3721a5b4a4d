"""Both methods on trace files, without the embedded world: ``segment_method`` + ``leaf_method``, and the
paper's ablation scorers beside IG (``faithfulness``). What real data and real models use when every model
is configured; ``--pipeline segment_method`` or ``--pipeline leaf_method`` runs one method alone.

It is a package of its own (not only a sum in the registry) because ``kedro run --pipeline NAME`` imports
just ``tracesieve.pipelines.NAME``.
"""

from kedro.pipeline import Pipeline

from tracesieve.pipelines import faithfulness, leaf_method, segment_method


def create_pipeline(**kwargs) -> Pipeline:
    # Summing merges the nodes the methods share (ingestion, the base model's evaluation).
    return segment_method.create_pipeline() + faithfulness.create_pipeline() + leaf_method.create_pipeline()
