"""LeaF's confounders scored against the world's planted distractors."""

import pandas as pd
import pytest

from tracesieve.world.distractors import (
    deletes_only_planted_text,
    planted_distractor_scores,
    score_against_planted_distractors,
)


def test_planted_distractor_precision_and_recall_by_hand():
    confounders = pd.DataFrame(
        {"trace_id": ["a"] * 4 + ["b"] * 2, "start": [0, 4, 8, 12, 0, 4], "prunable": True,
         "confounder": [False, True, True, False, True, False]}
    )
    distractors = pd.DataFrame({"trace_id": ["a"], "start": [4], "end": [11]})  # covers a's tokens at 4 and 8
    scores = planted_distractor_scores(confounders, distractors)
    assert scores["precision"] == 2 / 3 and scores["recall"] == 1.0
    assert scores["chance_precision"] == 2 / 6 and scores["traces_with_distractor_hit"] == 1.0


def test_counterfactuals_that_delete_only_planted_text():
    counterfactuals = pd.DataFrame(
        {"trace_id": ["a", "a", "a", "b"], "spans": [[[4, 8]], [[4, 8], [12, 14]], [], [[4, 8]]]}
    )
    planted = pd.DataFrame({"trace_id": ["a"], "start": [2], "end": [10]})
    # Inside the span; one span outside it; nothing deleted; a trace without planted text.
    assert deletes_only_planted_text(counterfactuals, planted).tolist() == [True, False, False, False]


def test_scores_before_and_after_the_check_and_spans_that_miss_their_text_are_named():
    traces = pd.DataFrame({"trace_id": ["a", "b"], "question": ["Ann has 3 cats. Ann also has 4 dogs. How many?", "Bo has 2."]})
    distractors = pd.DataFrame({"trace_id": ["a"], "start": [16], "end": [36], "text": ["Ann also has 4 dogs."]})
    confounders = pd.DataFrame(
        {"trace_id": ["a", "a", "b"], "start": [8, 29, 0], "prunable": True, "confounder": [False, True, True]}
    )
    checked = pd.DataFrame({"trace_id": ["a", "a", "b"], "spans": [[[29, 30]], [[8, 9]], [[0, 2]]], "kept": [True, False, False]})
    scores = score_against_planted_distractors(confounders, checked, distractors, traces)
    assert scores["precision"] == 1 / 2 and scores["recall"] == 1.0
    assert scores["counterfactuals_only_distractor_share"] == 1 / 3 and scores["kept_only_distractor_share"] == 1.0
    shifted = distractors.assign(start=15)
    with pytest.raises(ValueError, match=r"trace 'a': the planted distractor 'Ann also has 4 dogs.' is not at characters 15-36"):
        score_against_planted_distractors(confounders, checked, shifted, traces)


def test_the_accuracy_drop_to_a_distractor_with_its_interval_by_hand():
    from tracesieve.world.distractors import accuracy_drop

    generations = pd.DataFrame({"has_distractor": [True] * 4 + [False] * 4, "correct": [1, 0, 0, 0, 1, 1, 1, 0]})
    effect, low, high = accuracy_drop(generations)
    assert effect == pytest.approx(0.5)
    half = 1.959964 * (0.75 * 0.25 / 4 + 0.25 * 0.75 / 4) ** 0.5
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half))


