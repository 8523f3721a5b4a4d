"""Wiring of the ``segmentation`` pipeline."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.segmentation.nodes import segment_traces


def create_pipeline(**kwargs) -> Pipeline:
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
