"""Wiring of the ``world`` pipeline; the teacher and the base student are one warm-up pipeline, namespaced."""

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.shape import PipelineShape, shape_or_project
from tracesieve.pipelines.world.nodes import (
    build_world_tokenizer,
    evaluate_warmup_model,
    export_eval_problems,
    generate_world_tables,
    share_models_with_leaf,
    summarize_world,
    warmup_training_node,
)


def create_warmup_pipeline(role: str, init_from: str | None = None) -> Pipeline:
    """Train one warm-up model (``world.<role>`` says its size) and grade it on the held-out split; reused
    per model through namespaces. ``init_from``: the model whose trained weights it starts from."""
    return Pipeline(
        [
            Node(
                warmup_training_node(role),
                inputs=["world_problems", "tokenizer", "params:world", *(["init_model"] if init_from else [])],
                outputs=["model", "training_curves", "training_summary"],
                name="train_warmup_model",
            ),
            Node(
                evaluate_warmup_model,
                inputs=["model", "tokenizer", "world_problems", "params:world", "training_summary"],
                outputs=["heldout_generations", "metrics"],
                name="evaluate_warmup_model",
            ),
        ]
    )


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    generation = Pipeline(
        [
            Node(
                generate_world_tables,
                inputs="params:world",
                outputs=["world_problems", "world_segments", "world_distractors", "raw_traces", "world_sample_traces"],
                name="generate_world",
            ),
            Node(export_eval_problems, inputs="world_problems", outputs="eval_problems", name="export_eval_problems"),
            Node(build_world_tokenizer, inputs=["world_problems", "params:world"], outputs="tokenizer", name="build_world_tokenizer"),
            Node(
                summarize_world,
                inputs=["world_problems", "world_segments", "world_distractors", "tokenizer"],
                outputs="world_metrics",
                name="summarize_world",
            ),
        ]
    )
    shared = {"world_problems", "tokenizer"}
    # With world.teacher.init: student, the teacher trains on from the trained student.
    init_from = {"teacher": "student.model"} if shape_or_project(shape).teacher_init == "student" else {}
    warmups = [
        Pipeline(
            create_warmup_pipeline(role, init_from.get(role)),
            namespace=role,
            inputs={**{name: name for name in shared}, **({"init_model": init_from[role]} if role in init_from else {})},
            parameters={"params:world": "params:world"},
        )
        for role in ("teacher", "student")
    ]
    publish = Node(
        share_models_with_leaf,
        inputs=["teacher.model", "student.model", "tokenizer"],
        outputs=["leaf_teacher.model", "leaf_student.model", "leaf_tokenizer"],
        name="share_models_with_leaf",
    )
    return Pipeline([generation, *warmups, publish])
