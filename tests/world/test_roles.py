"""Attribution quality against the world's planted roles, the label-validity and oracle-headroom gates, and
the oracle's loss masks, on hand-made segments."""

import math

import pandas as pd
import pytest

from tracesieve.world.roles import (
    label_validity,
    oracle_headroom,
    oracle_selections,
    planted_role_of_segments,
    planted_role_quality,
    within_trace_auroc,
)

ROLES = ["source", "detour", "upstream", "check", "decoy", "source", "final"]


def _tables():
    starts = [10 * index for index in range(len(ROLES))]
    planted = pd.DataFrame({"trace_id": "t", "start": starts, "end": [s + 10 for s in starts], "role": ROLES})
    metrics = pd.DataFrame(
        {"trace_id": "t", "segment_index": range(len(ROLES)), "char_start": starts, "char_end": [s + 10 for s in starts],
         "token_start": [3 * index for index in range(len(ROLES))], "token_end": [3 * index + 3 for index in range(len(ROLES))],
         "n_tokens": 3, "strength_share": [0.3, 0.05, 0.1, 0.05, 0.2, 0.25, 0.05], "consistency": [0.5, 0.9, 0.7, 0.6, 0.5, 0.4, 1.0]}
    )
    selections = pd.DataFrame({"trace_id": ["t", "t"], "strategy": ["paper", "all"], "selected_segments": [[0, 5], list(range(len(ROLES)))]})
    return planted, metrics, selections


def test_roles_follow_the_largest_character_overlap():
    planted, metrics, _ = _tables()
    shifted = metrics.assign(char_start=[0, 8, 20, 30, 40, 50, 60], char_end=[8, 19, 30, 40, 50, 60, 70])
    assert planted_role_of_segments(shifted, planted).tolist() == ROLES
    with pytest.raises(ValueError, match="trace 'u' has no planted segments"):
        planted_role_of_segments(metrics.assign(trace_id="u"), planted)


def test_quality_per_role_and_role_separation_by_hand():
    planted, metrics, selections = _tables()
    table, quality = planted_role_quality(metrics, selections, planted)
    by_role = table.set_index("role")
    assert by_role.loc["source", "segments"] == 2 and by_role.loc["source", "strength_share_mean"] == pytest.approx(0.275)
    assert by_role.loc["source", "selected_share_paper"] == 1.0 and by_role.loc["detour", "selected_share_paper"] == 0.0
    # Sources (0.3, 0.25) beat both filler segments (detour 0.05, check 0.05): within-trace AUROC 1.
    assert quality["ig.within_trace_auroc"] == 1.0 and quality["ig.pooled_auroc"] == 1.0
    # Upstream (0.1) beats filler; both sources beat the decoy's 0.2: the score does not follow the answer's string.
    assert quality["ig.within_trace_auroc_upstream_vs_filler"] == 1.0
    assert quality["ig.within_trace_auroc_source_vs_decoy"] == 1.0


def test_every_scorer_gets_its_own_role_separation():
    planted, metrics, selections = _tables()
    # A string matcher scores the decoy (which contains the answer's value) highest: it loses to it.
    scores = pd.DataFrame({"trace_id": "t", "segment_index": range(len(ROLES)), "scorer": "string_match",
                           "score": [0.5, 0.0, 0.0, 0.0, 1.0, 0.5, 0.0]})
    _, quality = planted_role_quality(metrics, selections, planted, scores)
    assert quality["string_match.within_trace_auroc"] == 1.0
    assert quality["string_match.within_trace_auroc_source_vs_decoy"] == 0.0
    assert quality["string_match.within_trace_auroc_upstream_vs_filler"] == 0.5


def test_within_trace_auroc_compares_segments_of_one_trace_only():
    # Trace a ranks its source above both fillers; trace b below its check; trace c has no filler.
    scores = pd.Series([0.9, 0.1, 0.2, 0.3, 0.5, 0.7])
    roles = pd.Series(["source", "detour", "restatement", "source", "check", "source"])
    traces = pd.Series(["a", "a", "a", "b", "b", "c"])
    assert within_trace_auroc(scores, roles, traces) == (0.5, 2)
    assert within_trace_auroc(scores, roles, traces, negative=("detour",)) == (1.0, 1)
    assert math.isnan(within_trace_auroc(scores, roles, traces, positive=("final",))[0])


def test_the_label_validity_gate_reads_occlusion_drops_against_the_planted_roles():
    planted, metrics, _ = _tables()
    segments = metrics[["trace_id", "segment_index", "char_start", "char_end"]]
    causal = pd.DataFrame({"trace_id": "t", "segment_index": range(len(ROLES)), "drop": [3.0, 0.0, 0.1, 0.2, 0.0, 2.0, 0.0]})
    table, gate = label_validity(causal, segments, planted)
    assert table["role"].tolist() == ROLES
    assert gate["label_validity_auroc"] == 1.0 and gate["label_validity_passed"] == 1.0 and gate["label_validity_traces"] == 1
    assert gate["occlusion_drop_mean.source"] == 2.5 and gate["label_validity_within_trace_auroc_source_vs_decoy"] == 1.0
    copied = causal.assign(drop=[0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 8.0])  # only the final segment matters: not causal
    _, failing = label_validity(copied, segments, planted)
    assert failing["label_validity_auroc"] == 0.25 and failing["label_validity_passed"] == 0.0


def test_the_oracle_trains_on_the_steps_and_the_final_segment_only():
    planted, metrics, _ = _tables()
    table = oracle_selections(metrics, planted)
    (row,) = table.to_dict("records")
    assert row["strategy"] == "oracle" and row["selected_segments"] == [0, 2, 5, 6]
    assert row["mask_char_spans"] == [[0, 10], [20, 30], [50, 70]] and row["mask_token_spans"] == [[0, 3], [6, 9], [15, 21]]
    assert row["selected_tokens"] == 12 and row["reasoning_tokens"] == 21


def _generations(correct, tokens):
    return pd.DataFrame({"problem_id": [f"p{i}" for i in range(len(correct))], "correct": correct, "n_tokens": tokens, "truncated": False})


def test_the_headroom_gate_passes_only_when_the_oracle_is_better_beyond_its_interval():
    full = _generations([True, False] * 50, [100] * 100)
    better = _generations([True] * 100, [100] * 100)
    gate = oracle_headroom(better, full)
    assert gate["oracle_headroom_accuracy"] == pytest.approx(0.5) and gate["oracle_headroom_accuracy_ci_low"] > 0
    assert gate["oracle_headroom_passed"] == 1.0
    # Shorter at equal accuracy passes; shorter at lower accuracy does not; the same does not.
    shorter = _generations([True, False] * 50, [80 + (i % 3) for i in range(100)])
    assert oracle_headroom(shorter, full)["oracle_headroom_passed"] == 1.0
    shorter_and_worse = _generations([False] * 100, [80 + (i % 3) for i in range(100)])
    assert oracle_headroom(shorter_and_worse, full)["oracle_headroom_passed"] == 0.0
    assert oracle_headroom(full, full)["oracle_headroom_passed"] == 0.0
