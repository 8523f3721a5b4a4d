"""Attribution of a whole trace table, resumable: each finished trace is stored under a fingerprint of the
model, the tokenizer, the settings and the trace's segments, so a killed run resumes and changed settings
never reuse stale results; every trace ends up attributed or in the rejects table with its reason."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from tracesieve.attribution.engine import integrated_gradients
from tracesieve.content_keys import content_key, trace_key
from tracesieve.rendering import encode_example
from tracesieve.result_store import ResultStore, ResumableResult
from tracesieve.selection import attribution_selections

if TYPE_CHECKING:  # the schemas are at the edge; this only reads the settings' fields
    from tracesieve.config import AttributionConfig, SelectionConfig

logger = logging.getLogger(__name__)

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
    "mass_gap",  # refinement: the gap over the attributions' L1 mass (what stopping: selection holds)
    "steps",  # gradient points used
    "converged",
    "share_error",  # refinement's estimated L1 error of the segment strength shares (NaN: fixed rule)
    "consistency_error",
    "seconds",
]
ATTRIBUTION_REJECT_COLUMNS = ["trace_id", "kind", "reason"]


# The AttributionConfig fields integrated_gradients reads; max_tokens, long_trace_policy and
# unconverged_policy only decide which traces are kept, device and dtype act through the model.
ENGINE_SETTINGS = ("tolerance", "max_steps", "stopping", "steps", "method", "baseline", "batch_size", "gradient_checkpointing")
# The SelectionConfig fields a selection read from attributions depends on (``stopping: selection`` waits for it).
SELECTION_SETTINGS = ("tau", "beta", "always_keep", "strategies", "share_floor")


@dataclass(kw_only=True)
class AttributionRun(ResumableResult):
    """Attributions of the traces that were attributed, beside the rejects and counts every resumable stage has."""

    attributions: pd.DataFrame
    # One row per trace that was integrated (kept, or skipped as unconverged): DIAGNOSTIC_COLUMNS and ``kept``.
    diagnostics: pd.DataFrame | None = None


def attribute_traces(
    traces: pd.DataFrame,
    model,
    tokenizer,
    config: AttributionConfig,
    store: ResultStore | None = None,
    segments: pd.DataFrame | None = None,
    selection: SelectionConfig | None = None,
) -> AttributionRun:
    """Attribute every trace of a ``traces`` table; finished traces are saved to and reused from ``store``.

    ``segments`` (the segmentation table): with a tolerance, refinement checks the strength shares and
    consistency of these segments, the quantities selection reads; without it, every token counts as its own
    segment (stricter). ``selection``: under ``stopping: selection``, the refinement also waits until these
    settings select the same segments from the estimate as from the coarser rule beside it (without it, the
    shares and consistencies alone). Each trace ends up attributed or rejected with its reason: ``too_long`` (over
    ``max_tokens``, under ``long_trace_policy: skip``), ``no_answer_tokens``, ``non_finite`` (NaN or infinite
    attributions) or ``unconverged`` (not within the tolerance in ``max_steps`` points, under
    ``unconverged_policy: skip``).
    """
    device = model.get_input_embeddings().weight.device
    # The engine's settings, the model's dtype and device: what changes a trace's attributions besides the trace.
    engine = config.model_dump(include=set(ENGINE_SETTINGS))
    waits_for_selection = config.refines and config.stopping == "selection" and selection is not None and segments is not None
    if waits_for_selection:  # where the refinement stops then depends on what selection selects
        engine["selection"] = selection.model_dump(include=set(SELECTION_SETTINGS))
    fingerprint = content_key({**engine, "dtype": str(model.dtype), "device": device.type}, models=[model], tokenizers=[tokenizer])
    refine = config.refines
    spans = _segment_spans(segments) if refine and segments is not None else {}
    # With refinement the segments steer it, so they are part of what a stored result depends on.
    keys = [
        trace_key(row.trace_id, row.question, row.reasoning, row.answer) + (content_key(spans[row.trace_id]) if row.trace_id in spans else "")
        for row in traces.itertuples()
    ]
    finished = store.finished(fingerprint, keys, "attribution") if store else {}
    records, rejects, diagnostics = [], [], []
    resumed = computed = 0
    rows = tqdm(list(zip(traces.itertuples(), keys, strict=True)), desc="attribution", unit="trace", mininterval=2)
    for row, key in rows:
        record = finished.get(key)
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
            if refine and segments is not None and row.trace_id not in spans:
                raise ValueError(f"trace {row.trace_id!r} has no segments; re-run segmentation")
            scores, completeness = integrated_gradients(
                model,
                example.input_ids,
                example.target_positions,
                steps=None if refine else config.steps,
                method=config.method,
                tolerance=config.tolerance,
                max_steps=config.max_steps,
                segments=spans.get(row.trace_id),
                stopping=config.stopping,
                selects=selection_check(selection, spans[row.trace_id]) if waits_for_selection else None,
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
                "mass_gap": completeness.mass_gap,
                "steps": completeness.steps,
                "converged": completeness.converged,
                "share_error": completeness.share_error,
                "consistency_error": completeness.consistency_error,
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
        # With tolerance: null there is no tolerance to hold a trace to (converged is then only informative).
        kept = record["converged"] or config.unconverged_policy == "use" or config.tolerance is None
        diagnostics.append({**{column: record[column] for column in DIAGNOSTIC_COLUMNS}, "kept": kept})
        if not kept:
            reason = (
                f"trace {record['trace_id']!r}: integrated gradients not converged in {record['steps']} points "
                f"(completeness gap {record['completeness_gap']:.3g}, share error {record['share_error']:.3g}, "
                f"consistency error {record['consistency_error']:.3g}; tolerance {config.tolerance})"
            )
            if config.unconverged_policy == "fail":
                raise ValueError(f"{reason}; raise attribution.max_steps, or set unconverged_policy: skip or use")
            logger.warning("%s: skipped (unconverged_policy: skip)", reason)
            rejects.append({"trace_id": record["trace_id"], "kind": "unconverged", "reason": reason})
            continue
        records.append(record)
    table = pd.DataFrame(records, columns=TOKEN_ATTRIBUTION_COLUMNS)
    table["attributions"] = [np.asarray(values, dtype=np.float32) for values in table["attributions"]]
    return AttributionRun(
        attributions=table,
        rejects=pd.DataFrame(rejects, columns=ATTRIBUTION_REJECT_COLUMNS),
        resumed=resumed,
        computed=computed,
        diagnostics=pd.DataFrame(diagnostics, columns=[*DIAGNOSTIC_COLUMNS, "kept"]),
    )


def selection_check(selection: SelectionConfig, spans: list[tuple[int, int]]):
    """For ``integrated_gradients(selects=...)``: the selections ``selection`` makes from one trace's segment
    shares and consistencies (``spans``: its segments' token spans), as one comparable value; what the
    refinement's ``stopping: selection`` waits to see settle."""
    sizes = [end - start for start, end in spans]

    def selects(shares: np.ndarray, consistency: np.ndarray) -> tuple:
        metrics = pd.DataFrame({
            "trace_id": "trace", "segment_index": range(len(sizes)), "n_tokens": sizes,
            # Shares are strengths over their sum: the same ranking, and all 0 exactly when strengths are.
            "strength": shares, "strength_share": shares, "consistency": consistency,
        })
        return tuple(sorted((strategy, tuple(chosen)) for strategy, chosen in attribution_selections(metrics, selection).items()))

    return selects


def _segment_spans(segments: pd.DataFrame) -> dict[str, list[tuple[int, int]]]:
    """Token spans of each trace's segments, in segment order."""
    ordered = segments.sort_values(["trace_id", "segment_index"], kind="stable")
    return {
        trace_id: [(int(start), int(end)) for start, end in group[["token_start", "token_end"]].itertuples(index=False)]
        for trace_id, group in ordered.groupby("trace_id", sort=False)
    }


DIAGNOSTIC_COLUMNS = [
    "trace_id", "n_tokens", "target_score", "baseline_score", "attribution_sum", "completeness_gap", "mass_gap",
    "steps", "converged", "share_error", "consistency_error", "seconds",
]


def attribution_summary(run: AttributionRun) -> dict[str, float]:
    """How many traces were attributed, resumed and rejected (by kind), lengths, scores, gaps, convergence,
    gradient points and seconds. Convergence and points are over every integrated trace, kept or skipped."""
    attributed = run.attributions
    integrated = run.diagnostics if run.diagnostics is not None else attributed
    gaps = integrated["completeness_gap"]
    steps = integrated["steps"]
    summary: dict[str, float] = {
        "traces_attributed": len(attributed),
        "traces_rejected": len(run.rejects),
        "traces_resumed": run.resumed,
        "traces_computed": run.computed,
        "tokens_mean": attributed["n_tokens"].mean(),
        "converged_share": integrated["converged"].astype(float).mean(),
        "completeness_gap_mean": gaps.mean(),
        "completeness_gap_median": gaps.median(),
        "completeness_gap_p90": gaps.quantile(0.9),
        "completeness_gap_max": gaps.max(),
        "share_error_max": integrated["share_error"].max(),
        "steps_mean": steps.mean(),
        "steps_median": steps.median(),
        "steps_p90": steps.quantile(0.9),
        "steps_max": steps.max(),
        "target_score_mean": attributed["target_score"].mean(),
        "baseline_score_mean": attributed["baseline_score"].mean(),
        "seconds_per_trace_mean": integrated["seconds"].mean(),
    }
    for kind, count in run.rejects["kind"].value_counts().items():
        summary[f"rejected_{kind}"] = count
    return summary
