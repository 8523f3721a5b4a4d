"""Confounders and counterfactuals: the lowest-delta tokens of each example, grouped into spans and deleted.

A token is a confounder when its delta is at or below the example's q-quantile (over the tokens that may be
pruned; numpy's linear interpolation). Whitespace-only tokens are never pruned and break spans. Ties at the
threshold never flag more than ``max_share`` of an example's prunable tokens: the lowest deltas win, then
the earliest positions. Consecutive confounders form one span; span pruning (the paper's default) makes one
counterfactual per span, collective pruning one counterfactual without all of them.

The authors' code thresholds differently (``threshold="authors"``, offered beside the quantile rule):
the threshold is ``sorted(delta)[int(q * n)]`` over the prunable tokens, capped at a delta of 0.5, and a
token containing a backslash (a LaTeX command) is never pruned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tracesieve.choices import PRUNING_MODES, THRESHOLD_RULES

AUTHORS_DELTA_CAP = 0.5  # the authors' code never flags a token whose normalised delta exceeds this


def prunable_tokens(texts: Sequence[str]) -> np.ndarray:
    """Tokens that may be pruned: every token with a character that is not whitespace."""
    return np.array([bool(text.strip()) for text in texts], dtype=bool)


def authors_prunable_tokens(texts: Sequence[str]) -> np.ndarray:
    """The authors' prunable tokens: not whitespace-only, and without a backslash."""
    return prunable_tokens(texts) & np.array(["\\" not in text for text in texts], dtype=bool)


def confounder_flags(
    delta: np.ndarray, prunable: np.ndarray, quantile: float, *, max_share: float = 0.5, rule: str = "quantile"
) -> np.ndarray:
    """Which tokens are confounders: prunable, with delta at or below the threshold of ``rule`` over the
    prunable deltas (``quantile``: numpy's q-quantile; ``authors``: ``sorted(delta)[int(q * n)]``, at most 0.5)."""
    if not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile}")
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    delta, prunable = np.asarray(delta, dtype=np.float64), np.asarray(prunable, dtype=bool)
    flags = np.zeros(len(delta), dtype=bool)
    if not prunable.any():
        return flags
    if rule == "authors":
        ranked = np.sort(delta[prunable])
        threshold = min(ranked[int(quantile * len(ranked))], AUTHORS_DELTA_CAP)
    else:
        threshold = np.quantile(delta[prunable], quantile)
    flags = prunable & (delta <= threshold)
    limit = max(1, int(max_share * prunable.sum()))
    if flags.sum() > limit:
        # Ties at the threshold (e.g. many deltas of exactly 0): keep the lowest, then the earliest.
        candidates = np.flatnonzero(flags)
        chosen = candidates[np.lexsort((candidates, delta[candidates]))][:limit]
        flags = np.zeros(len(delta), dtype=bool)
        flags[chosen] = True
    return flags


def confounder_spans(flags: np.ndarray, offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Runs of consecutive flagged tokens as character spans, from the first token's start to the last one's end."""
    spans: list[tuple[int, int]] = []
    run_start = None
    for index, flagged in enumerate([*flags, False]):
        if flagged and run_start is None:
            run_start = index
        elif not flagged and run_start is not None:
            spans.append((int(offsets[run_start][0]), int(offsets[index - 1][1])))
            run_start = None
    return spans


def counterfactual_span_sets(spans: Sequence[tuple[int, int]], mode: str) -> list[list[tuple[int, int]]]:
    """The spans each counterfactual deletes: one span each (``span``) or all at once (``collective``)."""
    if mode == "span":
        return [[span] for span in spans]
    if mode == "collective":
        return [list(spans)] if spans else []
    raise ValueError(f"pruning mode must be one of {PRUNING_MODES}, got {mode!r}")


def flag_confounders(scores: pd.DataFrame, quantile: float, *, max_share: float = 0.5, rule: str = "quantile") -> pd.DataFrame:
    """The gradient comparison table with ``prunable`` and ``confounder`` columns, per example, thresholded
    by ``rule`` (``THRESHOLD_RULES``)."""
    flagged = []
    for _trace_id, tokens in scores.groupby("trace_id", sort=False):
        tokens = tokens.sort_values("token_index")
        texts = tokens["text"].tolist()
        prunable = authors_prunable_tokens(texts) if rule == "authors" else prunable_tokens(texts)
        flags = confounder_flags(tokens["delta"].to_numpy(), prunable, quantile, max_share=max_share, rule=rule)
        flagged.append(tokens.assign(prunable=prunable, confounder=flags))
    columns = [*scores.columns, "prunable", "confounder"]
    return pd.concat(flagged, ignore_index=True) if flagged else pd.DataFrame(columns=columns)
