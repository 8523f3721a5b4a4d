"""The ``leaf`` pipeline: gradient-guided confounder pruning and causal attention distillation."""

from tracesieve.pipelines.leaf.pipeline import create_pipeline

__all__ = ["create_pipeline"]
