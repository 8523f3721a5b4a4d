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
            "heldout_skeleton": [False, False, False, False, True, True],
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
    # Problems whose skeleton no training problem has, beside the in-distribution ones.
    assert summary["accuracy_heldout_skeleton"] == 0.0 and summary["accuracy_seen_skeleton"] == pytest.approx(0.75)
    assert summary["mean_response_tokens_heldout_skeleton"] == 55 and summary["mean_response_tokens_seen_skeleton"] == 25


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


def _graded(correct, tokens, distractor):
    return pd.DataFrame({"problem_id": list("abcd"), "sample_index": 0, "correct": correct, "n_tokens": tokens,
                         "truncated": False, "has_distractor": distractor})


def test_comparison_by_distractor_subset_pairs_within_each_subset():
    from tracesieve.evaluation import comparison_by_distractor_subset

    flags = [True, True, False, False]
    generations = {"base": _graded([0, 0, 1, 0], [9] * 4, flags), "kd": _graded([1, 0, 1, 0], [8] * 4, flags),
                   "leaf_distilled": _graded([1, 1, 1, 1], [7] * 4, flags)}
    logs = {"kd": {"summary": {"lambda": 1.0, "train_items": 10}}, "leaf_distilled": {"summary": {"lambda": 0.5, "train_items": 12}}}
    table, metrics = comparison_by_distractor_subset(generations, logs, "kd")
    assert table["subset"].unique().tolist() == ["all", "with_distractor", "without_distractor"]
    rows = table.set_index(["subset", "model"])
    assert rows.loc[("with_distractor", "leaf_distilled"), "accuracy_diff_vs_kd"] == pytest.approx(0.5)
    assert rows.loc[("without_distractor", "leaf_distilled"), "accuracy_diff_vs_kd"] == pytest.approx(0.5)
    assert rows.loc[("all", "leaf_distilled"), "lambda"] == 0.5 and pd.isna(rows.loc[("all", "base"), "lambda"])
    assert metrics["leaf_distilled.with_distractor.accuracy_diff_vs_kd"] == pytest.approx(0.5)
    assert metrics["kd.all.accuracy"] == 0.5
    unflagged = {name: table.drop(columns="has_distractor") for name, table in generations.items()}
    assert comparison_by_distractor_subset(unflagged, logs, "kd")[0]["subset"].unique().tolist() == ["all"]


def test_eval_problems_need_their_columns_and_unique_ids():
    from tracesieve.evaluation import check_eval_problems

    with pytest.raises(ValueError, match=r"lacks the columns \['answer'\]"):
        check_eval_problems(pd.DataFrame({"problem_id": ["a"], "question": ["q"]}))
    with pytest.raises(ValueError, match="problem_id 'a' more than once"):
        check_eval_problems(pd.DataFrame({"problem_id": ["a", "a"], "question": ["q", "r"], "answer": ["1", "2"]}))


def test_evaluate_on_problems_grades_one_row_per_sample_of_the_first_problems():
    from tracesieve.config import EvaluationConfig
    from tracesieve.evaluation import evaluate_on_problems
    from tracesieve.modeling import build_llama
    from tracesieve.world.tokenizer import build_word_tokenizer

    tokenizer = build_word_tokenizer(["Tom has 3 books. How many?"], numbers_up_to=9)
    model = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=128, seed=0)
    problems = pd.DataFrame({"problem_id": ["p1", "p2", "p3"], "question": ["Tom has 3 books. How many?"] * 3, "answer": [3, 3, 3],
                             "has_distractor": [True, False, True], "heldout_skeleton": [False, True, False]})
    config = EvaluationConfig(max_new_tokens=4, num_samples=2, max_problems=2, pass_at_k=(1, 2))
    generations, summary = evaluate_on_problems(model, tokenizer, problems, config)
    assert generations["problem_id"].tolist() == ["p1", "p1", "p2", "p2"] and generations["sample_index"].tolist() == [0, 1, 0, 1]
    assert generations["n_tokens"].between(1, 4).all() and generations["answer"].tolist() == ["3"] * 4
    assert generations["has_distractor"].tolist() == [True, True, False, False]
    assert generations["heldout_skeleton"].tolist() == [False, False, True, True]
    assert summary["problems"] == 2 and summary["samples_per_problem"] == 2 and "pass_at_2" in summary and summary["eval_seconds"] > 0
