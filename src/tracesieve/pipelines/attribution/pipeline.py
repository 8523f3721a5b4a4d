"""Wiring of the ``attribution`` pipeline: the teacher attributes (it is the model whose gradients mean most)."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.attribution.nodes import attribute_trace_tokens
from tracesieve.pipelines.shape import PipelineShape


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    # The run's shape does not change this stage's wiring; the registry builds every stage alike.
    return Pipeline(
        [
            Node(
                attribute_trace_tokens,
                inputs=["traces", "teacher.model", "tokenizer", "segments", "params:attribution", "attribution_store",
                        "params:selection"],
                outputs=["token_attributions", "attribution_rejects", "attribution_diagnostics", "attribution_metrics"],
                name="attribute_trace_tokens",
            )
        ]
    )
