"""Wiring of ``evaluation``: the same grading pipeline for the base model and every variant, then a comparison."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines import configured_variants
from tracesieve.pipelines.evaluation.nodes import BASE_MODEL, compare_models, evaluate_model


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


def create_pipeline(**kwargs) -> Pipeline:
    variants = configured_variants()
    shared = {"tokenizer", "eval_problems"}
    # The base model is the student the variants start from: graded by the same code, it anchors the table.
    parameters = {"params:evaluation": "params:evaluation"}
    base = Pipeline(
        create_model_pipeline(),
        namespace=BASE_MODEL,
        inputs={"model": "student.model", **{name: name for name in shared}},
        parameters=parameters,
    )
    per_variant = [Pipeline(create_model_pipeline(), namespace=variant, inputs=shared, parameters=parameters) for variant in variants]
    comparison_inputs = {"evaluation_params": "params:evaluation", "fine_tuning_params": "params:fine_tuning"}
    comparison_inputs |= {f"{name}_generations": f"{name}.generations" for name in (BASE_MODEL, *variants)}
    comparison_inputs |= {f"{variant}_training_log": f"{variant}.training_log" for variant in variants}
    compare = Node(compare_models, inputs=comparison_inputs, outputs=["model_comparison", "comparison_metrics"], name="compare_models")
    return Pipeline([base, *per_variant, compare])
