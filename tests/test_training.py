"""Label masking on a real tokenizer, batching, and training that is deterministic and resumable."""

import pytest
import torch
from transformers import TrainerCallback

from tracesieve.modeling import build_llama
from tracesieve.rendering import ANSWER_PREFIX, INSTRUCTION, render_example
from tracesieve.training import IGNORE_INDEX, CausalLMCollator, TrainingConfig, encode_for_sft, train_causal_lm
from tracesieve.world.problems import generate_problems
from tracesieve.world.tokenizer import build_word_tokenizer

OPTIONS = dict(min_steps=2, max_steps=2, max_value=20, distractor_rate=0.5, check_rate=0.5, restatement_rate=0.5, detour_rate=0.5)


def _setup(n=40):
    problems = generate_problems(n, seed=0, split="train", **OPTIONS)
    texts = [p.question for p in problems] + [p.reasoning for p in problems] + [INSTRUCTION, ANSWER_PREFIX + "}"]
    return build_word_tokenizer(texts, numbers_up_to=50), problems


def _supervised_text(tokenizer, encoded):
    return "".join(
        tokenizer.decode([token]) for token, label in zip(encoded["input_ids"], encoded["labels"]) if label != IGNORE_INDEX
    )


def test_full_trace_labels_cover_reasoning_answer_and_eos_but_never_the_prompt():
    tokenizer, problems = _setup()
    problem = problems[0]
    encoded = encode_for_sft(tokenizer, problem.question, problem.reasoning, problem.answer)
    example = render_example(tokenizer, problem.question, problem.reasoning, problem.answer)
    assert encoded["input_ids"][-1] == tokenizer.eos_token_id and encoded["labels"][-1] == tokenizer.eos_token_id
    # Supervised tokens decode to exactly the text after the prompt, plus EOS.
    assert _supervised_text(tokenizer, encoded) == example.text[example.prompt_end :] + tokenizer.eos_token
    prompt_tokens = len(tokenizer(example.text[: example.prompt_end], add_special_tokens=False)["input_ids"])
    assert all(label == IGNORE_INDEX for label in encoded["labels"][:prompt_tokens])
    assert all(label != IGNORE_INDEX for label in encoded["labels"][prompt_tokens:])


def test_supervised_spans_select_segments_and_the_answer_stays_supervised():
    tokenizer, problems = _setup()
    problem = problems[0]
    first, second = problem.segments[0], problem.segments[1]
    encoded = encode_for_sft(tokenizer, problem.question, problem.reasoning, problem.answer, supervised_spans=[(second.start, second.end)])
    example = render_example(tokenizer, problem.question, problem.reasoning, problem.answer)
    supervised = _supervised_text(tokenizer, encoded)
    answer_suffix = example.text[example.reasoning_end :]
    assert supervised == problem.reasoning[second.start : second.end] + answer_suffix + tokenizer.eos_token
    assert problem.reasoning[first.start : first.end] not in supervised


def test_collator_pads_inputs_labels_and_mask():
    batch = CausalLMCollator(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


class _KillAfter(TrainerCallback):
    """Stands in for a crash: raises once the given step has finished."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("simulated kill")


def _train(tokenizer, problems, output_dir, steps, callbacks=()):
    model = build_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=512, seed=0)
    examples = [encode_for_sft(tokenizer, p.question, p.reasoning, p.answer) for p in problems]
    config = TrainingConfig(max_steps=steps, batch_size=8, learning_rate=3e-3, logging_steps=1, save_steps=3, seed=0)
    history = train_causal_lm(
        model, examples, config, output_dir=output_dir, pad_token_id=tokenizer.pad_token_id, callbacks=callbacks
    )
    return model, history


def test_training_lowers_the_loss_and_is_deterministic(tmp_path):
    tokenizer, problems = _setup()
    model, history = _train(tokenizer, problems, tmp_path / "a", steps=6)
    again, _ = _train(tokenizer, problems, tmp_path / "b", steps=6)
    assert history[-1]["loss"] < history[0]["loss"]
    assert [entry["step"] for entry in history] == [1, 2, 3, 4, 5, 6]
    for (name, weight), (_, other) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(weight, other), name
    assert not model.training  # handed back in eval mode


def test_killed_training_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    tokenizer, problems = _setup()
    uninterrupted, _ = _train(tokenizer, problems, tmp_path / "whole", steps=6)
    # A run killed during step 4 leaves checkpoint-3; rerunning the same job resumes there.
    with pytest.raises(KeyboardInterrupt):
        _train(tokenizer, problems, tmp_path / "resumed", steps=6, callbacks=[_KillAfter(4)])
    checkpoint = tmp_path / "resumed" / "checkpoint-3"
    assert checkpoint.is_dir()
    resumed, history = _train(tokenizer, problems, tmp_path / "resumed", steps=6)
    assert [entry["step"] for entry in history] == [1, 2, 3, 4, 5, 6]  # the history survives the resume
    for (name, weight), (_, other) in zip(uninterrupted.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(weight, other, atol=1e-6), name
