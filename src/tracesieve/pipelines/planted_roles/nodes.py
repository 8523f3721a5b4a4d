"""Nodes of the ``planted_roles`` pipeline."""

from __future__ import annotations

import logging

import pandas as pd

from tracesieve.metrics import as_mlflow_metrics
from tracesieve.modeling import resolve_device
from tracesieve.occlusion import segment_occlusion
from tracesieve.world.roles import LABEL_VALIDITY_THRESHOLD, label_validity, planted_role_quality

logger = logging.getLogger(__name__)


def measure_planted_roles(
    segment_metrics: pd.DataFrame, selections: pd.DataFrame, world_segments: pd.DataFrame
) -> tuple[pd.DataFrame, dict]:
    """Per planted role: strength share, consistency and share selected per strategy; AUROCs necessary vs filler."""
    table, quality = planted_role_quality(segment_metrics, selections, world_segments)
    return table, as_mlflow_metrics(quality)


def measure_label_validity(traces: pd.DataFrame, model, tokenizer, segments: pd.DataFrame, world_segments: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The label-validity gate: segment occlusion on the attribution model, necessary steps against filler."""
    occlusion = segment_occlusion(model.to(resolve_device()), tokenizer, traces, segments)
    table, gate = label_validity(occlusion, segments, world_segments)
    verdict = "passes" if gate["label_validity_passed"] else "FAILS: the planted roles do not matter to the model, so verdicts on them are about the world"
    logger.info(
        "Label-validity gate %s (within-trace AUROC of the occlusion drop, necessary vs filler: %.3f over %d traces; threshold %.2f)",
        verdict, gate["label_validity_auroc"], gate["label_validity_traces"], LABEL_VALIDITY_THRESHOLD,
    )
    return table, as_mlflow_metrics(gate)
