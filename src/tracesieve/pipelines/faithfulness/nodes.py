"""Nodes of the ``faithfulness`` pipeline."""

from __future__ import annotations

import logging

import pandas as pd

from tracesieve.config import FaithfulnessConfig, SelectionConfig
from tracesieve.lazy import lazy_module
from tracesieve.metrics import as_mlflow_metrics

logger = logging.getLogger(__name__)

modeling = lazy_module("tracesieve.modeling")  # torch, transformers
scorers = lazy_module("tracesieve.scorers")  # torch


def score_segments_by_every_scorer(
    traces: pd.DataFrame, model, tokenizer, segments: pd.DataFrame, segment_metrics: pd.DataFrame, config: FaithfulnessConfig
) -> pd.DataFrame:
    """Every configured scorer's score for every segment, on the attribution model."""
    return scorers.segment_scores(model.to(modeling.resolve_device()), tokenizer, traces, segments, segment_metrics, scorers=config.scorers, seed=config.seed)


def measure_faithfulness(
    traces: pd.DataFrame, model, tokenizer, segments: pd.DataFrame, segment_scores: pd.DataFrame, config: FaithfulnessConfig
) -> tuple[pd.DataFrame, dict]:
    """Comprehensiveness and sufficiency curves per scorer, and their AOPC against random order."""
    curves = scorers.deletion_curves(model.to(modeling.resolve_device()), tokenizer, traces, segments, segment_scores, config.fractions)
    summary = scorers.faithfulness_summary(curves)
    for scorer in config.scorers:
        logger.info(
            "Deletion faithfulness of %s: AOPC comprehensiveness %.3f, sufficiency %.3f (nats of log p(answer))",
            scorer, summary.get(f"{scorer}.aopc_comprehensiveness", float("nan")), summary.get(f"{scorer}.aopc_sufficiency", float("nan")),
        )
    return curves, as_mlflow_metrics(summary)


def select_by_every_scorer(segment_scores: pd.DataFrame, segments: pd.DataFrame, selection: SelectionConfig) -> pd.DataFrame:
    """Loss masks from each scorer (``<scorer>_top``): its strongest segments up to ``selection.tau``."""
    return scorers.scorer_selections(segment_scores, segments, selection.tau)
