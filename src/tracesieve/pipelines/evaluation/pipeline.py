"""Wiring of ``evaluation``: the same grading pipeline for the base model and every variant, then a comparison."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.evaluation.nodes import BASE_MODEL, check_contamination, compare_models, evaluate_model
from tracesieve.pipelines.shape import PipelineShape, shape_or_project


def create_model_pipeline() -> Pipeline:
    return Pipeline(
        [
            Node(
                evaluate_model,
                inputs=["model", "tokenizer", "eval_problems", "params:evaluation"],
                outputs=["generations", "evaluation_metrics"],
                name="evaluate_model",
            )
        ]
    )


PARAMETERS = {"params:evaluation": "params:evaluation"}


def create_evaluation_pipelines(
    models: tuple[str, ...], *, base_name: str = BASE_MODEL, base_model: str = "student.model", tokenizer: str = "tokenizer"
) -> list[Pipeline]:
    """The held-out problems checked against the training traces, then the base model (the student every
    variant starts from; it anchors every table) and each of ``models``, graded on the checked problems by the
    same namespaced pipeline with ``tokenizer``. Identical nodes merge when pipelines are summed."""
    checked = Pipeline(
        [
            Node(
                check_contamination,
                inputs=["eval_problems", "traces", "params:evaluation"],
                outputs=["checked_eval_problems", "contamination", "contamination_metrics"],
                name="check_contamination",
            )
        ]
    )
    shared = {"tokenizer": tokenizer, "eval_problems": "checked_eval_problems"}
    base = Pipeline(create_model_pipeline(), namespace=base_name, inputs={"model": base_model, **shared}, parameters=PARAMETERS)
    return [checked, base, *(Pipeline(create_model_pipeline(), namespace=model, inputs=shared, parameters=PARAMETERS) for model in models)]


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    """The base model and every variant of ``shape`` graded, then compared in one table."""
    variants = shape_or_project(shape).variants
    comparison_inputs = {"evaluation_config": "params:evaluation"}
    comparison_inputs |= {f"{name}_generations": f"{name}.generations" for name in (BASE_MODEL, *variants)}
    comparison_inputs |= {f"{variant}_training_log": f"{variant}.training_log" for variant in variants}
    compare = Node(compare_models, inputs=comparison_inputs, outputs=["model_comparison", "comparison_metrics"], name="compare_models")
    return Pipeline([*create_evaluation_pipelines(variants), compare])
