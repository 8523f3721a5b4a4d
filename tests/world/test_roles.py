"""Attribution quality against the world's planted roles, on hand-made segments."""

import math

import pandas as pd
import pytest

from tracesieve.world.roles import planted_role_of_segments, planted_role_quality


def _tables():
    planted = pd.DataFrame(
        {"trace_id": ["t"] * 4, "start": [0, 10, 20, 30], "end": [10, 20, 30, 40], "role": ["necessary", "detour", "necessary", "final"]}
    )
    metrics = pd.DataFrame(
        {"trace_id": ["t"] * 4, "segment_index": [0, 1, 2, 3], "char_start": [0, 10, 20, 30], "char_end": [10, 20, 30, 40],
         "n_tokens": [3, 3, 3, 3], "strength_share": [0.4, 0.1, 0.3, 0.2], "consistency": [0.5, 0.9, 0.7, 1.0]}
    )
    selections = pd.DataFrame({"trace_id": ["t", "t"], "strategy": ["paper", "all"], "selected_segments": [[0, 2], [0, 1, 2, 3]]})
    return planted, metrics, selections


def test_roles_follow_the_largest_character_overlap():
    planted, metrics, _ = _tables()
    shifted = metrics.assign(char_start=[0, 8, 20, 30], char_end=[8, 19, 30, 40])
    assert planted_role_of_segments(shifted, planted).tolist() == ["necessary", "detour", "necessary", "final"]
    with pytest.raises(ValueError, match="trace 'u' has no planted segments"):
        planted_role_of_segments(metrics.assign(trace_id="u"), planted)


def test_quality_per_role_and_auroc_by_hand():
    planted, metrics, selections = _tables()
    table, quality = planted_role_quality(metrics, selections, planted)
    by_role = table.set_index("role")
    assert by_role.loc["necessary", "segments"] == 2 and by_role.loc["necessary", "strength_share_mean"] == pytest.approx(0.35)
    assert by_role.loc["necessary", "selected_share_paper"] == 1.0 and by_role.loc["detour", "selected_share_paper"] == 0.0
    assert by_role.loc["final", "selected_share_all"] == 1.0
    # Both necessary shares (0.4, 0.3) beat the detour's 0.1: AUROC 1; there are no restatements or checks.
    assert quality["auroc_strength_share_necessary_vs_filler"] == 1.0 == quality["auroc_strength_share_necessary_vs_detour"]
    assert math.isnan(quality["auroc_strength_share_necessary_vs_restatement"])
    assert quality["necessary.consistency_mean"] == pytest.approx(0.6)


def test_within_trace_auroc_compares_segments_of_one_trace_only():
    from tracesieve.world.roles import within_trace_auroc

    # Trace a ranks its necessary step above both fillers; trace b below its check; trace c has no filler.
    scores = pd.Series([0.9, 0.1, 0.2, 0.3, 0.5, 0.7])
    roles = pd.Series(["necessary", "detour", "restatement", "necessary", "check", "necessary"])
    traces = pd.Series(["a", "a", "a", "b", "b", "c"])
    assert within_trace_auroc(scores, roles, traces) == (0.5, 2)
    assert within_trace_auroc(scores, roles, traces, negative=("detour",)) == (1.0, 1)
    assert math.isnan(within_trace_auroc(scores, roles, traces, positive=("final",))[0])


def test_the_label_validity_gate_reads_occlusion_drops_against_the_planted_roles():
    from tracesieve.world.roles import label_validity

    planted, metrics, _ = _tables()
    segments = metrics[["trace_id", "segment_index", "char_start", "char_end"]]
    causal = pd.DataFrame({"trace_id": "t", "segment_index": [0, 1, 2, 3], "answer_log_prob": -1.0,
                           "occluded_log_prob": [-3.0, -1.0, -2.0, -9.0], "drop": [2.0, 0.0, 1.0, 8.0]})
    table, gate = label_validity(causal, segments, planted)
    assert table["role"].tolist() == ["necessary", "detour", "necessary", "final"]
    assert gate["label_validity_auroc"] == 1.0 and gate["label_validity_passed"] == 1.0 and gate["label_validity_traces"] == 1
    assert gate["occlusion_drop_mean.necessary"] == 1.5 and gate["occlusion_drop_mean.final"] == 8.0
    copied = causal.assign(drop=[0.0, 0.1, 0.0, 8.0])  # only the final answer matters: the labels are not causal
    _, failing = label_validity(copied, segments, planted)
    assert failing["label_validity_auroc"] == 0.0 and failing["label_validity_passed"] == 0.0


def test_planted_role_quality_reports_igs_within_trace_auroc():
    planted, metrics, selections = _tables()
    _, quality = planted_role_quality(metrics, selections, planted)
    assert quality["ig.within_trace_auroc"] == 1.0  # both necessary shares beat the detour's
