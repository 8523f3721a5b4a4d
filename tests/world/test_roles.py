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
