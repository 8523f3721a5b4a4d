"""The small statistics and the metric shapes kedro-mlflow expects."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tracesieve.metrics import as_mlflow_metrics, auroc, mean_interval, t_interval, training_metrics, wilson_interval


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


# The hand-written formulas scipy and scikit-learn replaced, kept here as the reference they must match.
def _wilson_by_hand(successes, trials, z=1.959963984540054):
    p = successes / trials
    denominator = 1 + z**2 / trials
    centre = (p + z**2 / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z**2 / (4 * trials**2)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _auroc_by_hand(positive, negative):
    ranks = pd.Series([*positive, *negative], dtype="float64").rank(method="average")
    u_statistic = ranks.iloc[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(u_statistic / (len(positive) * len(negative)))


def _mean_interval_by_hand(values, z=1.959963984540054):
    values = pd.Series(values, dtype="float64")
    half = z * float(values.std(ddof=1)) / math.sqrt(len(values))
    return float(values.mean()), float(values.mean()) - half, float(values.mean()) + half


def test_the_library_statistics_equal_the_hand_written_formulas_to_1e_9():
    generator = np.random.default_rng(0)
    for trials in (1, 2, 7, 50, 500, 1000):
        for successes in sorted({0, 1, trials // 3, trials - 1, trials} - {-1}):
            assert wilson_interval(successes, trials) == pytest.approx(_wilson_by_hand(successes, trials), abs=1e-9)
    for _ in range(50):
        positive = generator.integers(0, 6, generator.integers(1, 30)).tolist()  # small integers: many ties
        negative = generator.normal(2, 2, generator.integers(1, 30)).round(0).tolist()
        assert auroc(positive, negative) == pytest.approx(_auroc_by_hand(positive, negative), abs=1e-9)
        values = generator.normal(0, 3, generator.integers(2, 40))
        assert mean_interval(values) == pytest.approx(_mean_interval_by_hand(values), abs=1e-9)
    mean, low, high = mean_interval([0.5])
    assert mean == 0.5 and math.isnan(low) and math.isnan(high)
    assert mean_interval([0.0, 0.0, 0.0]) == (0.0, 0.0, 0.0)  # no spread: a zero-width interval, as by hand


def test_metrics_leave_out_nans_and_training_runs_share_one_shape():
    assert as_mlflow_metrics({"a": 1, "b": float("nan"), "c": None}) == {"a": {"value": 1.0, "step": 0}}
    history = [{"step": 1, "loss": 2.0, "learning_rate": 1e-3}, {"step": 2, "loss": 1.5, "learning_rate": 5e-4}]
    metrics = training_metrics({"strategy": "paper", "supervised_tokens": 40, "counterfactuals": True}, history)
    assert metrics["supervised_tokens"] == {"value": 40.0, "step": 0} and metrics["counterfactuals"]["value"] == 1.0
    assert "strategy" not in metrics
    assert metrics["train_loss"] == [{"step": 1, "value": 2.0}, {"step": 2, "value": 1.5}]
    assert [point["value"] for point in metrics["learning_rate"]] == [1e-3, 5e-4]
    assert "train_loss" not in training_metrics({"train_steps": 0}, [])  # MLflow takes no empty curve


def test_the_t_interval_is_students_over_the_worlds():
    values = [0.1, 0.3, 0.2, 0.25, 0.15]
    mean, low, high = t_interval(values)
    half = stats.t.ppf(0.975, 4) * np.std(values, ddof=1) / math.sqrt(5)
    assert mean == pytest.approx(0.2) and low == pytest.approx(0.2 - half) and high == pytest.approx(0.2 + half)
    assert math.isnan(t_interval([0.4])[1])
    assert t_interval([0.1, None, math.nan, 0.3])[0] == pytest.approx(0.2)  # worlds without the figure are left out


def test_an_interval_prints_its_value_alone_where_it_is_undefined_and_a_dash_without_a_value():
    from tracesieve.metrics import format_figure, format_interval

    assert format_interval(0.25, 0.1, 0.4, signed=True) == "+0.250 [+0.100, +0.400]"
    assert format_interval(0.25, math.nan, math.nan) == "0.250" and format_interval(None, 0.1, 0.2) == "-"
    assert format_figure({"gain": 1.5, "gain_ci_low": 1.0, "gain_ci_high": 2.0}, "gain", 1) == "1.5 [1.0, 2.0]"


def test_the_normal_quantile_constant_is_scipys_to_the_last_bit():
    """``Z_95`` is written out so that importing metrics does not import scipy.stats; the stored intervals were
    computed with scipy's value, so it must be that value exactly."""
    from tracesieve.metrics import Z_95

    assert Z_95 == float(stats.norm.ppf(0.975))
