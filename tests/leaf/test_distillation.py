"""LeaF's distillation: the shifted KL, the lambda mix, collator pairing, training, parameters."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from tests.leaf.conftest import tiny_llama
from tracesieve.config import DistillationVariant, LeafConfig, TrainingConfig
from tracesieve.content_keys import weights_digest
from tracesieve.leaf.distillation import (
    DistillationCollator,
    DistillationTrainer,
    add_hidden_state_forward,
    chunked_forward_kl_per_token,
    distill,
    distillation_checkpoint_dir,
    distillation_item,
    distillation_items,
    forward_kl_per_token,
    leaf_objective,
)
from tracesieve.leaf.examples import encode_leaf_example, leaf_example
from tracesieve.training import training_order


def test_forward_kl_reads_the_logits_one_position_before_each_response_token():
    generator = torch.Generator().manual_seed(0)
    teacher = torch.randn(1, 4, 5, generator=generator)
    student = torch.randn(1, 4, 5, generator=generator)
    response = torch.tensor([[0, 0, 1, 1]])  # tokens 2 and 3 are the response
    kl, rows = forward_kl_per_token(teacher, student, response, temperature=2.0)

    def by_hand(position):
        p = torch.softmax(teacher[0, position] / 2, -1)
        q = torch.softmax(student[0, position] / 2, -1)
        return 4 * float((p * (p.log() - q.log())).sum())

    # Positions 1 and 2 predict tokens 2 and 3; the unshifted positions 2 and 3 would give other numbers.
    np.testing.assert_allclose(kl.numpy(), [by_hand(1), by_hand(2)], rtol=1e-5)
    assert not np.allclose(kl.numpy(), [by_hand(2), by_hand(3)], rtol=1e-3)
    assert rows.tolist() == [0, 0]
    same, _ = forward_kl_per_token(teacher, teacher, response)
    assert torch.allclose(same, torch.zeros(2), atol=1e-6)


def test_leaf_objective_mixes_original_and_counterfactual_terms():
    original = torch.tensor([1.0, 3.0, 5.0])  # rows 0, 0, 1
    rows = torch.tensor([0, 0, 1])
    pruned = torch.tensor([2.0, 4.0])  # the counterfactual of row 0
    loss = leaf_objective(original, rows, pruned, torch.tensor([0]), original_weight=0.25)
    # Row 1 has no counterfactual: its original tokens stand in (X\A = X).
    assert math.isclose(float(loss), 0.25 * 3.0 + 0.75 * (2.0 + 4.0 + 5.0) / 3)
    assert float(leaf_objective(original, rows, pruned, torch.tensor([0]), original_weight=1.0)) == 3.0
    assert float(leaf_objective(original, rows, None, None, original_weight=0.5)) == 3.0


def test_collator_pairs_counterfactuals_with_their_originals(world):
    tokenizer, problems, _ = world
    problem = problems[0]
    example = leaf_example(tokenizer, "a", problem.question, problem.reasoning, problem.answer)
    original = encode_leaf_example(tokenizer, example)
    pruned = encode_leaf_example(tokenizer, example.pruned([(0, 4)]))
    batch = DistillationCollator(tokenizer.pad_token_id)([distillation_item(original), distillation_item(original, pruned)])
    assert batch["pruned_rows"].tolist() == [1]
    assert batch["pruned_input_ids"].shape[0] == 1 and batch["input_ids"].shape[0] == 2
    assert int(batch["pruned_response_mask"].sum()) == int(batch["response_mask"][0].sum())


def test_distillation_trains_the_student_and_leaves_the_teacher_untouched(world, tmp_path):
    tokenizer, problems, _ = world
    teacher, student = tiny_llama(tokenizer, seed=1), tiny_llama(tokenizer, seed=2)
    teacher_before, student_before = weights_digest(teacher), weights_digest(student)
    items = []
    for problem in problems:
        example = leaf_example(tokenizer, problem.trace_id, problem.question, problem.reasoning, problem.answer)
        original = encode_leaf_example(tokenizer, example)
        items.append(distillation_item(original, encode_leaf_example(tokenizer, example.pruned([(0, 3)]))))
    config = TrainingConfig(max_steps=6, batch_size=3, learning_rate=3e-3, logging_steps=1, save_steps=3)
    model, history = distill(student, teacher, items, config, output_dir=tmp_path, tokenizer=tokenizer, vocab_size=len(tokenizer))
    assert weights_digest(teacher) == teacher_before and not teacher.training
    assert not any(parameter.requires_grad for parameter in teacher.parameters())
    assert weights_digest(model) != student_before
    assert history[-1]["loss"] < history[0]["loss"]


def test_every_counterfactual_reaches_the_loss_whichever_item_comes_first(world, tmp_path, monkeypatch):
    """Only some items carry a counterfactual; the training table keeps theirs even when the first item in
    training order has none (a table built from the first item's keys dropped them all, silently)."""
    tokenizer, problems, _ = world
    teacher, student = tiny_llama(tokenizer, seed=1), tiny_llama(tokenizer, seed=2)
    examples = [leaf_example(tokenizer, problem.trace_id, problem.question, problem.reasoning, problem.answer) for problem in problems]
    originals = [encode_leaf_example(tokenizer, example) for example in examples]
    config = TrainingConfig(max_steps=2, batch_size=len(examples), learning_rate=3e-3, logging_steps=1, save_steps=2)
    first = training_order([len(original.input_ids) for original in originals], config.batch_size, config.max_steps, config.seed)[0]
    items = [  # every item but the first in training order paired with a counterfactual
        distillation_item(original, None if index == first else encode_leaf_example(tokenizer, example.pruned([(0, 3)])))
        for index, (example, original) in enumerate(zip(examples, originals, strict=True))
    ]
    seen_rows = []
    original_compute_loss = DistillationTrainer.compute_loss

    def recording(self, model, inputs, *args, **kwargs):
        seen_rows.append(inputs["pruned_rows"].tolist() if "pruned_rows" in inputs else [])
        return original_compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(DistillationTrainer, "compute_loss", recording)
    distill(student, teacher, items, config, output_dir=tmp_path, tokenizer=tokenizer, vocab_size=len(tokenizer), original_weight=0.5)
    paired = sum("pruned_input_ids" in item for item in items)
    assert paired > 0 and [len(rows) for rows in seen_rows] == [paired, paired]  # one full batch a step


def test_leaf_parameters_are_validated():
    assert LeafConfig().quantile == 0.05 and LeafConfig().variants["kd"].original_weight == 1.0
    with pytest.raises(ValueError, match="quantile"):
        LeafConfig.model_validate({"quantile": 0.7})
    with pytest.raises(ValueError, match="variants must be exactly"):
        LeafConfig.model_validate({"variants": {"kd": {"lambda": 1.0}}})
    with pytest.raises(ValueError, match="lambda"):
        LeafConfig.model_validate({"variants": {"kd": {"lambda": 1.0}, "leaf_distilled": {"lambda": 1.5}}})


def _kept(traces, kept_flags):
    """Counterfactuals deleting the first 4 characters of the first traces' questions, kept as flagged."""
    return pd.DataFrame(
        {"trace_id": traces["trace_id"].iloc[: len(kept_flags)].tolist(), "counterfactual_index": 0,
         "spans": [[[0, 4]]] * len(kept_flags), "kept": kept_flags}
    )


def test_distillation_items_pair_each_original_with_its_kept_counterfactuals_in_trace_order(world):
    tokenizer, _, traces = world
    config = LeafConfig()
    counterfactuals = _kept(traces, [True, False])
    leaf, no_rejects = distillation_items(traces, counterfactuals, tokenizer, config, DistillationVariant(original_weight=0.5, counterfactuals=True))
    kd, _ = distillation_items(traces, counterfactuals, tokenizer, config, DistillationVariant(original_weight=1.0, counterfactuals=False))
    assert no_rejects.empty
    assert len(leaf) == len(kd) == len(traces)  # one kept counterfactual: its trace is one paired item
    ordered = traces.sort_values("trace_id")
    for item, trace in zip(leaf, ordered.itertuples(index=False)):
        original = encode_leaf_example(tokenizer, leaf_example(tokenizer, trace.trace_id, trace.question, trace.reasoning, trace.answer))
        assert item["input_ids"] == original.input_ids
    paired = [item for item in leaf if "pruned_input_ids" in item]
    assert len(paired) == 1 and not any("pruned_input_ids" in item for item in kd)
    first = traces.iloc[0]
    pruned = leaf_example(tokenizer, first.trace_id, first.question, first.reasoning, first.answer).pruned([(0, 4)])
    assert paired[0]["pruned_input_ids"] == encode_leaf_example(tokenizer, pruned).input_ids
    limited = LeafConfig(distillation={"max_length": 8})
    with pytest.raises(ValueError, match=r"over leaf.distillation.max_length=8: '"):
        distillation_items(traces, counterfactuals, tokenizer, limited, DistillationVariant())


def test_traces_over_the_length_limit_are_rejected_whole_with_their_length_never_cut(world):
    tokenizer, _, traces = world
    lengths = {
        trace.trace_id: len(encode_leaf_example(tokenizer, leaf_example(tokenizer, trace.trace_id, trace.question, trace.reasoning, trace.answer)).input_ids)
        for trace in traces.itertuples(index=False)
    }
    limit = sorted(lengths.values())[len(lengths) // 2]  # about half the traces are longer
    config = LeafConfig(distillation={"max_length": limit, "over_length": "reject"})
    counterfactuals = _kept(traces, [True] * len(traces))
    items, rejects = distillation_items(traces, counterfactuals, tokenizer, config, DistillationVariant())
    too_long = sorted(trace_id for trace_id, length in lengths.items() if length > limit)
    assert too_long and sorted(rejects["trace_id"]) == too_long
    assert rejects.set_index("trace_id")["tokens"].to_dict() == {trace_id: lengths[trace_id] for trace_id in too_long}
    assert set(rejects["max_length"]) == {limit} and set(rejects["reason"]) == {"over_max_length"}
    # Every kept trace is whole: its items are exactly the unlimited items of the traces within the limit.
    unlimited, _ = distillation_items(traces, counterfactuals, tokenizer, LeafConfig(), DistillationVariant())
    assert items == [item for item in unlimited if len(item["input_ids"]) <= limit]
    assert len(items) == len(lengths) - len(too_long)


def test_the_checkpoint_key_follows_the_variant_the_models_and_the_items(world):
    tokenizer, _, traces = world
    teacher, student = tiny_llama(tokenizer, seed=1), tiny_llama(tokenizer, seed=2)
    config = LeafConfig()
    items, _ = distillation_items(traces, _kept(traces, [True]), tokenizer, config, DistillationVariant())
    key = distillation_checkpoint_dir(config, DistillationVariant(), teacher, student, items)
    assert key == distillation_checkpoint_dir(config, DistillationVariant(), teacher, student, items)
    assert key.startswith("data/06_models/checkpoints/distill-")
    assert key != distillation_checkpoint_dir(config, DistillationVariant(original_weight=1.0), teacher, student, items)
    assert key != distillation_checkpoint_dir(config, DistillationVariant(), student, teacher, items)
    assert key != distillation_checkpoint_dir(config, DistillationVariant(), teacher, student, items[1:])


def test_chunked_kl_gives_the_same_loss_and_gradients_as_the_whole_response_at_once(world):
    tokenizer, problems, _ = world
    teacher, student = tiny_llama(tokenizer, seed=1), tiny_llama(tokenizer, seed=2)
    items = [
        distillation_item(encode_leaf_example(tokenizer, leaf_example(tokenizer, p.trace_id, p.question, p.reasoning, p.answer)))
        for p in problems[:4]
    ]
    batch = DistillationCollator(tokenizer.pad_token_id)(items)  # rows of different lengths: padding included
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        teacher_logits = teacher(**inputs).logits
    whole, rows = forward_kl_per_token(teacher_logits, student(**inputs).logits, batch["response_mask"], temperature=2.0, vocab_size=len(tokenizer))
    whole.mean().backward()
    expected = {name: parameter.grad.clone() for name, parameter in student.named_parameters()}
    student.zero_grad()

    add_hidden_state_forward(teacher)
    add_hidden_state_forward(student)
    assert torch.equal(student(**inputs).logits, student.forward(**inputs).logits)  # other calls are unchanged
    with torch.no_grad():
        teacher_hidden = teacher(**inputs, hidden_states_only=True)
    student_hidden = student(**inputs, hidden_states_only=True)
    responses = int(batch["response_mask"][:, 1:].sum())
    chunked, chunk_rows = chunked_forward_kl_per_token(
        teacher_hidden, student_hidden, teacher.get_output_embeddings(), student.get_output_embeddings(),
        batch["response_mask"], temperature=2.0, vocab_size=len(tokenizer), chunk_size=7,
    )
    assert responses > 7 * 3  # several chunks, the last one partial
    torch.testing.assert_close(chunked, whole.detach(), rtol=0, atol=1e-5)
    assert torch.equal(chunk_rows, rows)
    chunked.mean().backward()
    for name, parameter in student.named_parameters():
        torch.testing.assert_close(parameter.grad, expected[name], rtol=0, atol=1e-5, msg=name)


def test_distillation_with_the_chunked_kl_trains_to_the_same_student(world, tmp_path):
    tokenizer, problems, _ = world
    items = []
    for problem in problems:
        example = leaf_example(tokenizer, problem.trace_id, problem.question, problem.reasoning, problem.answer)
        items.append(distillation_item(encode_leaf_example(tokenizer, example), encode_leaf_example(tokenizer, example.pruned([(0, 3)]))))
    config = TrainingConfig(max_steps=3, batch_size=3, learning_rate=3e-3, logging_steps=1, save_steps=3)
    students, histories = [], []
    for chunk_size in (None, 5):
        model, history = distill(
            tiny_llama(tokenizer, seed=2), tiny_llama(tokenizer, seed=1), items, config, output_dir=tmp_path / str(chunk_size),
            tokenizer=tokenizer, vocab_size=len(tokenizer), kl_chunk_size=chunk_size,
        )
        students.append(model.state_dict())
        histories.append([entry["loss"] for entry in history])
    np.testing.assert_allclose(histories[1], histories[0], rtol=0, atol=1e-5)
    for name, weight in students[0].items():
        torch.testing.assert_close(students[1][name], weight, rtol=0, atol=1e-5, msg=name)
