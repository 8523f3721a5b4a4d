"""Label masking on a real tokenizer, batching, and training that is deterministic and resumable."""

import pytest
import torch
from transformers import TrainerCallback

from tests.conftest import byte_level_bpe
from tracesieve.config import LoraSettings, TrainingConfig
from tracesieve.modeling import build_llama
from tracesieve.rendering import ANSWER_PREFIX, INSTRUCTION, render_example, tokenize_with_offsets
from tracesieve.training import IGNORE_INDEX, encode_for_sft, train_causal_lm
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


class _KillAfter(TrainerCallback):
    """Stands in for a crash: raises once the given step has finished."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("simulated kill")


def _train(tokenizer, problems, output_dir, steps, callbacks=(), **settings):
    model = build_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=512, seed=0)
    examples = [encode_for_sft(tokenizer, p.question, p.reasoning, p.answer) for p in problems]
    config = TrainingConfig(max_steps=steps, batch_size=8, learning_rate=3e-3, logging_steps=1, save_steps=3, seed=0, **settings)
    return train_causal_lm(model, examples, config, output_dir=output_dir, tokenizer=tokenizer, callbacks=callbacks)


@pytest.mark.train
def test_training_lowers_the_loss_and_is_deterministic(tmp_path):
    tokenizer, problems = _setup()
    model, history = _train(tokenizer, problems, tmp_path / "a", steps=6)
    again, _ = _train(tokenizer, problems, tmp_path / "b", steps=6)
    assert history[-1]["loss"] < history[0]["loss"]
    assert [entry["step"] for entry in history] == [1, 2, 3, 4, 5, 6]
    for (name, weight), (_, other) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(weight, other), name
    assert not model.training  # handed back in eval mode


@pytest.mark.train
def test_rerunning_a_finished_run_trains_no_further(tmp_path, caplog):
    tokenizer, problems = _setup()  # 40 examples: 5 batches per epoch, so 4 steps end part-way through one
    finished, history = _train(tokenizer, problems, tmp_path, steps=4)
    for _ in range(2):  # the Trainer itself, resumed at max_steps mid-epoch, trained on from the second rerun
        with caplog.at_level("INFO", logger="tracesieve.training"):
            again, again_history = _train(tokenizer, problems, tmp_path, steps=4)
        assert "already finished at step 4" in caplog.text
        assert again_history == history
        for (name, weight), (_, other) in zip(finished.state_dict().items(), again.state_dict().items()):
            assert torch.equal(weight, other), name
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith("checkpoint-")] == ["checkpoint-4"]
    # Bounded disk: the finished checkpoint keeps its weights and state, not the optimizer's (twice the weights).
    assert (tmp_path / "checkpoint-4" / "model.safetensors").is_file() and not (tmp_path / "checkpoint-4" / "optimizer.pt").exists()


@pytest.mark.train
def test_killed_training_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    tokenizer, problems = _setup()
    uninterrupted, _ = _train(tokenizer, problems, tmp_path / "whole", steps=6)
    # A run killed during step 4 leaves checkpoint-3; rerunning the same job resumes there.
    with pytest.raises(KeyboardInterrupt):
        _train(tokenizer, problems, tmp_path / "resumed", steps=6, callbacks=[_KillAfter(4)])
    checkpoint = tmp_path / "resumed" / "checkpoint-3"
    assert (checkpoint / "optimizer.pt").is_file()  # an unfinished run keeps what resuming needs
    resumed, history = _train(tokenizer, problems, tmp_path / "resumed", steps=6)
    assert [entry["step"] for entry in history] == [1, 2, 3, 4, 5, 6]  # the history survives the resume
    for (name, weight), (_, other) in zip(uninterrupted.state_dict().items(), resumed.state_dict().items()):
        assert torch.allclose(weight, other, atol=1e-6), name


def test_labels_on_a_byte_level_bpe_follow_segment_spans_exactly():
    tokenizer = byte_level_bpe()
    first = "Wait, 3 × 4 is 12, so the café has abcdefgh crêpes."
    second = "\n\nAlternatively, 12 ÷ 4 = 3."
    reasoning = first + second
    example = render_example(tokenizer, "How many?", reasoning, "12")
    encoded = encode_for_sft(tokenizer, "How many?", reasoning, "12", supervised_spans=[(len(first), len(reasoning))])
    # Multi-byte characters (×, é, ÷) and merged subwords do not shift the mask by a single token.
    assert _supervised_text(tokenizer, encoded) == second + example.text[example.reasoning_end :] + tokenizer.eos_token

    # A span that starts inside a token: the token belongs to the span holding its first character.
    word = first.index("abcdefgh")
    _, offsets = tokenize_with_offsets(tokenizer, example.text)
    inside = example.reasoning_start + word + 3
    straddling = [index for index, (start, end) in enumerate(offsets) if start < inside < end]
    assert straddling, "the test needs a token that crosses the span start"
    encoded = encode_for_sft(tokenizer, "How many?", reasoning, "12", supervised_spans=[(word + 3, len(first))])
    expected = [index for index, (start, _) in enumerate(offsets) if inside <= start < example.reasoning_start + len(first)]
    expected += [index for index, (start, _) in enumerate(offsets) if start >= example.reasoning_end]
    supervised = [index for index, label in enumerate(encoded["labels"][:-1]) if label != IGNORE_INDEX]
    assert supervised == expected and straddling[0] not in supervised
    assert encoded["labels"][-1] == tokenizer.eos_token_id


def test_variant_examples_share_inputs_and_order_and_differ_only_in_labels():
    import pandas as pd

    from tracesieve.training import selective_sft_examples, supervised_token_count

    tokenizer, problems = _setup(6)
    traces = pd.DataFrame(
        {"trace_id": [f"t{i}" for i in range(6)], "question": [p.question for p in problems],
         "reasoning": [p.reasoning for p in problems], "answer": [p.answer for p in problems]}
    )
    rows = []
    for i, problem in enumerate(problems):
        whole = [[0, len(problem.reasoning)]]
        first = [[problem.segments[0].start, problem.segments[0].end]]
        rows += [{"trace_id": f"t{i}", "strategy": "all", "mask_char_spans": whole}, {"trace_id": f"t{i}", "strategy": "paper", "mask_char_spans": first}]
    selections = pd.DataFrame(rows).sample(frac=1, random_state=0)  # row order must not matter
    ids_all, full = selective_sft_examples(tokenizer, traces, selections, "all")
    ids_paper, selective = selective_sft_examples(tokenizer, traces, selections, "paper")
    assert ids_all == ids_paper == sorted(ids_all)
    assert [e["input_ids"] for e in full] == [e["input_ids"] for e in selective]
    assert supervised_token_count(selective) < supervised_token_count(full)
    assert full == [encode_for_sft(tokenizer, p.question, p.reasoning, p.answer) for p in problems]
    with pytest.raises(ValueError, match="no rows for strategy 'random'"):
        selective_sft_examples(tokenizer, traces, selections, "random")
    with pytest.raises(ValueError, match="not in the traces table"):
        selective_sft_examples(tokenizer, traces.iloc[1:], selections, "all")


def test_lora_training_returns_a_plain_model_with_changed_weights(tmp_path):
    tokenizer, problems = _setup()
    before = build_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=512, seed=0)
    model, history = _train(tokenizer, problems, tmp_path / "lora", steps=4, lora=LoraSettings(r=4, alpha=8, dropout=0.0))
    assert type(model).__name__ == "LlamaForCausalLM"  # merged: saves and loads like any model folder
    assert not any("lora" in name for name in model.state_dict())
    changed = [name for name, weight in model.state_dict().items() if not torch.equal(weight, before.state_dict()[name])]
    assert changed and all("proj" in name for name in changed)  # only adapted projections moved
    assert len(history) == 4


@pytest.mark.train
def test_gradient_checkpointing_gives_the_same_weights(tmp_path):
    tokenizer, problems = _setup()
    plain, _ = _train(tokenizer, problems, tmp_path / "plain", steps=3)
    checkpointed, _ = _train(tokenizer, problems, tmp_path / "checkpointed", steps=3, gradient_checkpointing=True)
    for (name, weight), (_, other) in zip(plain.state_dict().items(), checkpointed.state_dict().items()):
        assert torch.allclose(weight, other, atol=1e-5), name
    assert not checkpointed.is_activation_checkpointing


def test_sft_runs_through_trl_and_its_loss_is_the_mean_over_exactly_the_labels_we_built(tmp_path):
    """TRL keeps our labels as given: the first logged loss (before any update) is the token-mean cross-entropy
    over the supervised positions, computed by hand from the untrained model, for full and partial labels."""
    from transformers.trainer_callback import TrainerCallback as Callback

    tokenizer, problems = _setup(8)
    seen = {}

    class _Trainer(Callback):
        def on_train_begin(self, args, state, control, **kwargs):
            seen["trainer_args"] = type(args).__name__

    for name, spans in (("full", None), ("first_segment", lambda p: [(p.segments[0].start, p.segments[0].end)])):
        examples = [
            encode_for_sft(tokenizer, p.question, p.reasoning, p.answer, supervised_spans=None if spans is None else spans(p)) for p in problems
        ]
        model = build_llama(tokenizer, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, max_positions=512, seed=0)
        total, count = 0.0, 0
        with torch.no_grad():
            for example in examples:
                logits = model(input_ids=torch.tensor([example["input_ids"]])).logits[0, :-1]
                labels = torch.tensor(example["labels"][1:])
                total += torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum").item()
                count += int((labels != IGNORE_INDEX).sum())
        config = TrainingConfig(max_steps=1, batch_size=len(examples), learning_rate=1e-3, logging_steps=1, save_steps=1, seed=0)
        _, history = train_causal_lm(model, examples, config, output_dir=tmp_path / name, tokenizer=tokenizer, callbacks=[_Trainer()])
        assert seen["trainer_args"] == "SFTConfig"
        assert history[0]["loss"] == pytest.approx(total / count, rel=1e-4), name


def test_a_trace_over_max_length_stops_the_run_or_is_rejected_with_its_length_never_cut(tmp_path):
    import pandas as pd

    from tracesieve.config import FineTuningConfig
    from tracesieve.training import fine_tune_variant

    tokenizer, problems = _setup(6)
    traces = pd.DataFrame(
        {"trace_id": [f"t{i}" for i in range(6)], "question": [p.question for p in problems],
         "reasoning": [p.reasoning for p in problems], "answer": [p.answer for p in problems]}
    )
    selections = pd.DataFrame({"trace_id": traces["trace_id"], "strategy": "all", "mask_char_spans": [[[0, len(p.reasoning)]] for p in problems]})
    lengths = {f"t{i}": len(encode_for_sft(tokenizer, p.question, p.reasoning, p.answer)["input_ids"]) for i, p in enumerate(problems)}
    limit = sorted(lengths.values())[3]
    too_long = sorted(trace_id for trace_id, length in lengths.items() if length > limit)
    assert too_long
    settings = dict(max_steps=1, batch_size=2, logging_steps=1, save_steps=1, max_length=limit, checkpoint_dir=str(tmp_path), variants=["full_sft"])
    with pytest.raises(ValueError, match=rf"over fine_tuning.max_length={limit}: '{too_long[0]}' \({lengths[too_long[0]]} tokens\)"):
        fine_tune_variant(build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=512, seed=0), tokenizer, traces, selections, "all", FineTuningConfig(**settings))
    model = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=512, seed=0)
    _, _, summary, rejects = fine_tune_variant(model, tokenizer, traces, selections, "all", FineTuningConfig(**settings, over_length="reject"))
    assert rejects.to_dict("records") == [{"trace_id": t, "tokens": lengths[t], "max_length": limit, "reason": "over_max_length"} for t in too_long]
    assert summary["train_traces"] == 6 - len(too_long) and summary["length_rejects"] == len(too_long)


@pytest.mark.train
def test_a_truncated_checkpoint_is_detected_and_the_run_goes_back_to_the_one_before(tmp_path, caplog):
    tokenizer, problems = _setup()
    uninterrupted, history = _train(tokenizer, problems, tmp_path / "whole", steps=9)
    with pytest.raises(KeyboardInterrupt):  # killed during step 7: checkpoints 3 and 6 are on disk
        _train(tokenizer, problems, tmp_path / "resumed", steps=9, callbacks=[_KillAfter(7)])
    weights = tmp_path / "resumed" / "checkpoint-6" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a crash or a full disk mid-write
    with caplog.at_level("WARNING", logger="tracesieve.training"):
        resumed, resumed_history = _train(tokenizer, problems, tmp_path / "resumed", steps=9)
    said = " ".join(caplog.text.split())
    assert "checkpoint-6 is damaged (model.safetensors is cut short): removed; resuming from the one before it" in said
    assert [entry["step"] for entry in resumed_history] == list(range(1, 10))
    for (name, weight), (_, other) in zip(uninterrupted.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(weight, other), name  # back at checkpoint 3, it still ends where an uninterrupted run ends
    assert resumed_history == history
    # Finished, it keeps one checkpoint, without the optimizer's state.
    assert [path.name for path in (tmp_path / "resumed").iterdir() if path.name.startswith("checkpoint-")] == ["checkpoint-9"]
