"""Masked fine-tuning: full-trace SFT, selective SFT and their baselines, one namespace per variant."""

from tracesieve.pipelines.fine_tuning.pipeline import create_pipeline

__all__ = ["create_pipeline"]
