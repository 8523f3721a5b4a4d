"""Segment metrics and the selection that decides where the loss goes (docs/design.md, segment-level SFT, 4-5).

Per segment S of N tokens with signed token attributions a:
- strength ``sum|a| / sqrt(N)``, and ``strength_share``, the strength normalised to sum 1 within the trace;
- consistency ``|sum a| / sum|a|`` in [0, 1]: 1 when every token pushes the answer the same way.

The paper's rule sorts segments by share, keeps the smallest prefix whose cumulative share reaches ``tau``
(the segment that crosses it included), then keeps those of them with consistency <= ``beta``: strong
segments whose tokens pull both ways, the ones still being worked out. Baselines are named strategies.

Degenerate cases, handled the same way everywhere and flagged in the ``degenerate`` column:
- ``no_tokens``: a segment with no token of its own (shorter than the token it sits in) has strength 0
  and consistency 0; it is never selected by strength, and random selection skips it (it costs no budget);
- ``zero_attribution``: all of a segment's attributions are 0, so its consistency is 0/0, defined as 0;
- ``zero_trace``: every segment of the trace has strength 0, so shares are undefined: they are set to 0
  and the strength-based strategies select every segment (no evidence to drop any: full-trace SFT);
- non-finite attributions are an error naming the trace, never a silent NaN ranking.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tracesieve.choices import ALWAYS_KEEP_CHOICES, STRATEGIES

if TYPE_CHECKING:  # the schemas import this module's names
    from tracesieve.config import SelectionConfig

# The authors' code always keeps these three, whatever ``always_keep`` says (docs/design.md): the
# ``paper_authors`` strategy is the paper's rule with them.
AUTHORS_ALWAYS_KEEP = ("first", "penultimate", "last")
# Controls for the authors' variant: ``position`` keeps its always-kept segments alone (what position gives
# for free), ``random_matched`` adds random segments to them up to its token budget.
SEGMENT_METRIC_COLUMNS = [
    "trace_id",
    "segment_index",
    "n_tokens",
    "attribution_sum",
    "attribution_abs_sum",
    "strength",
    "strength_share",
    "consistency",
    "degenerate",
]


def segment_strength(absolute_sums, n_tokens) -> np.ndarray:
    """Strength ``sum|a| / sqrt(N)`` of segments with these summed absolute attributions and token counts
    (0 for a segment with no token). The one place the formula lives: selection, the scorers and the
    attribution's stopping rule all call it."""
    absolute_sums, n_tokens = np.asarray(absolute_sums, dtype=np.float64), np.asarray(n_tokens, dtype=np.float64)
    return np.divide(absolute_sums, np.sqrt(n_tokens), out=np.zeros_like(absolute_sums), where=n_tokens > 0)


def segment_consistency(signed_sums, absolute_sums) -> np.ndarray:
    """Direction consistency ``|sum a| / sum|a|`` in [0, 1]; 0 where every attribution is 0."""
    signed_sums, absolute_sums = np.asarray(signed_sums, dtype=np.float64), np.asarray(absolute_sums, dtype=np.float64)
    return np.divide(np.abs(signed_sums), absolute_sums, out=np.zeros_like(absolute_sums), where=absolute_sums > 0)


def strength_shares(strength) -> np.ndarray:
    """Strengths of one trace's segments normalised to sum 1; all 0 when every strength is 0 (zero_trace)."""
    strength = np.asarray(strength, dtype=np.float64)
    total = strength.sum()
    return strength / total if total > 0 else np.zeros_like(strength)


