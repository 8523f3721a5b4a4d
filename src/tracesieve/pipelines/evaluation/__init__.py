"""Held-out evaluation of the base model and every fine-tuning variant, and their comparison table."""

from tracesieve.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
