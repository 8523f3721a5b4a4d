"""Wiring of the ``planted_roles`` pipeline (embedded world only: real traces have no planted roles)."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines import configured_variants
from tracesieve.pipelines.planted_roles.nodes import (
    measure_label_validity,
    measure_oracle_headroom,
    measure_planted_roles,
    select_oracle_segments,
)
from tracesieve.world.roles import FULL_VARIANT, ORACLE_VARIANT, headroom_measured


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        Node(
            measure_planted_roles,
            inputs=["segment_metrics", "selections", "world_segments", "segment_scores"],
            outputs=["planted_role_table", "planted_role_metrics"],
            name="measure_planted_roles",
        ),
        Node(
            measure_label_validity,
            inputs=["segment_scores", "segments", "world_segments"],
            outputs=["label_validity", "gate_metrics", "label_validity_gate"],
            name="measure_label_validity",
        ),
        Node(select_oracle_segments, inputs=["segments", "world_segments"], outputs="oracle_selections", name="select_oracle_segments"),
    ]
    # The headroom gate compares two fine-tuning variants; a run that trains neither has no such gate.
    if headroom_measured(configured_variants()):
        nodes.append(
            Node(
                measure_oracle_headroom,
                inputs=[f"{ORACLE_VARIANT}.generations", f"{FULL_VARIANT}.generations"],
                outputs=["oracle_gate_metrics", "oracle_headroom_gate"],
                name="measure_oracle_headroom",
            )
        )
    return Pipeline(nodes)
