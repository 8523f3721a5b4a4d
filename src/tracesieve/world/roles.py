"""Planted roles of the embedded world, mapped onto whatever segments a segmentation method produced."""

from __future__ import annotations

import dataclasses
import math
import re

import pandas as pd

from tracesieve.choices import ORACLE_BUDGET_STRATEGY, ORACLE_STRATEGY
from tracesieve.metrics import auroc
from tracesieve.selection import SELECTION_COLUMNS, select_random_segments, selection_row
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
ORACLE_ROLES = (SOURCE, UPSTREAM, FINAL)


def oracle_selections(segments: pd.DataFrame, world_segments: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """The selection table (``selection.SELECTION_COLUMNS``) of the ``oracle`` strategy: per trace, the loss on
    the segments whose planted role is in ``ORACLE_ROLES``; and of its control ``oracle_budget``: random
    segments of the same trace filling the oracle's token budget (``selection.select_random_segments``,
    seeded per trace). ``segments`` is the segmentation table."""
    roles = planted_role_of_segments(segments.reset_index(drop=True), world_segments)
    table = segments.reset_index(drop=True).assign(role=roles.to_numpy())
    rows = []
    for trace_index, (_trace_id, trace) in enumerate(table.groupby("trace_id", sort=False)):
        trace = trace.sort_values("segment_index")
        chosen = trace.loc[trace["role"].isin(ORACLE_ROLES), "segment_index"].astype(int).tolist()
        oracle = selection_row(trace, ORACLE_STRATEGY, chosen)
        budget = select_random_segments(trace, oracle["selected_tokens"], seed=seed + 2 * trace_index)  # the seeds it had
        rows += [oracle, selection_row(trace, ORACLE_BUDGET_STRATEGY, budget)]
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


ORACLE_VARIANT, FULL_VARIANT, POSITION_VARIANT, BASE_MODEL = "oracle_sft", "full_sft", "position_sft", "base"
ORACLE_BUDGET_VARIANT = "oracle_budget_sft"
# The position-only gate passes when keeping the authors' always-kept segments alone (first, penultimate,
# last) recovers at most this share of the oracle's accuracy headroom over full SFT: past it, position tells
# roles and the world cannot tell attribution from position.
POSITION_ONLY_MAX_SHARE = 0.25
# Issue 41's thresholds: a testbed where SFT teaches what the base lacks (full SFT at least this much above the
# base, its interval's low end at least the second), and where imitating filler costs what the oracle recovers.
SFT_EFFECT_MIN, SFT_EFFECT_LOW_MIN = 0.20, 0.10
ORACLE_HEADROOM_MIN = 0.06


def headroom_measured(variants) -> bool:
    """Whether a run with these fine-tuning variants measures the fine-tuning gates (it trains both)."""
    return {ORACLE_VARIANT, FULL_VARIANT} <= set(variants)


def accuracy_difference(candidate: pd.DataFrame, reference: pd.DataFrame, prefix: str) -> dict[str, float]:
    """``candidate`` minus ``reference`` on the same problems: accuracy and mean response tokens, each
    with its paired 95% interval, named ``<prefix>_accuracy[_ci_low|_ci_high]`` and ``<prefix>_tokens...``."""
    from tracesieve.evaluation import compare_with_reference  # evaluation imports the config, which imports us

    _rows, differences = compare_with_reference({"candidate": candidate, "reference": reference}, "reference")
    figures = {}
    for label, name in (("accuracy", "accuracy"), ("mean_response_tokens", "tokens")):
        key = f"candidate.{label}_diff_vs_reference"
        figures[f"{prefix}_{name}"] = differences[key]
        figures[f"{prefix}_{name}_ci_low"], figures[f"{prefix}_{name}_ci_high"] = differences[f"{key}_ci_low"], differences[f"{key}_ci_high"]
    return figures


def sft_effect(full_generations: pd.DataFrame, base_generations: pd.DataFrame) -> dict[str, float]:
    """The SFT-effect gate: full-trace SFT minus the base student it starts from, in accuracy on the same
    held-out problems. It passes when the difference is at least ``SFT_EFFECT_MIN`` and its paired 95%
    interval's low end at least ``SFT_EFFECT_LOW_MIN``; failing, training on the traces teaches the student
    too little for any loss mask to show anything."""
    gate = accuracy_difference(full_generations, base_generations, "sft_effect")
    gate["sft_effect_passed"] = float(
        gate["sft_effect_accuracy"] >= SFT_EFFECT_MIN and gate["sft_effect_accuracy_ci_low"] >= SFT_EFFECT_LOW_MIN
    )
    return gate


def oracle_headroom(oracle_generations: pd.DataFrame, full_generations: pd.DataFrame) -> dict[str, float]:
    """The oracle-headroom gate: oracle-mask SFT minus full-trace SFT on the same held-out problems, in
    accuracy and in mean response tokens, each with its paired 95% interval.

    It passes when the accuracy interval lies above 0. Length is reported beside it and never passes the
    gate on its own: a shorter answer is no headroom for a method judged at equal accuracy. Failing, the
    world leaves selective SFT nothing to recover: its verdict cannot be positive.
    """
    gate = accuracy_difference(oracle_generations, full_generations, "oracle_headroom")
    gate["oracle_headroom"] = gate["oracle_headroom_accuracy"]
    gate["oracle_headroom_passed"] = float(
        gate["oracle_headroom_accuracy"] >= ORACLE_HEADROOM_MIN and gate["oracle_headroom_accuracy_ci_low"] > 0
        and gate["oracle_headroom_tokens"] < 0
    )
    return gate


def oracle_vs_budget(oracle_generations: pd.DataFrame, budget_generations: pd.DataFrame) -> dict[str, float]:
    """The oracle-versus-budget gate: oracle-mask SFT minus a random mask at the oracle's own token budget,
    trace by trace. The loss is a mean over supervised tokens, so any mask that drops tokens weighs the ones
    it keeps more; this gate passes only when what the oracle keeps matters beyond that (the paired interval's
    low end above 0). Failing, headroom over full SFT may be the reweighting, not the selection."""
    gate = accuracy_difference(oracle_generations, budget_generations, "oracle_vs_budget")
    gate["oracle_vs_budget_passed"] = float(gate["oracle_vs_budget_accuracy_ci_low"] > 0)
    return gate


def position_only(position_generations: pd.DataFrame, oracle_generations: pd.DataFrame, full_generations: pd.DataFrame) -> dict[str, float]:
    """The position-only gate: the share of the oracle's accuracy headroom over full SFT that a mask keeping
    only the first, penultimate and last segments recovers, ``(position - full) / (oracle - full)``.

    It passes when the share is at most ``POSITION_ONLY_MAX_SHARE`` and the headroom is established (the
    oracle-headroom gate passes: its interval lies above 0). Past that share, where a segment sits tells its
    role, and a rule that always keeps those segments wins by position, not by attribution. Without
    established headroom the share is undefined (NaN) and the gate fails: a share of a difference that may be
    0 says nothing.
    """
    gate = accuracy_difference(position_generations, full_generations, "position_only")
    headroom = oracle_headroom(oracle_generations, full_generations)
    share = gate["position_only_accuracy"] / headroom["oracle_headroom_accuracy"] if headroom["oracle_headroom_passed"] else math.nan
    gate["position_only_share"] = share
    gate["position_only_passed"] = float(not math.isnan(share) and share <= POSITION_ONLY_MAX_SHARE)
    return gate


def fine_tuning_gates(
    base_generations: pd.DataFrame,
    full_generations: pd.DataFrame,
    oracle_generations: pd.DataFrame,
    position_generations: pd.DataFrame | None = None,
    budget_generations: pd.DataFrame | None = None,
) -> dict[str, float]:
    """The gates read from fine-tuned models: SFT effect, oracle headroom, (with the ``position_sft``
    control) position only and (with ``oracle_budget_sft``) oracle versus budget, merged into one table."""
    gates = {**sft_effect(full_generations, base_generations), **oracle_headroom(oracle_generations, full_generations)}
    if position_generations is not None:
        gates |= position_only(position_generations, oracle_generations, full_generations)
    if budget_generations is not None:
        gates |= oracle_vs_budget(oracle_generations, budget_generations)
    return gates


# A step's first operand is the count it starts from: the previous step's result (``problems._Step``).
_STEP_OPERAND = re.compile(r": (\d+) (?:plus|minus) \d+ is")


def _operand_positions(encoded, char_start: int, char_end: int) -> list[int]:
    """Token positions of the rendered example covering reasoning characters ``[char_start, char_end)``."""
    low, high = encoded.rendered.reasoning_start + char_start, encoded.rendered.reasoning_start + char_end
    return [position for position, (start, end) in enumerate(encoded.offsets) if start < high and end > low and end > start]


def upstream_label_validity(model, tokenizer, traces: pd.DataFrame, world_segments: pd.DataFrame) -> dict[str, float]:
    """Label validity for upstream steps, under teacher forcing: an upstream step's result is the count the
    next step starts from, so deleting the upstream step should make that count (read where the next step
    writes it) less likely than deleting a filler segment written before the next step does. Filler after
    the next step cannot change it under the causal mask and is left out of the comparison.

    Per (trace, upstream step): the AUROC of its drop against the drops of the filler before the next step;
    the mean over them is the gate's figure (passes at ``LABEL_VALIDITY_THRESHOLD``), reported apart from the
    source steps' gate. Also the mean drop of each. ``traces``: question, reasoning, answer per trace_id;
    ``world_segments``: the planted segments (character spans of the reasoning, in order).
    """
    from tracesieve.occlusion import answer_log_probs  # the scorer's batch scoring, with other targets
    from tracesieve.rendering import encode_example

    planted = {trace_id: group.sort_values("start") for trace_id, group in world_segments.groupby("trace_id")}
    values, upstream_drops, filler_drops = [], [], []
    for trace in traces.itertuples(index=False):
        segments = planted.get(trace.trace_id)
        if segments is None:
            continue
        rows = list(segments.itertuples(index=False))
        steps = [index for index, row in enumerate(rows) if row.role in (SOURCE, UPSTREAM)]
        for upstream, following in zip(steps, steps[1:]):
            nxt = rows[following]
            match = _STEP_OPERAND.search(trace.reasoning, nxt.start, nxt.end)
            if match is None:
                raise ValueError(f"trace {trace.trace_id!r}: the step at characters {nxt.start}-{nxt.end} writes no count it starts from")
            operand = match.span(1)
            fillers = [index for index in range(following) if rows[index].role in (*FILLER, DECOY)]
            if not fillers:
                continue
            deleted = [upstream, *fillers]
            encoded = []
            for index in (None, *deleted):
                if index is None:
                    reasoning, shift = trace.reasoning, 0
                else:
                    row = rows[index]
                    reasoning, shift = trace.reasoning[: row.start] + trace.reasoning[row.end :], row.end - row.start
                example = encode_example(tokenizer, trace.question, reasoning, trace.answer)
                positions = _operand_positions(example, operand[0] - shift, operand[1] - shift)
                encoded.append(dataclasses.replace(example, target_positions=positions))
            full, *occluded = answer_log_probs(model, encoded, pad_token_id=tokenizer.pad_token_id)
            drops = [full - score for score in occluded]
            values.append(auroc([drops[0]], drops[1:]))
            upstream_drops.append(drops[0])
            filler_drops.extend(drops[1:])
    value = float(sum(values) / len(values)) if values else math.nan
    return {
        "label_validity_upstream_auroc": value,
        "label_validity_upstream_passed": float(not math.isnan(value) and value >= LABEL_VALIDITY_THRESHOLD),
        "label_validity_upstream_pairs": float(len(values)),
        "label_validity_upstream_drop_mean": float(sum(upstream_drops) / len(upstream_drops)) if upstream_drops else math.nan,
        "label_validity_upstream_filler_drop_mean": float(sum(filler_drops) / len(filler_drops)) if filler_drops else math.nan,
    }
