"""The integrated-gradients engine: agreement with captum, the quadrature rules, efficiency and side effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients
from transformers import LlamaConfig, LlamaForCausalLM

from tracesieve.attribution import integrated_gradients, quadrature, segment_index_of, segment_shares_and_consistency
from tracesieve.choices import QUADRATURE_RULES

TARGETS = [33, 34, 35]


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, pad_token_id=0, tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def input_ids() -> torch.Tensor:
    return torch.randint(1, 120, (40,), generator=torch.Generator().manual_seed(1))


def _captum(model, input_ids, method: str, steps: int) -> torch.Tensor:
    """captum on the same embeddings, baseline and target (full logits, the plain way)."""
    embedding = model.get_input_embeddings()
    inputs = embedding(input_ids[None]).detach()
    baseline = embedding(torch.zeros_like(input_ids)[None]).detach()
    targets = torch.tensor(TARGETS)

    def answer_log_probability(embeds):
        log_probs = torch.log_softmax(model(inputs_embeds=embeds).logits.float(), dim=-1)
        return log_probs[:, targets - 1, input_ids[targets]].sum(-1)

    return IntegratedGradients(answer_log_probability).attribute(inputs, baselines=baseline, n_steps=steps, method=method).sum(-1)[0]


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"])
def test_agrees_with_captum(model, input_ids, method):
    ours = integrated_gradients(model, input_ids, TARGETS, steps=12, method=method)
    reference = _captum(model, input_ids, method, 12).detach()
    if method == "riemann_trapezoid":
        reference = reference * 12 / 11  # captum's trapezoid weights sum to (n-1)/n; ours to 1
    assert float((ours - reference).norm() / reference.norm()) < 1e-4


@pytest.mark.parametrize("method", QUADRATURE_RULES)
def test_quadrature_weights_sum_to_one_and_points_lie_on_the_path(method):
    alphas, weights = quadrature(method, 7)
    assert weights.sum() == pytest.approx(1.0)
    assert ((0 <= alphas) & (alphas <= 1)).all()


def test_gauss_legendre_is_exact_for_polynomials_of_degree_2n_minus_1():
    alphas, weights = quadrature("gausslegendre", 4)
    assert float((weights * alphas**7).sum()) == pytest.approx(1 / 8, abs=1e-12)


def test_authors_linspace_is_the_mean_over_linspace_with_both_ends(model, input_ids):
    """The authors' scheme, written out as their loop does it: one point at a time, mean of gradients."""
    embedding = model.get_input_embeddings()
    inputs = embedding(input_ids[None]).detach()
    baseline = embedding(torch.zeros_like(input_ids)[None]).detach()
    gradient_sum = torch.zeros_like(inputs)
    for alpha in torch.linspace(0, 1, 9):
        path = (baseline + alpha * (inputs - baseline)).requires_grad_(True)
        log_probs = torch.log_softmax(model(inputs_embeds=path).logits, dim=-1)
        (gradient,) = torch.autograd.grad(log_probs[0, torch.tensor(TARGETS) - 1, input_ids[TARGETS]].sum(), path)
        gradient_sum += gradient
    expected = ((inputs - baseline) * gradient_sum / 9).sum(-1)[0].detach()
    ours = integrated_gradients(model, input_ids, TARGETS, steps=9, method="authors_linspace")
    assert torch.allclose(ours, expected, rtol=1e-4, atol=1e-6)


def test_completeness_gap_shrinks_with_steps_and_is_small_when_converged(model, input_ids):
    gaps = [
        integrated_gradients(model, input_ids, TARGETS, steps=steps, method="gausslegendre", return_completeness=True)[1]
        for steps in (2, 16, 256)
    ]
    assert gaps[0].relative_gap > gaps[1].relative_gap > gaps[2].relative_gap
    assert gaps[2].relative_gap < 1e-4
    converged = gaps[2]
    assert converged.absolute_gap == pytest.approx(
        abs(converged.attribution_sum - (converged.target_score - converged.baseline_score))
    )


SEGMENTS = [(start, start + 5) for start in range(0, 35, 5)]


