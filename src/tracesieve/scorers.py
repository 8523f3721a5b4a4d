"""Segment scorers beside integrated gradients (the paper's ablations), and their deletion faithfulness.

A scorer gives every segment of a trace one number: how much the gold answer depends on it, as that scorer
sees it. Each is computed on the attribution model, teacher-forced, with the answer inside ``\\boxed{}`` as
the target f (``rendering.encode_example``):

- ``ig``: the paper's strength share (``selection``'s ``strength_share`` of the IG attributions);
- ``occlusion``: f(trace) - f(trace without the segment) (``occlusion.segment_occlusion``);
- ``gradient_x_input``: one gradient at the input, times the input embedding, aggregated like strength
  (``sum |a| / sqrt(N)``): IG with one path point and the zero baseline;
- ``perplexity``: the segment's mean token negative log-likelihood (surprising segments score high);
- ``entropy``: the mean entropy of the model's next-token distribution over the segment's tokens;
- ``random``: a seeded uniform draw per segment, the order every curve is read against.

Deletion faithfulness (DeYoung et al., ERASER) needs no planted labels, so it is the quality figure a user
gets on their own traces and model: remove the top-k% segments by score (comprehensiveness: f should drop
a lot) or keep only them (sufficiency: f should drop little), for k in ``fractions``; AOPC is the mean over
k. A scorer is faithful when its comprehensiveness beats random order and its sufficiency drop is smaller.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from tracesieve.attribution import integrated_gradients
from tracesieve.choices import SCORER_STRATEGIES, SCORERS
from tracesieve.metrics import mean_interval
from tracesieve.modeling import input_gradient_mode
from tracesieve.occlusion import answer_log_probs, segment_occlusion
from tracesieve.rendering import encode_example
from tracesieve.selection import segment_strength, strength_shares, trace_seed

SCORE_COLUMNS = ["trace_id", "segment_index", "scorer", "score"]
CURVE_COLUMNS = ["trace_id", "scorer", "fraction", "segments_removed", "comprehensiveness", "sufficiency"]


@torch.no_grad()
def _token_surprise(model, input_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per position t >= 1: -log p(x_t | x_<t) and the entropy of p(. | x_<t); position 0 gets 0."""
    device = model.get_input_embeddings().weight.device
    ids = torch.tensor([input_ids], device=device)
    with input_gradient_mode(model, gradient_checkpointing=False):  # eval mode, restored afterwards
        log_probs = torch.log_softmax(model(input_ids=ids, use_cache=False).logits[0, :-1].float(), dim=-1)
    nll = -log_probs.gather(-1, ids[0, 1:, None])[:, 0]
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    pad = torch.zeros(1, device=device)
    return torch.cat([pad, nll]).cpu().numpy(), torch.cat([pad, entropy]).cpu().numpy()


def segment_scores(
    model, tokenizer, traces: pd.DataFrame, segments: pd.DataFrame, segment_metrics: pd.DataFrame | None,
    *, scorers: tuple[str, ...] = SCORERS, seed: int = 0,
) -> pd.DataFrame:
    """Every scorer's score for every segment (``SCORE_COLUMNS``, long format). ``segments``: the
    segmentation table; ``segment_metrics``: ``selection``'s table (the ``ig`` scorer's strength share)."""
    unknown = sorted(set(scorers) - set(SCORERS))
    if unknown:
        raise ValueError(f"unknown scorers {unknown}; choose from {SCORERS}")
    by_trace = {trace_id: group.sort_values("segment_index") for trace_id, group in segments.groupby("trace_id")}
    tables = []
    if "ig" in scorers:
        if segment_metrics is None:
            raise ValueError("the ig scorer reads segment_metrics (selection's strength share); none was given")
        tables.append(segment_metrics[["trace_id", "segment_index"]].assign(scorer="ig", score=segment_metrics["strength_share"].to_numpy()))
    if "occlusion" in scorers:
        occlusion = segment_occlusion(model, tokenizer, traces, segments)
        tables.append(occlusion[["trace_id", "segment_index"]].assign(scorer="occlusion", score=occlusion["drop"].to_numpy()))
    rows = []
    per_token = {"gradient_x_input", "perplexity", "entropy"} & set(scorers)
    for trace in tqdm(list(traces.itertuples(index=False)), desc="segment scorers", unit="trace", mininterval=2):
        own = by_trace.get(trace.trace_id)
        if own is None:
            raise ValueError(f"trace {trace.trace_id!r} has no segments; re-run segmentation")
        if per_token:
            encoded = encode_example(tokenizer, trace.question, trace.reasoning, trace.answer)
            values = {}
            if "gradient_x_input" in scorers:
                values["gradient_x_input"] = integrated_gradients(
                    model, encoded.input_ids, encoded.target_positions, steps=1, method="riemann_right", baseline="zero"
                ).abs().numpy()
            if {"perplexity", "entropy"} & set(scorers):
                values["perplexity"], values["entropy"] = _token_surprise(model, encoded.input_ids)
        for segment in own.itertuples(index=False):
            span = slice(int(segment.token_start), int(segment.token_end))
            n_tokens = span.stop - span.start
            for scorer in per_token:
                tokens = values[scorer][span]
                if scorer == "gradient_x_input":
                    score = float(segment_strength(tokens.sum(), n_tokens))
                else:
                    score = float(tokens.mean()) if n_tokens else 0.0
                rows.append((trace.trace_id, int(segment.segment_index), scorer, score))
        if "random" in scorers:
            draws = np.random.default_rng(trace_seed(seed, str(trace.trace_id))).random(len(own))
            rows.extend((trace.trace_id, int(index), "random", float(draw)) for index, draw in zip(own["segment_index"], draws, strict=True))
    tables.append(pd.DataFrame(rows, columns=SCORE_COLUMNS))
    return pd.concat(tables, ignore_index=True)[SCORE_COLUMNS]


