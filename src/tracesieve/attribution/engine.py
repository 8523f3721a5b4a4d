"""Integrated gradients of the gold answer onto every input position (docs/design.md, segment-level SFT, step 2).

The target is f(x) = sum over the gold answer tokens t of the teacher-forced log p(x_t | x_<t). Attribution
is taken on the input embeddings: a_i = sum_d (x_i - x'_i)_d * integral_0^1 df/dx_i(x' + alpha (x - x'))_d,
with the integral replaced by a quadrature rule. By completeness, sum_i a_i ~ f(x) - f(x').

f along the straight path from the pad baseline is far from smooth on real and world models alike: it
jumps within narrow bands of alpha and, on a real model, is not even monotone, so no fixed rule converges at
an affordable number of points. Two rules answer that:
- ``tolerance=...`` (what the pipeline uses): adaptive Simpson. Every path point yields the gradient and,
  from the same forward pass, f itself; panels of alpha are bisected where their error estimate is largest
  until the completeness gap and the segment-level quantities selection reads (strength shares and
  consistency) are within the tolerance, or ``max_steps`` points are spent (``_refine_to_tolerance``).
- ``method="adaptive"`` with fixed ``steps``: cheap forward-only probes locate where f changes and the
  gradient points go there (``_adaptive_rule``); no error control.

What makes it fast and exact, unlike the authors' loop (docs/design.md, "Known defects"):
- logits are computed only at the positions the target reads (``logits_to_keep``), never the full
  vocabulary at every position; tokens after the last target cannot change f and are not run at all;
- path points run in batches; weight gradients are never computed (parameters are frozen for the call);
- gradients are accumulated in float32 whatever the model's dtype;
- optional gradient checkpointing trades one extra forward for activation memory on long traces.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import logging
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import torch

from tracesieve.attribution.quadrature import quadrature
from tracesieve.choices import DEFAULT_MAX_STEPS, DEFAULT_STEPS, DEFAULT_STOPPING_RULE, DEFAULT_TOLERANCE, STOPPING_RULES
from tracesieve.modeling import answer_score, input_gradient_mode
from tracesieve.selection import segment_consistency, segment_strength, strength_shares

logger = logging.getLogger(__name__)

# Path points per batch when ``batch_size`` is not given: points x tokens stays under this budget. On a
# CPU, batching buys little speed (the matmuls are already compute-bound at one sequence of a few hundred
# tokens) and costs memory linearly (SmolLM2-135M, 512 tokens: 5.1 GB at 8 points per batch), so the
# default is small; on a GPU, pass a larger batch_size.
DEFAULT_BATCH_TOKENS = 1024
# The refinement starts from this many Simpson panels (2 x INITIAL_PANELS + 1 points, ends included):
# enough to see a jump anywhere on the path before the error estimates steer.
INITIAL_PANELS = 4


def completeness_scale(difference: float, attributions: np.ndarray | None = None) -> float:
    """What a completeness gap is relative to: |f(x) - f(x')|; where the two scores are equal (nothing to
    attribute) the attributions' own L1 mass when given (the refinement must still compare rounds), else NaN."""
    if difference != 0:
        return abs(difference)
    return max(float(np.abs(attributions).sum()), 1e-30) if attributions is not None else math.nan


def relative_gap(attribution_sum: float, difference: float, attributions: np.ndarray | None = None) -> float:
    """The completeness gap |sum(a) - (f(x) - f(x'))| over ``completeness_scale``: the one formula the stopping
    rule, the converged flag and every report read."""
    return abs(attribution_sum - difference) / completeness_scale(difference, attributions)


def mass_gap(attribution_sum: float, difference: float, attributions: np.ndarray) -> float:
    """The completeness gap |sum(a) - (f(x) - f(x'))| over the attributions' L1 mass: since the gap is at most
    the L1 error of a, this bounds from below the relative error of what segment strengths and shares are
    made of (``relative_gap`` divides by |f(x) - f(x')|, which cancellations can make far smaller)."""
    return abs(attribution_sum - difference) / max(float(np.abs(attributions).sum()), 1e-30)


