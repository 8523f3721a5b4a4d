"""LeaF's examples: a trace rendered as the context a model conditions on and the reference response it
continues with, the analysed span of the context (the question, or a reasoning prefix), its tokens, and
the counterfactual with chosen spans of that text deleted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pandas as pd

from tracesieve.choices import LEVELS
from tracesieve.rendering import ANSWER_CLOSE, ANSWER_PREFIX, render_prompt, tokenize_with_offsets


@dataclass(frozen=True)
class LeafExample:
    """One example as a model sees it: the context it conditions on and the reference response it continues with.

    ``[analysed_start, analysed_end)`` is the character span of the context whose tokens are scored and may
    be pruned: the question inside the chat prompt, or the reasoning prefix moved into the context.
    """

    example_id: str
    context: str
    response: str
    analysed_start: int
    analysed_end: int

    @property
    def analysed_text(self) -> str:
        return self.context[self.analysed_start : self.analysed_end]

    def pruned(self, spans: Sequence[tuple[int, int]]) -> LeafExample:
        """The counterfactual: exactly the characters of ``spans`` (relative to the analysed text) deleted."""
        kept = delete_spans(self.analysed_text, spans)
        context = self.context[: self.analysed_start] + kept + self.context[self.analysed_end :]
        return replace(self, context=context, analysed_end=self.analysed_start + len(kept))


def delete_spans(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """``text`` without the characters of ``spans`` (end-exclusive, sorted, non-overlapping, inside the text)."""
    pieces, cursor = [], 0
    for start, end in spans:
        if not cursor <= start < end <= len(text):
            raise ValueError(f"span ({start}, {end}) is empty, overlaps the previous one or lies outside a text of {len(text)} characters")
        pieces.append(text[cursor:start])
        cursor = end
    pieces.append(text[cursor:])
    return "".join(pieces)


def response_prefix_cut(reasoning: str, share: float) -> int:
    """Where the response-level prefix ends: the paragraph break (``\\n\\n``) nearest to ``share`` of the reasoning."""
    breaks = [match.start() for match in re.finditer("\n\n", reasoning)]
    if not breaks:
        raise ValueError("the reasoning has one paragraph only; the response level needs a paragraph break to cut at")
    target = share * len(reasoning)
    return min(breaks, key=lambda position: (abs(position - target), position))


def leaf_example(
    tokenizer, example_id: str, question: str, reasoning: str, answer: str, *, level: str = "instruction", response_prefix_share: float = 0.5
) -> LeafExample:
    """Render a trace in the project's format (chat prompt, reasoning, boxed-answer suffix) for LeaF."""
    prompt = render_prompt(tokenizer, question)
    suffix = ANSWER_PREFIX + answer + ANSWER_CLOSE
    if level == "instruction":
        start = prompt.find(question) if question else -1
        if start < 0:
            raise ValueError(f"the question does not appear verbatim in the chat prompt of {tokenizer.name_or_path or type(tokenizer).__name__}")
        return LeafExample(example_id, prompt, reasoning + suffix, start, start + len(question))
    if level == "response":
        cut = response_prefix_cut(reasoning, response_prefix_share)
        return LeafExample(example_id, prompt + reasoning[:cut], reasoning[cut:] + suffix, len(prompt), len(prompt) + cut)
    raise ValueError(f"level must be one of {LEVELS}, got {level!r}")


@dataclass(frozen=True)
class EncodedLeafExample:
    """Token ids with EOS appended, which tokens belong to the response, and the analysed tokens."""

    input_ids: list[int]
    response_mask: list[bool]  # the token's first character is in the response (EOS included)
    analysed_positions: list[int]
    analysed_offsets: list[tuple[int, int]]  # character spans relative to the analysed text, clipped to it


def encode_leaf_example(tokenizer, example: LeafExample) -> EncodedLeafExample:
    """Tokenise context + response once; positions come from the offset mapping, never from re-tokenising."""
    ids, offsets = tokenize_with_offsets(tokenizer, example.context + example.response)
    boundary = len(example.context)
    low, high = example.analysed_start, example.analysed_end
    analysed = [
        (position, (max(start, low) - low, min(end, high) - low))
        for position, (start, end) in enumerate(offsets)
        if start < high and end > low and end > start
    ]
    return EncodedLeafExample(
        input_ids=[*ids, tokenizer.eos_token_id],
        response_mask=[start >= boundary for start, _end in offsets] + [True],
        analysed_positions=[position for position, _ in analysed],
        analysed_offsets=[span for _, span in analysed],
    )


def leaf_examples(traces: pd.DataFrame, tokenizer, *, level: str = "instruction", response_prefix_share: float = 0.5) -> dict[str, LeafExample]:
    """``leaf_example`` of every trace of a ``traces`` table, by trace id."""
    return {
        row.trace_id: leaf_example(
            tokenizer, row.trace_id, row.question, row.reasoning, row.answer, level=level, response_prefix_share=response_prefix_share
        )
        for row in traces.itertuples(index=False)
    }