@pytest.fixture(scope="module")
def truth(model, input_ids):
    """A many-point truth: Gauss-Legendre with 2048 points (completeness gap ~1e-7 on this model)."""
    attributions, completeness = integrated_gradients(model, input_ids, TARGETS, steps=2048, method="gausslegendre", return_completeness=True)
    assert completeness.relative_gap < 1e-5
    return attributions


def test_refined_to_a_tolerance_it_meets_it_against_a_many_point_truth(model, input_ids, truth):
    """This random model's path is rough (Gauss-Legendre 32 misses completeness by ~60%): the refinement
    must still land within the tolerance of the truth, and say how many points it took."""
    length = TARGETS[-1] + 1
    true_shares, true_consistency = segment_shares_and_consistency(truth.numpy()[:length].astype(float), segment_index_of(SEGMENTS, length))
    for tolerance in (0.05, 0.01):
        attributions, completeness = integrated_gradients(
            model, input_ids, TARGETS, tolerance=tolerance, segments=SEGMENTS, return_completeness=True
        )
        shares, consistency = segment_shares_and_consistency(attributions.numpy()[:length].astype(float), segment_index_of(SEGMENTS, length))
        assert completeness.converged and 9 <= completeness.steps <= 512
        assert completeness.relative_gap <= tolerance
        assert completeness.share_error <= tolerance and completeness.consistency_error <= tolerance
        assert np.abs(shares - true_shares).sum() <= tolerance  # the estimate is honest about the true error
        assert (true_shares * np.abs(consistency - true_consistency)).sum() <= tolerance
    fixed = integrated_gradients(model, input_ids, TARGETS, steps=32, method="gausslegendre", return_completeness=True)[1]
    assert fixed.relative_gap > 0.05 and not fixed.converged and fixed.steps == 32


def _top_two(shares: np.ndarray, _consistency: np.ndarray) -> tuple[int, ...]:
    """A stand-in for a selection rule: the two strongest segments."""
    return tuple(sorted(np.argsort(-shares, kind="stable")[:2].tolist()))


def test_stopping_on_selection_lands_on_the_truths_selection_in_no_more_points(model, input_ids, truth):
    """The selection rule stops on what selection consumes (shares, consistency, the selected set, settled
    from one round to the next), not the relative completeness gap: within the tolerance of the truth's
    shares, on the truth's selection, never on the initial grid alone, and on this rough path (f(x) - f(x')
    far below the attributions' mass) in no more points than holding the relative gap too. On smoother paths
    it can need more (benchmarks/results/ig_convergence.json)."""
    length = TARGETS[-1] + 1
    index = segment_index_of(SEGMENTS, length)
    true_shares, true_consistency = segment_shares_and_consistency(truth.numpy()[:length].astype(float), index)
    for tolerance in (0.05, 0.02):
        rounds = []
        on_selection, stopped = integrated_gradients(
            model, input_ids, TARGETS, tolerance=tolerance, segments=SEGMENTS, stopping="selection", selects=_top_two,
            return_completeness=True, on_refinement=lambda _estimate, c, rounds=rounds: rounds.append(c),
        )
        _, held_to_gap = integrated_gradients(
            model, input_ids, TARGETS, tolerance=tolerance, segments=SEGMENTS, stopping="completeness", selects=_top_two,
            return_completeness=True,
        )
        shares, consistency = segment_shares_and_consistency(on_selection.numpy()[:length].astype(float), index)
        assert stopped.converged and stopped.selection_stable and len(rounds) >= 2 and stopped.steps > 9
        assert stopped.steps <= held_to_gap.steps
        assert np.abs(shares - true_shares).sum() <= tolerance
        assert _top_two(shares, consistency) == _top_two(true_shares, true_consistency)
        assert not np.isnan(stopped.relative_gap)  # still reported
    with pytest.raises(ValueError, match="stopping must be one of selection, completeness"):
        integrated_gradients(model, input_ids, TARGETS, tolerance=0.02, stopping="gap")


