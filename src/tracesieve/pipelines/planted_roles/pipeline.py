"""Wiring of the ``planted_roles`` pipeline (embedded world only: real traces have no planted roles)."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.planted_roles.nodes import measure_label_validity, measure_planted_roles


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                measure_planted_roles,
                inputs=["segment_metrics", "selections", "world_segments"],
                outputs=["planted_role_table", "planted_role_metrics"],
                name="measure_planted_roles",
            ),
            Node(
                measure_label_validity,
                inputs=["traces", "teacher.model", "tokenizer", "segments", "world_segments"],
                outputs=["label_validity", "gate_metrics"],
                name="measure_label_validity",
            ),
        ]
    )
