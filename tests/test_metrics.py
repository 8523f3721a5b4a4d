"""The small statistics and the metric shapes kedro-mlflow expects."""

import math

import pytest

from tracesieve.metrics import as_mlflow_metrics, auroc, training_metrics, wilson_interval


def test_auroc():
    assert auroc([3, 4], [1, 2]) == 1.0
    assert auroc([1, 2], [3, 4]) == 0.0
    assert auroc([1, 2], [1, 2]) == 0.5
    assert math.isnan(auroc([], [1]))


def test_wilson_interval_stays_inside_zero_one_and_brackets_the_proportion():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.2 < high < 0.35
    low, high = wilson_interval(216, 500)
    assert low == pytest.approx(0.389, abs=1e-3) and high == pytest.approx(0.476, abs=1e-3)
    assert all(math.isnan(value) for value in wilson_interval(0, 0))


def test_metrics_leave_out_nans_and_training_runs_share_one_shape():
    assert as_mlflow_metrics({"a": 1, "b": float("nan"), "c": None}) == {"a": {"value": 1.0, "step": 0}}
    history = [{"step": 1, "loss": 2.0, "learning_rate": 1e-3}, {"step": 2, "loss": 1.5, "learning_rate": 5e-4}]
    metrics = training_metrics({"strategy": "paper", "supervised_tokens": 40, "counterfactuals": True}, history)
    assert metrics["supervised_tokens"] == {"value": 40.0, "step": 0} and metrics["counterfactuals"]["value"] == 1.0
    assert "strategy" not in metrics
    assert metrics["train_loss"] == [{"step": 1, "value": 2.0}, {"step": 2, "value": 1.5}]
    assert [point["value"] for point in metrics["learning_rate"]] == [1e-3, 5e-4]
    assert "train_loss" not in training_metrics({"train_steps": 0}, [])  # MLflow takes no empty curve
