"""Batched generation: greedy by default, n seeded samples per prompt in prompt order."""

from tracesieve.generation import generate_completions
from tracesieve.modeling import build_llama
from tracesieve.rendering import ANSWER_PREFIX, INSTRUCTION
from tracesieve.world.problems import generate_problems
from tracesieve.world.tokenizer import build_word_tokenizer


def _model_and_questions():
    problems = generate_problems(
        4, seed=0, split="eval", min_steps=2, max_steps=2, max_value=20,
        distractor_rate=0.5, check_rate=0.4, restatement_rate=0.3, detour_rate=0.3,
    )
    texts = [p.question for p in problems] + [p.reasoning for p in problems] + [INSTRUCTION, ANSWER_PREFIX + "}"]
    tokenizer = build_word_tokenizer(texts, numbers_up_to=50)
    model = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=256, seed=0)
    return model, tokenizer, [p.question for p in problems]


def test_sampling_returns_n_samples_per_prompt_seeded():
    model, tokenizer, questions = _model_and_questions()
    run = lambda seed: generate_completions(  # noqa: E731
        model, tokenizer, questions, max_new_tokens=12, batch_size=3, num_samples=3, temperature=1.0, seed=seed, progress=False
    )
    first, again, other = run(0), run(0), run(1)
    assert [(c.prompt_index, c.sample_index) for c in first] == [(p, s) for p in range(4) for s in range(3)]
    assert [c.text for c in first] == [c.text for c in again]  # same seed, same samples
    assert [c.text for c in first] != [c.text for c in other]
    assert len({c.text for c in first}) > 4  # samples of one prompt differ (a random model is near uniform)
    assert all(c.n_tokens <= 12 for c in first)
    assert all(not c.truncated for c in first if c.n_tokens < 12)  # stopped early means stopped at EOS


def test_greedy_is_one_completion_per_prompt_and_restores_the_tokenizer():
    model, tokenizer, questions = _model_and_questions()
    model.train()
    completions = generate_completions(model, tokenizer, questions, max_new_tokens=8, batch_size=2, progress=False)
    assert [c.prompt_index for c in completions] == [0, 1, 2, 3] and all(c.sample_index == 0 for c in completions)
    assert all(c.n_tokens == 8 for c in completions if c.truncated)
    assert tokenizer.padding_side == "right" and model.training  # state handed back as found
