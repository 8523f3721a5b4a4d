"""Wiring of ``fine_tuning``: one modular pipeline, reused per variant through namespaces."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tracesieve.choices import ORACLE_STRATEGY, SCORER_STRATEGIES
from tracesieve.pipelines import configured_strategy, configured_variants
from tracesieve.pipelines.fine_tuning.nodes import fine_tuning_node


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


def selection_table(variant: str) -> str:
    """The selection table a variant reads its loss masks from: the oracle's comes from the world's planted
    roles (``planted_roles``, world runs only), a scorer's from ``faithfulness``, IG's strategies' from
    ``selection``."""
    strategy = configured_strategy(variant)
    if strategy == ORACLE_STRATEGY:
        return "oracle_selections"
    return "scorer_selections" if strategy in SCORER_STRATEGIES else "selections"


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Pipeline(
                create_variant_pipeline(variant),
                namespace=variant,
                inputs={"base_model": "student.model", "tokenizer": "tokenizer", "traces": "traces", "selections": selection_table(variant)},
                parameters={"params:fine_tuning": "params:fine_tuning"},
            )
            for variant in configured_variants()
        ]
    )
