"""Nodes of the ``attribution`` pipeline."""

from __future__ import annotations

import logging

import pandas as pd

from tracesieve.attribution import attribute_traces, attribution_summary, quality_line
from tracesieve.config import AttributionConfig, SelectionConfig
from tracesieve.metrics import as_mlflow_metrics
from tracesieve.modeling import resolve_device, resolve_dtype
from tracesieve.result_store import ResultStore

logger = logging.getLogger(__name__)


def attribute_trace_tokens(
    traces: pd.DataFrame, model, tokenizer, segments: pd.DataFrame, config: AttributionConfig, attribution_store: ResultStore,
    selection: SelectionConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Token attributions of every trace, the rejected traces, per-trace diagnostics and summary metrics.

    ``segments`` and ``selection`` steer the refinement to what selection reads (attribution/engine.py)."""
    device = resolve_device(config.device)
    model = model.to(device=device, dtype=resolve_dtype(config.dtype, device))
    run = attribute_traces(traces, model, tokenizer, config, attribution_store, segments, selection)
    if len(run.attributions) + len(run.rejects) != len(traces):
        raise RuntimeError(
            f"Attribution lost traces: {len(traces)} in, {len(run.attributions)} attributed, {len(run.rejects)} rejected"
        )
    summary = attribution_summary(run)
    logger.info("Attributed %d traces (%d resumed, %d rejected)", len(run.attributions), run.resumed, len(run.rejects))
    logger.info(quality_line(run.diagnostics, config))
    return run.attributions, run.rejects, run.diagnostics, as_mlflow_metrics(summary)
