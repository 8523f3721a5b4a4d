"""Wiring of ``reporting``; the embedded world's version also shows the planted roles."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines.reporting.nodes import draw_figures, render_attribution_viewer, write_summary_report
from tracesieve.pipelines.shape import PipelineShape, shape_or_project
from tracesieve.world.roles import headroom_measured


def create_pipeline(shape: PipelineShape | None = None, embedded_world: bool = True, distractor_gate: bool = True, **kwargs) -> Pipeline:
    """``embedded_world=False`` is the version for real traces, which have no planted roles and no gates;
    ``distractor_gate=False`` for a world run without LeaF (which measures that gate)."""
    variants = shape_or_project(shape).variants
    roles = {"world_segments": "world_segments"} if embedded_world else {}
    gates = {}
    if embedded_world:
        gates["label_validity_gate"] = "label_validity_gate"
        if headroom_measured(variants):
            gates["fine_tuning_gates"] = "fine_tuning_gates"
        if distractor_gate:
            gates["distractor_gate"] = "distractor_gate"
    logs = {f"{variant}_training_log": f"{variant}.training_log" for variant in variants}
    return Pipeline(
        [
            Node(
                render_attribution_viewer,
                inputs={
                    "traces": "traces",
                    "segment_metrics": "segment_metrics",
                    "selections": "selections",
                    "config": "params:reporting",
                    "token_attributions": "token_attributions",
                    **roles,
                },
                outputs="attribution_viewer",
                name="render_attribution_viewer",
            ),
            Node(
                draw_figures,
                inputs={
                    "model_comparison": "model_comparison",
                    "segment_metrics": "segment_metrics",
                    "selection": "params:selection",
                    **roles,
                    **logs,
                },
                outputs=["figure_accuracy_vs_length", "figure_selection_boundaries", "figure_training_loss"],
                name="draw_figures",
            ),
            Node(
                write_summary_report,
                inputs={
                    "model_comparison": "model_comparison",
                    "selections": "selections",
                    "evaluation": "params:evaluation",
                    "attribution_diagnostics": "attribution_diagnostics",
                    "attribution": "params:attribution",
                    "contamination": "contamination",
                    **({"planted_role_table": "planted_role_table"} if embedded_world else {}),
                    **gates,
                },
                outputs="summary_report",
                name="write_summary_report",
            ),
        ]
    )
