"""Wiring of the ``planted_roles`` pipeline (embedded world only: real traces have no planted roles)."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.planted_roles.nodes import measure_planted_roles


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                measure_planted_roles,
                inputs=["segment_metrics", "selections", "world_segments"],
                outputs=["planted_role_table", "planted_role_metrics"],
                name="measure_planted_roles",
            )
        ]
    )
