"""Wiring of the ``segmentation`` pipeline."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.segmentation.nodes import segment_traces
from tracesieve.pipelines.shape import PipelineShape


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    # The run's shape does not change this stage's wiring; the registry builds every stage alike.
    return Pipeline(
        [
            Node(
                segment_traces,
                inputs=["traces", "tokenizer", "params:segmentation"],
                outputs=["segments", "segmentation_metrics"],
                name="segment_traces",
            )
        ]
    )