def test_an_unsettled_selection_keeps_the_refinement_going(model, input_ids):
    """A selection that never agrees between the two rules (it changes on every call) never converges."""
    calls = iter(range(10**6))
    _, completeness = integrated_gradients(
        model, input_ids, TARGETS, tolerance=0.05, max_steps=41, segments=SEGMENTS, stopping="selection",
        selects=lambda _shares, _consistency: next(calls), return_completeness=True,
    )
    assert not completeness.converged and completeness.selection_stable is False and completeness.steps > 33


def test_refinement_stops_at_max_steps_and_says_it_did_not_converge(model, input_ids):
    attributions, completeness = integrated_gradients(model, input_ids, TARGETS, tolerance=1e-6, max_steps=21, return_completeness=True)
    assert not completeness.converged and completeness.steps <= 21
    assert torch.isfinite(attributions).all()
    with pytest.raises(ValueError, match="max_steps must be at least 9"):
        integrated_gradients(model, input_ids, TARGETS, tolerance=0.02, max_steps=5)
    with pytest.raises(ValueError, match="pass one of them"):
        integrated_gradients(model, input_ids, TARGETS, tolerance=0.02, steps=16)


def test_refinement_rounds_do_not_depend_on_the_tolerance(model, input_ids):
    """A tight run passes through exactly what a looser one returns: refinements reuse every earlier point."""
    rounds = []
    integrated_gradients(model, input_ids, TARGETS, tolerance=1e-3, segments=SEGMENTS, on_refinement=lambda estimate, c: rounds.append((estimate.copy(), c)))
    loose, completeness = integrated_gradients(model, input_ids, TARGETS, tolerance=0.05, segments=SEGMENTS, return_completeness=True)
    match = next(estimate for estimate, c in rounds if c.steps == completeness.steps)
    assert np.allclose(loose.numpy()[: len(match)], match, rtol=1e-6, atol=1e-9)
    steps = [c.steps for _, c in rounds]
    assert steps == sorted(steps) and steps[0] == 9 and all((b - a) % 2 == 0 for a, b in zip(steps, steps[1:]))


def test_fixed_rules_report_points_and_hold_their_gap_to_the_tolerance(model, input_ids):
    _, converged = integrated_gradients(model, input_ids, TARGETS, steps=256, method="gausslegendre", return_completeness=True)
    assert converged.converged and converged.steps == 256 and np.isnan(converged.share_error)
    _, strict = integrated_gradients(model, input_ids, TARGETS, steps=256, method="gausslegendre", tolerance=1e-9, return_completeness=True)
    assert not strict.converged


def test_adaptive_rule_beats_a_uniform_rule_of_the_same_size_on_a_sharp_path(model, input_ids):
    """f jumping in a narrow band of alpha is what the adaptive rule is for; a steep model makes one."""
    steep = LlamaForCausalLM(model.config)
    steep.load_state_dict({name: tensor * 3 for name, tensor in model.state_dict().items()})
    steep.eval()
    adaptive = integrated_gradients(steep, input_ids, TARGETS, steps=16, method="adaptive", return_completeness=True)[1]
    uniform = integrated_gradients(steep, input_ids, TARGETS, steps=16, method="riemann_middle", return_completeness=True)[1]
    assert adaptive.relative_gap < uniform.relative_gap


def test_batching_and_checkpointing_do_not_change_the_result(model, input_ids):
    reference = integrated_gradients(model, input_ids, TARGETS, steps=10, method="gausslegendre", batch_size=10)
    for options in ({"batch_size": 1}, {"batch_size": 3}, {"batch_size": None}, {"gradient_checkpointing": True}):
        result = integrated_gradients(model, input_ids, TARGETS, steps=10, method="gausslegendre", **options)
        assert torch.allclose(result, reference, rtol=1e-5, atol=1e-7), options


