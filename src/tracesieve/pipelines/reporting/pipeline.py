"""Wiring of ``reporting``; the embedded world's version also shows the planted roles."""

from __future__ import annotations

from kedro.pipeline import Node, Pipeline

from tracesieve.pipelines import configured_variants
from tracesieve.pipelines.reporting.nodes import draw_figures, render_attribution_viewer, write_summary_report


def create_pipeline(planted_roles: bool = True, **kwargs) -> Pipeline:
    """``planted_roles=False`` is the version for real traces, which have no planted roles."""
    roles = {"world_segments": "world_segments"} if planted_roles else {}
    logs = {f"{variant}_training_log": f"{variant}.training_log" for variant in configured_variants()}
    return Pipeline(
        [
            Node(
                render_attribution_viewer,
                inputs={
                    "traces": "traces",
                    "segment_metrics": "segment_metrics",
                    "selections": "selections",
                    "reporting_params": "params:reporting",
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
                    "selection_params": "params:selection",
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
                    "evaluation_params": "params:evaluation",
                    **({"planted_role_table": "planted_role_table"} if planted_roles else {}),
                },
                outputs="summary_report",
                name="write_summary_report",
            ),
        ]
    )
