"""Integrated gradients of the gold answer onto every input position (docs/design.md, segment-level SFT, step 2).

- ``quadrature``: the fixed rules (captum's and the authors').
- ``engine``: ``integrated_gradients`` (to a tolerance by adaptive Simpson refinement, or at a fixed budget)
  and the completeness check it reports.
- ``driver``: ``attribute_traces``, the whole trace table, resumable through the result store.
- ``report``: the quality line every run leads with.
"""

from tracesieve.attribution.driver import (
    ATTRIBUTION_REJECT_COLUMNS,
    DIAGNOSTIC_COLUMNS,
    ENGINE_SETTINGS,
    TOKEN_ATTRIBUTION_COLUMNS,
    AttributionRun,
    attribute_traces,
    attribution_summary,
)
from tracesieve.attribution.engine import (
    DEFAULT_BATCH_TOKENS,
    Completeness,
    completeness_scale,
    integrated_gradients,
    mass_gap,
    relative_gap,
    rules_met,
    segment_index_of,
    segment_shares_and_consistency,
)
from tracesieve.attribution.quadrature import quadrature
from tracesieve.attribution.report import quality_line

__all__ = [
    "ATTRIBUTION_REJECT_COLUMNS", "DEFAULT_BATCH_TOKENS", "DIAGNOSTIC_COLUMNS", "ENGINE_SETTINGS", "TOKEN_ATTRIBUTION_COLUMNS",
    "AttributionRun", "Completeness", "attribute_traces", "attribution_summary", "completeness_scale", "integrated_gradients",
    "mass_gap", "quadrature", "quality_line", "relative_gap", "rules_met", "segment_index_of", "segment_shares_and_consistency",
]
