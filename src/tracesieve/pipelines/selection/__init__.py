"""Segment metrics and the selections (paper rule and baselines) that decide where the loss goes."""

from tracesieve.pipelines.selection.pipeline import create_pipeline

__all__ = ["create_pipeline"]
