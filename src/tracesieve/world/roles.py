"""Planted roles of the embedded world, mapped onto whatever segments a segmentation method produced."""

from __future__ import annotations

import pandas as pd

from tracesieve.metrics import auroc
from tracesieve.selection import SELECTION_COLUMNS, selection_row
from tracesieve.world.problems import DECOY, FILLER, FINAL, SOURCE, UPSTREAM

# Positive class: the segments that write a value the answer consumes. Filler counts checks as filler (a
# check restates work the answer does not need). Upstream steps and decoys are compared with filler apart:
# answer-IG is blind to upstream steps by construction, and decoys contain the answer's value as a string.
POSITIVE = (SOURCE,)
SEPARATE = {"upstream": (UPSTREAM,), "decoy": (DECOY,)}
# The label-validity gate passes when deleting a source step costs the answer more than deleting filler
# in at least this share of (source, filler) pairs of a trace, on average over traces (issue 15).
LABEL_VALIDITY_THRESHOLD = 0.9


# The oracle's loss mask: every segment the answer's derivation needs (its steps, upstream ones included,
# and the closing segment), no filler. Known only where the roles are planted: the world's upper bound.
ORACLE_STRATEGY = "oracle"
ORACLE_ROLES = (SOURCE, UPSTREAM, FINAL)


def oracle_selections(segments: pd.DataFrame, world_segments: pd.DataFrame) -> pd.DataFrame:
    """The selection table (``selection.SELECTION_COLUMNS``) of the ``oracle`` strategy: per trace, the loss on
    the segments whose planted role is in ``ORACLE_ROLES``. ``segments`` is the segmentation table."""
    roles = planted_role_of_segments(segments.reset_index(drop=True), world_segments)
    table = segments.reset_index(drop=True).assign(role=roles.to_numpy())
    rows = []
    for _trace_id, trace in table.groupby("trace_id", sort=False):
        trace = trace.sort_values("segment_index")
        chosen = trace.loc[trace["role"].isin(ORACLE_ROLES), "segment_index"].astype(int).tolist()
        rows.append(selection_row(trace, ORACLE_STRATEGY, chosen))
    return pd.DataFrame(rows, columns=SELECTION_COLUMNS)


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
    segment_metrics: pd.DataFrame, selections: pd.DataFrame, world_segments: pd.DataFrame, segment_scores: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per planted role: mean strength share and consistency, share selected per strategy; and how well each
    scorer separates the roles (``role_separation``, prefixed ``<scorer>.``): IG's strength share always,
    and every scorer of ``segment_scores`` (``scorers.segment_scores``) when given."""
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
    quality.update(role_separation(scored["strength_share"], scored["role"], scored["trace_id"], prefix="ig."))
    if segment_scores is not None:
        roles = scored[["trace_id", "segment_index", "role"]]
        for scorer, scores in segment_scores[segment_scores["scorer"] != "ig"].groupby("scorer"):
            ranked = scores.merge(roles, on=["trace_id", "segment_index"], how="inner", validate="one_to_one").reset_index(drop=True)
            quality.update(role_separation(ranked["score"], ranked["role"], ranked["trace_id"], prefix=f"{scorer}."))
    return table.reset_index(), quality


def role_separation(scores: pd.Series, roles: pd.Series, trace_ids: pd.Series, *, prefix: str) -> dict[str, float]:
    """How well a segment score separates the planted roles: the mean within-trace AUROC of sources against
    filler (the headline: selection ranks within a trace), the pooled AUROC as a secondary figure, and the
    within-trace AUROC of upstream steps and of decoys against filler, reported apart."""
    figures = {}
    figures[f"{prefix}within_trace_auroc"], figures[f"{prefix}within_trace_traces"] = within_trace_auroc(scores, roles, trace_ids)
    figures[f"{prefix}pooled_auroc"] = auroc(scores[roles.isin(POSITIVE)].tolist(), scores[roles.isin(FILLER)].tolist())
    for name, positive in SEPARATE.items():
        figures[f"{prefix}within_trace_auroc_{name}_vs_filler"], _ = within_trace_auroc(scores, roles, trace_ids, positive=positive)
    # A decoy is filler that contains the answer's value: ranked against sources it tells attribution from
    # string matching (0.5 or below: the score follows the string).
    figures[f"{prefix}within_trace_auroc_source_vs_decoy"], _ = within_trace_auroc(scores, roles, trace_ids, negative=(DECOY,))
    return {key: float(value) for key, value in figures.items()}


def within_trace_auroc(
    scores: pd.Series, roles: pd.Series, trace_ids: pd.Series, positive: tuple[str, ...] = POSITIVE, negative: tuple[str, ...] = FILLER
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

    ``occlusion`` has each segment's ``drop`` (``occlusion.segment_occlusion`` on the attribution model,
    or the ``occlusion`` scorer's rows of ``scorers.segment_scores``); ``segment_spans`` the
    segmentation table (its character spans give each segment its planted role). The gate is the mean
    within-trace AUROC of the occlusion drop for source steps against filler; it passes at
    ``LABEL_VALIDITY_THRESHOLD``. Below it, no attribution method can be judged on these labels: the
    verdicts of a run are about the world, not the method. Returns the per-segment table with roles and the
    gate's figures (also the mean drop per role).
    """
    spans = segment_spans[["trace_id", "segment_index", "char_start", "char_end"]]
    table = occlusion.merge(spans, on=["trace_id", "segment_index"], how="left", validate="one_to_one")
    table["role"] = planted_role_of_segments(table, world_segments).to_numpy()
    figures = role_separation(table["drop"], table["role"], table["trace_id"], prefix="label_validity_")
    value = figures.pop("label_validity_within_trace_auroc")
    gate = {
        "label_validity_auroc": value,
        "label_validity_passed": float(value >= LABEL_VALIDITY_THRESHOLD),
        "label_validity_traces": figures.pop("label_validity_within_trace_traces"),
        **figures,
    }
    for role, drop in table.groupby("role")["drop"].mean().items():
        gate[f"occlusion_drop_mean.{role}"] = float(drop)
    return table, gate


