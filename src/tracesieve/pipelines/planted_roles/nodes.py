"""Nodes of the ``planted_roles`` pipeline."""

from __future__ import annotations

import logging

import pandas as pd

from tracesieve.lazy import lazy_module
from tracesieve.metrics import as_mlflow_metrics
from tracesieve.world import roles
from tracesieve.world.roles import LABEL_VALIDITY_THRESHOLD, label_validity, planted_role_quality

logger = logging.getLogger(__name__)

modeling = lazy_module("tracesieve.modeling")  # torch, transformers


def measure_planted_roles(
    segment_metrics: pd.DataFrame, selections: pd.DataFrame, world_segments: pd.DataFrame, segment_scores: pd.DataFrame
) -> tuple[pd.DataFrame, dict]:
    """Per planted role: strength share, consistency and share selected per strategy; every scorer's AUROCs."""
    table, quality = planted_role_quality(segment_metrics, selections, world_segments, segment_scores)
    return table, as_mlflow_metrics(quality)


def measure_label_validity(
    segment_scores: pd.DataFrame, segments: pd.DataFrame, world_segments: pd.DataFrame, traces: pd.DataFrame, model, tokenizer
) -> tuple[pd.DataFrame, dict, dict[str, float]]:
    """The label-validity gates: segment occlusion on the attribution model, source steps against filler
    (the answer's log-probability), and upstream steps against filler (the count the next step starts
    from); the per-segment table, the gates for MLflow, and the gates' figures for the report."""
    occlusion = segment_scores[segment_scores["scorer"] == "occlusion"].rename(columns={"score": "drop"}).drop(columns="scorer")
    table, gate = label_validity(occlusion, segments, world_segments)
    gate |= roles.upstream_label_validity(model.to(modeling.resolve_device()), tokenizer, traces, world_segments)
    logger.info(
        "Upstream label-validity gate %s (within-step AUROC of the drop of the next step's starting count, upstream vs "
        "earlier filler: %.3f over %d steps)",
        "passes" if gate["label_validity_upstream_passed"] else "FAILS: deleting an upstream step does not matter more than filler",
        gate["label_validity_upstream_auroc"], gate["label_validity_upstream_pairs"],
    )
    verdict = "passes" if gate["label_validity_passed"] else "FAILS: the planted roles do not matter to the model, so verdicts on them are about the world"
    logger.info(
        "Label-validity gate %s (within-trace AUROC of the occlusion drop, source vs filler: %.3f over %d traces; threshold %.2f)",
        verdict, gate["label_validity_auroc"], gate["label_validity_traces"], LABEL_VALIDITY_THRESHOLD,
    )
    return table, as_mlflow_metrics(gate), gate


def select_oracle_segments(segments: pd.DataFrame, world_segments: pd.DataFrame) -> pd.DataFrame:
    """The oracle's loss masks: the segments the planted roles say the answer's derivation needs."""
    return roles.oracle_selections(segments, world_segments)


def measure_fine_tuning_gates(
    base_generations: pd.DataFrame,
    full_generations: pd.DataFrame,
    oracle_generations: pd.DataFrame,
    position_generations: pd.DataFrame | None = None,
    budget_generations: pd.DataFrame | None = None,
) -> tuple[dict, dict[str, float]]:
    """The gates read from fine-tuned models: SFT effect (full SFT minus the base student), oracle headroom
    (oracle-mask minus full SFT) and, with the ``position_sft`` control, position only (for MLflow, and as
    figures for the report)."""
    gates = roles.fine_tuning_gates(base_generations, full_generations, oracle_generations, position_generations, budget_generations)
    logger.info(
        "SFT-effect gate %s (full SFT minus the base student: accuracy %+.3f [%+.3f, %+.3f])",
        "passes" if gates["sft_effect_passed"] else "FAILS: SFT on the traces does not improve the student, so no mask can show anything",
        gates["sft_effect_accuracy"], gates["sft_effect_accuracy_ci_low"], gates["sft_effect_accuracy_ci_high"],
    )
    logger.info(
        "Oracle-headroom gate %s (oracle minus full SFT: accuracy %+.3f [%+.3f, %+.3f], response tokens %+.1f [%+.1f, %+.1f])",
        "passes" if gates["oracle_headroom_passed"] else "FAILS: the world leaves selective SFT no accuracy headroom to recover",
        gates["oracle_headroom_accuracy"], gates["oracle_headroom_accuracy_ci_low"], gates["oracle_headroom_accuracy_ci_high"],
        gates["oracle_headroom_tokens"], gates["oracle_headroom_tokens_ci_low"], gates["oracle_headroom_tokens_ci_high"],
    )
    if "position_only_passed" in gates:
        logger.info(
            "Position-only gate %s (first, penultimate and last segments alone recover %.0f%% of the oracle's headroom; at most %.0f%%)",
            "passes" if gates["position_only_passed"] else "FAILS: position tells roles here, so attribution cannot be told from position",
            100 * gates["position_only_share"], 100 * roles.POSITION_ONLY_MAX_SHARE,
        )
    if "oracle_vs_budget_passed" in gates:
        logger.info(
            "Oracle-versus-budget gate %s (oracle minus random segments at its token budget: accuracy %+.3f [%+.3f, %+.3f])",
            "passes" if gates["oracle_vs_budget_passed"] else "FAILS: the oracle's headroom may be the loss's reweighting, not its selection",
            gates["oracle_vs_budget_accuracy"], gates["oracle_vs_budget_accuracy_ci_low"], gates["oracle_vs_budget_accuracy_ci_high"],
        )
    return as_mlflow_metrics(gates), gates
