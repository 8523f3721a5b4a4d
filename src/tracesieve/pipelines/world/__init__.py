"""The embedded world: synthetic problems with planted roles, a tokenizer and warm-up models."""

from tracesieve.pipelines.world.pipeline import create_pipeline

__all__ = ["create_pipeline"]