ORACLE_VARIANT, FULL_VARIANT = "oracle_sft", "full_sft"


def headroom_measured(variants) -> bool:
    """Whether a run with these fine-tuning variants measures the oracle-headroom gate (it trains both)."""
    return {ORACLE_VARIANT, FULL_VARIANT} <= set(variants)


def oracle_headroom(oracle_generations: pd.DataFrame, full_generations: pd.DataFrame) -> dict[str, float]:
    """The oracle-headroom gate: oracle-mask SFT minus full-trace SFT on the same held-out problems, in
    accuracy and in mean response tokens, each with its paired 95% interval.

    It passes when the oracle is better with an interval that excludes 0: more accurate, or shorter without
    being less accurate (the accuracy interval reaches 0 or above; a shorter answer at lower accuracy is no
    headroom). Failing, the world leaves selective SFT nothing to recover: its verdict cannot be positive.
    """
    from tracesieve.evaluation import compare_with_reference  # evaluation imports the config, which imports us

    _rows, differences = compare_with_reference({ORACLE_VARIANT: oracle_generations, FULL_VARIANT: full_generations}, FULL_VARIANT)
    gate = {}
    for label, name in (("accuracy", "oracle_headroom_accuracy"), ("mean_response_tokens", "oracle_headroom_tokens")):
        key = f"{ORACLE_VARIANT}.{label}_diff_vs_{FULL_VARIANT}"
        gate[name], gate[f"{name}_ci_low"], gate[f"{name}_ci_high"] = differences[key], differences[f"{key}_ci_low"], differences[f"{key}_ci_high"]
    more_accurate = gate["oracle_headroom_accuracy_ci_low"] > 0
    shorter_at_equal_accuracy = gate["oracle_headroom_tokens_ci_high"] < 0 and gate["oracle_headroom_accuracy_ci_high"] >= 0
    gate["oracle_headroom"] = gate["oracle_headroom_accuracy"]
    gate["oracle_headroom_passed"] = float(more_accurate or shorter_at_equal_accuracy)
    return gate
