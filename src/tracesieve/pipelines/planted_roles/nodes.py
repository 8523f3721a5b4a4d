"""Nodes of the ``planted_roles`` pipeline."""

from __future__ import annotations

import pandas as pd

from tracesieve.metrics import as_mlflow_metrics
from tracesieve.world.roles import planted_role_quality


def measure_planted_roles(
    segment_metrics: pd.DataFrame, selections: pd.DataFrame, world_segments: pd.DataFrame
) -> tuple[pd.DataFrame, dict]:
    """Per planted role: strength share, consistency and share selected per strategy; AUROCs necessary vs filler."""
    table, quality = planted_role_quality(segment_metrics, selections, world_segments)
    return table, as_mlflow_metrics(quality)
