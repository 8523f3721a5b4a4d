"""Nodes of the ``fine_tuning`` pipeline: one masked SFT run per variant, all from the same base model."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tracesieve.config import FineTuningConfig
from tracesieve.lazy import lazy_module
from tracesieve.metrics import training_metrics

training = lazy_module("tracesieve.training")  # torch, transformers, TRL, PEFT


def fine_tuning_node(variant: str):
    """The training node of one fine-tuning namespace: it trains on the mask of the selection strategy
    ``fine_tuning.strategies.<variant>`` of the block Kedro validated once for the run."""

    def train_variant(
        base_model, tokenizer, traces: pd.DataFrame, selections: pd.DataFrame, config: FineTuningConfig
    ) -> tuple[Any, dict[str, list[dict[str, float]]], dict[str, Any], pd.DataFrame]:
        """Fine-tune the base model on every selected trace with the loss on one selection strategy only.

        Returns the model; its loss and learning-rate curves and summary (supervised tokens, seconds) for
        MLflow; the same as a saved training log for the comparison and the report; and the traces left out
        for being over ``fine_tuning.max_length`` (empty unless ``over_length: reject``).
        """
        model, history, summary, rejects = training.fine_tune_variant(base_model, tokenizer, traces, selections, config.strategies[variant], config)
        return model, training_metrics(summary, history), {"summary": summary, "history": history}, rejects

    return train_variant
