"""LeaF's library: gradient norms, alignment across tokenizers, confounders and spans, pruning, the KL loss."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from tests.conftest import byte_level_bpe
from tracesieve.config import LeafConfig
from tracesieve.leaf.confounders import (
    confounder_flags,
    confounder_spans,
    counterfactual_span_sets,
    flag_confounders,
    planted_distractor_scores,
    prunable_tokens,
)
from tracesieve.leaf.distillation import DistillationCollator, distill, distillation_item, forward_kl_per_token, leaf_objective
from tracesieve.leaf.gradients import (
    TokenAlignmentError,
    align_scores,
    compare_gradients,
    delete_spans,
    encode_leaf_example,
    gradient_delta,
    leaf_example,
    min_max,
    response_loss_gradient_norms,
)
from tracesieve.attribution import AttributionStore
from tracesieve.modeling import build_llama, weights_digest
from tracesieve.rendering import ANSWER_PREFIX, INSTRUCTION
from tracesieve.training import TrainingConfig
from tracesieve.world.problems import generate_problems
from tracesieve.world.tokenizer import build_word_tokenizer

OPTIONS = dict(min_steps=2, max_steps=2, max_value=20, distractor_rate=1.0, check_rate=0.5, restatement_rate=0.5, detour_rate=0.5)


@pytest.fixture(scope="module")
def world():
    problems = generate_problems(6, seed=1, split="train", **OPTIONS)
    texts = [p.question for p in problems] + [p.reasoning for p in problems] + [INSTRUCTION, ANSWER_PREFIX + "}"]
    tokenizer = build_word_tokenizer(texts, numbers_up_to=50)
    traces = pd.DataFrame(
        {"trace_id": [p.trace_id for p in problems], "question": [p.question for p in problems],
         "reasoning": [p.reasoning for p in problems], "answer": [p.answer for p in problems]}
    )
    return tokenizer, problems, traces


def _llama(tokenizer, seed, hidden=32, layers=2):
    return build_llama(tokenizer, hidden_size=hidden, num_layers=layers, num_heads=2, intermediate_size=64, max_positions=512, seed=seed)


# ----------------------------------------------------------------------------- gradient norms
def test_batched_gradient_norms_equal_a_direct_autograd_computation_per_example(world):
    tokenizer, problems, _ = world
    model = _llama(tokenizer, seed=0)
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
    teacher = _llama(bpe, seed=1, hidden=48, layers=3)
    student = _llama(word_tokenizer, seed=2)
    store = AttributionStore(tmp_path)
    run = compare_gradients(traces, teacher, student, bpe, word_tokenizer, batch_size=4, store=store)
    assert run.rejects.empty and run.scores["trace_id"].nunique() == len(traces)
    for trace_id, tokens in run.scores.groupby("trace_id"):
        question = traces.set_index("trace_id").loc[trace_id, "question"]
        # Scores sit on the student's (word) tokens, each token's text is its characters of the question.
        assert tokens["text"].tolist() == [question[s:e] for s, e in zip(tokens["start"], tokens["end"])]
        for column in ("g_teacher", "g_student", "delta"):
            assert tokens[column].between(0, 1).all() and math.isclose(tokens[column].max(), 1.0)
    # A second run is served from the store.
    again = compare_gradients(traces, teacher, student, bpe, word_tokenizer, batch_size=4, store=store)
    assert again.resumed == len(traces) and again.computed == 0
    pd.testing.assert_frame_equal(again.scores, run.scores)


def test_unrenderable_and_long_traces_are_rejected_with_reasons(world):
    tokenizer, _, traces = world
    model = _llama(tokenizer, seed=0)
    run = compare_gradients(traces, model, model, tokenizer, max_tokens=40)
    assert set(run.rejects["kind"]) == {"too_long"} and len(run.rejects) == len(traces)
    assert run.rejects["reason"].str.contains("over leaf.max_tokens=40").all()
    single = traces.assign(reasoning="one paragraph only")
    run = compare_gradients(single, model, model, tokenizer, level="response")
    assert set(run.rejects["kind"]) == {"cannot_render"} and run.rejects["reason"].str.contains(traces["trace_id"].iloc[0]).any()


def test_normalisation_and_delta():
    np.testing.assert_allclose(min_max(np.array([2.0, 4.0, 3.0])), [0, 1, 0.5])
    assert min_max(np.array([5.0, 5.0])).tolist() == [0.0, 0.0]
    # The teacher leans on token 0, the student on token 2: token 2 is the student's confounder candidate.
    np.testing.assert_allclose(gradient_delta(np.array([1.0, 0.5, 0.0]), np.array([0.0, 0.5, 1.0])), [1.0, 0.5, 0.0])


# ----------------------------------------------------------------------------- confounders and spans
def test_quantile_threshold_on_hand_made_deltas():
    delta = np.array([0.0, 0.5, 0.1, 1.0, 0.05])
    everything = np.ones(5, dtype=bool)
    # Sorted deltas 0, .05, .1, .5, 1: the 5% quantile (linear) is 0.01, the median 0.1.
    assert confounder_flags(delta, everything, 0.05).tolist() == [True, False, False, False, False]
    assert confounder_flags(delta, everything, 0.5, max_share=1.0).tolist() == [True, False, True, False, True]
    # Three deltas lie at or below the median, but no more than half of the five tokens are flagged.
    assert confounder_flags(delta, everything, 0.5).tolist() == [True, False, False, False, True]
    # Whitespace-only tokens are never flagged and do not move the threshold.
    prunable = np.array([False, True, True, True, True])
    assert confounder_flags(delta, prunable, 0.05).tolist() == [False, False, False, False, True]
    with pytest.raises(ValueError, match="quantile"):
        confounder_flags(delta, everything, 0.6)


def test_ties_never_flag_more_than_half_of_the_prunable_tokens():
    flags = confounder_flags(np.zeros(5), np.ones(5, dtype=bool), 0.05)
    assert flags.tolist() == [True, True, False, False, False]


def test_consecutive_confounders_form_spans_and_whitespace_breaks_them():
    offsets = [(0, 3), (4, 7), (8, 9), (10, 12)]
    assert confounder_spans(np.array([1, 1, 0, 1], dtype=bool), offsets) == [(0, 7), (10, 12)]
    assert confounder_spans(np.array([0, 0, 0, 0], dtype=bool), offsets) == []
    texts = ["cats", " ", "dogs"]
    prunable = prunable_tokens(texts)
    assert prunable.tolist() == [True, False, True]
    flags = confounder_flags(np.array([0.0, 0.0, 0.0]), prunable, 0.5, max_share=1.0)
    assert confounder_spans(flags, [(0, 4), (4, 5), (5, 9)]) == [(0, 4), (5, 9)]
    assert counterfactual_span_sets([(0, 4), (5, 9)], "span") == [[(0, 4)], [(5, 9)]]
    assert counterfactual_span_sets([(0, 4), (5, 9)], "collective") == [[(0, 4), (5, 9)]]
    assert counterfactual_span_sets([], "collective") == []


def test_flag_confounders_works_per_example():
    scores = pd.DataFrame(
        {"trace_id": ["a"] * 3 + ["b"] * 3, "token_index": [0, 1, 2] * 2, "text": ["x", "y", "z"] * 2,
         "delta": [0.0, 1.0, 0.5, 1.0, 0.0, 0.5]}
    )
    flagged = flag_confounders(scores, 0.05)
    assert flagged["confounder"].tolist() == [True, False, False, False, True, False]


# ----------------------------------------------------------------------------- character-exact pruning
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


def test_planted_distractor_precision_and_recall_by_hand():
    confounders = pd.DataFrame(
        {"trace_id": ["a"] * 4 + ["b"] * 2, "start": [0, 4, 8, 12, 0, 4], "prunable": True,
         "confounder": [False, True, True, False, True, False]}
    )
    distractors = pd.DataFrame({"trace_id": ["a"], "start": [4], "end": [11]})  # covers a's tokens at 4 and 8
    scores = planted_distractor_scores(confounders, distractors)
    assert scores["precision"] == 2 / 3 and scores["recall"] == 1.0
    assert scores["chance_precision"] == 2 / 6 and scores["traces_with_distractor_hit"] == 1.0


# ----------------------------------------------------------------------------- distillation loss
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
    teacher, student = _llama(tokenizer, seed=1), _llama(tokenizer, seed=2)
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
    with pytest.raises(ValueError, match="leaf.quantile"):
        LeafConfig.from_params({"quantile": 0.7}, name="leaf")
    with pytest.raises(ValueError, match="variants must be exactly"):
        LeafConfig.from_params({"variants": {"kd": {"lambda": 1.0}}}, name="leaf")
    with pytest.raises(ValueError, match="lambda"):
        LeafConfig.from_params({"variants": {"kd": {"lambda": 1.0}, "leaf": {"lambda": 1.5}}}, name="leaf")


def test_counterfactuals_that_delete_only_planted_text():
    from tracesieve.leaf.confounders import deletes_only_planted_text

    counterfactuals = pd.DataFrame(
        {"trace_id": ["a", "a", "a", "b"], "spans": [[[4, 8]], [[4, 8], [12, 14]], [], [[4, 8]]]}
    )
    planted = pd.DataFrame({"trace_id": ["a"], "start": [2], "end": [10]})
    # Inside the span; one span outside it; nothing deleted; a trace without planted text.
    assert deletes_only_planted_text(counterfactuals, planted).tolist() == [True, False, False, False]