@dataclass(frozen=True)
class Completeness:
    """How well the attributions add up: ``sum(a)`` against ``f(x) - f(x')``."""

    target_score: float  # f(x): summed log-probability of the gold answer tokens
    baseline_score: float  # f(x')
    attribution_sum: float
    steps: int = 0  # gradient points used (forward-only probes not counted)
    converged: bool = False  # every check below within the tolerance (fixed rules: the completeness gap alone)
    # Refinement only (NaN for fixed rules): estimated L1 error of the segment strength shares, and the
    # share-weighted error of segment consistency, from the last refinement (see _refine_to_tolerance).
    share_error: float = math.nan
    consistency_error: float = math.nan
    # With a selection to check (``selects``): whether the estimate and the coarser rule select the same.
    selection_stable: bool | None = None
    mass_gap: float = math.nan  # refinement only: the gap over the attributions' L1 mass (``mass_gap``)
    # Refinement only: how far the shares moved from the previous round (L1; NaN in the first), and whether
    # the selection is the previous round's (None without ``selects``, False in the first round).
    share_change: float = math.nan
    selection_settled: bool | None = None

    @property
    def absolute_gap(self) -> float:
        return abs(self.attribution_sum - (self.target_score - self.baseline_score))

    @property
    def relative_gap(self) -> float:
        """The gap relative to |f(x) - f(x')| (NaN when the two scores are equal: nothing to attribute)."""
        return relative_gap(self.attribution_sum, self.target_score - self.baseline_score)


@overload
def integrated_gradients(
    model,
    input_ids,
    target_positions: Sequence[int],
    *,
    steps: int | None = None,
    method: str = "adaptive",
    tolerance: float | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    segments: Sequence[tuple[int, int]] | None = None,
    stopping: Literal[STOPPING_RULES] = DEFAULT_STOPPING_RULE,
    selects: Callable[[np.ndarray, np.ndarray], Hashable] | None = None,
    baseline: str | int = "pad",
    batch_size: int | None = None,
    gradient_checkpointing: bool = False,
    return_completeness: Literal[False] = False,
    on_refinement: Callable[[np.ndarray, Completeness], None] | None = None,
) -> torch.Tensor: ...


@overload
def integrated_gradients(
    model,
    input_ids,
    target_positions: Sequence[int],
    *,
    steps: int | None = None,
    method: str = "adaptive",
    tolerance: float | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    segments: Sequence[tuple[int, int]] | None = None,
    stopping: Literal[STOPPING_RULES] = DEFAULT_STOPPING_RULE,
    selects: Callable[[np.ndarray, np.ndarray], Hashable] | None = None,
    baseline: str | int = "pad",
    batch_size: int | None = None,
    gradient_checkpointing: bool = False,
    return_completeness: Literal[True],
    on_refinement: Callable[[np.ndarray, Completeness], None] | None = None,
) -> tuple[torch.Tensor, Completeness]: ...


