"""Segmentation: exact tiling for every method, the paper's keyword rule, and token spans without drift."""

from __future__ import annotations

import random

import pytest

from tracesieve.choices import SEGMENTATION_METHODS
from tracesieve.rendering import render_example, tokenize_with_offsets
from tracesieve.segmentation import split_segments, token_spans
from tracesieve.world.tokenizer import build_word_tokenizer

TRACE = (
    "First, 3 plus 4 is 7. So far so good!\n\nWait, is that right? 7 minus 4 is 3.\n\n"
    "Hmm (a check). \"Fine.\" Then 7 times 2 is 14.\n\nAlternatively we double it.\nNot sure.\n\nHowever, 14 it is."
)


def _tiles(text: str, spans: list[tuple[int, int]]) -> bool:
    return "".join(text[start:end] for start, end in spans) == text and all(
        previous[1] == following[0] for previous, following in zip(spans, spans[1:])
    )


@pytest.mark.parametrize("method", SEGMENTATION_METHODS)
def test_segments_tile_the_text_exactly(method):
    rng = random.Random(0)
    pieces = ["Wait, ", "\n\n", "\n", ". ", "! ", "However, ", "x", "3.5 ", "\n\nAnother ", " ", "?", "\"ok.\" "]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        spans = split_segments(text, method)
        assert _tiles(text, spans) if text else spans == []
        assert all(end > start for start, end in spans)


def test_reflection_keyword_starts_the_next_segment():
    texts = [TRACE[start:end] for start, end in split_segments(TRACE)]
    assert texts == [
        "First, 3 plus 4 is 7. So far so good!",
        "\n\nWait, is that right? 7 minus 4 is 3.\n\nHmm (a check). \"Fine.\" Then 7 times 2 is 14.",
        "\n\nAlternatively we double it.\nNot sure.",
        "\n\nHowever, 14 it is.",
    ]


def test_keyword_list_is_configurable():
    texts = [TRACE[start:end] for start, end in split_segments(TRACE, keywords=["Hmm"])]
    assert texts[1].startswith("\n\nHmm") and len(texts) == 2


def test_paragraphs_and_sentences():
    paragraphs = [TRACE[start:end] for start, end in split_segments(TRACE, "paragraph")]
    assert len(paragraphs) == 5 and paragraphs[2].startswith("\n\nHmm")
    sentences = [TRACE[start:end] for start, end in split_segments(TRACE, "sentence")]
    assert sentences[:3] == ["First, 3 plus 4 is 7.", " So far so good!", "\n\nWait, is that right?"]
    # A closing quote stays with its sentence; a decimal point is not a sentence end.
    assert " \"Fine.\"" in sentences
    assert split_segments("It is 3.5 now. Yes.", "sentence") == [(0, 14), (14, 19)]


def test_unknown_method_and_empty_keywords_are_refused():
    with pytest.raises(ValueError, match="Unknown segmentation method"):
        split_segments(TRACE, "clause")
    with pytest.raises(ValueError, match="empty"):
        split_segments(TRACE, keywords=[])


def test_token_spans_follow_the_offset_mapping_of_the_whole_example():
    tokenizer = build_word_tokenizer([TRACE, "How many? 14"], numbers_up_to=20)
    rendered = render_example(tokenizer, "How many?", TRACE, "14")
    ids, offsets = tokenize_with_offsets(tokenizer, rendered.text)
    spans = split_segments(TRACE)
    absolute = [(rendered.reasoning_start + start, rendered.reasoning_start + end) for start, end in spans]
    token_ranges = token_spans(offsets, absolute)
    # Consecutive, covering every reasoning token once, and each decodes back to its own segment's words.
    assert all(previous[1] == following[0] for previous, following in zip(token_ranges, token_ranges[1:]))
    for (token_start, token_end), (start, end) in zip(token_ranges, spans, strict=True):
        assert tokenizer.decode(ids[token_start:token_end]).split() == TRACE[start:end].split()
    assert token_spans(offsets, [(rendered.reasoning_start + 2, rendered.reasoning_start + 3)]) == [(token_ranges[0][0] + 1,) * 2]


def test_segment_traces_gives_spans_in_the_trace_and_tokens_of_the_rendered_example():
    import pandas as pd

    from tracesieve.config import SegmentationConfig
    from tracesieve.segmentation import SEGMENT_COLUMNS, segment_traces, segmentation_summary

    tokenizer = build_word_tokenizer([TRACE, "How many?"], numbers_up_to=20)
    traces = pd.DataFrame({"trace_id": ["a", "b"], "question": ["How many?"] * 2, "reasoning": [TRACE, "No break at all."], "answer": ["14", "1"]})
    segments = segment_traces(traces, tokenizer, SegmentationConfig())
    assert list(segments.columns) == SEGMENT_COLUMNS
    a = segments[segments["trace_id"] == "a"]
    assert [(row.char_start, row.char_end) for row in a.itertuples()] == split_segments(TRACE)
    rendered = render_example(tokenizer, "How many?", TRACE, "14")
    ids, offsets = tokenize_with_offsets(tokenizer, rendered.text)
    for row in a.itertuples():
        # The segment's tokens are the tokens of its characters in the rendered example.
        assert tokenizer.decode(ids[row.token_start : row.token_end]).split() == row.text.split()
        assert row.example_tokens == len(ids)
    assert len(segments[segments["trace_id"] == "b"]) == 1
    summary = segmentation_summary(traces, segments)
    assert summary["segments"] == len(segments) and summary["single_segment_traces"] == 1 and summary["segments_per_trace_max"] == len(a)
    paragraphs = segment_traces(traces, tokenizer, SegmentationConfig(method="paragraph"))
    assert len(paragraphs[paragraphs["trace_id"] == "a"]) == len(split_segments(TRACE, "paragraph"))
