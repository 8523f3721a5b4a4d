"""Wiring of the ``selection`` pipeline."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.selection.nodes import score_segments, select_loss_segments


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(score_segments, inputs=["token_attributions", "segments"], outputs="segment_metrics", name="score_segments"),
            Node(
                select_loss_segments,
                inputs=["segment_metrics", "params:selection"],
                outputs=["selections", "selection_metrics"],
                name="select_loss_segments",
            ),
        ]
    )