def integrated_gradients(
    model,
    input_ids,
    target_positions: Sequence[int],
    *,
    steps: int | None = None,
    method: str = "adaptive",
    tolerance: float | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
    segments: Sequence[tuple[int, int]] | None = None,
    stopping: Literal[STOPPING_RULES] = DEFAULT_STOPPING_RULE,
    selects: Callable[[np.ndarray, np.ndarray], Hashable] | None = None,
    baseline: str | int = "pad",
    batch_size: int | None = None,
    gradient_checkpointing: bool = False,
    return_completeness: bool = False,
    on_refinement: Callable[[np.ndarray, Completeness], None] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, Completeness]:
    """Signed float32 attribution of every position of ``input_ids`` to the gold answer's log-probability.

    ``model``: any causal LM exposing ``get_input_embeddings()``. ``input_ids``: 1-D token ids of the
    rendered example. ``target_positions``: positions t whose log p(x_t | x_<t) are summed into f.

    Two ways to integrate:
    - ``tolerance`` with ``method="adaptive"``: refine until the relative completeness gap, the L1 error of
      the segment strength shares and the share-weighted consistency error are all at most ``tolerance``,
      or ``max_steps`` gradient points are used (``Completeness.converged`` says which). ``segments``: token
      spans ``(start, end)`` of the segments selection will score; None treats every position as its own
      segment (stricter). ``steps`` must then be None. ``stopping="selection"`` stops on what selection
      consumes alone: the share and consistency errors within the tolerance and, with ``selects`` (segment
      strength shares, consistencies -> the selection they give, e.g. ``selection.attribution_selections``),
      the same selection from the estimate and from the coarser rule beside it, all of it unchanged from the
      previous round (shares within the tolerance in L1), and the gap within the tolerance of the
      attributions' L1 mass (``mass_gap``) rather than of |f(x) - f(x')|; the relative completeness gap is
      reported, not required (where attributions cancel, it stays large long after the shares are settled).
    - ``steps`` (16 when None): a fixed budget. ``method``: ``adaptive`` (``steps`` gradient points placed
      by ``steps + 1`` forward-only probes of f), one of captum's rules (``gausslegendre``,
      ``riemann_left/right/middle/trapezoid``) or ``authors_linspace``, the authors' exact scheme (see
      ``quadrature``). ``Completeness.converged`` then checks the gap against ``tolerance`` (or
      ``DEFAULT_TOLERANCE``) alone.
    ``baseline``: ``"pad"`` (the pad token's embedding at every position, the paper's choice), ``"zero"``,
    or a token id. ``batch_size``: path points per forward/backward (None: as many as fit in
    ``DEFAULT_BATCH_TOKENS`` tokens). ``on_refinement``: with ``tolerance``, called after every round with
    the current estimate (float64, one value per position run) and its ``Completeness``; the rounds do not
    depend on the tolerance, so one tight run passes through what every looser tolerance returns (the IG
    benchmark reads them that way). The model's train/eval mode and ``requires_grad`` flags are restored.
    """
    refine = method == "adaptive" and tolerance is not None
    if stopping not in STOPPING_RULES:
        raise ValueError(f"stopping must be one of {', '.join(STOPPING_RULES)}, got {stopping!r}")
    if tolerance is not None and not 0 < tolerance < 1:
        raise ValueError(f"tolerance must lie in (0, 1), got {tolerance}")
    if refine:
        if steps is not None:
            raise ValueError(f"steps={steps} is a fixed budget and tolerance={tolerance} refines until converged: pass one of them")
        if max_steps < 2 * INITIAL_PANELS + 1:
            raise ValueError(f"max_steps must be at least {2 * INITIAL_PANELS + 1} (the initial grid), got {max_steps}")
    else:
        steps = DEFAULT_STEPS if steps is None else steps
        if method == "adaptive":
            if steps < 2:
                raise ValueError(f"method 'adaptive' needs at least 2 steps, got {steps}")
        else:
            alphas, weights = quadrature(method, steps)
    device = model.get_input_embeddings().weight.device
    input_ids = torch.as_tensor(input_ids, dtype=torch.long, device=device).flatten()
    targets = torch.as_tensor(sorted(set(int(t) for t in target_positions)), dtype=torch.long, device=device)
    if targets.numel() == 0:
        raise ValueError("target_positions is empty: there is no answer token to attribute to")
    if int(targets[0]) < 1 or int(targets[-1]) >= input_ids.numel():
        raise ValueError(
            f"target_positions must lie in [1, {input_ids.numel() - 1}] (a token needs a predecessor); "
            f"got {int(targets[0])}..{int(targets[-1])}"
        )
    # A causal model's f cannot depend on tokens after the last target: they are not run, and score 0.
    length = int(targets[-1]) + 1
    ids = input_ids[:length]
    if batch_size is None:
        batch_size = max(1, DEFAULT_BATCH_TOKENS // length)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    segment_of = segment_index_of(segments, length) if refine else None

    with input_gradient_mode(model, gradient_checkpointing):
        embedding = model.get_input_embeddings()
        with torch.no_grad():
            inputs = embedding(ids[None])
            baseline_embeds = _baseline_embeddings(model, embedding, ids, baseline, inputs)
        # Under checkpointing, transformers hooks the embedding to mark its output as requiring grad: detach.
        inputs, baseline_embeds = inputs.detach(), baseline_embeds.detach()
        delta = inputs - baseline_embeds
        score = _answer_score(model, ids, targets)

        def path_gradients(alpha_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Per point: delta . df/dx at x' + alpha delta for every position (float64), and f there."""
            integrands, values = [], []
            alpha_all = torch.as_tensor(alpha_points, dtype=inputs.dtype, device=device)
            for start in range(0, len(alpha_points), batch_size):
                alpha = alpha_all[start : start + batch_size, None, None]
                path = (baseline_embeds + alpha * delta).detach().requires_grad_(True)
                value = score(path)
                (gradient,) = torch.autograd.grad(value.sum(), path)
                # float32 products summed over the hidden size, then float64: a bf16 running sum loses
                # the small per-step contributions.
                integrands.append((delta.float() * gradient.float()).sum(-1).double().cpu().numpy())
                values.append(value.detach().double().cpu().numpy())
            return np.concatenate(integrands), np.concatenate(values)

        if refine:
            scores_np, completeness = _refine_to_tolerance(
                path_gradients, tolerance, max_steps, batch_size, segment_of, on_refinement, stopping=stopping, selects=selects
            )
            scores = torch.as_tensor(scores_np, dtype=torch.float32)
        else:
            if method == "adaptive":
                alphas, weights = _adaptive_rule(score, baseline_embeds, delta, steps, batch_size)
            integrands, _values = path_gradients(np.asarray(alphas))
            scores_np = np.asarray(weights, dtype=np.float64) @ integrands
            scores = torch.as_tensor(scores_np, dtype=torch.float32)
            completeness = None
            if return_completeness:
                with torch.no_grad():
                    end_scores = score(torch.cat([inputs, baseline_embeds])).double()
                completeness = _fixed_rule_completeness(
                    float(end_scores[0]), float(end_scores[1]), float(scores_np.sum()), len(alphas), tolerance
                )
    attributions = torch.zeros(input_ids.numel(), dtype=torch.float32)
    attributions[:length] = scores
    if not return_completeness:
        return attributions
    return attributions, completeness


def rules_met(completeness: Completeness, tolerance: float) -> tuple[str, ...]:
    """The stopping rules (``STOPPING_RULES``) one refinement round meets at ``tolerance``. The refinement
    stops when its own rule is met; a tight run's rounds, read through this, show where any rule at any looser
    tolerance would have stopped (the rounds never depend on either).

    Both need the share and consistency errors (S against T) within the tolerance. ``completeness`` adds the
    relative completeness gap. ``selection`` adds what S against T cannot see, a part of the path the grid has
    not resolved yet (on the initial grid S and T often agree while both miss it): the selection the same
    from S as from T and as in the previous round, the shares within the tolerance of the previous round's,
    and the missing mass small against the attributions' L1 mass (``mass_gap``).
    """
    c = completeness
    errors_within = c.share_error <= tolerance and c.consistency_error <= tolerance
    # Where f(x) = f(x') the relative gap has no scale and the refinement measures it against the L1 mass.
    gap = c.mass_gap if math.isnan(c.relative_gap) else c.relative_gap
    met = {
        "completeness": errors_within and gap <= tolerance,
        "selection": errors_within and c.selection_stable is not False and c.selection_settled is not False
        and c.share_change <= tolerance and c.mass_gap <= tolerance,
    }
    return tuple(rule for rule in STOPPING_RULES if met[rule])


def _fixed_rule_completeness(target: float, baseline_value: float, attribution_sum: float, points: int, tolerance) -> Completeness:
    completeness = Completeness(target, baseline_value, attribution_sum, steps=points)
    gap = completeness.relative_gap
    limit = DEFAULT_TOLERANCE if tolerance is None else tolerance
    converged = bool(gap <= limit) if not math.isnan(gap) else completeness.absolute_gap == 0
    return Completeness(target, baseline_value, attribution_sum, steps=points, converged=converged)


def segment_index_of(segments: Sequence[tuple[int, int]] | None, length: int) -> np.ndarray:
    """Segment number of every position run (-1: in no segment); None: every position its own segment."""
    if segments is None:
        return np.arange(length)
    index = np.full(length, -1)
    for number, (start, end) in enumerate(segments):
        if not 0 <= start <= end:
            raise ValueError(f"segment {number} has span ({start}, {end}); spans are (start, end) with 0 <= start <= end")
        index[start:min(end, length)] = number
    return index


def segment_shares_and_consistency(attributions: np.ndarray, segment_of: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strength shares and consistency of each segment, as selection computes them (selection.segment_metrics)."""
    inside = segment_of >= 0
    count = int(segment_of.max()) + 1 if inside.any() else 0
    number = segment_of[inside]
    values = attributions[inside]
    absolute = np.bincount(number, weights=np.abs(values), minlength=count)
    signed = np.bincount(number, weights=values, minlength=count)
    sizes = np.bincount(number, minlength=count)
    return strength_shares(segment_strength(absolute, sizes)), segment_consistency(signed, absolute)


def _refine_to_tolerance(
    path_gradients, tolerance: float, max_steps: int, batch_size: int, segment_of: np.ndarray, on_refinement=None,
    *, stopping: str = DEFAULT_STOPPING_RULE, selects=None,
):
    """Adaptive Simpson on [0, 1] for the vector integrand delta . df/dx, with error control per panel.

    Each panel [a, b] holds a, its midpoint m and b. Its Simpson estimate S = h/6 (g_a + 4 g_m + g_b) is what
    is returned; its two-interval trapezoid T = h/4 (g_a + 2 g_m + g_b) differs from S by a third of the
    change between the trapezoid on [a, b] and on its halves, so S - T measures how far the panel is from
    stable under refinement. Since every point also gives f, the scalar integral over a panel is known
    exactly, f(b) - f(a): the panel's completeness gap is a second, exact error indicator. Panels are
    bisected largest-indicator first (each bisection costs two points, and every earlier point is reused)
    until the whole estimate passes the tolerance checks or ``max_steps`` is reached. Which checks: the
    share and consistency errors always; under ``stopping="completeness"`` the relative completeness gap;
    under ``stopping="selection"`` instead, the selection ``selects`` gives from S against the one from T
    (with ``selects``), the shares (L1) and the selection against the previous round's, and the gap relative
    to the attributions' L1 mass (``mass_gap``). The bisection order never depends
    on which checks stop it, so every rule passes through the same rounds.
    """
    initial = np.linspace(0.0, 1.0, 2 * INITIAL_PANELS + 1)
    integrands, values = path_gradients(initial)
    points = {float(alpha): (integrand, float(value)) for alpha, integrand, value in zip(initial, integrands, values, strict=True)}
    panels = [(float(initial[2 * k]), float(initial[2 * k + 2])) for k in range(INITIAL_PANELS)]
    difference = points[1.0][1] - points[0.0][1]
    previous = None  # the last round's shares and selection (stopping="selection")
    while True:
        simpson, trapezoid, panel_gaps = [], [], []
        for a, b in panels:
            (g_a, f_a), (g_m, _), (g_b, f_b) = points[a], points[(a + b) / 2], points[b]
            h = b - a
            simpson.append(h / 6 * (g_a + 4 * g_m + g_b))
            trapezoid.append(h / 4 * (g_a + 2 * g_m + g_b))
            panel_gaps.append(abs(simpson[-1].sum() - (f_b - f_a)))
        estimate, coarser = np.sum(simpson, axis=0), np.sum(trapezoid, axis=0)
        scale = completeness_scale(difference, estimate)
        shares, consistency = segment_shares_and_consistency(estimate, segment_of)
        coarser_shares, coarser_consistency = segment_shares_and_consistency(coarser, segment_of)
        selected = None if selects is None else selects(shares, consistency)
        completeness = Completeness(
            points[1.0][1], points[0.0][1], float(estimate.sum()), steps=len(points),
            share_error=float(np.abs(shares - coarser_shares).sum()),
            consistency_error=float((shares * np.abs(consistency - coarser_consistency)).sum()),
            selection_stable=None if selects is None else bool(selected == selects(coarser_shares, coarser_consistency)),
            mass_gap=mass_gap(float(estimate.sum()), difference, estimate),
            share_change=math.nan if previous is None else float(np.abs(shares - previous[0]).sum()),
            selection_settled=None if selects is None else previous is not None and selected == previous[1],
        )
        previous = (shares, selected)
        converged = stopping in rules_met(completeness, tolerance)
        completeness = dataclasses.replace(completeness, converged=converged)
        if on_refinement is not None:
            on_refinement(estimate, completeness)
        budget = (max_steps - len(points)) // 2  # panels that can still be bisected
        if converged or budget < 1:
            break
        norm = max(float(np.abs(estimate).sum()), 1e-30)
        indicator = np.array([np.abs(s - t).sum() / norm for s, t in zip(simpson, trapezoid, strict=True)]) + np.array(panel_gaps) / scale
        # Bisect the panels carrying half the estimated error (at least one, and enough to fill a batch).
        order = np.argsort(-indicator, kind="stable")
        carried = np.cumsum(indicator[order]) / max(indicator.sum(), 1e-300)
        count = max(int(np.searchsorted(carried, 0.5)) + 1, math.ceil(batch_size / 2))
        chosen = {panels[i] for i in order[: min(count, budget, len(panels))]}
        new_panels, new_alphas = [], []
        for a, b in panels:
            if (a, b) in chosen:
                m = (a + b) / 2
                new_panels += [(a, m), (m, b)]
                new_alphas += [(a + m) / 2, (m + b) / 2]
            else:
                new_panels.append((a, b))
        integrands, values = path_gradients(np.asarray(new_alphas))
        points.update({alpha: (integrand, float(value)) for alpha, integrand, value in zip(new_alphas, integrands, values, strict=True)})
        panels = new_panels
    return estimate, completeness


# Share of path points spread uniformly; the rest follow f. 0.25 had the smallest mean and worst-case
# completeness gaps on the world teacher among 0.25 / 0.5 / 0.75.
ADAPTIVE_UNIFORM_SHARE = 0.25


def _adaptive_rule(score, baseline_embeds, delta, steps: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint rule on a partition that puts path points where f changes, found by forward-only probes.

    f along the path often jumps in a narrow band of alpha (the model "recognises" the input late), which a
    fixed rule with few points steps over. ``steps + 1`` forward passes without gradients (about half the
    cost of a gradient point each) locate the change; the partition's cut points are quantiles of a mixture of
    the piecewise-linear total variation of f and the uniform measure, so flat stretches keep some points.
    """
    probes = np.linspace(0.0, 1.0, steps + 1)
    with torch.no_grad():
        values = torch.cat(
            [
                score(baseline_embeds + torch.as_tensor(chunk, dtype=delta.dtype, device=delta.device)[:, None, None] * delta)
                for chunk in np.array_split(probes, math.ceil(len(probes) / batch_size))
            ]
        ).double().cpu().numpy()
    variation = np.abs(np.diff(values))
    total = variation.sum()
    widths = np.diff(probes)
    mass = widths if total == 0 else ADAPTIVE_UNIFORM_SHARE * widths + (1 - ADAPTIVE_UNIFORM_SHARE) * variation / total
    cumulative = np.concatenate([[0.0], np.cumsum(mass)])
    cumulative /= cumulative[-1]
    cuts = np.interp(np.linspace(0.0, 1.0, steps + 1), cumulative, probes)
    return (cuts[:-1] + cuts[1:]) / 2, np.diff(cuts)


@functools.cache
def _warn_full_logits(model_type: str) -> None:
    # Once per model class: attribution calls this per trace, and one line says all there is to say.
    logger.warning("%s.forward has no logits_to_keep argument: computing full-vocabulary logits at every position", model_type)


def _answer_score(model, ids: torch.Tensor, targets: torch.Tensor):
    """f for a batch of embedded sequences: summed float32 log-probabilities of the target tokens."""
    # Logits at position t - 1 predict token t; only those rows of the vocabulary projection are computed.
    logit_positions = targets - 1
    target_ids = ids[targets]
    keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
    if not keeps_logits:
        _warn_full_logits(type(model).__name__)

    def score(embeds: torch.Tensor) -> torch.Tensor:
        mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
        if keeps_logits:
            logits = model(inputs_embeds=embeds, attention_mask=mask, use_cache=False, logits_to_keep=logit_positions).logits
        else:
            logits = model(inputs_embeds=embeds, attention_mask=mask, use_cache=False).logits[:, logit_positions]
        return answer_score(logits, target_ids.expand(embeds.shape[0], -1))

    return score


def _baseline_embeddings(model, embedding, ids: torch.Tensor, baseline: str | int, inputs: torch.Tensor) -> torch.Tensor:
    if baseline == "zero":
        return torch.zeros_like(inputs)
    if baseline == "pad":
        token_id = model.config.pad_token_id
        if token_id is None:
            raise ValueError(
                f"baseline='pad' but {type(model).__name__}.config.pad_token_id is not set; "
                "pass the pad token id as baseline=<id>, or baseline='zero'"
            )
    elif isinstance(baseline, int) and not isinstance(baseline, bool):
        token_id = baseline
    else:
        raise ValueError(f"baseline must be 'pad', 'zero' or a token id, got {baseline!r}")
    vocab_size = embedding.weight.shape[0]
    if not 0 <= int(token_id) < vocab_size:
        raise ValueError(f"baseline token id {token_id} is outside the vocabulary (size {vocab_size})")
    return embedding(torch.full_like(ids, int(token_id))[None])


# ----------------------------------------------------------------------------- many traces, resumable
