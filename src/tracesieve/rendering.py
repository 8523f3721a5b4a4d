"""Render a (question, reasoning, answer) example in the paper's format and locate its parts.

Segment-level selective SFT (docs/design.md, step 1) renders each example as the chat prompt (question plus the
instruction below) followed by the reasoning trace and the suffix ``</think> So, the final answer is
\\boxed{ANSWER}``. Attribution, masking and evaluation all need to know where the prompt, the trace and the
answer lie in that text, in characters and in tokens; this module is the one place that decides it.
"""

from __future__ import annotations

from dataclasses import dataclass

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_PREFIX = f"\n{THINK_CLOSE} So, the final answer is \\boxed{{"
ANSWER_CLOSE = "}"


def user_message(question: str) -> str:
    """The user turn: the question followed by the paper's instruction."""
    return f"{question}\n{INSTRUCTION}"


def render_prompt(tokenizer, question: str) -> str:
    """The chat prompt up to and including the opening ``<think>`` the model continues from."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": user_message(question)}],
        tokenize=False,
        add_generation_prompt=True,
    )
    # Chat templates without <think> support (most non-reasoning models) end at the assistant header:
    # open the thinking block ourselves so every model sees the same format.
    if not prompt.rstrip().endswith(THINK_OPEN):
        prompt += f"{THINK_OPEN}\n"
    return prompt


@dataclass(frozen=True)
class RenderedExample:
    """The full training text and the character spans of its parts (end-exclusive)."""

    text: str
    prompt_end: int
    reasoning_start: int
    reasoning_end: int
    answer_start: int
    answer_end: int


def render_example(tokenizer, question: str, reasoning: str, answer: str) -> RenderedExample:
    """Render prompt + reasoning + answer suffix; EOS is added at tokenisation, not as text."""
    prompt = render_prompt(tokenizer, question)
    reasoning_start = len(prompt)
    reasoning_end = reasoning_start + len(reasoning)
    answer_start = reasoning_end + len(ANSWER_PREFIX)
    text = prompt + reasoning + ANSWER_PREFIX + answer + ANSWER_CLOSE
    return RenderedExample(
        text=text,
        prompt_end=len(prompt),
        reasoning_start=reasoning_start,
        reasoning_end=reasoning_end,
        answer_start=answer_start,
        answer_end=answer_start + len(answer),
    )


def tokenize_with_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``text`` (no special tokens added) and each token's character span in it."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(encoding["input_ids"]), [(int(start), int(end)) for start, end in encoding["offset_mapping"]]


@dataclass(frozen=True)
class EncodedExample:
    """A rendered example tokenised once, with what attribution and segmentation need to know about it."""

    rendered: RenderedExample
    input_ids: list[int]
    offsets: list[tuple[int, int]]  # character span of each token in ``rendered.text``
    target_positions: list[int]  # tokens of the gold answer inside \\boxed{}


def encode_example(tokenizer, question: str, reasoning: str, answer: str) -> EncodedExample:
    """Render and tokenise one example; the answer's tokens are those overlapping its character span."""
    rendered = render_example(tokenizer, question, reasoning, answer)
    input_ids, offsets = tokenize_with_offsets(tokenizer, rendered.text)
    targets = [
        position
        for position, (start, end) in enumerate(offsets)
        if start < rendered.answer_end and end > rendered.answer_start and end > start
    ]
    if not targets:
        raise ValueError(f"the answer {answer!r} has no token of its own in the rendered example")
    return EncodedExample(rendered=rendered, input_ids=input_ids, offsets=offsets, target_positions=targets)
