"""Nodes of the ``segmentation`` pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tracesieve.config import SegmentationConfig
from tracesieve.metrics import as_mlflow_metrics
from tracesieve.rendering import render_example, tokenize_with_offsets
from tracesieve.segmentation import split_segments, token_spans

SEGMENT_COLUMNS = [
    "trace_id",
    "segment_index",
    "char_start",  # in the reasoning trace
    "char_end",
    "token_start",  # in the tokenised rendered example (the positions attribution scores)
    "token_end",
    "n_tokens",
    "example_tokens",  # length of the rendered example, to check attribution saw the same tokens
    "text",
]


def segment_traces(traces: pd.DataFrame, tokenizer, segmentation_params: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
    """Segments of every trace, their character spans in the trace and token spans in the rendered example."""
    config = SegmentationConfig.from_params(segmentation_params, name="segmentation")
    rows = []
    for trace in traces.itertuples(index=False):
        rendered = render_example(tokenizer, trace.question, trace.reasoning, trace.answer)
        _ids, offsets = tokenize_with_offsets(tokenizer, rendered.text)
        spans = split_segments(trace.reasoning, config.method, keywords=config.keywords)
        absolute = [(rendered.reasoning_start + start, rendered.reasoning_start + end) for start, end in spans]
        for index, ((start, end), (token_start, token_end)) in enumerate(zip(spans, token_spans(offsets, absolute), strict=True)):
            rows.append(
                {
                    "trace_id": trace.trace_id,
                    "segment_index": index,
                    "char_start": start,
                    "char_end": end,
                    "token_start": token_start,
                    "token_end": token_end,
                    "n_tokens": token_end - token_start,
                    "example_tokens": len(offsets),
                    "text": trace.reasoning[start:end],
                }
            )
    segments = pd.DataFrame(rows, columns=SEGMENT_COLUMNS)
    per_trace = segments.groupby("trace_id")["segment_index"].count()
    metrics = {
        "traces": len(traces),
        "segments": len(segments),
        "segments_per_trace_mean": per_trace.mean(),
        "segments_per_trace_max": per_trace.max(),
        "single_segment_traces": int((per_trace == 1).sum()),
        "segment_tokens_mean": segments["n_tokens"].mean(),
        "segments_without_tokens": int((segments["n_tokens"] == 0).sum()),
    }
    return segments, as_mlflow_metrics(metrics)
