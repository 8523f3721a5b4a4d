"""The attribution quality line: how many traces converged, the completeness gaps, the points, the worst."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from tracesieve.choices import DEFAULT_STEPS, DEFAULT_TOLERANCE

if TYPE_CHECKING:  # the schemas are at the edge; this only reads the settings' fields
    from tracesieve.config import AttributionConfig

logger = logging.getLogger(__name__)

def quality_line(diagnostics: pd.DataFrame, config: AttributionConfig, worst: int = 3) -> str:
    """One line on how far the attributions can be trusted, from ``attribution_diagnostics``: converged
    share, gap quantiles, points used, the worst traces and what happened to the unconverged ones."""
    integrated = diagnostics
    if integrated.empty:
        return "Attribution quality: no trace was integrated"
    gaps = integrated["completeness_gap"]
    unconverged = integrated[~integrated["converged"].astype(bool)]
    if config.refines:
        rule = f"tolerance {config.tolerance}, at most {config.max_steps} points"
    else:
        limit = config.tolerance if config.tolerance is not None else DEFAULT_TOLERANCE
        rule = f"{config.method}, {config.steps or DEFAULT_STEPS} points, completeness gap checked against {limit}"
    worst_rows = integrated.sort_values("completeness_gap", ascending=False, kind="stable").head(worst)
    worst_text = ", ".join(f"{row.trace_id} (gap {row.completeness_gap:.3g}, {row.steps} points)" for row in worst_rows.itertuples())
    fate = {"use": "used anyway", "skip": "skipped into attribution_rejects", "fail": "stopped the run"}[config.unconverged_policy]
    return (
        f"Attribution quality ({rule}): {len(integrated) - len(unconverged)}/{len(integrated)} traces converged; "
        f"completeness gap median {gaps.median():.3g}, p90 {gaps.quantile(0.9):.3g}, max {gaps.max():.3g}; "
        f"points median {integrated['steps'].median():.0f}, max {integrated['steps'].max():.0f}; worst: {worst_text}"
        + (f"; {len(unconverged)} unconverged {fate}" if len(unconverged) and config.tolerance is not None else "")
    )
