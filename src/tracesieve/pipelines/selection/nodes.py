"""Nodes of the ``selection`` pipeline."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from tracesieve.config import SelectionConfig
from tracesieve.metrics import as_mlflow_metrics
from tracesieve.selection import merge_spans, segment_metrics, select_random_segments, select_segments

SELECTION_COLUMNS = [
    "trace_id",
    "strategy",
    "selected_segments",
    "mask_char_spans",  # supervised character spans of the reasoning (training.encode_for_sft's supervised_spans)
    "mask_token_spans",  # the same as token spans of the rendered example
    "selected_tokens",
    "reasoning_tokens",
]


def score_segments(token_attributions: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """Strength, share and consistency of every segment of every attributed trace, with its spans."""
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


def _trace_seed(seed: int, trace_id: str) -> int:
    """A per-trace seed that does not depend on the order of the traces or on Python's hash salt."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{trace_id}".encode()).digest()[:8], "big")


def select_loss_segments(segment_metrics: pd.DataFrame, selection_params: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
    """For each trace and strategy: the selected segments and the loss-mask spans, in characters and tokens."""
    config = SelectionConfig.from_params(selection_params, name="selection")
    rows = []
    for trace_id, trace in segment_metrics.groupby("trace_id", sort=False):
        trace = trace.sort_values("segment_index")
        selected: dict[str, list[int]] = {}
        for strategy in config.strategies:
            if strategy != "random":
                selected[strategy] = select_segments(trace, config.tau, config.beta, config.always_keep, strategy=strategy)
        if "random" in config.strategies:
            # Same token budget as the paper's rule on this trace.
            paper = selected["paper"] if "paper" in selected else select_segments(trace, config.tau, config.beta, config.always_keep)
            budget = int(trace.loc[trace["segment_index"].isin(paper), "n_tokens"].sum())
            selected["random"] = select_random_segments(
                trace, budget, seed=_trace_seed(config.seed, str(trace_id)), always_keep=config.always_keep
            )
        indexed = trace.set_index("segment_index")
        for strategy in config.strategies:
            chosen = indexed.loc[selected[strategy]]
            rows.append(
                {
                    "trace_id": trace_id,
                    "strategy": strategy,
                    "selected_segments": selected[strategy],
                    "mask_char_spans": [list(span) for span in merge_spans(zip(chosen["char_start"], chosen["char_end"]))],
                    "mask_token_spans": [list(span) for span in merge_spans(zip(chosen["token_start"], chosen["token_end"]))],
                    "selected_tokens": int(chosen["n_tokens"].sum()),
                    "reasoning_tokens": int(indexed["n_tokens"].sum()),
                }
            )
    selections = pd.DataFrame(rows, columns=SELECTION_COLUMNS)
    segment_counts = segment_metrics.groupby("trace_id").size()
    shares = selections.assign(
        token_share=selections["selected_tokens"] / selections["reasoning_tokens"].clip(lower=1),
        segment_share=selections["selected_segments"].map(len) / selections["trace_id"].map(segment_counts),
    )
    metrics: dict[str, float] = {"traces": float(segment_metrics["trace_id"].nunique())}
    for strategy, group in shares.groupby("strategy"):
        metrics[f"{strategy}.token_share_mean"] = group["token_share"].mean()
        metrics[f"{strategy}.segment_share_mean"] = group["segment_share"].mean()
        metrics[f"{strategy}.empty_selections"] = float((group["selected_tokens"] == 0).sum())
    metrics["degenerate_segments"] = float((segment_metrics["degenerate"] != "").sum())
    return selections, as_mlflow_metrics(metrics)
