"""LeaF's confounders scored against the embedded world's planted distractor sentences (world only: real
traces have no planted distractors). A confounder detector that works should flag distractor tokens more
often than flagging at random would (``chance_precision``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _spans_by_trace(planted: pd.DataFrame) -> dict[str, list[tuple[int, int]]]:
    return {trace_id: list(zip(group["start"], group["end"], strict=True)) for trace_id, group in planted.groupby("trace_id")}


def in_planted_spans(tokens: pd.DataFrame, planted: pd.DataFrame) -> np.ndarray:
    """Whether each token's first character lies in a planted span of its trace (both in the same coordinates)."""
    spans = _spans_by_trace(planted)
    return np.array(
        [any(low <= start < high for low, high in spans.get(trace_id, ())) for trace_id, start in zip(tokens["trace_id"], tokens["start"], strict=True)],
        dtype=bool,
    )


def deletes_only_planted_text(counterfactuals: pd.DataFrame, planted: pd.DataFrame) -> np.ndarray:
    """Whether each counterfactual deletes something, and only characters inside planted spans of its trace."""
    spans = _spans_by_trace(planted)
    return np.array(
        [
            len(row.spans) > 0 and all(any(low <= start and end <= high for low, high in spans.get(row.trace_id, ())) for start, end in row.spans)
            for row in counterfactuals.itertuples()
        ],
        dtype=bool,
    )


def planted_distractor_scores(confounders: pd.DataFrame, distractors: pd.DataFrame) -> dict[str, float]:
    """Precision and recall of the flagged tokens against planted distractor sentences (token level).

    ``chance_precision`` is the precision of flagging prunable tokens at random: the share of distractor
    tokens among them. ``traces_with_distractor_hit`` is the share of traces with a distractor where at
    least one flagged token lies in it.
    """
    prunable = confounders[confounders["prunable"]]
    in_distractor = in_planted_spans(prunable, distractors)
    flagged = prunable["confounder"].to_numpy(dtype=bool)
    hits = int((flagged & in_distractor).sum())
    traces_with = set(distractors["trace_id"]) & set(prunable["trace_id"])
    hit_traces = set(prunable.loc[flagged & in_distractor, "trace_id"])
    return {
        "confounder_tokens": float(flagged.sum()),
        "distractor_tokens": float(in_distractor.sum()),
        "precision": hits / flagged.sum() if flagged.sum() else float("nan"),
        "recall": hits / in_distractor.sum() if in_distractor.sum() else float("nan"),
        "chance_precision": float(in_distractor.mean()) if len(in_distractor) else float("nan"),
        "traces_with_distractor_hit": len(hit_traces) / len(traces_with) if traces_with else float("nan"),
    }


def score_against_planted_distractors(
    confounders: pd.DataFrame, checked_counterfactuals: pd.DataFrame, distractors: pd.DataFrame, traces: pd.DataFrame
) -> dict[str, float]:
    """``planted_distractor_scores`` over the analysed traces, and the share of counterfactuals that delete
    only distractor text, before and after the intervention check.

    ``distractors`` spans are checked against the questions of ``traces`` first: a span that does not
    hold its text is an error naming the trace.
    """
    questions = dict(zip(traces["trace_id"], traces["question"], strict=True))
    distractors = distractors[distractors["trace_id"].isin(questions)]
    for row in distractors.itertuples():
        if questions[row.trace_id][row.start : row.end] != row.text:
            raise ValueError(f"trace {row.trace_id!r}: the planted distractor {row.text!r} is not at characters {row.start}-{row.end} of its question")
    scores = planted_distractor_scores(confounders, distractors)
    only_distractor = deletes_only_planted_text(checked_counterfactuals, distractors)
    kept = checked_counterfactuals["kept"].to_numpy(dtype=bool)
    scores |= {
        "counterfactuals_only_distractor_share": float(only_distractor.mean()) if len(checked_counterfactuals) else float("nan"),
        "kept_only_distractor_share": float(only_distractor[kept].mean()) if kept.any() else float("nan"),
    }
    return scores
