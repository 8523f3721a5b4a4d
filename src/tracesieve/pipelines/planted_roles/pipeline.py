"""Wiring of the ``planted_roles`` pipeline (embedded world only: real traces have no planted roles)."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.planted_roles.nodes import (
    measure_fine_tuning_gates,
    measure_label_validity,
    measure_planted_roles,
    select_oracle_segments,
)
from tracesieve.pipelines.shape import PipelineShape, shape_or_project
from tracesieve.world.roles import (
    BASE_MODEL,
    FULL_VARIANT,
    ORACLE_BUDGET_VARIANT,
    ORACLE_VARIANT,
    POSITION_VARIANT,
    headroom_measured,
)


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    nodes = [
        Node(
            measure_planted_roles,
            inputs=["segment_metrics", "selections", "world_segments", "segment_scores"],
            outputs=["planted_role_table", "planted_role_metrics"],
            name="measure_planted_roles",
        ),
        Node(
            measure_label_validity,
            inputs=["segment_scores", "segments", "world_segments", "traces", "teacher.model", "tokenizer"],
            outputs=["label_validity", "gate_metrics", "label_validity_gate"],
            name="measure_label_validity",
        ),
        Node(select_oracle_segments, inputs=["segments", "world_segments"], outputs="oracle_selections", name="select_oracle_segments"),
    ]
    # The fine-tuning gates compare variants; a run that trains neither full nor oracle SFT has none, and the
    # position-only gate needs the position_sft control.
    variants = shape_or_project(shape).variants
    if headroom_measured(variants):
        inputs = {
            "base_generations": f"{BASE_MODEL}.generations",
            "full_generations": f"{FULL_VARIANT}.generations",
            "oracle_generations": f"{ORACLE_VARIANT}.generations",
        }
        if POSITION_VARIANT in variants:
            inputs["position_generations"] = f"{POSITION_VARIANT}.generations"
        if ORACLE_BUDGET_VARIANT in variants:
            inputs["budget_generations"] = f"{ORACLE_BUDGET_VARIANT}.generations"
        nodes.append(
            Node(
                measure_fine_tuning_gates,
                inputs=inputs,
                outputs=["fine_tuning_gate_metrics", "fine_tuning_gates"],
                name="measure_fine_tuning_gates",
            )
        )
    return Pipeline(nodes)
