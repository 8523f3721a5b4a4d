"""Segment scorers beside IG (the paper's ablations) and their deletion faithfulness on the model itself:
no planted labels needed, so it runs on real traces and models too."""

from tracesieve.pipelines.faithfulness.pipeline import create_pipeline

__all__ = ["create_pipeline"]
