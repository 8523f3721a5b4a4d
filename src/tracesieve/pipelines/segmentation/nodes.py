"""Nodes of the ``segmentation`` pipeline."""

from __future__ import annotations

import pandas as pd

from tracesieve import segmentation
from tracesieve.config import SegmentationConfig
from tracesieve.metrics import as_mlflow_metrics


def segment_traces(traces: pd.DataFrame, tokenizer, config: SegmentationConfig) -> tuple[pd.DataFrame, dict]:
    """Segments of every trace, their character spans in the trace and token spans in the rendered example."""
    segments = segmentation.segment_traces(traces, tokenizer, config)
    return segments, as_mlflow_metrics(segmentation.segmentation_summary(traces, segments))