def segment_metrics(segment_attributions: Iterable[tuple[str, int, Sequence[float]]]) -> pd.DataFrame:
    """Strength, share and consistency per segment, from ``(trace_id, segment_index, token_attributions)``.

    Segments of one trace must be given together; shares are normalised within each trace.
    """
    rows = []
    for trace_id, segment_index, attributions in segment_attributions:
        values = np.asarray(attributions, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(
                f"trace {trace_id!r}, segment {segment_index}: attributions contain NaN or infinity; "
                "re-run attribution for this trace (e.g. in float32) before selecting"
            )
        absolute = float(np.abs(values).sum())
        signed = float(values.sum())
        n_tokens = int(values.size)
        if n_tokens == 0:
            degenerate = "no_tokens"
        elif absolute == 0.0:
            degenerate = "zero_attribution"
        else:
            degenerate = ""
        rows.append(
            {
                "trace_id": trace_id,
                "segment_index": int(segment_index),
                "n_tokens": n_tokens,
                "attribution_sum": signed,
                "attribution_abs_sum": absolute,
                "strength": float(segment_strength(absolute, n_tokens)),
                "consistency": float(segment_consistency(signed, absolute)),
                "degenerate": degenerate,
            }
        )
    table = pd.DataFrame(rows, columns=[column for column in SEGMENT_METRIC_COLUMNS if column != "strength_share"])
    table["strength_share"] = table.groupby("trace_id", sort=False)["strength"].transform(strength_shares)
    table.loc[table.groupby("trace_id", sort=False)["strength"].transform("sum") == 0, "degenerate"] = "zero_trace"
    return table[SEGMENT_METRIC_COLUMNS]


def _always_kept(n_segments: int, always_keep: Sequence[str]) -> set[int]:
    unknown = set(always_keep) - set(ALWAYS_KEEP_CHOICES)
    if unknown:
        raise ValueError(f"always_keep accepts {', '.join(ALWAYS_KEEP_CHOICES)}; got {sorted(unknown)}")
    positions = {"first": 0, "penultimate": n_segments - 2, "last": n_segments - 1}
    return {positions[name] for name in always_keep if 0 <= positions[name] < n_segments}


def _strongest_prefix(metrics: pd.DataFrame, tau: float) -> list[int]:
    """Segment indices of the smallest strength-sorted prefix whose cumulative share reaches ``tau``."""
    if (metrics["strength"] <= 0).all():
        return list(metrics["segment_index"])  # zero_trace: nothing to rank by, keep everything
    # A segment is in the prefix iff the stronger ones before it have not yet reached tau: that keeps the
    # crossing segment. The tolerance keeps shares that add up to exactly tau from missing it by rounding.
    before = share_of_stronger_segments(metrics)
    return [int(index) for index in metrics.loc[before < tau - 1e-12, "segment_index"]]


def select_share_floor(metrics: pd.DataFrame, floor: float) -> list[int]:
    """Our rule, beyond the paper: every segment whose strength share is at least ``floor / n`` (n: the
    trace's segments, so 1.0 keeps the segments stronger than average), and the last segment.

    Why: the paper's cumulative prefix ties a segment's fate to how many strong segments a trace has, and its
    consistency filter drops strong, consistent steps; a share floor relative to the segment count keeps
    every step the answer reads however many there are. The last segment is kept because answer-IG cannot
    see a closing segment that writes no number, and without it the model is never taught to stop.
    """
    if floor < 0:
        raise ValueError(f"share_floor must be at least 0, got {floor}")
    n_segments = len(metrics)
    strong = metrics.loc[(metrics["strength_share"] >= floor / n_segments) & (metrics["n_tokens"] > 0), "segment_index"]
    return sorted({int(index) for index in strong} | _always_kept(n_segments, ("last",)))


def share_of_stronger_segments(metrics: pd.DataFrame) -> pd.Series:
    """Per segment of one trace: the summed strength share of the segments ranked above it.

    The paper's strength prefix is exactly the segments where this is below tau, so it is the x axis on
    which tau is a straight boundary. Ranking is a stable sort: equal shares keep trace order.
    """
    ranked = metrics.sort_values("strength_share", ascending=False, kind="stable")
    return ranked["strength_share"].cumsum().shift(fill_value=0.0).reindex(metrics.index)


def select_segments(
    metrics: pd.DataFrame,
    tau: float = 0.7,
    beta: float = 0.8,
    always_keep: Sequence[str] = (),
    *,
    strategy: str = "paper",
) -> list[int]:
    """Sorted indices of the selected segments of one trace (``metrics``: its rows of ``segment_metrics``).

    ``paper``: strongest prefix reaching ``tau``, then consistency <= ``beta``. ``strength_only``: the
    prefix alone. ``consistency_only``: every segment with consistency <= ``beta``. ``all``: everything.
    ``always_keep`` adds the first, penultimate and/or last segments (the authors' code keeps all three).
    Random selection needs a token budget: see ``select_random_segments``.
    """
    if not 0 < tau <= 1:
        raise ValueError(f"tau must lie in (0, 1], got {tau}")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    if metrics["trace_id"].nunique() > 1:
        raise ValueError("select_segments takes the segments of one trace; group the metrics by trace_id first")
    indices = set(_always_kept(len(metrics), always_keep))
    if strategy == "all":
        indices |= set(metrics["segment_index"])
    elif strategy == "strength_only":
        indices |= set(_strongest_prefix(metrics, tau))
    elif strategy == "paper":
        # In a zero_trace every consistency is 0, so the filter keeps the whole prefix (every segment).
        consistent = set(metrics.loc[metrics["consistency"] <= beta, "segment_index"])
        indices |= set(_strongest_prefix(metrics, tau)) & consistent
    elif strategy == "consistency_only":
        indices |= set(metrics.loc[(metrics["consistency"] <= beta) & (metrics["n_tokens"] > 0), "segment_index"])
    else:
        raise ValueError(f"Unknown strategy {strategy!r}; choose one of {', '.join(s for s in STRATEGIES if s in ('paper', 'all', 'strength_only', 'consistency_only'))}")
    return sorted(int(index) for index in indices)


def select_random_segments(
    metrics: pd.DataFrame, token_budget: int, *, seed: int, always_keep: Sequence[str] = ()
) -> list[int]:
    """Random segments of one trace filling ``token_budget`` tokens as closely as possible (seeded).

    ``always_keep`` segments come first and count against the budget. Then segments are drawn in a random
    order; each is added while the total stays under budget, and the one that would cross it is added only
    if that lands closer to the budget than stopping short.
    """
    kept = _always_kept(len(metrics), always_keep)
    sizes = dict(zip(metrics["segment_index"].astype(int), metrics["n_tokens"].astype(int), strict=True))
    total = sum(sizes[index] for index in kept)
    candidates = sorted(index for index, size in sizes.items() if index not in kept and size > 0)
    random.Random(seed).shuffle(candidates)
    for index in candidates:
        if total >= token_budget:
            break
        if total + sizes[index] <= token_budget or (total + sizes[index] - token_budget) < (token_budget - total):
            kept.add(index)
            total += sizes[index]
    return sorted(kept)


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, non-overlapping spans, adjacent ones joined: ``[(0, 5), (5, 9)] -> [(0, 9)]``."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def score_segments(token_attributions: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """``segment_metrics`` of every segment of every attributed trace, with the segment's spans.

    ``token_attributions``: the attribution table (one row per trace, ``attributions`` per token);
    ``segments``: the segmentation table. Both must come from the same tokenizer: a trace whose token
    count differs between them is an error naming it.
    """
    by_trace = {trace_id: group for trace_id, group in segments.groupby("trace_id", sort=False)}

    def segment_attributions() -> Iterator[tuple[str, int, np.ndarray]]:
        for trace in token_attributions.itertuples(index=False):
            trace_segments = by_trace.get(trace.trace_id)
            if trace_segments is None:
                raise ValueError(f"trace {trace.trace_id!r} was attributed but has no segments; re-run segmentation")
            if int(trace_segments["example_tokens"].iloc[0]) != trace.n_tokens:
                raise ValueError(
                    f"trace {trace.trace_id!r}: segmentation saw {int(trace_segments['example_tokens'].iloc[0])} tokens, "
                    f"attribution {trace.n_tokens}; both must use the same tokenizer (re-run both)"
                )
            for segment in trace_segments.itertuples(index=False):
                yield trace.trace_id, segment.segment_index, trace.attributions[segment.token_start : segment.token_end]

    metrics = segment_metrics(segment_attributions())
    spans = segments[["trace_id", "segment_index", "char_start", "char_end", "token_start", "token_end"]]
    return metrics.merge(spans, on=["trace_id", "segment_index"], how="left", validate="one_to_one")


def trace_seed(seed: int, trace_id: str) -> int:
    """A per-trace seed that does not depend on the order of the traces or on Python's hash salt."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{trace_id}".encode()).digest()[:8], "big")


def paper_token_budget(metrics: pd.DataFrame, paper_selection: Sequence[int]) -> int:
    """The random baseline's budget on one trace: the tokens of the segments the paper's rule selected."""
    return int(metrics.loc[metrics["segment_index"].isin(paper_selection), "n_tokens"].sum())


SELECTION_COLUMNS = [
    "trace_id",
    "strategy",
    "selected_segments",
    "mask_char_spans",  # supervised character spans of the reasoning (training.encode_for_sft's supervised_spans)
    "mask_token_spans",  # the same as token spans of the rendered example
    "selected_tokens",
    "reasoning_tokens",
]


def select_loss_segments(segment_metrics: pd.DataFrame, config: SelectionConfig) -> pd.DataFrame:
    """For each trace and each of ``config.strategies``: the selected segments and the loss-mask spans, in
    characters of the reasoning and tokens of the rendered example (``SELECTION_COLUMNS``).

    ``random`` draws, per trace and with a seed of its own (``trace_seed``), segments up to the token budget
    of the paper's rule on that trace (``paper_token_budget``). The authors' variant has two controls:
    ``position`` keeps only the segments it always keeps (first, penultimate, last), and ``random_matched``
    keeps those plus random segments up to its token budget on the trace.
    """
    rows = []
    for trace_id, trace in segment_metrics.groupby("trace_id", sort=False):
        trace = trace.sort_values("segment_index")
        selected = attribution_selections(trace, config)
        if "position" in config.strategies:
            selected["position"] = sorted(_always_kept(len(trace), AUTHORS_ALWAYS_KEEP))
        if "random" in config.strategies:
            paper = selected["paper"]
            selected["random"] = select_random_segments(
                trace, paper_token_budget(trace, paper), seed=trace_seed(config.seed, str(trace_id)), always_keep=config.always_keep
            )
        if "random_matched" in config.strategies:
            selected["random_matched"] = select_random_segments(
                trace, paper_token_budget(trace, selected["paper_authors"]),
                seed=trace_seed(config.seed, f"matched:{trace_id}"), always_keep=AUTHORS_ALWAYS_KEEP,
            )
        rows.extend(selection_row(trace, strategy, selected[strategy]) for strategy in config.strategies)
    return pd.DataFrame(rows, columns=SELECTION_COLUMNS)


def attribution_selections(trace: pd.DataFrame, config: SelectionConfig) -> dict[str, list[int]]:
    """The selections of one trace that read its attributions, by strategy: each of ``config.strategies`` that
    ranks or filters segments by strength share or consistency, plus the ones a random control's token budget
    is drawn from (``paper`` for ``random``, ``paper_authors`` for ``random_matched``).

    The random controls follow from these selections and their own seeds, and ``position`` from the segment
    count alone, so two attributions that agree here give the same selection table: this is the selected set
    the attribution's ``stopping: selection`` rule waits to settle.
    """
    strategies = set(config.strategies)
    if "random" in strategies:
        strategies.add("paper")
    if "random_matched" in strategies:
        strategies.add("paper_authors")
    selected: dict[str, list[int]] = {}
    for strategy in sorted(strategies - {"random", "random_matched", "position"}):
        if strategy == "paper_authors":
            selected[strategy] = select_segments(trace, config.tau, config.beta, AUTHORS_ALWAYS_KEEP, strategy="paper")
        elif strategy == "share_floor":
            selected[strategy] = select_share_floor(trace, config.share_floor)
        else:
            selected[strategy] = select_segments(trace, config.tau, config.beta, config.always_keep, strategy=strategy)
    return selected


def selection_row(trace: pd.DataFrame, strategy: str, selected: Sequence[int]) -> dict:
    """One row of the selection table (``SELECTION_COLUMNS``): the ``selected`` segments of one trace
    (``trace``: its segments with character and token spans and ``n_tokens``) as loss-mask spans."""
    indexed = trace.set_index("segment_index")
    chosen = indexed.loc[list(selected)]
    return {
        "trace_id": trace["trace_id"].iloc[0],
        "strategy": strategy,
        "selected_segments": [int(index) for index in selected],
        "mask_char_spans": [list(span) for span in merge_spans(zip(chosen["char_start"], chosen["char_end"]))],
        "mask_token_spans": [list(span) for span in merge_spans(zip(chosen["token_start"], chosen["token_end"]))],
        "selected_tokens": int(chosen["n_tokens"].sum()),
        "reasoning_tokens": int(indexed["n_tokens"].sum()),
    }


def selection_summary(selections: pd.DataFrame, segment_metrics: pd.DataFrame) -> dict[str, float]:
    """Per strategy: mean token and segment shares selected, empty selections; and the degenerate segments."""
    segment_counts = segment_metrics.groupby("trace_id").size()
    shares = selections.assign(
        token_share=selections["selected_tokens"] / selections["reasoning_tokens"].clip(lower=1),
        segment_share=selections["selected_segments"].map(len) / selections["trace_id"].map(segment_counts),
    )
    summary: dict[str, float] = {"traces": float(segment_metrics["trace_id"].nunique())}
    for strategy, group in shares.groupby("strategy"):
        summary[f"{strategy}.token_share_mean"] = group["token_share"].mean()
        summary[f"{strategy}.segment_share_mean"] = group["segment_share"].mean()
        summary[f"{strategy}.empty_selections"] = float((group["selected_tokens"] == 0).sum())
    summary["degenerate_segments"] = float((segment_metrics["degenerate"] != "").sum())
    return summary
