"""Nodes of the ``fine_tuning`` pipeline: one masked SFT run per variant, all from the same base model."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
from transformers import set_seed

from tracesieve.config import FineTuningConfig
from tracesieve.metrics import as_mlflow_metrics
from tracesieve.modeling import weights_digest
from tracesieve.training import selective_sft_examples, supervised_token_count, train_causal_lm

logger = logging.getLogger(__name__)


def _checkpoint_dir(config: FineTuningConfig, strategy: str, base_model, examples: list[dict]) -> Path:
    """A folder keyed by the base weights, the training data with its labels and the settings: resuming
    from it is always safe, and a change to any of them starts afresh."""
    settings = config.model_dump(exclude={"variants", "strategies", "checkpoint_dir"})
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(weights_digest(base_model).encode())
    digest.update(json.dumps(examples).encode())
    return Path(config.checkpoint_dir) / f"sft-{strategy}-{digest.hexdigest()[:12]}"


def train_variant(
    base_model, tokenizer, traces: pd.DataFrame, selections: pd.DataFrame, fine_tuning_params: dict[str, Any], strategy: str
) -> tuple[Any, dict[str, list[dict[str, float]]], dict[str, Any]]:
    """Fine-tune the base model on every selected trace with the loss on one selection ``strategy`` only.

    The namespace of the modular pipeline is the variant; its strategy comes from
    ``fine_tuning.strategies.<variant>``.
    Returns the model; its loss and learning-rate curves and summary (supervised tokens, seconds) for
    MLflow; and the same as a saved training log for the comparison and the report.
    """
    config = FineTuningConfig.from_params(fine_tuning_params, name="fine_tuning")
    trace_ids, examples = selective_sft_examples(tokenizer, traces, selections, strategy, max_length=config.max_length)
    output_dir = _checkpoint_dir(config, strategy, base_model, examples)
    set_seed(config.seed)
    started = time.perf_counter()
    model, history = train_causal_lm(
        base_model, examples, config.training_config(), output_dir=output_dir, pad_token_id=tokenizer.pad_token_id
    )
    seconds = time.perf_counter() - started
    supervised = supervised_token_count(examples)
    total = sum(len(example["input_ids"]) for example in examples)
    logger.info(
        "SFT on the %s mask: %d traces, %d supervised tokens of %d, %d steps in %.0f s",
        strategy, len(examples), supervised, total, config.max_steps, seconds,
    )
    summary = {
        "strategy": strategy,
        "train_traces": len(trace_ids),
        "supervised_tokens": supervised,
        "supervised_token_share": supervised / max(1, total),
        "train_steps": config.max_steps,
        "train_seconds": seconds,
        "final_train_loss": history[-1]["loss"] if history else float("nan"),
    }
    metrics = as_mlflow_metrics({name: value for name, value in summary.items() if name != "strategy"})
    if history:  # MLflow takes no empty curve
        metrics["train_loss"] = [{"step": entry["step"], "value": entry["loss"]} for entry in history]
        metrics["learning_rate"] = [{"step": entry["step"], "value": entry["learning_rate"]} for entry in history]
    return model, metrics, {"summary": summary, "history": history}
