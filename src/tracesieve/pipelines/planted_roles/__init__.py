"""Attribution quality on the embedded world, measured against the segment roles the world planted."""

from tracesieve.pipelines.planted_roles.pipeline import create_pipeline

__all__ = ["create_pipeline"]
