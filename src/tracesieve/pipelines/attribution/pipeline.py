"""Wiring of the ``attribution`` pipeline: the teacher attributes (it is the model whose gradients mean most)."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.attribution.nodes import attribute_trace_tokens


def create_pipeline(**kwargs) -> Pipeline:
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
