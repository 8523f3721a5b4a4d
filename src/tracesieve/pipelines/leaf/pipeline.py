"""Wiring of ``leaf``: gradient comparison -> confounders -> counterfactuals -> intervention check ->
distillation (``kd`` and ``leaf_distilled`` namespaces) -> evaluation -> comparison and report."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tracesieve.config import DISTILLATION_VARIANTS
from tracesieve.pipelines import ingestion, world
from tracesieve.pipelines.evaluation.nodes import BASE_MODEL
from tracesieve.pipelines.evaluation.pipeline import create_evaluation_pipelines
from tracesieve.pipelines.leaf.nodes import (
    build_counterfactuals,
    check_counterfactuals,
    compare_distillation,
    compare_teacher_student_gradients,
    distillation_node,
    measure_distractor_gate,
    score_against_planted_distractors,
    write_leaf_report,
)
from tracesieve.pipelines.shape import PipelineShape

# The models LeaF reads: its own roles, because a real run distils other models than it attributes with.
# The world publishes its teacher, student and tokenizer under these names (world.share_models_with_leaf).
LEAF_STUDENT = "leaf_student"


def create_distillation_pipeline(variant: str) -> Pipeline:
    """Distil the teacher into the student with the lambda and counterfactuals of ``leaf.variants.<variant>``."""
    return Pipeline(
        [
            Node(
                distillation_node(variant),
                inputs=["student_model", "teacher_model", "tokenizer", "traces", "leaf_checked_counterfactuals", "params:leaf"],
                outputs=["model", "training_metrics", "training_log", "length_rejects"],
                name="distill_variant",
            )
        ]
    )


def create_pipeline(shape: PipelineShape | None = None, embedded_world: bool = True, **kwargs) -> Pipeline:
    """On the embedded world (the default), ``leaf`` runs from scratch: it includes the world and the
    ingestion of its traces (their warm-up training resumes from finished checkpoints) and scores the
    confounders against the planted distractors. ``embedded_world=False`` is the version for real data,
    which ``from_traces`` runs after its own ingestion.
    """
    planted_distractors = embedded_world
    analysis = Pipeline(
        [
            Node(
                compare_teacher_student_gradients,
                inputs=["traces", "leaf_teacher.model", "leaf_student.model", "leaf_tokenizer", "params:leaf", "leaf_gradient_store"],
                outputs=["leaf_gradients", "leaf_gradient_rejects", "leaf_gradient_metrics"],
                name="compare_teacher_student_gradients",
            ),
            Node(
                build_counterfactuals,
                inputs=["traces", "leaf_gradients", "leaf_tokenizer", "params:leaf"],
                outputs=["leaf_confounders", "leaf_counterfactuals", "leaf_counterfactual_metrics"],
                name="build_counterfactuals",
            ),
            Node(
                check_counterfactuals,
                inputs=["leaf_counterfactuals", "traces", "leaf_teacher.model", "leaf_student.model", "leaf_tokenizer", "params:leaf"],
                outputs=["leaf_checked_counterfactuals", "leaf_check_metrics"],
                name="check_counterfactuals",
            ),
        ]
    )
    shared = {"tokenizer": "leaf_tokenizer", "traces": "traces", "leaf_checked_counterfactuals": "leaf_checked_counterfactuals"}
    distillation = [
        Pipeline(
            create_distillation_pipeline(variant),
            namespace=variant,
            inputs={"student_model": "leaf_student.model", "teacher_model": "leaf_teacher.model", **shared},
            parameters={"params:leaf": "params:leaf"},
        )
        for variant in DISTILLATION_VARIANTS
    ]
    # LeaF's base row is its own student, graded like every model (in the world, the same weights as `base`).
    evaluation = create_evaluation_pipelines(
        DISTILLATION_VARIANTS, base_name=LEAF_STUDENT, base_model=f"{LEAF_STUDENT}.model", tokenizer="leaf_tokenizer"
    )
    comparison_inputs = {"leaf_config": "params:leaf", "evaluation_config": "params:evaluation"}
    comparison_inputs[f"{BASE_MODEL}_generations"] = f"{LEAF_STUDENT}.generations"
    comparison_inputs |= {f"{name}_generations": f"{name}.generations" for name in DISTILLATION_VARIANTS}
    comparison_inputs |= {f"{variant}_training_log": f"{variant}.training_log" for variant in DISTILLATION_VARIANTS}
    planted = {"world_distractors": "world_distractors"} if planted_distractors else {}
    reporting = [
        Node(compare_distillation, inputs=comparison_inputs, outputs=["leaf_comparison", "leaf_comparison_metrics"], name="compare_distillation"),
        Node(
            write_leaf_report,
            inputs={
                "leaf_comparison": "leaf_comparison",
                "leaf_checked_counterfactuals": "leaf_checked_counterfactuals",
                "leaf_confounders": "leaf_confounders",
                "config": "params:leaf",
                **planted,
            },
            outputs="leaf_report",
            name="write_leaf_report",
        ),
    ]
    if planted_distractors:
        reporting.append(
            Node(
                score_against_planted_distractors,
                inputs=["leaf_confounders", "leaf_checked_counterfactuals", "world_distractors", "traces", "params:leaf"],
                outputs="leaf_distractor_metrics",
                name="score_against_planted_distractors",
            )
        )
        reporting.append(
            Node(
                measure_distractor_gate,
                inputs=[
                    f"{LEAF_STUDENT}.generations", "teacher.heldout_generations", "eval_problems", "world_distractors",
                    f"{LEAF_STUDENT}.model", "leaf_tokenizer", "params:evaluation",
                ],
                outputs=["distractor_gate_metrics", "distractor_gate"],
                name="measure_distractor_gate",
            )
        )
    stages = Pipeline([analysis, *distillation, *evaluation, *reporting])
    if embedded_world:
        # Identical nodes merge when pipelines are summed, so __default__ still runs each world node once.
        return Pipeline([world.create_pipeline(shape), ingestion.create_pipeline(), stages])
    return stages
