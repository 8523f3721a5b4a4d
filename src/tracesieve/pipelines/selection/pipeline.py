"""Wiring of the ``selection`` pipeline."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.selection.nodes import score_segments, select_loss_segments
from tracesieve.pipelines.shape import PipelineShape


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    # The run's shape does not change this stage's wiring; the registry builds every stage alike.
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
