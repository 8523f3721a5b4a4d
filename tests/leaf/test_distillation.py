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
    distill,
    distillation_checkpoint_dir,
    distillation_item,
    distillation_items,
    forward_kl_per_token,
    leaf_objective,
)
from tracesieve.leaf.examples import encode_leaf_example, leaf_example


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
    model, history = distill(student, teacher, items, config, output_dir=tmp_path, pad_token_id=tokenizer.pad_token_id, vocab_size=len(tokenizer))
    assert weights_digest(teacher) == teacher_before and not teacher.training
    assert not any(parameter.requires_grad for parameter in teacher.parameters())
    assert weights_digest(model) != student_before
    assert history[-1]["loss"] < history[0]["loss"]


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
    leaf = distillation_items(traces, counterfactuals, tokenizer, config, DistillationVariant(original_weight=0.5, counterfactuals=True))
    kd = distillation_items(traces, counterfactuals, tokenizer, config, DistillationVariant(original_weight=1.0, counterfactuals=False))
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
    with pytest.raises(ValueError, match=r"over leaf.distillation.max_length=8"):
        distillation_items(traces, counterfactuals, tokenizer, limited, DistillationVariant())


def test_the_checkpoint_key_follows_the_variant_the_models_and_the_items(world):
    tokenizer, _, traces = world
    teacher, student = tiny_llama(tokenizer, seed=1), tiny_llama(tokenizer, seed=2)
    config = LeafConfig()
    items = distillation_items(traces, _kept(traces, [True]), tokenizer, config, DistillationVariant())
    key = distillation_checkpoint_dir(config, DistillationVariant(), teacher, student, items)
    assert key == distillation_checkpoint_dir(config, DistillationVariant(), teacher, student, items)
    assert key.startswith("data/06_models/checkpoints/distill-")
    assert key != distillation_checkpoint_dir(config, DistillationVariant(original_weight=1.0), teacher, student, items)
    assert key != distillation_checkpoint_dir(config, DistillationVariant(), student, teacher, items)
    assert key != distillation_checkpoint_dir(config, DistillationVariant(), teacher, student, items[1:])
