"""Planted roles of the embedded world, mapped onto whatever segments a segmentation method produced."""

from __future__ import annotations

import pandas as pd


def planted_role_of_segments(segment_metrics: pd.DataFrame, world_segments: pd.DataFrame) -> pd.Series:
    """The planted role covering most characters of each segment, whatever the segmentation method."""
    planted = world_segments.groupby("trace_id")
    roles = []
    for segment in segment_metrics.itertuples(index=False):
        if segment.trace_id not in planted.groups:
            raise ValueError(f"trace {segment.trace_id!r} has no planted segments: planted_roles runs on the embedded world only")
        candidates = planted.get_group(segment.trace_id)
        overlap = (candidates["end"].clip(upper=segment.char_end) - candidates["start"].clip(lower=segment.char_start)).clip(lower=0)
        roles.append(candidates["role"].iloc[int(overlap.to_numpy().argmax())])
    return pd.Series(roles, index=segment_metrics.index, name="role")
