from transformers import AutoTokenizer

from tracesieve.rendering import ANSWER_PREFIX, INSTRUCTION, render_example, render_prompt
from tracesieve.world.problems import generate_problems
from tracesieve.world.tokenizer import build_word_tokenizer

OPTIONS = dict(min_steps=2, max_steps=3, max_value=20, distractor_rate=0.5, check_rate=0.4, restatement_rate=0.3, detour_rate=0.3)


def _tokenizer():
    problems = generate_problems(300, seed=0, split="train", **OPTIONS)
    texts = [p.question for p in problems] + [p.reasoning for p in problems] + [INSTRUCTION, ANSWER_PREFIX + "}"]
    return build_word_tokenizer(texts, numbers_up_to=50), generate_problems(50, seed=9, split="eval", **OPTIONS)


def test_round_trip_offsets_and_no_unknown_tokens_on_unseen_problems():
    tokenizer, problems = _tokenizer()
    for problem in problems:
        text = render_example(tokenizer, problem.question, problem.reasoning, problem.answer).text
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        assert tokenizer.unk_token_id not in encoding["input_ids"]
        assert tokenizer.decode(encoding["input_ids"]) == text
        # Offsets tile the text: every character belongs to exactly one token.
        offsets = encoding["offset_mapping"]
        assert offsets[0][0] == 0 and offsets[-1][1] == len(text)
        assert all(a[1] == b[0] for a, b in zip(offsets, offsets[1:]))


def test_chat_template_renders_the_r1_prompt_and_survives_save_and_load(tmp_path):
    tokenizer, problems = _tokenizer()
    prompt = render_prompt(tokenizer, "How many?")
    assert prompt == f"<|user|>\nHow many?\n{INSTRUCTION}\n<|assistant|>\n<think>\n"
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    text = render_example(tokenizer, problems[0].question, problems[0].reasoning, problems[0].answer).text
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert render_prompt(reloaded, "How many?") == prompt
    assert reloaded.eos_token == "<|endoftext|>" and reloaded.pad_token == "<|pad|>"


def test_rendered_example_spans_locate_prompt_reasoning_and_answer():
    tokenizer, problems = _tokenizer()
    problem = problems[0]
    example = render_example(tokenizer, problem.question, problem.reasoning, problem.answer)
    assert example.text[example.reasoning_start : example.reasoning_end] == problem.reasoning
    assert example.text[example.answer_start : example.answer_end] == problem.answer
    assert example.text[: example.prompt_end].endswith("<think>\n")
    assert example.text.endswith("\\boxed{" + problem.answer + "}")
