"""Small statistics shared by the pipelines, and the shape kedro-mlflow's metrics datasets expect."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tracesieve.lazy import lazy_module

stats = lazy_module("scipy.stats")  # a second to import, and every nodes module imports this one

# The standard normal's 97.5% quantile (two-sided 95% intervals), as scipy.stats.norm.ppf(0.975) gives it to the
# last bit (statistics.NormalDist differs in the 16th digit, which would change stored figures).
Z_95 = 1.959963984540054


def _mean_with_interval(values: np.ndarray, bounds) -> tuple[float, float, float]:
    """Mean and the 95% interval ``bounds(mean, standard error)`` gives; NaN halves for a single value."""
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    spread = float(stats.sem(values))
    if spread == 0:  # identical values (two variants that agree on every problem): scipy's scale must be > 0
        return mean, mean, mean
    low, high = bounds(mean, spread)
    return mean, float(low), float(high)


def mean_interval(values: Sequence[float] | pd.Series) -> tuple[float, float, float]:
    """Mean with a 95% normal interval over the values (scipy; NaN halves for a single value)."""
    values = np.asarray(pd.Series(values, dtype="float64"))
    return _mean_with_interval(values, lambda mean, spread: stats.norm.interval(0.95, loc=mean, scale=spread))


def t_interval(values: Sequence[float | None]) -> tuple[float, float, float]:
    """Mean with a 95% Student-t interval over the values, missing ones left out: for few units (worlds),
    where the normal interval is too narrow."""
    values = np.asarray([value for value in values if not is_missing(value)], dtype=float)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    return _mean_with_interval(values, lambda mean, spread: stats.t.interval(0.95, len(values) - 1, loc=mean, scale=spread))


def is_missing(value) -> bool:
    """None or NaN: a figure that was not measured."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_interval(value, low, high, digits: int = 3, signed: bool = False) -> str:
    """``value [low, high]`` as the reports print it; the value alone where the interval is undefined (one
    world, one value), a dash for no value."""
    sign = "+" if signed else ""
    if is_missing(value):
        return "-"
    if is_missing(low) or is_missing(high):
        return f"{value:{sign}.{digits}f}"
    return f"{value:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def format_figure(entry: Mapping, key: str, digits: int = 3, signed: bool = False) -> str:
    """``format_interval`` of ``entry[key]`` and its ``<key>_ci_low`` / ``<key>_ci_high``."""
    return format_interval(entry.get(key), entry.get(f"{key}_ci_low"), entry.get(f"{key}_ci_high"), digits, signed)


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (scipy's binomtest); sound near 0 and 1, where the normal
    one is not."""
    if trials == 0:
        return math.nan, math.nan
    interval = stats.binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    return float(interval.low), float(interval.high)


def auroc(positive_scores: Sequence[float], negative_scores: Sequence[float]) -> float:
    """Probability that a random positive outscores a random negative, ties counted half (scikit-learn's
    ROC AUC, which is the Mann-Whitney U over the pairs); NaN without both classes."""
    from sklearn.metrics import roc_auc_score  # not at the top: importing scikit-learn takes seconds

    if len(positive_scores) == 0 or len(negative_scores) == 0:
        return math.nan
    labels = np.r_[np.ones(len(positive_scores)), np.zeros(len(negative_scores))]
    return float(roc_auc_score(labels, np.r_[np.asarray(positive_scores, dtype="float64"), np.asarray(negative_scores, dtype="float64")]))


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
