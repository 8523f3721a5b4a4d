"""Wiring of ``fine_tuning``: one modular pipeline, reused per variant through namespaces."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.fine_tuning.nodes import train_variant
from tracesieve.pipelines import configured_variants


def create_variant_pipeline() -> Pipeline:
    """Masked SFT of the base model on one selection strategy's loss masks."""
    return Pipeline(
        [
            Node(
                train_variant,
                inputs=["base_model", "tokenizer", "traces", "selections", "params:fine_tuning", "params:strategy"],
                outputs=["model", "training_metrics", "training_log"],
                name="train_variant",
            )
        ]
    )


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Pipeline(
                create_variant_pipeline(),
                namespace=variant,
                inputs={"base_model": "student.model", "tokenizer": "tokenizer", "traces": "traces", "selections": "selections"},
                parameters={"params:fine_tuning": "params:fine_tuning", "params:strategy": f"params:fine_tuning.strategies.{variant}"},
            )
            for variant in configured_variants()
        ]
    )
