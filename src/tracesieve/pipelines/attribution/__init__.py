"""Integrated-gradient attribution of the gold answer onto every token of every trace."""

from tracesieve.pipelines.attribution.pipeline import create_pipeline

__all__ = ["create_pipeline"]
