"""Grading by mathematical equivalence, pass@k, accuracy intervals and paired differences."""

import math

import pandas as pd
import pytest

from tracesieve.evaluation import is_correct, paired_difference, pass_at_k, summarize_generations


@pytest.mark.parametrize(
    ("completion", "gold"),
    [
        ("so \\boxed{1/2}", "0.5"),
        ("so \\boxed{0.5}", "\\frac{1}{2}"),
        ("so \\boxed{\\frac{1}{2}}", "1/2"),
        ("\\boxed{7.0}", "7"),
        ("first \\boxed{3}, no: \\boxed{12}", "12"),
        ("\\boxed{ 12 }", "12"),
    ],
)
def test_equivalent_forms_are_correct(completion, gold):
    assert is_correct(completion, gold)


@pytest.mark.parametrize(
    ("completion", "gold"),
    [
        ("\\boxed{0.51}", "1/2"),
        ("\\boxed{12} then \\boxed{13}", "12"),  # the last box is the answer
        ("the answer is 12", "12"),  # no box, no answer
        ("truncated \\boxed{1", "1"),  # an unclosed box does not count
        ("\\boxed{}", "0"),
    ],
)
def test_wrong_or_missing_answers_are_not_correct(completion, gold):
    assert not is_correct(completion, gold)


def test_pass_at_k_matches_hand_computation():
    assert pass_at_k(5, 2, 1) == pytest.approx(2 / 5)
    assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)  # 1 - C(3,2)/C(5,2)
    assert pass_at_k(5, 0, 3) == 0.0
    assert pass_at_k(5, 4, 2) == 1.0  # fewer wrong samples than k: some pick is always right
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(2, 1, 3)


def _samples():
    # problem a: 2 of 2 right; b: 1 of 2; c: 0 of 2
    return pd.DataFrame(
        {
            "problem_id": ["a", "a", "b", "b", "c", "c"],
            "correct": [True, True, True, False, False, False],
            "n_tokens": [10, 20, 30, 40, 50, 60],
            "truncated": [False, False, False, False, False, True],
            "has_distractor": [True, True, False, False, False, False],
        }
    )


def test_summary_counts_every_sample_not_only_the_first():
    summary = summarize_generations(_samples(), pass_ks=(1, 2))
    assert summary["accuracy"] == pytest.approx(3 / 6)  # the first samples alone would give 2/3
    assert summary["pass_at_1"] == pytest.approx(0.5)
    assert summary["pass_at_2"] == pytest.approx((1 + 1 + 0) / 3)
    assert summary["problems"] == 3 and summary["samples_per_problem"] == 2
    assert summary["mean_response_tokens"] == pytest.approx(35)
    assert summary["truncated_share"] == pytest.approx(1 / 6)
    assert summary["accuracy_with_distractor"] == 1.0 and summary["accuracy_without_distractor"] == pytest.approx(0.25)


def test_several_samples_per_problem_give_an_interval_over_problems():
    # Per-problem accuracies 1, 0.5, 0, 0.5, 0.5: mean 0.5, sample sd sqrt(0.125).
    table = pd.DataFrame(
        {
            "problem_id": [p for p in "abcde" for _ in range(2)],
            "correct": [True, True, True, False, False, False, True, False, False, True],
            "n_tokens": 5,
            "truncated": False,
        }
    )
    summary = summarize_generations(table)
    half = 1.959964 * math.sqrt(0.125) / math.sqrt(5)
    assert summary["accuracy_ci_low"] == pytest.approx(0.5 - half)
    assert summary["accuracy_ci_high"] == pytest.approx(0.5 + half)


def test_one_sample_per_problem_uses_wilson():
    table = pd.DataFrame({"problem_id": list("abcd"), "correct": [True, False, False, False], "n_tokens": 5, "truncated": False})
    summary = summarize_generations(table)
    assert 0 < summary["accuracy_ci_low"] < 0.25 < summary["accuracy_ci_high"] < 1
    assert "pass_at_1" in summary and summary["pass_at_1"] == pytest.approx(0.25)


def test_paired_difference_pairs_by_problem():
    ours = pd.Series([1.0, 1.0, 0.0, 1.0], index=list("abcd"))
    reference = pd.Series([0.0, 1.0, 0.0, 0.0], index=list("dcba"))  # other order: pairing is by index
    mean, low, high = paired_difference(ours, reference)
    differences = [1 - 0, 1 - 0, 0 - 1, 1 - 0]  # a, b, c, d
    assert mean == pytest.approx(sum(differences) / 4)
    assert low < mean < high
    with pytest.raises(ValueError, match="share no problems"):
        paired_difference(ours, pd.Series([1.0], index=["z"]))
