"""Rendering and encoding one example: where the prompt, the trace and the answer lie, in characters and tokens."""

import pytest

from tracesieve.rendering import ANSWER_PREFIX, encode_example, render_example
from tracesieve.world.tokenizer import build_word_tokenizer


def test_encode_example_targets_are_the_answer_tokens():
    tokenizer = build_word_tokenizer(["Tom has 3 books. Then 3 plus 4 is 7."], numbers_up_to=20)
    example = encode_example(tokenizer, "Tom has 3 books.", "Then 3 plus 4 is 7.", "7")
    assert tokenizer.decode([example.input_ids[t] for t in example.target_positions]).strip() == "7"
    start, end = example.offsets[example.target_positions[0]]
    assert example.rendered.text[start:end] == "7"
    assert example.rendered == render_example(tokenizer, "Tom has 3 books.", "Then 3 plus 4 is 7.", "7")


def test_the_parts_of_a_rendered_example_are_where_its_spans_say():
    tokenizer = build_word_tokenizer(["Tom has 3 books. Then 3 plus 4 is 7."], numbers_up_to=20)
    rendered = render_example(tokenizer, "Tom has 3 books.", "Then 3 plus 4 is 7.", "7")
    assert rendered.text[rendered.reasoning_start : rendered.reasoning_end] == "Then 3 plus 4 is 7."
    assert rendered.text[rendered.reasoning_end : rendered.answer_start] == ANSWER_PREFIX
    assert rendered.text[rendered.answer_start : rendered.answer_end] == "7" and rendered.prompt_end == rendered.reasoning_start


def test_an_answer_without_a_token_of_its_own_is_an_error():
    tokenizer = build_word_tokenizer(["Tom has 3 books."], numbers_up_to=20)
    with pytest.raises(ValueError, match="the answer '' has no token of its own"):
        encode_example(tokenizer, "Tom has 3 books.", "Then 3.", "")
