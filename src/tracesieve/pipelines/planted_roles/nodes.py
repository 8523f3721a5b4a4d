"""Nodes of the ``planted_roles`` pipeline."""

from __future__ import annotations

import logging

import pandas as pd

from tracesieve.metrics import as_mlflow_metrics
from tracesieve.world import roles
from tracesieve.world.roles import LABEL_VALIDITY_THRESHOLD, label_validity, planted_role_quality

logger = logging.getLogger(__name__)


def measure_planted_roles(
    segment_metrics: pd.DataFrame, selections: pd.DataFrame, world_segments: pd.DataFrame, segment_scores: pd.DataFrame
) -> tuple[pd.DataFrame, dict]:
    """Per planted role: strength share, consistency and share selected per strategy; every scorer's AUROCs."""
    table, quality = planted_role_quality(segment_metrics, selections, world_segments, segment_scores)
    return table, as_mlflow_metrics(quality)


def measure_label_validity(
    segment_scores: pd.DataFrame, segments: pd.DataFrame, world_segments: pd.DataFrame
) -> tuple[pd.DataFrame, dict, dict[str, float]]:
    """The label-validity gate: segment occlusion on the attribution model, source steps against filler;
    the per-segment table, the gate for MLflow, and the gate's figures for the report."""
    occlusion = segment_scores[segment_scores["scorer"] == "occlusion"].rename(columns={"score": "drop"}).drop(columns="scorer")
    table, gate = label_validity(occlusion, segments, world_segments)
    verdict = "passes" if gate["label_validity_passed"] else "FAILS: the planted roles do not matter to the model, so verdicts on them are about the world"
    logger.info(
        "Label-validity gate %s (within-trace AUROC of the occlusion drop, source vs filler: %.3f over %d traces; threshold %.2f)",
        verdict, gate["label_validity_auroc"], gate["label_validity_traces"], LABEL_VALIDITY_THRESHOLD,
    )
    return table, as_mlflow_metrics(gate), gate


def select_oracle_segments(segments: pd.DataFrame, world_segments: pd.DataFrame) -> pd.DataFrame:
    """The oracle's loss masks: the segments the planted roles say the answer's derivation needs."""
    return roles.oracle_selections(segments, world_segments)


def measure_oracle_headroom(oracle_generations: pd.DataFrame, full_generations: pd.DataFrame) -> tuple[dict, dict[str, float]]:
    """The oracle-headroom gate: oracle-mask SFT minus full-trace SFT, accuracy and response tokens (for
    MLflow, and as figures for the report)."""
    gate = roles.oracle_headroom(oracle_generations, full_generations)
    verdict = "passes" if gate["oracle_headroom_passed"] else "FAILS: the world leaves selective SFT no headroom to recover"
    logger.info(
        "Oracle-headroom gate %s (oracle minus full SFT: accuracy %+.3f [%+.3f, %+.3f], response tokens %+.1f [%+.1f, %+.1f])",
        verdict, gate["oracle_headroom_accuracy"], gate["oracle_headroom_accuracy_ci_low"], gate["oracle_headroom_accuracy_ci_high"],
        gate["oracle_headroom_tokens"], gate["oracle_headroom_tokens_ci_low"], gate["oracle_headroom_tokens_ci_high"],
    )
    return as_mlflow_metrics(gate), gate
