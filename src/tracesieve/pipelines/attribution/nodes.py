"""Nodes of the ``attribution`` pipeline."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from tracesieve.attribution import AttributionStore, attribute_traces
from tracesieve.config import AttributionConfig
from tracesieve.metrics import as_mlflow_metrics
from tracesieve.modeling import resolve_device, resolve_dtype

logger = logging.getLogger(__name__)
DIAGNOSTIC_COLUMNS = ["trace_id", "n_tokens", "target_score", "baseline_score", "attribution_sum", "completeness_gap", "seconds"]


def attribute_trace_tokens(
    traces: pd.DataFrame, model, tokenizer, attribution_params: dict[str, Any], attribution_store: AttributionStore
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Token attributions of every trace, the rejected traces, per-trace diagnostics and summary metrics."""
    config = AttributionConfig.from_params(attribution_params, name="attribution")
    device = resolve_device(config.device)
    model = model.to(device=device, dtype=resolve_dtype(config.dtype, device))
    run = attribute_traces(traces, model, tokenizer, config, attribution_store)
    if len(run.attributions) + len(run.rejects) != len(traces):
        raise RuntimeError(
            f"Attribution lost traces: {len(traces)} in, {len(run.attributions)} attributed, {len(run.rejects)} rejected"
        )
    attributed = run.attributions
    gaps = attributed["completeness_gap"]
    metrics: dict[str, float] = {
        "traces_attributed": len(attributed),
        "traces_rejected": len(run.rejects),
        "traces_resumed": run.resumed,
        "traces_computed": run.computed,
        "tokens_mean": attributed["n_tokens"].mean(),
        "completeness_gap_mean": gaps.mean(),
        "completeness_gap_median": gaps.median(),
        "completeness_gap_max": gaps.max(),
        "target_score_mean": attributed["target_score"].mean(),
        "baseline_score_mean": attributed["baseline_score"].mean(),
        "seconds_per_trace_mean": attributed["seconds"].mean(),
    }
    for kind, count in run.rejects["kind"].value_counts().items():
        metrics[f"rejected_{kind}"] = count
    logger.info(
        "Attributed %d traces (%d resumed, %d rejected); completeness gap median %.2e, max %.2e",
        len(attributed), run.resumed, len(run.rejects), gaps.median(), gaps.max(),
    )
    return attributed, run.rejects, attributed[DIAGNOSTIC_COLUMNS], as_mlflow_metrics(metrics)
