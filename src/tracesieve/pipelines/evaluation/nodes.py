"""Nodes of the ``evaluation`` pipeline: generate on held-out problems, grade, compare the models."""

from __future__ import annotations

import logging

import pandas as pd

from tracesieve import contamination
from tracesieve.config import EvaluationConfig
from tracesieve.lazy import lazy_module
from tracesieve.metrics import as_mlflow_metrics

logger = logging.getLogger(__name__)
BASE_MODEL = "base"

evaluation = lazy_module("tracesieve.evaluation")  # math-verify, torch
modeling = lazy_module("tracesieve.modeling")  # torch, transformers


def check_contamination(eval_problems: pd.DataFrame, traces: pd.DataFrame, config: EvaluationConfig) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The held-out problems against the training traces' questions (exact and n-gram overlap): the problems
    every model is graded on (``evaluation.contamination``: drop, flag or fail), the per-problem table, counts."""
    table = contamination.contamination_table(eval_problems, traces, n=config.contamination_ngram, overlap=config.contamination_overlap)
    checked = contamination.apply_policy(eval_problems, table, config.contamination)
    summary = contamination.contamination_summary(table, config.contamination)
    logger.info(
        "Contamination: %d of %d evaluation problems in the training traces (%d exact, %d-gram overlap >= %.2f); %s",
        summary["contaminated"], summary["problems"], summary["exact_matches"], config.contamination_ngram, config.contamination_overlap,
        f"{summary['dropped']:.0f} dropped" if config.contamination == "drop" else config.contamination,
    )
    return checked, table, as_mlflow_metrics(summary)


def evaluate_model(model, tokenizer, eval_problems: pd.DataFrame, config: EvaluationConfig) -> tuple[pd.DataFrame, dict]:
    """Generations for every held-out problem (one row per sample), graded with math-verify; summary metrics."""
    device = modeling.resolve_device(config.device)
    model = model.to(device=device, dtype=modeling.resolve_dtype(config.dtype, device))
    generations, summary = evaluation.evaluate_on_problems(model, tokenizer, eval_problems, config)
    logger.info(
        "accuracy %.3f [%.3f, %.3f] on %d problems x %d samples; mean response %.0f tokens; %.0f s",
        summary["accuracy"], summary["accuracy_ci_low"], summary["accuracy_ci_high"], summary["problems"], config.num_samples,
        summary["mean_response_tokens"], summary["eval_seconds"],
    )
    return generations, as_mlflow_metrics(summary)


def generations_and_logs(models: dict) -> tuple[dict[str, pd.DataFrame], dict[str, dict]]:
    """A comparison node's keyword inputs, ``<name>_generations`` and ``<name>_training_log``, by model name."""
    generations = {name.removesuffix("_generations"): table for name, table in models.items() if name.endswith("_generations")}
    logs = {name.removesuffix("_training_log"): log for name, log in models.items() if name.endswith("_training_log")}
    return generations, logs


def compare_models(evaluation_config: EvaluationConfig, **models: pd.DataFrame | dict) -> tuple[pd.DataFrame, dict]:
    """One row per model (the base and each variant): accuracy and length with intervals, supervised
    tokens, and the problem-by-problem difference from the reference variant with its 95% interval.

    ``models`` holds ``<name>_generations`` for every model and ``<name>_training_log`` for every variant
    (the pipeline's shape, built from this run's ``fine_tuning.variants``, wires them).
    """
    generations, logs = generations_and_logs(models)
    comparison, metrics = evaluation.model_comparison(generations, logs, evaluation_config.reference, evaluation_config.pass_at_k)
    logger.info("Model comparison:\n%s", comparison[["model", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "mean_response_tokens"]].to_string(index=False))
    return comparison, as_mlflow_metrics(metrics)
