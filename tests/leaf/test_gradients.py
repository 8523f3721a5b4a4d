"""LeaF's gradient comparison: batched gradient norms, alignment across tokenizers, rejects, delta."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import byte_level_bpe
from tests.leaf.conftest import tiny_llama
from tracesieve.config import LeafConfig
from tracesieve.leaf.examples import encode_leaf_example, leaf_example
from tracesieve.leaf.gradients import (
    TokenAlignmentError,
    align_scores,
    compare_gradients,
    gradient_comparison_summary,
    gradient_delta,
    min_max,
    response_loss_gradient_norms,
)
from tracesieve.result_store import ResultStore


def test_batched_gradient_norms_equal_a_direct_autograd_computation_per_example(world):
    tokenizer, problems, _ = world
    model = tiny_llama(tokenizer, seed=0)
    encoded = [encode_leaf_example(tokenizer, leaf_example(tokenizer, p.trace_id, p.question, p.reasoning, p.answer)) for p in problems[:3]]
    assert len({len(e.input_ids) for e in encoded}) > 1  # the batch really is padded
    batched = response_loss_gradient_norms(model, encoded, pad_token_id=tokenizer.pad_token_id)
    for example, norms in zip(encoded, batched):
        ids = torch.tensor([example.input_ids])
        embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
        logits = model(inputs_embeds=embeds).logits[0]
        response = torch.tensor(example.response_mask)
        # Token k of the response is predicted at position k - 1.
        targets = response[1:]
        loss = F.cross_entropy(logits[:-1][targets], ids[0, 1:][targets])
        (gradient,) = torch.autograd.grad(loss, embeds)
        direct = gradient[0].norm(dim=-1)[example.analysed_positions].numpy()
        np.testing.assert_allclose(norms, direct, rtol=1e-4, atol=1e-7)
    # Weights were frozen for the computation and are trainable again afterwards.
    assert all(parameter.requires_grad for parameter in model.parameters()) and all(p.grad is None for p in model.parameters())


def test_alignment_across_tokenizers_is_overlap_weighted():
    target = [(0, 3), (4, 7)]
    source = [(0, 1), (1, 3), (4, 7)]
    np.testing.assert_allclose(align_scores(target, source, np.array([1.0, 3.0, 5.0]), names=("T", "S")), [7 / 3, 5.0])
    assert align_scores(target, target, np.array([0.2, 0.9]), names=("T", "S")).tolist() == [0.2, 0.9]
    with pytest.raises(TokenAlignmentError, match="teacher-tok.*student-tok|student-tok.*teacher-tok"):
        align_scores([(0, 3), (8, 9)], source, np.array([1.0, 3.0, 5.0]), names=("teacher-tok", "student-tok"))


def test_teacher_and_student_with_different_tokenizers_and_sizes(world, tmp_path):
    word_tokenizer, problems, traces = world
    bpe = byte_level_bpe([p.question for p in problems] * 5 + [p.reasoning for p in problems] * 5)
    teacher = tiny_llama(bpe, seed=1, hidden=48, layers=3)
    student = tiny_llama(word_tokenizer, seed=2)
    store = ResultStore(tmp_path)
    run = compare_gradients(traces, teacher, student, bpe, LeafConfig(gradient_batch_size=4), student_tokenizer=word_tokenizer, store=store)
    assert run.rejects.empty and run.scores["trace_id"].nunique() == len(traces)
    for trace_id, tokens in run.scores.groupby("trace_id"):
        question = traces.set_index("trace_id").loc[trace_id, "question"]
        # Scores sit on the student's (word) tokens, each token's text is its characters of the question.
        assert tokens["text"].tolist() == [question[s:e] for s, e in zip(tokens["start"], tokens["end"])]
        for column in ("g_teacher", "g_student", "delta"):
            assert tokens[column].between(0, 1).all()
        # Normalised on each model's own tokens: the student's and delta's maxima are 1 on the student's tokens;
        # the teacher's, carried over by overlap-weighted averaging, may fall below 1 when a word straddles two BPE tokens.
        assert math.isclose(tokens["g_student"].max(), 1.0) and math.isclose(tokens["delta"].max(), 1.0)
    # A second run is served from the store.
    again = compare_gradients(traces, teacher, student, bpe, LeafConfig(gradient_batch_size=4), student_tokenizer=word_tokenizer, store=store)
    assert again.resumed == len(traces) and again.computed == 0
    pd.testing.assert_frame_equal(again.scores, run.scores)


def test_unrenderable_and_long_traces_are_rejected_with_reasons(world):
    tokenizer, _, traces = world
    model = tiny_llama(tokenizer, seed=0)
    run = compare_gradients(traces, model, model, tokenizer, LeafConfig(max_tokens=40))
    assert set(run.rejects["kind"]) == {"too_long"} and len(run.rejects) == len(traces)
    assert run.rejects["reason"].str.contains("over leaf.max_tokens=40").all()
    single = traces.assign(reasoning="one paragraph only")
    run = compare_gradients(single, model, model, tokenizer, LeafConfig(level="response"))
    assert set(run.rejects["kind"]) == {"cannot_render"} and run.rejects["reason"].str.contains(traces["trace_id"].iloc[0]).any()


def test_normalisation_and_delta():
    np.testing.assert_allclose(min_max(np.array([2.0, 4.0, 3.0])), [0, 1, 0.5])
    assert min_max(np.array([5.0, 5.0])).tolist() == [0.0, 0.0]
    # The teacher leans on token 0, the student on token 2: token 2 is the student's confounder candidate.
    np.testing.assert_allclose(gradient_delta(np.array([1.0, 0.5, 0.0]), np.array([0.0, 0.5, 1.0])), [1.0, 0.5, 0.0])


def test_the_summary_counts_analysed_rejected_and_resumed_traces(world):
    tokenizer, _, traces = world
    model = tiny_llama(tokenizer, seed=0)
    run = compare_gradients(traces, model, model, tokenizer, LeafConfig())
    summary = gradient_comparison_summary(run, seconds=2.5)
    assert summary["traces_analysed"] == len(traces) and summary["traces_rejected"] == 0 and summary["traces_resumed"] == 0
    assert summary["analysed_tokens_mean"] == run.scores.groupby("trace_id").size().mean() and summary["gradient_seconds"] == 2.5
    rejected = gradient_comparison_summary(compare_gradients(traces, model, model, tokenizer, LeafConfig(max_tokens=40)), seconds=0.0)
    assert rejected["traces_analysed"] == 0 and rejected["traces_rejected"] == len(traces) and math.isnan(rejected["analysed_tokens_mean"])
