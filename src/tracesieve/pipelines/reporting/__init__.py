"""The attribution viewer, the figures and the summary report of a run."""

from tracesieve.pipelines.reporting.pipeline import create_pipeline

__all__ = ["create_pipeline"]
