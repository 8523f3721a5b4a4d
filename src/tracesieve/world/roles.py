"""Planted roles of the embedded world, mapped onto whatever segments a segmentation method produced."""

from __future__ import annotations

import pandas as pd

from tracesieve.metrics import auroc

NECESSARY = "necessary"
FILLER = ("restatement", "detour")  # segments a trace could lose without changing its answer


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


def planted_role_quality(
    segment_metrics: pd.DataFrame, selections: pd.DataFrame, world_segments: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per planted role: mean strength share and consistency, share selected per strategy; and the AUROC of
    ``strength_share`` for necessary steps against filler (restatements and detours) and each filler role."""
    segment_metrics = segment_metrics.reset_index(drop=True)
    scored = segment_metrics.assign(role=planted_role_of_segments(segment_metrics, world_segments))
    chosen = selections[["trace_id", "strategy", "selected_segments"]].explode("selected_segments").dropna()
    chosen = chosen.rename(columns={"selected_segments": "segment_index"}).astype({"segment_index": "int64"})
    table = scored.groupby("role").agg(
        segments=("segment_index", "size"),
        tokens_mean=("n_tokens", "mean"),
        strength_share_mean=("strength_share", "mean"),
        consistency_mean=("consistency", "mean"),
    )
    for strategy, picked in chosen.groupby("strategy"):
        flags = scored.merge(picked.assign(selected=True), on=["trace_id", "segment_index"], how="left")["selected"]
        table[f"selected_share_{strategy}"] = flags.fillna(False).astype(bool).groupby(scored["role"].to_numpy()).mean()
    quality: dict[str, float] = {}
    for role, row in table.iterrows():
        for column, value in row.items():
            quality[f"{role}.{column}"] = value
    necessary = scored.loc[scored["role"] == NECESSARY, "strength_share"]
    filler = scored.loc[scored["role"].isin(FILLER), "strength_share"]
    quality["auroc_strength_share_necessary_vs_filler"] = auroc(necessary.tolist(), filler.tolist())
    for role in FILLER + ("check",):
        others = scored.loc[scored["role"] == role, "strength_share"]
        quality[f"auroc_strength_share_necessary_vs_{role}"] = auroc(necessary.tolist(), others.tolist())
    return table.reset_index(), quality
