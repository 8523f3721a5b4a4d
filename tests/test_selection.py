"""Segment metrics and the selection rule, on hand-computed cases."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tracesieve.selection import merge_spans, segment_metrics, select_random_segments, select_segments


def _trace(*segments: list[float], trace_id: str = "t") -> pd.DataFrame:
    return segment_metrics((trace_id, index, values) for index, values in enumerate(segments))


def test_metrics_match_the_formulas():
    table = _trace([3.0, -1.0], [0.5, 0.5, 0.5, 0.5], [])
    first, second, empty = table.to_dict("records")
    assert first["strength"] == pytest.approx(4 / math.sqrt(2))
    assert first["consistency"] == pytest.approx(2 / 4)
    assert second["strength"] == pytest.approx(2 / 2) and second["consistency"] == pytest.approx(1.0)
    total = 4 / math.sqrt(2) + 1
    assert first["strength_share"] == pytest.approx(4 / math.sqrt(2) / total)
    assert (empty["strength"], empty["consistency"], empty["degenerate"]) == (0.0, 0.0, "no_tokens")
    assert table["strength_share"].sum() == pytest.approx(1.0)


def test_shares_are_normalised_within_each_trace():
    table = pd.concat([_trace([1.0], [3.0], trace_id="a"), _trace([10.0], trace_id="b")])
    assert table.groupby("trace_id")["strength_share"].sum().tolist() == pytest.approx([1.0, 1.0])


def _shares(shares: list[float], consistency: list[float], tokens: list[int] | None = None) -> pd.DataFrame:
    count = len(shares)
    return pd.DataFrame(
        {
            "trace_id": ["t"] * count,
            "segment_index": range(count),
            "n_tokens": tokens or [10] * count,
            "strength": shares,
            "strength_share": shares,
            "consistency": consistency,
        }
    )


def test_paper_rule_keeps_the_crossing_segment_then_filters_by_consistency():
    metrics = _shares([0.1, 0.5, 0.3, 0.1], [0.5, 0.9, 0.2, 0.1])
    # Sorted: 1 (0.5), 2 (0.8 >= 0.7: crossing, included). Segment 1 is too consistent (0.9 > 0.8).
    assert select_segments(metrics, strategy="strength_only") == [1, 2]
    assert select_segments(metrics) == [2]
    assert select_segments(metrics, beta=0.95) == [1, 2]
    assert select_segments(metrics, tau=0.9) == [0, 2]  # the crossing segment is 0, first of the 0.1 tie
    assert select_segments(metrics, strategy="consistency_only") == [0, 2, 3]
    assert select_segments(metrics, strategy="all") == [0, 1, 2, 3]


def test_a_share_that_reaches_tau_exactly_stops_there():
    metrics = _shares([0.5, 0.2, 0.3], [0.0, 0.0, 0.0])
    assert select_segments(metrics, tau=0.8) == [0, 2]


def test_always_keep_adds_first_penultimate_last():
    metrics = _shares([0.1, 0.6, 0.2, 0.1], [0.9, 0.1, 0.9, 0.9])
    assert select_segments(metrics) == [1]
    assert select_segments(metrics, always_keep=["first", "penultimate", "last"]) == [0, 1, 2, 3]
    assert select_segments(metrics, always_keep=["last"]) == [1, 3]
    with pytest.raises(ValueError, match="always_keep accepts"):
        select_segments(metrics, always_keep=["middle"])


def test_degenerate_traces():
    one = _trace([2.0, 2.0])  # one segment, fully consistent: the paper's rule drops it
    assert select_segments(one) == []
    assert select_segments(one, always_keep=["first"]) == [0]
    zero = _trace([0.0, 0.0], [0.0])  # nothing to rank: every segment kept (full-trace SFT for this trace)
    assert set(zero["degenerate"]) == {"zero_trace"} and (zero["strength_share"] == 0).all()
    assert select_segments(zero) == [0, 1]
    with pytest.raises(ValueError, match="trace 't', segment 1: attributions contain NaN"):
        _trace([1.0], [float("nan")])


def test_random_selection_fills_the_budget_and_is_seeded():
    metrics = _shares([0.25] * 4, [0.5] * 4, tokens=[10, 20, 30, 40])
    for seed in range(20):
        chosen = select_random_segments(metrics, 30, seed=seed)
        assert chosen == select_random_segments(metrics, 30, seed=seed)
        tokens = sum([10, 20, 30, 40][index] for index in chosen)
        assert abs(tokens - 30) <= 10
    assert len({tuple(select_random_segments(metrics, 30, seed=seed)) for seed in range(20)}) > 1
    assert select_random_segments(metrics, 0, seed=0, always_keep=["last"]) == [3]


def test_merge_spans_joins_adjacent_and_overlapping():
    assert merge_spans([(5, 9), (0, 5), (12, 14), (13, 20), (3, 3)]) == [(0, 9), (12, 20)]


def _attributed():
    import numpy as np

    attributions = pd.DataFrame(
        {"trace_id": ["a", "b"], "n_tokens": [6, 4],
         "attributions": [np.array([1, -1, 2, 2, 0.5, 0.5]), np.array([0.0, 0.0, 0.0, 0.0])]}
    )
    segments = pd.DataFrame(
        {"trace_id": ["a", "a", "b", "b"], "segment_index": [0, 1, 0, 1], "char_start": [0, 5, 0, 3], "char_end": [5, 9, 3, 6],
         "token_start": [0, 2, 0, 2], "token_end": [2, 6, 2, 4], "n_tokens": [2, 4, 2, 2], "example_tokens": [6, 6, 4, 4]}
    )
    return attributions, segments


def test_score_segments_slices_each_traces_attributions_by_segment_and_checks_the_tokenizer_matches():
    from tracesieve.selection import score_segments

    attributions, segments = _attributed()
    scored = score_segments(attributions, segments)
    a = scored[scored["trace_id"] == "a"].set_index("segment_index")
    assert a.loc[0, "attribution_sum"] == 0 and a.loc[0, "consistency"] == 0 and a.loc[1, "consistency"] == 1
    assert a.loc[1, "strength"] == pytest.approx(5 / 2) and a.loc[1, "token_end"] == 6
    assert (scored.loc[scored["trace_id"] == "b", "degenerate"] == "zero_trace").all()
    with pytest.raises(ValueError, match="trace 'a': segmentation saw 7 tokens, attribution 6"):
        score_segments(attributions, segments.assign(example_tokens=[7, 7, 4, 4]))
    with pytest.raises(ValueError, match="trace 'b' was attributed but has no segments"):
        score_segments(attributions, segments[segments["trace_id"] == "a"])


def test_select_loss_segments_is_seeded_per_trace_whatever_the_order():
    from tracesieve.config import SelectionConfig
    from tracesieve.selection import score_segments, select_loss_segments, selection_summary, trace_seed

    attributions, segments = _attributed()
    scored = score_segments(attributions, segments)
    config = SelectionConfig(seed=3)
    selections = select_loss_segments(scored, config)
    assert len(selections) == 2 * len(config.strategies)
    reversed_order = select_loss_segments(scored.iloc[::-1], config)
    key = ["trace_id", "strategy"]
    pd.testing.assert_frame_equal(
        selections.sort_values(key, ignore_index=True), reversed_order.sort_values(key, ignore_index=True)
    )
    assert trace_seed(3, "a") == trace_seed(3, "a") != trace_seed(4, "a")
    b = selections[selections["trace_id"] == "b"].set_index("strategy")
    assert list(b.loc["paper", "selected_segments"]) == [0, 1]  # zero_trace: nothing to drop by
    summary = selection_summary(selections, scored)
    assert summary["traces"] == 2 and summary["degenerate_segments"] == 2 and summary["all.token_share_mean"] == 1


def test_the_authors_strategy_is_the_papers_rule_plus_first_penultimate_and_last():
    from tracesieve.config import SelectionConfig
    from tracesieve.selection import select_loss_segments

    metrics = _shares([0.1, 0.6, 0.2, 0.05, 0.05], [0.9, 0.1, 0.9, 0.9, 0.9])
    metrics = metrics.assign(
        char_start=[0, 10, 20, 30, 40], char_end=[10, 20, 30, 40, 50], token_start=[0, 10, 20, 30, 40], token_end=[10, 20, 30, 40, 50]
    )
    # always_keep [] for the paper's rule: the authors' strategy ignores it and keeps all three anyway.
    table = select_loss_segments(metrics, SelectionConfig(strategies=("paper", "paper_authors"))).set_index("strategy")
    assert list(table.loc["paper", "selected_segments"]) == [1]
    assert list(table.loc["paper_authors", "selected_segments"]) == [0, 1, 3, 4]
    assert table.loc["paper_authors", "mask_char_spans"] == [[0, 20], [30, 50]]


def test_the_authors_controls_keep_its_positions_alone_or_add_random_segments_to_its_budget():
    from tracesieve.config import SelectionConfig
    from tracesieve.selection import select_loss_segments

    shares = [0.05, 0.05, 0.6, 0.1, 0.05, 0.05, 0.05, 0.05]
    metrics = _shares(shares, [0.1] * 8, tokens=[10] * 8)
    spans = [10 * index for index in range(9)]
    metrics = metrics.assign(char_start=spans[:-1], char_end=spans[1:], token_start=spans[:-1], token_end=spans[1:])
    config = SelectionConfig(strategies=("paper_authors", "position", "random_matched"))
    table = select_loss_segments(metrics, config).set_index("strategy")
    authors = list(table.loc["paper_authors", "selected_segments"])
    assert list(table.loc["position", "selected_segments"]) == [0, 6, 7]  # first, penultimate, last: nothing else
    matched = list(table.loc["random_matched", "selected_segments"])
    # The same always-kept segments and the same token budget as the authors' variant, the rest drawn at random.
    assert {0, 6, 7} <= set(matched) and table.loc["random_matched", "selected_tokens"] == table.loc["paper_authors", "selected_tokens"]
    assert matched != authors or len(authors) == len(metrics)
    draws = {tuple(select_loss_segments(metrics, config.model_copy(update={"seed": seed})).set_index("strategy").loc["random_matched", "selected_segments"])
             for seed in range(8)}
    assert len(draws) > 1  # seeded, and the seed matters


def test_our_share_floor_keeps_every_segment_stronger_than_the_floor_and_the_last_whatever_its_consistency():
    from tracesieve.selection import select_share_floor

    trace = _shares([0.4, 0.05, 0.3, 0.2, 0.05], [0.95, 0.1, 0.99, 0.5, 0.2])
    assert select_share_floor(trace, 1.0) == [0, 2, 3, 4]  # >= 0.2 each, consistency ignored; the last always
    assert select_share_floor(trace, 1.6) == [0, 4]  # >= 0.32: 0.3 and 0.2 fall below; the last stays
    assert select_share_floor(trace, 0.0) == [0, 1, 2, 3, 4]
    assert select_segments(trace, 0.7, 0.8) != select_share_floor(trace, 1.0)  # the paper's filter drops 0 and 2
    with pytest.raises(ValueError, match="at least 0"):
        select_share_floor(trace, -1)
