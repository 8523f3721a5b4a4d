"""Cutting every trace into segments, with character and token spans."""

from tracesieve.pipelines.segmentation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