def test_the_distractor_gate_asks_the_student_again_without_the_distractor(monkeypatch):
    import tracesieve.world.distractors as module
    from tracesieve.generation import Completion

    problems = pd.DataFrame({"problem_id": ["p1", "p2", "p3", "p4"], "answer": ["5", "6", "7", "8"],
                             "question": ["Ann has 5 pens. Bo also has 2 cats. How many?", "Q2", "Q3 Cy also has 1 hat.", "Q4"]})
    distractors = pd.DataFrame({"trace_id": ["p1", "p3"], "start": [16, 3], "end": [35, 21], "text": ["Bo also has 2 cats.", "Cy also has 1 hat."]})
    student = pd.DataFrame({"problem_id": ["p1", "p2", "p3", "p4"], "has_distractor": [True, False, True, False], "correct": [False, True, False, True]})
    teacher = pd.DataFrame({"trace_id": ["p1", "p2", "p3", "p4"], "has_distractor": [True, False, True, False], "correct": True})
    asked = []

    def answers(model, tokenizer, questions, *, max_new_tokens, batch_size):
        asked.extend(questions)
        return [Completion(text="\\boxed{5}" if i == 0 else "no", n_tokens=2, truncated=False, prompt_index=i) for i in range(len(questions))]

    monkeypatch.setattr(module, "generate_completions", answers)
    gate = module.distractor_gate(student, teacher, problems, distractors, None, None, max_new_tokens=8, batch_size=2)
    assert asked == ["Ann has 5 pens.  How many?", "Q3 "]  # exactly the distractor sentence deleted
    assert gate["distractor_pruning_fixes_share"] == 0.5 and gate["distractor_wrong_answers"] == 2
    assert gate["distractor_effect"] == 1.0 and gate["distractor_effect_passed"] == 1.0
    assert gate["distractor_effect_teacher"] == 0.0 and gate["distractor_teacher_passed"] == 1.0
    # A teacher misled as much as its student fails its half of the gate (the old world's teacher: +0.498).
    misled = teacher.assign(correct=[False, True, False, True])
    gate = module.distractor_gate(student, misled, problems, distractors, None, None, max_new_tokens=8, batch_size=2)
    assert gate["distractor_effect_teacher"] == 1.0 and gate["distractor_teacher_passed"] == 0.0
    # A student that a distractor does not mislead fails the other half.
    unmoved = student.assign(correct=True)
    assert module.distractor_gate(unmoved, teacher, problems, distractors, None, None, max_new_tokens=8, batch_size=2)["distractor_effect_passed"] == 0.0


def test_the_teacher_half_of_the_distractor_gate_needs_a_teacher_that_solves_the_task():
    from tracesieve.world.distractors import distractor_gate

    student = pd.DataFrame({"problem_id": ["p1", "p2"], "has_distractor": [True, False], "correct": [True, True]})
    # not misled (effect 0), but wrong on most problems with or without a distractor: it teaches nothing
    weak = pd.DataFrame({"trace_id": [f"p{i}" for i in range(20)], "has_distractor": [i % 2 == 0 for i in range(20)],
                         "correct": [i in (0, 1) for i in range(20)]})
    gate = distractor_gate(student, weak, pd.DataFrame(columns=["problem_id", "question", "answer"]),
                           pd.DataFrame(columns=["trace_id", "start", "end"]), None, None, max_new_tokens=8, batch_size=2)
    assert gate["distractor_effect_teacher"] == 0.0 and gate["teacher_accuracy_without_distractor"] == pytest.approx(0.1)
    assert gate["distractor_teacher_passed"] == 0.0
    # and a student effect of 0 fails the student half
    assert gate["distractor_effect_passed"] == 0.0


def test_the_kd_and_leaf_oracle_gates_fail_where_distillation_teaches_nothing():
    from tracesieve.world.distractors import kd_effect, leaf_oracle

    def generations(correct):
        return pd.DataFrame({"problem_id": [f"p{i}" for i in range(len(correct))], "correct": correct, "n_tokens": 10, "truncated": False})

    base = generations([True, False, False, False] * 100)
    kd_nothing = generations([True, False, False, False] * 100)
    assert kd_effect(kd_nothing, base)["kd_effect_passed"] == 0.0
    kd_helps = generations([True, True, False, False] * 100)
    gate = kd_effect(kd_helps, base)
    assert gate["kd_effect_accuracy"] == pytest.approx(0.25) and gate["kd_effect_passed"] == 1.0
    # oracle counterfactuals no better than KD: pruning, even perfect, leaves LeaF nothing to win
    assert leaf_oracle(kd_helps, kd_helps)["leaf_oracle_passed"] == 0.0
    assert leaf_oracle(generations([True, True, True, False] * 100), kd_helps)["leaf_oracle_passed"] == 1.0
