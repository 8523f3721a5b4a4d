"""Nodes of the ``selection`` pipeline."""

from __future__ import annotations

import pandas as pd

from tracesieve import selection
from tracesieve.config import SelectionConfig
from tracesieve.metrics import as_mlflow_metrics


def score_segments(token_attributions: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """Strength, share and consistency of every segment of every attributed trace, with its spans."""
    return selection.score_segments(token_attributions, segments)


def select_loss_segments(segment_metrics: pd.DataFrame, config: SelectionConfig) -> tuple[pd.DataFrame, dict]:
    """For each trace and strategy: the selected segments and the loss-mask spans, in characters and tokens."""
    selections = selection.select_loss_segments(segment_metrics, config)
    return selections, as_mlflow_metrics(selection.selection_summary(selections, segment_metrics))
