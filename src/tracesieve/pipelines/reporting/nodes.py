"""Nodes of the ``reporting`` pipeline: viewer, figures and summary report, all logged to MLflow."""

from __future__ import annotations

import pandas as pd

from tracesieve.config import AttributionConfig, EvaluationConfig, ReportingConfig, SelectionConfig
from tracesieve.lazy import lazy_module
from tracesieve.world.roles import planted_role_of_segments

FIGURES = {
    "Accuracy versus response length": "accuracy_vs_length.png",
    "Segment selection boundaries": "selection_boundaries.png",
    "Training loss": "training_loss.png",
}

attribution_method = lazy_module("tracesieve.attribution")  # torch
reporting = lazy_module("tracesieve.reporting")  # matplotlib


def _roles(segment_metrics: pd.DataFrame, world_segments: pd.DataFrame | None) -> pd.Series | None:
    return None if world_segments is None else planted_role_of_segments(segment_metrics, world_segments)


def render_attribution_viewer(
    traces: pd.DataFrame,
    segment_metrics: pd.DataFrame,
    selections: pd.DataFrame,
    config: ReportingConfig,
    token_attributions: pd.DataFrame | None = None,
    world_segments: pd.DataFrame | None = None,
) -> str:
    """The HTML viewer for the first ``viewer_traces`` attributed traces (in trace order), with their
    token heatmaps from the attribution table."""
    chosen = selections[selections["strategy"] == config.viewer_strategy]
    if chosen.empty:
        raise ValueError(f"reporting.viewer_strategy {config.viewer_strategy!r} is not among the selection strategies")
    segment_metrics = segment_metrics.reset_index(drop=True)
    trace_ids = list(dict.fromkeys(segment_metrics["trace_id"]))[: config.viewer_traces]
    return reporting.attribution_viewer_html(
        traces,
        segment_metrics,
        dict(zip(chosen["trace_id"], chosen["selected_segments"].map(list), strict=True)),
        trace_ids,
        strategy=config.viewer_strategy,
        roles=_roles(segment_metrics, world_segments),
        token_attributions=token_attributions,
    )


def draw_figures(
    model_comparison: pd.DataFrame,
    segment_metrics: pd.DataFrame,
    selection: SelectionConfig,
    world_segments: pd.DataFrame | None = None,
    **training_logs: dict,
):
    """Accuracy versus length, the selection boundaries and the training loss curves."""
    segment_metrics = segment_metrics.reset_index(drop=True)
    histories = {name.removesuffix("_training_log"): log["history"] for name, log in training_logs.items()}
    return (
        reporting.plot_accuracy_vs_length(model_comparison),
        reporting.plot_selection_boundaries(segment_metrics, selection.tau, selection.beta, _roles(segment_metrics, world_segments)),
        reporting.plot_training_loss(histories),
    )


def write_summary_report(
    model_comparison: pd.DataFrame,
    selections: pd.DataFrame,
    evaluation: EvaluationConfig,
    planted_role_table: pd.DataFrame | None = None,
    label_validity_gate: dict[str, float] | None = None,
    fine_tuning_gates: dict[str, float] | None = None,
    distractor_gate: dict[str, float] | None = None,
    attribution_diagnostics: pd.DataFrame | None = None,
    attribution: AttributionConfig | None = None,
    contamination: pd.DataFrame | None = None,
) -> str:
    """The Markdown report: the world's gates (embedded world), attribution quality, comparison and
    verdicts, selection budgets per strategy, planted roles, figures."""
    measured = [gate for gate in (label_validity_gate, fine_tuning_gates, distractor_gate) if gate is not None]
    gates = {name: value for gate in measured for name, value in gate.items()} if measured else None
    budgets = (
        selections.assign(token_share=selections["selected_tokens"] / selections["reasoning_tokens"].clip(lower=1))
        .groupby("strategy", as_index=False)
        .agg(traces=("trace_id", "size"), selected_tokens=("selected_tokens", "sum"), token_share_mean=("token_share", "mean"))
    )
    return reporting.summary_report_markdown(
        model_comparison,
        reference=evaluation.reference,
        figures=FIGURES,
        selection_table=budgets,
        planted_roles=planted_role_table,
        gates=gates,
        attribution_quality=None if attribution_diagnostics is None else attribution_method.quality_line(attribution_diagnostics, attribution or AttributionConfig()),
        contamination=contamination,
    )
