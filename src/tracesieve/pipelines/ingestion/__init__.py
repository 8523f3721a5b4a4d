"""Ingestion of raw trace files into the ``traces`` and ``rejected_traces`` tables."""

from tracesieve.pipelines.ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
