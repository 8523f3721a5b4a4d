"""Both methods on trace files, without the embedded world: ``segment_method`` + ``leaf_method``, and the
paper's ablation scorers beside IG (``faithfulness``). What real data and real models use when every model
is configured; ``--pipeline segment_method`` or ``--pipeline leaf_method`` runs one method alone.
"""

from kedro.pipeline import Pipeline

from tracesieve.pipelines import faithfulness, leaf_method, segment_method
from tracesieve.pipelines.shape import PipelineShape, shape_or_project


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    shape = shape_or_project(shape)
    # Summing merges the nodes the methods share (ingestion, the base model's evaluation).
    return segment_method.create_pipeline(shape) + faithfulness.create_pipeline(shape) + leaf_method.create_pipeline(shape)
