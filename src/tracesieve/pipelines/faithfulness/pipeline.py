"""Wiring of the ``faithfulness`` pipeline: the scorers run on the attribution model, like IG."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.faithfulness.nodes import (
    measure_faithfulness,
    score_segments_by_every_scorer,
    select_by_every_scorer,
)
from tracesieve.pipelines.shape import PipelineShape


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    # The run's shape does not change this stage's wiring; the registry builds every stage alike.
    return Pipeline(
        [
            Node(
                score_segments_by_every_scorer,
                inputs=["traces", "teacher.model", "tokenizer", "segments", "segment_metrics", "params:faithfulness"],
                outputs="segment_scores",
                name="score_segments_by_every_scorer",
            ),
            Node(
                measure_faithfulness,
                inputs=["traces", "teacher.model", "tokenizer", "segments", "segment_scores", "params:faithfulness"],
                outputs=["faithfulness_curves", "faithfulness_metrics"],
                name="measure_faithfulness",
            ),
            Node(
                select_by_every_scorer,
                inputs=["segment_scores", "segments", "params:selection"],
                outputs="scorer_selections",
                name="select_by_every_scorer",
            ),
        ]
    )
