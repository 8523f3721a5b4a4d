"""Small statistics shared by the pipelines, and the shape kedro-mlflow's metrics datasets expect."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

Z_95 = 1.959964  # the standard normal's 97.5% quantile: two-sided 95% intervals


def mean_interval(values: Sequence[float] | pd.Series) -> tuple[float, float, float]:
    """Mean with a 95% normal interval over the values (NaN halves for a single value)."""
    values = pd.Series(values, dtype="float64")
    mean = float(values.mean())
    half = Z_95 * float(values.std(ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return mean, mean - half, mean + half


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion; sound near 0 and 1, where the normal one is not."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    denominator = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def auroc(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """Probability that a random positive outscores a random negative, ties counted half (Mann-Whitney U)."""
    if len(positive_scores) == 0 or len(negative_scores) == 0:
        return math.nan
    ranks = pd.Series([*positive_scores, *negative_scores], dtype="float64").rank(method="average")
    n_positive, n_negative = len(positive_scores), len(negative_scores)
    u_statistic = ranks.iloc[:n_positive].sum() - n_positive * (n_positive + 1) / 2
    return float(u_statistic / (n_positive * n_negative))


def as_mlflow_metrics(values: Mapping[str, float], step: int = 0) -> dict[str, dict[str, float]]:
    """``{name: value}`` as kedro-mlflow's ``MlflowMetricsHistoryDataset`` wants it; NaNs are left out."""
    return {
        name: {"value": float(value), "step": step}
        for name, value in values.items()
        if value is not None and not math.isnan(float(value))
    }


def training_metrics(summary: Mapping[str, Any], history: Sequence[Mapping[str, float]]) -> dict:
    """A training run's summary numbers (text fields left out) and its loss and learning-rate curves, in
    kedro-mlflow's metrics shape: the same names for every training node, so runs line up in MLflow."""
    metrics: dict = as_mlflow_metrics({name: value for name, value in summary.items() if not isinstance(value, str)})
    if history:  # MLflow takes no empty curve
        metrics["train_loss"] = [{"step": entry["step"], "value": entry["loss"]} for entry in history]
        metrics["learning_rate"] = [{"step": entry["step"], "value": entry["learning_rate"]} for entry in history]
    return metrics
