"""LeaF's examples: the analysed span, the response level, character-exact pruning."""

import numpy as np
import pytest

from tracesieve.leaf.examples import delete_spans, encode_leaf_example, leaf_example, leaf_examples


def test_analysed_tokens_are_exactly_the_question(world):
    tokenizer, problems, _ = world
    problem = problems[0]
    example = leaf_example(tokenizer, problem.trace_id, problem.question, problem.reasoning, problem.answer)
    encoded = encode_leaf_example(tokenizer, example)
    assert example.analysed_text == problem.question
    words = [example.analysed_text[start:end] for start, end in encoded.analysed_offsets]
    assert "".join(words) == problem.question  # the tokens tile the question, leading spaces included
    # The response is the reasoning and the answer suffix, supervised up to and including EOS.
    assert encoded.response_mask[-1] and encoded.input_ids[-1] == tokenizer.eos_token_id
    first_response = encoded.response_mask.index(True)
    assert tokenizer.decode(encoded.input_ids[first_response:-1]).split()[:3] == problem.reasoning.split()[:3]


def test_response_level_moves_a_reasoning_prefix_into_the_context(world):
    tokenizer, problems, _ = world
    problem = problems[0]
    example = leaf_example(tokenizer, "t", problem.question, problem.reasoning, problem.answer, level="response", response_prefix_share=0.5)
    prefix = example.analysed_text
    assert problem.reasoning.startswith(prefix) and problem.reasoning[len(prefix) :].startswith("\n\n")
    assert example.context.endswith(prefix) and example.response.startswith(problem.reasoning[len(prefix) :])
    with pytest.raises(ValueError, match="one paragraph"):
        leaf_example(tokenizer, "t", problem.question, "no break here", problem.answer, level="response")


def test_pruning_deletes_exactly_the_span_characters(world):
    assert delete_spans("Tom has 3 cats. Tom has 5 dogs.", [(8, 15), (24, 26)]) == "Tom has  Tom has dogs."
    with pytest.raises(ValueError, match="overlaps"):
        delete_spans("abcdef", [(1, 4), (3, 5)])
    tokenizer, problems, _ = world
    rng = np.random.default_rng(0)
    for problem in problems:
        example = leaf_example(tokenizer, problem.trace_id, problem.question, problem.reasoning, problem.answer)
        cuts = np.sort(rng.choice(len(problem.question) + 1, size=4, replace=False))
        spans = [(int(cuts[0]), int(cuts[1])), (int(cuts[2]), int(cuts[3]))]
        pruned = example.pruned(spans)
        kept = problem.question[: spans[0][0]] + problem.question[spans[0][1] : spans[1][0]] + problem.question[spans[1][1] :]
        assert pruned.analysed_text == kept
        # Everything outside the question is untouched: the chat template around it and the response.
        assert pruned.context == example.context[: example.analysed_start] + kept + example.context[example.analysed_end :]
        assert pruned.response == example.response
        assert len(example.context) - len(pruned.context) == sum(end - start for start, end in spans)


def test_leaf_examples_render_every_trace_by_id(world):
    tokenizer, problems, traces = world
    examples = leaf_examples(traces, tokenizer, level="instruction")
    assert list(examples) == traces["trace_id"].tolist()
    for problem in problems:
        assert examples[problem.trace_id] == leaf_example(tokenizer, problem.trace_id, problem.question, problem.reasoning, problem.answer)
    responses = leaf_examples(traces, tokenizer, level="response", response_prefix_share=0.3)
    assert all(example.analysed_text == problem.reasoning[: len(example.analysed_text)] for example, problem in zip(responses.values(), problems))