def top_segments(scores: pd.Series, segment_index: pd.Series, fraction: float) -> list[int]:
    """The ``ceil(fraction * n)`` best-scored segments; ties go to the earlier segment (a stable order)."""
    order = pd.DataFrame({"score": scores.to_numpy(), "segment_index": segment_index.to_numpy()})
    order = order.sort_values(["score", "segment_index"], ascending=[False, True], kind="stable")
    return order["segment_index"].head(math.ceil(fraction * len(order))).astype(int).tolist()


def deletion_curves(
    model, tokenizer, traces: pd.DataFrame, segments: pd.DataFrame, scores: pd.DataFrame, fractions: tuple[float, ...]
) -> pd.DataFrame:
    """Per trace, scorer and fraction k: comprehensiveness f(trace) - f(trace without its top-k segments) and
    sufficiency f(trace) - f(only its top-k segments), k a share of the trace's segments (``CURVE_COLUMNS``).
    Every variant of a trace is scored in one batch; identical texts are scored once."""
    by_trace = {trace_id: group.sort_values("segment_index") for trace_id, group in segments.groupby("trace_id")}
    scores_by_trace = {trace_id: group for trace_id, group in scores.groupby("trace_id")}
    rows = []
    for trace in tqdm(list(traces.itertuples(index=False)), desc="deletion curves", unit="trace", mininterval=2):
        own = by_trace[trace.trace_id].set_index("segment_index")
        spans = {int(index): (int(row.char_start), int(row.char_end)) for index, row in own.iterrows()}

        def keep(indices: set[int], reasoning: str = trace.reasoning) -> str:
            return "".join(reasoning[start:end] for index, (start, end) in sorted(spans.items()) if index in indices)

        plan = []  # (scorer, fraction, removed, comprehensiveness text, sufficiency text)
        for scorer, group in scores_by_trace[trace.trace_id].groupby("scorer"):
            for fraction in fractions:
                top = set(top_segments(group["score"], group["segment_index"], fraction))
                plan.append((scorer, fraction, len(top), keep(set(spans) - top), keep(top)))
        texts = list(dict.fromkeys([trace.reasoning] + [text for entry in plan for text in entry[3:]]))
        encoded = [encode_example(tokenizer, trace.question, text, trace.answer) for text in texts]
        value = dict(zip(texts, answer_log_probs(model, encoded, pad_token_id=tokenizer.pad_token_id), strict=True))
        full = value[trace.reasoning]
        for scorer, fraction, removed, without_top, only_top in plan:
            rows.append((trace.trace_id, scorer, fraction, removed, full - value[without_top], full - value[only_top]))
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)


def faithfulness_summary(curves: pd.DataFrame) -> dict[str, float]:
    """Per scorer: AOPC of comprehensiveness and of sufficiency (mean over fractions, then over traces) with
    95% intervals over traces, and each minus random order's on the same traces (paired), with intervals."""
    aopc = curves.groupby(["scorer", "trace_id"])[["comprehensiveness", "sufficiency"]].mean()
    summary: dict[str, float] = {}
    scorers = aopc.index.get_level_values("scorer").unique()
    for scorer in scorers:
        ours = aopc.loc[scorer]
        for column in ("comprehensiveness", "sufficiency"):
            name = f"{scorer}.aopc_{column}"
            summary[name], summary[f"{name}_ci_low"], summary[f"{name}_ci_high"] = mean_interval(ours[column])
            if "random" in scorers and scorer != "random":
                difference = (ours[column] - aopc.loc["random"][column]).dropna()
                summary[f"{name}_vs_random"], summary[f"{name}_vs_random_ci_low"], summary[f"{name}_vs_random_ci_high"] = mean_interval(difference)
    summary["traces"] = float(curves["trace_id"].nunique())
    return summary


# Selection by a scorer (the paper's ablations as training variants): the strongest-prefix rule of the
# paper's strength step, with the scorer's positive scores in place of IG strength. Random order already has
# its variant (random_sft, at the paper's token budget).


def scorer_selections(scores: pd.DataFrame, segments: pd.DataFrame, tau: float) -> pd.DataFrame:
    """The selection table (``selection.SELECTION_COLUMNS``) of every ``<scorer>_top`` strategy: per trace,
    the smallest set of best-scored segments whose share of the trace's positive score reaches ``tau`` (the
    crossing segment included; a trace with no positive score keeps every segment, like IG's zero_trace)."""
    from tracesieve.selection import SELECTION_COLUMNS, select_segments, selection_row

    rows = []
    by_trace = {trace_id: group.sort_values("segment_index") for trace_id, group in segments.groupby("trace_id")}
    for (scorer, trace_id), group in scores.groupby(["scorer", "trace_id"], sort=False):
        strategy = f"{scorer}_top"
        if strategy not in SCORER_STRATEGIES:
            continue
        trace = by_trace[trace_id]
        strength = trace[["segment_index"]].merge(group[["segment_index", "score"]], on="segment_index", how="left")["score"].clip(lower=0).fillna(0.0)
        ranked = trace.assign(strength=strength.to_numpy(), strength_share=strength_shares(strength), consistency=0.0)
        rows.append(selection_row(trace, strategy, select_segments(ranked, tau=tau, strategy="strength_only")))
    return pd.DataFrame(rows, columns=SELECTION_COLUMNS)
