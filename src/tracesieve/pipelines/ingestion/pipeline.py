"""Wiring of the ``ingestion`` pipeline."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.ingestion.nodes import ingest_traces
from tracesieve.pipelines.shape import PipelineShape


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    # The run's shape does not change this stage's wiring; the registry builds every stage alike.
    return Pipeline(
        [
            Node(
                ingest_traces,
                inputs=["raw_traces", "params:ingestion"],
                outputs=["traces", "rejected_traces", "ingestion_metrics"],
                name="ingest_traces",
            )
        ]
    )