def test_leaves_the_model_as_it_found_it(model, input_ids):
    model.train()
    model.lm_head.weight.requires_grad_(True)
    model.model.norm.weight.requires_grad_(False)
    try:
        integrated_gradients(model, input_ids, TARGETS, steps=4, gradient_checkpointing=True)
        assert model.training
        assert model.lm_head.weight.requires_grad and not model.model.norm.weight.requires_grad
        assert not model.is_activation_checkpointing
        assert all(parameter.grad is None for parameter in model.parameters())
        with torch.no_grad():  # no input-grad hook left behind (it would force requires_grad even here)
            assert not model.get_input_embeddings()(input_ids).requires_grad
    finally:
        model.eval()
        model.requires_grad_(True)


def test_logits_only_at_the_positions_the_target_reads(model, input_ids):
    rows = []
    handle = model.lm_head.register_forward_hook(lambda module, args, output: rows.append(args[0].shape[1]))
    try:
        attributions = integrated_gradients(model, input_ids, TARGETS, steps=4)
    finally:
        handle.remove()
    assert set(rows) == {len(TARGETS)}
    # Tokens after the last target cannot change f: they are never run and score exactly 0.
    assert (attributions[TARGETS[-1] + 1 :] == 0).all()
    assert attributions.dtype == torch.float32 and attributions.shape == input_ids.shape


def test_models_without_logits_to_keep_get_the_same_attributions(model, input_ids, caplog):
    class PlainForward(LlamaForCausalLM):
        def forward(self, inputs_embeds=None, attention_mask=None, use_cache=None):
            return super().forward(inputs_embeds=inputs_embeds, attention_mask=attention_mask, use_cache=use_cache)

    plain = PlainForward(model.config)
    plain.load_state_dict(model.state_dict())
    plain.eval()
    expected = integrated_gradients(model, input_ids, TARGETS, steps=6)
    with caplog.at_level("WARNING", logger="tracesieve.attribution"):
        assert torch.allclose(integrated_gradients(plain, input_ids, TARGETS, steps=6), expected, rtol=1e-5, atol=1e-7)
        integrated_gradients(plain, input_ids, TARGETS, steps=2)
    # Warned once for the model class, not once per trace.
    assert sum("PlainForward.forward has no logits_to_keep" in record.message for record in caplog.records) == 1


def test_bfloat16_model_gives_float32_attributions_close_to_float32(model, input_ids):
    half = LlamaForCausalLM(model.config).to(torch.bfloat16)
    half.load_state_dict(model.state_dict())
    half.eval()
    exact = integrated_gradients(model, input_ids, TARGETS, steps=8, method="gausslegendre")
    approximate = integrated_gradients(half, input_ids, TARGETS, steps=8, method="gausslegendre")
    assert approximate.dtype == torch.float32
    assert np.corrcoef(exact.numpy(), approximate.numpy())[0, 1] > 0.98


def test_baselines(model, input_ids):
    pad = integrated_gradients(model, input_ids, TARGETS, steps=4, baseline="pad")
    assert torch.equal(pad, integrated_gradients(model, input_ids, TARGETS, steps=4, baseline=0))
    assert not torch.equal(pad, integrated_gradients(model, input_ids, TARGETS, steps=4, baseline=5))
    # A model whose embedding has padding_idx keeps the pad row at zero: "pad" and "zero" coincide there.
    assert torch.allclose(pad, integrated_gradients(model, input_ids, TARGETS, steps=4, baseline="zero"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"target_positions": []}, "empty"),
        ({"target_positions": [0]}, "predecessor"),
        ({"target_positions": [40]}, "predecessor"),
        ({"baseline": 500}, "outside the vocabulary"),
        ({"baseline": "mean"}, "baseline must be"),
        ({"method": "simpson"}, "Unknown integration method"),
    ],
)
def test_bad_arguments_are_explained(model, input_ids, arguments, message):
    call = {"target_positions": TARGETS, **arguments}
    with pytest.raises(ValueError, match=message):
        integrated_gradients(model, input_ids, call.pop("target_positions"), steps=4, **call)


def test_pad_baseline_needs_a_pad_token(input_ids):
    config = LlamaConfig(vocab_size=120, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config.pad_token_id = None
    with pytest.raises(ValueError, match="pad_token_id is not set"):
        integrated_gradients(LlamaForCausalLM(config), input_ids, TARGETS, steps=2)
