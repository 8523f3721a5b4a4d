"""LeaF's confounders scored against the world's planted distractors."""

import pandas as pd
import pytest

from tracesieve.world.distractors import deletes_only_planted_text, planted_distractor_scores, score_against_planted_distractors


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
