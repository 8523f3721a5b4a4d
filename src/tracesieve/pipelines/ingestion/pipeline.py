"""Wiring of the ``ingestion`` pipeline."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.ingestion.nodes import ingest_traces


def create_pipeline(**kwargs) -> Pipeline:
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
