"""Split a reasoning trace into segments (docs/design.md, segment-level selective SFT, step 3).

Every method returns character spans ``[start, end)`` that tile the trace exactly: concatenated, the
segments give back the trace. A boundary always sits *before* the separator, so the separator opens the
next segment, as in the paper's reflection-keyword split:

- ``reflection_keywords`` (paper default): before each blank line followed by a reflection keyword;
- ``paragraph``: before each run of blank lines;
- ``sentence``: before the whitespace after a sentence end (``.``, ``!``, ``?``, optionally closed by a
  quote or bracket), and before each run of blank lines. Abbreviations such as "e.g. x" do split.

Token spans come from the tokenizer's offset mapping of the whole rendered example (``token_spans``), so a
segment's tokens are exactly the tokens the model saw, with no re-tokenising of prefixes and no drift.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from tracesieve.choices import REFLECTION_KEYWORDS, SEGMENTATION_METHODS
from tracesieve.rendering import render_example, tokenize_with_offsets

if TYPE_CHECKING:  # the schemas import this module's names
    from tracesieve.config import SegmentationConfig


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n[ \t]*\n\s*")


def reflection_pattern(keywords: Sequence[str] = REFLECTION_KEYWORDS) -> re.Pattern[str]:
    """The paper's boundary: a blank line followed by one of ``keywords``."""
    if not keywords:
        raise ValueError("the reflection keyword list is empty")
    return re.compile(r"\n\n(" + "|".join(re.escape(keyword) for keyword in keywords) + ")")


def split_segments(
    text: str, method: str = "reflection_keywords", *, keywords: Sequence[str] = REFLECTION_KEYWORDS
) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` that tile ``text`` (one span for text without a boundary)."""
    if method == "reflection_keywords":
        boundaries = [match.start() for match in reflection_pattern(keywords).finditer(text)]
    elif method == "paragraph":
        boundaries = [match.start() for match in _PARAGRAPH_BREAK.finditer(text)]
    elif method == "sentence":
        # The closing quote or bracket stays with its sentence; the whitespace opens the next one.
        boundaries = [match.start() + len(match.group(0)) - len(match.group(0).lstrip("\"')]")) for match in _SENTENCE_BREAK.finditer(text)]
    else:
        raise ValueError(f"Unknown segmentation method {method!r}; choose one of {', '.join(SEGMENTATION_METHODS)}")
    starts = sorted({0, *(boundary for boundary in boundaries if 0 < boundary < len(text))})
    ends = starts[1:] + [len(text)]
    return [(start, end) for start, end in zip(starts, ends, strict=True) if end > start]


def token_spans(offsets: Sequence[tuple[int, int]], char_spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Token index spans ``[first, last + 1)`` of each character span, from a tokenizer's offset mapping.

    A token belongs to the span that contains its first character, the same rule the loss masks use
    (``training.encode_for_sft``), so a selected segment's tokens are exactly the ones that get loss.
    ``offsets`` must be sorted by start, as a tokenizer returns them; spans with no token start get an
    empty span ``(i, i)``.
    """
    starts = [start for start, _end in offsets]
    return [(bisect.bisect_left(starts, lo), bisect.bisect_left(starts, hi)) for lo, hi in char_spans]


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


def segment_traces(traces: pd.DataFrame, tokenizer, config: SegmentationConfig) -> pd.DataFrame:
    """Segments of every trace of a ``traces`` table: character spans in the trace, token spans in the
    rendered example (the tokens attribution scored), one row per segment (``SEGMENT_COLUMNS``)."""
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
    return pd.DataFrame(rows, columns=SEGMENT_COLUMNS)


def segmentation_summary(traces: pd.DataFrame, segments: pd.DataFrame) -> dict[str, float]:
    """Segments per trace, tokens per segment, and the segments without a token of their own."""
    per_trace = segments.groupby("trace_id")["segment_index"].count()
    return {
        "traces": len(traces),
        "segments": len(segments),
        "segments_per_trace_mean": per_trace.mean(),
        "segments_per_trace_max": per_trace.max(),
        "single_segment_traces": int((per_trace == 1).sum()),
        "segment_tokens_mean": segments["n_tokens"].mean(),
        "segments_without_tokens": int((segments["n_tokens"] == 0).sum()),
    }
