"""Nodes of the ``attribution`` pipeline."""

from __future__ import annotations

import logging

import pandas as pd

from tracesieve.config import AttributionConfig, SelectionConfig
from tracesieve.lazy import lazy_module
from tracesieve.metrics import as_mlflow_metrics

logger = logging.getLogger(__name__)

attribution = lazy_module("tracesieve.attribution")  # torch: loaded when a node runs
modeling = lazy_module("tracesieve.modeling")  # torch, transformers
result_store = lazy_module("tracesieve.result_store")  # pyarrow


def attribute_trace_tokens(
    traces: pd.DataFrame, model, tokenizer, segments: pd.DataFrame, config: AttributionConfig, attribution_store: result_store.ResultStore,
    selection: SelectionConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Token attributions of every trace, the rejected traces, per-trace diagnostics and summary metrics.

    ``segments`` and ``selection`` steer the refinement to what selection reads (attribution/engine.py)."""
    device = modeling.resolve_device(config.device)
    model = model.to(device=device, dtype=modeling.resolve_dtype(config.dtype, device))
    run = attribution.attribute_traces(traces, model, tokenizer, config, attribution_store, segments, selection)
    if len(run.attributions) + len(run.rejects) != len(traces):
        raise RuntimeError(
            f"Attribution lost traces: {len(traces)} in, {len(run.attributions)} attributed, {len(run.rejects)} rejected"
        )
    summary = attribution.attribution_summary(run)
    logger.info("Attributed %d traces (%d resumed, %d rejected)", len(run.attributions), run.resumed, len(run.rejects))
    logger.info(attribution.quality_line(run.diagnostics, config))
    return run.attributions, run.rejects, run.diagnostics, as_mlflow_metrics(summary)
