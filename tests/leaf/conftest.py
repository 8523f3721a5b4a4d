"""A small world LeaF's tests share: six problems with distractors, their word tokenizer and traces table."""

import pandas as pd
import pytest

from tracesieve.modeling import build_llama
from tracesieve.rendering import ANSWER_PREFIX, INSTRUCTION
from tracesieve.world.problems import generate_problems
from tracesieve.world.tokenizer import build_word_tokenizer

OPTIONS = dict(min_steps=2, max_steps=2, max_value=20, distractor_rate=1.0, check_rate=0.5, restatement_rate=0.5, detour_rate=0.5)


@pytest.fixture(scope="package")
def world():
    problems = generate_problems(6, seed=1, split="train", **OPTIONS)
    texts = [p.question for p in problems] + [p.reasoning for p in problems] + [INSTRUCTION, ANSWER_PREFIX + "}"]
    tokenizer = build_word_tokenizer(texts, numbers_up_to=50)
    traces = pd.DataFrame(
        {"trace_id": [p.trace_id for p in problems], "question": [p.question for p in problems],
         "reasoning": [p.reasoning for p in problems], "answer": [p.answer for p in problems]}
    )
    return tokenizer, problems, traces


def tiny_llama(tokenizer, seed, hidden=32, layers=2):
    return build_llama(tokenizer, hidden_size=hidden, num_layers=layers, num_heads=2, intermediate_size=64, max_positions=512, seed=seed)
