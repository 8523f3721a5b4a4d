"""Planted roles of the embedded world, mapped onto whatever segments a segmentation method produced."""

from __future__ import annotations

import pandas as pd

from tracesieve.metrics import auroc

NECESSARY = "necessary"
FILLER = ("restatement", "detour")  # segments a trace could lose without changing its answer
# Within-trace comparisons count checks as filler too: a check restates work the answer does not need.
WITHIN_TRACE_FILLER = ("restatement", "detour", "check")
# The label-validity gate passes when deleting a necessary step costs the answer more than deleting filler
# in at least this share of (necessary, filler) pairs of a trace, on average over traces (issue 15).
LABEL_VALIDITY_THRESHOLD = 0.9


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
    # Within each trace, checks counted as filler: the figure selection acts on (it ranks within a trace).
    quality["ig.within_trace_auroc"], _ = within_trace_auroc(scored["strength_share"], scored["role"], scored["trace_id"])
    return table.reset_index(), quality


def within_trace_auroc(
    scores: pd.Series, roles: pd.Series, trace_ids: pd.Series, positive: tuple[str, ...] = (NECESSARY,), negative: tuple[str, ...] = WITHIN_TRACE_FILLER
) -> tuple[float, int]:
    """Mean over traces of the AUROC of ``scores`` for ``positive`` against ``negative`` segments of that trace,
    and how many traces had both. Comparing segments within a trace only, a score that is normalised per
    trace (strength share) or that varies from trace to trace is judged on what selection does with it."""
    table = pd.DataFrame({"score": scores.to_numpy(), "role": roles.to_numpy(), "trace_id": trace_ids.to_numpy()})
    values = []
    for _trace_id, trace in table.groupby("trace_id", sort=False):
        ours = trace.loc[trace["role"].isin(positive), "score"].tolist()
        others = trace.loc[trace["role"].isin(negative), "score"].tolist()
        if ours and others:
            values.append(auroc(ours, others))
    return (float(sum(values) / len(values)) if values else float("nan")), len(values)


def label_validity(occlusion: pd.DataFrame, segment_spans: pd.DataFrame, world_segments: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
    """The label-validity gate: do the world's planted roles matter to the model that reads it?

    ``occlusion`` is ``occlusion.segment_occlusion`` on the attribution model; ``segment_spans`` the
    segmentation table (its character spans give each segment its planted role). The gate is the mean
    within-trace AUROC of the occlusion drop for necessary steps against filler; it passes at
    ``LABEL_VALIDITY_THRESHOLD``. Below it, no attribution method can be judged on these labels: the
    verdicts of a run are about the world, not the method. Returns the per-segment table with roles and the
    gate's figures (also the mean drop per role).
    """
    spans = segment_spans[["trace_id", "segment_index", "char_start", "char_end"]]
    table = occlusion.merge(spans, on=["trace_id", "segment_index"], how="left", validate="one_to_one")
    table["role"] = planted_role_of_segments(table, world_segments).to_numpy()
    value, traces = within_trace_auroc(table["drop"], table["role"], table["trace_id"])
    gate = {
        "label_validity_auroc": value,
        "label_validity_passed": float(value >= LABEL_VALIDITY_THRESHOLD),
        "label_validity_traces": float(traces),
        "label_validity_pooled_auroc": auroc(
            table.loc[table["role"] == NECESSARY, "drop"].tolist(), table.loc[table["role"].isin(WITHIN_TRACE_FILLER), "drop"].tolist()
        ),
    }
    for role, drop in table.groupby("role")["drop"].mean().items():
        gate[f"occlusion_drop_mean.{role}"] = float(drop)
    return table, gate
