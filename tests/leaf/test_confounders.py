"""Confounder flags and spans: the quantile threshold, ties, whitespace, per example."""

import numpy as np
import pandas as pd
import pytest

from tracesieve.leaf.confounders import confounder_flags, confounder_spans, counterfactual_span_sets, flag_confounders, prunable_tokens


def test_quantile_threshold_on_hand_made_deltas():
    delta = np.array([0.0, 0.5, 0.1, 1.0, 0.05])
    everything = np.ones(5, dtype=bool)
    # Sorted deltas 0, .05, .1, .5, 1: the 5% quantile (linear) is 0.01, the median 0.1.
    assert confounder_flags(delta, everything, 0.05).tolist() == [True, False, False, False, False]
    assert confounder_flags(delta, everything, 0.5, max_share=1.0).tolist() == [True, False, True, False, True]
    # Three deltas lie at or below the median, but no more than half of the five tokens are flagged.
    assert confounder_flags(delta, everything, 0.5).tolist() == [True, False, False, False, True]
    # Whitespace-only tokens are never flagged and do not move the threshold.
    prunable = np.array([False, True, True, True, True])
    assert confounder_flags(delta, prunable, 0.05).tolist() == [False, False, False, False, True]
    with pytest.raises(ValueError, match="quantile"):
        confounder_flags(delta, everything, 0.6)


def test_ties_never_flag_more_than_half_of_the_prunable_tokens():
    flags = confounder_flags(np.zeros(5), np.ones(5, dtype=bool), 0.05)
    assert flags.tolist() == [True, True, False, False, False]


def test_consecutive_confounders_form_spans_and_whitespace_breaks_them():
    offsets = [(0, 3), (4, 7), (8, 9), (10, 12)]
    assert confounder_spans(np.array([1, 1, 0, 1], dtype=bool), offsets) == [(0, 7), (10, 12)]
    assert confounder_spans(np.array([0, 0, 0, 0], dtype=bool), offsets) == []
    texts = ["cats", " ", "dogs"]
    prunable = prunable_tokens(texts)
    assert prunable.tolist() == [True, False, True]
    flags = confounder_flags(np.array([0.0, 0.0, 0.0]), prunable, 0.5, max_share=1.0)
    assert confounder_spans(flags, [(0, 4), (4, 5), (5, 9)]) == [(0, 4), (5, 9)]
    assert counterfactual_span_sets([(0, 4), (5, 9)], "span") == [[(0, 4)], [(5, 9)]]
    assert counterfactual_span_sets([(0, 4), (5, 9)], "collective") == [[(0, 4), (5, 9)]]
    assert counterfactual_span_sets([], "collective") == []


def test_flag_confounders_works_per_example():
    scores = pd.DataFrame(
        {"trace_id": ["a"] * 3 + ["b"] * 3, "token_index": [0, 1, 2] * 2, "text": ["x", "y", "z"] * 2,
         "delta": [0.0, 1.0, 0.5, 1.0, 0.0, 0.5]}
    )
    flagged = flag_confounders(scores, 0.05)
    assert flagged["confounder"].tolist() == [True, False, False, False, True, False]


def test_the_authors_threshold_indexes_the_sorted_deltas_caps_at_half_and_keeps_backslash_tokens():
    from tracesieve.leaf.confounders import authors_prunable_tokens

    delta = np.array([0.9, 0.1, 0.3, 0.2, 0.8, 0.6, 0.7, 0.4, 0.55, 0.65])
    everything = np.ones(10, dtype=bool)
    # q = 0.25 of 10 tokens: sorted(delta)[2] = 0.3, so the three lowest; numpy's quantile (0.325) agrees here.
    assert np.flatnonzero(confounder_flags(delta, everything, 0.25, rule="authors")).tolist() == [1, 2, 3]
    # q = 0.5: sorted(delta)[5] = 0.6 is capped at 0.5, so 0.55 is not flagged; the quantile rule takes it.
    assert np.flatnonzero(confounder_flags(delta, everything, 0.5, rule="authors", max_share=1.0)).tolist() == [1, 2, 3, 7]
    assert 8 in np.flatnonzero(confounder_flags(delta, everything, 0.5, max_share=1.0))
    assert authors_prunable_tokens([" x", " \\frac", " ", "{"]).tolist() == [True, False, False, True]
    with pytest.raises(ValueError, match="threshold rule"):
        confounder_flags(delta, everything, 0.25, rule="median")
