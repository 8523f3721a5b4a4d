"""Wiring of ``fine_tuning``: one modular pipeline, reused per variant through namespaces."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.fine_tuning.nodes import fine_tuning_node
from tracesieve.pipelines.shape import PipelineShape, shape_or_project


def create_variant_pipeline(variant: str) -> Pipeline:
    """Masked SFT of the base model on the loss masks of the strategy ``fine_tuning.strategies.<variant>``."""
    return Pipeline(
        [
            Node(
                fine_tuning_node(variant),
                inputs=["base_model", "tokenizer", "traces", "selections", "params:fine_tuning"],
                outputs=["model", "training_metrics", "training_log", "length_rejects"],
                name="train_variant",
            )
        ]
    )


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    """A namespace per variant of ``shape``, each reading the selection table of its strategy."""
    shape = shape_or_project(shape)
    return Pipeline(
        [
            Pipeline(
                create_variant_pipeline(variant),
                namespace=variant,
                inputs={"base_model": "student.model", "tokenizer": "tokenizer", "traces": "traces", "selections": shape.selection_table(variant)},
                parameters={"params:fine_tuning": "params:fine_tuning"},
            )
            for variant in shape.variants
        ]
    )
