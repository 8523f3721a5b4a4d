"""Integrated gradients of the gold answer onto every input position (docs/DESIGN.md, segment-level SFT, step 2).

The target is f(x) = sum over the gold answer tokens t of the teacher-forced log p(x_t | x_<t). Attribution
is taken on the input embeddings: a_i = sum_d (x_i - x'_i)_d * integral_0^1 df/dx_i(x' + alpha (x - x'))_d,
with the integral replaced by a quadrature rule. By completeness, sum_i a_i ~ f(x) - f(x').

The default rule, ``adaptive``, exists because f along the straight path from the pad baseline is far
from smooth on real and world models alike: it jumps within a narrow band of alpha, which fixed rules with
few points step over (completeness gaps above 100% with 16 Gauss-Legendre points on the world teacher).
Cheap forward-only probes locate the jump and the gradient points go there (``_adaptive_rule``).

What makes it fast and exact, unlike the authors' loop (docs/DESIGN.md, "Known defects"):
- logits are computed only at the positions the target reads (``logits_to_keep``), never the full
  vocabulary at every position; tokens after the last target cannot change f and are not run at all;
- path points run in batches; weight gradients are never computed (parameters are frozen for the call);
- gradients are accumulated in float32 whatever the model's dtype;
- optional gradient checkpointing trades one extra forward for activation memory on long traces.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tracesieve.content_keys import content_key, trace_key
from tracesieve.modeling import input_gradient_mode
from tracesieve.rendering import encode_example
from tracesieve.result_store import ResultStore

if TYPE_CHECKING:  # the schemas import this module's names; the engine only reads the settings' fields
    from tracesieve.config import AttributionConfig

logger = logging.getLogger(__name__)

# Fixed rules: captum's four Riemann rules and Gauss-Legendre, and the authors' scheme.
QUADRATURE_RULES = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "authors_linspace",
)
METHODS = ("adaptive", *QUADRATURE_RULES)
# Where the path starts: the pad token's embedding at every position (the paper's), the zero vector, or
# (passed as an int) any token's embedding.
BASELINES = ("pad", "zero")
# Path points per batch when ``batch_size`` is not given: points x tokens stays under this budget. On a
# CPU, batching buys little speed (the matmuls are already compute-bound at one sequence of a few hundred
# tokens) and costs memory linearly (SmolLM2-135M, 512 tokens: 5.1 GB at 8 points per batch), so the
# default is small; on a GPU, pass a larger batch_size.
DEFAULT_BATCH_TOKENS = 1024


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Points ``alpha`` in [0, 1] and weights of the rule; the weights of every rule sum to 1.

    ``authors_linspace`` reproduces the authors' code: ``linspace(0, 1, steps)`` with both ends and the
    plain mean of the gradients. ``riemann_trapezoid`` is the true trapezoid rule, weights 1/(steps-1) with
    halved ends; captum's rule of that name uses 1/steps, so its weights sum to (steps-1)/steps and its
    attributions are smaller by that factor.
    """
    if method not in QUADRATURE_RULES:
        raise ValueError(f"Unknown integration method {method!r}; choose one of {', '.join(METHODS)}")
    minimum_steps = 2 if method in ("riemann_trapezoid", "authors_linspace") else 1
    if steps < minimum_steps:
        raise ValueError(f"method {method!r} needs at least {minimum_steps} steps, got {steps}")
    n = steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * (nodes + 1.0), 0.5 * weights
    uniform = np.full(n, 1.0 / n)
    if method == "riemann_left":
        return np.arange(n) / n, uniform
    if method == "riemann_right":
        return np.arange(1, n + 1) / n, uniform
    if method == "riemann_middle":
        return (np.arange(n) + 0.5) / n, uniform
    if method == "riemann_trapezoid":
        weights = np.full(n, 1.0 / (n - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, n), weights
    return np.linspace(0.0, 1.0, n), uniform  # authors_linspace


@dataclass(frozen=True)
class Completeness:
    """How well the attributions add up: ``sum(a)`` against ``f(x) - f(x')``."""

    target_score: float  # f(x): summed log-probability of the gold answer tokens
    baseline_score: float  # f(x')
    attribution_sum: float

    @property
    def absolute_gap(self) -> float:
        return abs(self.attribution_sum - (self.target_score - self.baseline_score))

    @property
    def relative_gap(self) -> float:
        """The gap relative to |f(x) - f(x')| (NaN when the two scores are equal: nothing to attribute)."""
        difference = abs(self.target_score - self.baseline_score)
        return self.absolute_gap / difference if difference > 0 else math.nan


def integrated_gradients(
    model,
    input_ids,
    target_positions: Sequence[int],
    *,
    steps: int = 16,
    method: str = "adaptive",
    baseline: str | int = "pad",
    batch_size: int | None = None,
    gradient_checkpointing: bool = False,
    return_completeness: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, Completeness]:
    """Signed float32 attribution of every position of ``input_ids`` to the gold answer's log-probability.

    ``model``: any causal LM exposing ``get_input_embeddings()``. ``input_ids``: 1-D token ids of the
    rendered example. ``target_positions``: positions t whose log p(x_t | x_<t) are summed into f.
    ``method``: ``adaptive`` (``steps`` gradient points placed by ``steps + 1`` forward-only probes of f),
    one of captum's rules (``gausslegendre``, ``riemann_left/right/middle/trapezoid``) or
    ``authors_linspace``, the authors' exact scheme (see ``quadrature``).
    ``baseline``: ``"pad"`` (the pad token's embedding at every position, the paper's choice), ``"zero"``,
    or a token id. ``batch_size``: path points per forward/backward (None: as many as fit in
    ``DEFAULT_BATCH_TOKENS`` tokens). The model's train/eval mode and ``requires_grad`` flags are restored.
    """
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

    with input_gradient_mode(model, gradient_checkpointing):
        embedding = model.get_input_embeddings()
        with torch.no_grad():
            inputs = embedding(ids[None])
            baseline_embeds = _baseline_embeddings(model, embedding, ids, baseline, inputs)
        score = _answer_score(model, ids, targets)
        if method == "adaptive":
            alphas, weights = _adaptive_rule(score, baseline_embeds, inputs - baseline_embeds, steps, batch_size)
        delta = inputs - baseline_embeds
        gradient_sum = torch.zeros(inputs.shape[1:], dtype=torch.float32, device=device)
        alpha_all = torch.as_tensor(alphas, dtype=inputs.dtype, device=device)
        weight_all = torch.as_tensor(weights, dtype=torch.float32, device=device)
        for start in range(0, len(alphas), batch_size):
            alpha = alpha_all[start : start + batch_size, None, None]
            path = (baseline_embeds + alpha * delta).detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(score(path).sum(), path)
            # float32 accumulation: a bf16 running sum loses the small per-step contributions.
            gradient_sum += torch.einsum("b,btd->td", weight_all[start : start + batch_size], gradient.float())
        scores = (delta[0].float() * gradient_sum).sum(-1)
        attributions = torch.zeros(input_ids.numel(), dtype=torch.float32, device=device)
        attributions[:length] = scores
        if not return_completeness:
            return attributions.cpu()
        with torch.no_grad():
            end_scores = score(torch.cat([inputs, baseline_embeds])).double()
    completeness = Completeness(
        target_score=float(end_scores[0]), baseline_score=float(end_scores[1]), attribution_sum=float(scores.double().sum())
    )
    return attributions.cpu(), completeness


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
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        return log_probs.gather(-1, target_ids.expand(embeds.shape[0], -1)[..., None])[..., 0].sum(-1)

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
TOKEN_ATTRIBUTION_COLUMNS = [
    "trace_id",
    "n_tokens",
    "input_ids",
    "token_starts",  # character offsets of each token in the rendered example
    "token_ends",
    "attributions",
    "target_positions",
    "reasoning_start",  # where the trace begins in the rendered example (characters)
    "target_score",
    "baseline_score",
    "attribution_sum",
    "completeness_gap",
    "seconds",
]
ATTRIBUTION_REJECT_COLUMNS = ["trace_id", "kind", "reason"]


# The AttributionConfig fields integrated_gradients reads; max_tokens and long_trace_policy only decide
# which traces are attributed, device and dtype act through the model.
ENGINE_SETTINGS = ("steps", "method", "baseline", "batch_size", "gradient_checkpointing")


@dataclass
class AttributionRun:
    """Attributions of the traces that were attributed, the rejected ones with reasons, and how many resumed."""

    attributions: pd.DataFrame
    rejects: pd.DataFrame
    resumed: int
    computed: int


def attribute_traces(
    traces: pd.DataFrame, model, tokenizer, config: AttributionConfig, store: ResultStore | None = None
) -> AttributionRun:
    """Attribute every trace of a ``traces`` table; finished traces are saved to and reused from ``store``.

    Each trace ends up attributed or rejected with its reason: ``too_long`` (over ``max_tokens``, under
    ``long_trace_policy: skip``), ``no_answer_tokens`` or ``non_finite`` (NaN or infinite attributions).
    """
    device = model.get_input_embeddings().weight.device
    # The engine's settings, the model's dtype and device: what changes a trace's attributions besides the trace.
    engine = config.model_dump(include=set(ENGINE_SETTINGS))
    fingerprint = content_key({**engine, "dtype": str(model.dtype), "device": device.type}, models=[model], tokenizers=[tokenizer])
    keys = [trace_key(row.trace_id, row.question, row.reasoning, row.answer) for row in traces.itertuples()]
    already = sum(store.has(fingerprint, key) for key in keys) if store else 0
    if already:
        logger.info("Resuming attribution: %d of %d traces already done in %s", already, len(traces), store.root / fingerprint)
    records, rejects = [], []
    resumed = computed = 0
    rows = tqdm(list(zip(traces.itertuples(), keys, strict=True)), desc="attribution", unit="trace", mininterval=2)
    for row, key in rows:
        record = store.load(fingerprint, key) if store else None
        if record is not None:
            resumed += 1
        else:
            try:
                example = encode_example(tokenizer, row.question, row.reasoning, row.answer)
            except ValueError as error:
                rejects.append({"trace_id": row.trace_id, "kind": "no_answer_tokens", "reason": f"trace {row.trace_id!r}: {error}"})
                continue
            if len(example.input_ids) > config.max_tokens:
                reason = f"trace {row.trace_id!r}: {len(example.input_ids)} tokens, over attribution.max_tokens={config.max_tokens}"
                if config.long_trace_policy == "fail":
                    raise ValueError(f"{reason}; raise max_tokens or set long_trace_policy: skip")
                logger.warning("%s: skipped (long_trace_policy: skip)", reason)
                rejects.append({"trace_id": row.trace_id, "kind": "too_long", "reason": reason})
                continue
            started = time.perf_counter()
            scores, completeness = integrated_gradients(
                model,
                example.input_ids,
                example.target_positions,
                steps=config.steps,
                method=config.method,
                baseline=config.baseline,
                batch_size=config.batch_size,
                gradient_checkpointing=config.gradient_checkpointing,
                return_completeness=True,
            )
            record = {
                "trace_id": row.trace_id,
                "n_tokens": len(example.input_ids),
                "input_ids": example.input_ids,
                "token_starts": [start for start, _end in example.offsets],
                "token_ends": [end for _start, end in example.offsets],
                "attributions": scores.tolist(),
                "target_positions": example.target_positions,
                "reasoning_start": example.rendered.reasoning_start,
                "target_score": completeness.target_score,
                "baseline_score": completeness.baseline_score,
                "attribution_sum": completeness.attribution_sum,
                "completeness_gap": completeness.relative_gap,
                "seconds": time.perf_counter() - started,
            }
            computed += 1
            if store:
                store.save(fingerprint, key, record)
        if not np.all(np.isfinite(record["attributions"])):
            reason = f"trace {record['trace_id']!r}: attributions contain NaN or infinity (f(x)={record['target_score']})"
            logger.warning("%s: rejected; try dtype float32", reason)
            rejects.append({"trace_id": record["trace_id"], "kind": "non_finite", "reason": reason})
            continue
        records.append(record)
    table = pd.DataFrame(records, columns=TOKEN_ATTRIBUTION_COLUMNS)
    table["attributions"] = [np.asarray(values, dtype=np.float32) for values in table["attributions"]]
    return AttributionRun(
        attributions=table,
        rejects=pd.DataFrame(rejects, columns=ATTRIBUTION_REJECT_COLUMNS),
        resumed=resumed,
        computed=computed,
    )


DIAGNOSTIC_COLUMNS = ["trace_id", "n_tokens", "target_score", "baseline_score", "attribution_sum", "completeness_gap", "seconds"]


def attribution_summary(run: AttributionRun) -> dict[str, float]:
    """How many traces were attributed, resumed and rejected (by kind), lengths, scores, gaps and seconds."""
    attributed = run.attributions
    gaps = attributed["completeness_gap"]
    summary: dict[str, float] = {
        "traces_attributed": len(attributed),
        "traces_rejected": len(run.rejects),
        "traces_resumed": run.resumed,
        "traces_computed": run.computed,
        "tokens_mean": attributed["n_tokens"].mean(),
        "completeness_gap_mean": gaps.mean(),
        "completeness_gap_median": gaps.median(),
        "completeness_gap_max": gaps.max(),
        "target_score_mean": attributed["target_score"].mean(),
        "baseline_score_mean": attributed["baseline_score"].mean(),
        "seconds_per_trace_mean": attributed["seconds"].mean(),
    }
    for kind, count in run.rejects["kind"].value_counts().items():
        summary[f"rejected_{kind}"] = count
    return summary
