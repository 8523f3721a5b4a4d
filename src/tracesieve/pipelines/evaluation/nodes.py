"""Nodes of the ``evaluation`` pipeline: generate on held-out problems, grade, compare the models."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from tracesieve.answers import last_boxed
from tracesieve.config import EvaluationConfig, FineTuningConfig
from tracesieve.evaluation import compare_with_reference, is_correct, summarize_generations
from tracesieve.generation import generate_completions
from tracesieve.metrics import as_mlflow_metrics
from tracesieve.modeling import resolve_device, resolve_dtype

logger = logging.getLogger(__name__)
EVAL_PROBLEM_COLUMNS = ["problem_id", "question", "answer"]  # plus has_distractor where the data has it
BASE_MODEL = "base"


def evaluate_model(model, tokenizer, eval_problems: pd.DataFrame, evaluation_params: dict[str, Any]) -> tuple[pd.DataFrame, dict]:
    """Generations for every held-out problem (one row per sample), graded with math-verify; summary metrics."""
    config = EvaluationConfig.from_params(evaluation_params, name="evaluation")
    missing = [column for column in EVAL_PROBLEM_COLUMNS if column not in eval_problems]
    if missing:
        raise ValueError(f"eval_problems lacks the columns {missing}; it needs {EVAL_PROBLEM_COLUMNS}")
    if eval_problems["problem_id"].duplicated().any():
        duplicated = eval_problems.loc[eval_problems["problem_id"].duplicated(), "problem_id"].iloc[0]
        raise ValueError(f"eval_problems has problem_id {duplicated!r} more than once")
    problems = eval_problems.head(config.max_problems) if config.max_problems else eval_problems
    device = resolve_device(config.device)
    model = model.to(device=device, dtype=resolve_dtype(config.dtype, device))
    started = time.perf_counter()
    completions = generate_completions(
        model,
        tokenizer,
        problems["question"].tolist(),
        max_new_tokens=config.max_new_tokens,
        batch_size=config.batch_size,
        num_samples=config.num_samples,
        temperature=config.temperature,
        top_p=config.top_p,
        seed=config.seed,
    )
    seconds = time.perf_counter() - started
    rows = problems.iloc[[completion.prompt_index for completion in completions]].reset_index(drop=True)
    generations = pd.DataFrame(
        {
            "problem_id": rows["problem_id"],
            "sample_index": [completion.sample_index for completion in completions],
            "answer": rows["answer"].astype(str),
            "completion": [completion.text for completion in completions],
            "predicted": [last_boxed(completion.text) for completion in completions],
            "n_tokens": [completion.n_tokens for completion in completions],
            "truncated": [completion.truncated for completion in completions],
        }
    )
    generations["correct"] = [is_correct(text, gold) for text, gold in zip(generations["completion"], generations["answer"], strict=True)]
    if "has_distractor" in rows:
        generations["has_distractor"] = rows["has_distractor"].astype(bool)
    summary = summarize_generations(generations, config.pass_at_k)
    summary["eval_seconds"] = seconds
    logger.info(
        "accuracy %.3f [%.3f, %.3f] on %d problems x %d samples; mean response %.0f tokens; %.0f s",
        summary["accuracy"], summary["accuracy_ci_low"], summary["accuracy_ci_high"], len(problems), config.num_samples,
        summary["mean_response_tokens"], seconds,
    )
    return generations, as_mlflow_metrics(summary)


def compare_models(
    evaluation_params: dict[str, Any], fine_tuning_params: dict[str, Any], **models: pd.DataFrame | dict
) -> tuple[pd.DataFrame, dict]:
    """One row per model (the base and each variant): accuracy and length with intervals, supervised
    tokens, and the problem-by-problem difference from the reference variant with its 95% interval.

    ``models`` holds ``<name>_generations`` for every model and ``<name>_training_log`` for every variant.
    """
    evaluation = EvaluationConfig.from_params(evaluation_params, name="evaluation")
    fine_tuning = FineTuningConfig.from_params(fine_tuning_params, name="fine_tuning")
    generations = {name.removesuffix("_generations"): table for name, table in models.items() if name.endswith("_generations")}
    logs = {name.removesuffix("_training_log"): log for name, log in models.items() if name.endswith("_training_log")}
    built = [name for name in generations if name != BASE_MODEL]
    if built != list(fine_tuning.variants):
        raise ValueError(
            f"the pipeline was built for the variants {built}, but this run's fine_tuning.variants is "
            f"{list(fine_tuning.variants)}. Namespaces are built from the parameter files before a run starts: "
            "change fine_tuning.variants in the parameter files of the run's env (conf/local by default), "
            "not through --params."
        )
    rows, metrics = compare_with_reference(generations, evaluation.reference, evaluation.pass_at_k)
    for row in rows:
        log_summary = logs.get(row["model"], {}).get("summary", {})
        row["strategy"] = log_summary.get("strategy", "(base model)")
        row["supervised_tokens"] = log_summary.get("supervised_tokens")
    comparison = pd.DataFrame(rows)
    comparison = comparison[["model", "strategy", "supervised_tokens", *(c for c in comparison if c not in ("model", "strategy", "supervised_tokens"))]]
    logger.info("Model comparison:\n%s", comparison[["model", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "mean_response_tokens"]].to_string(index=False))
    return comparison, as_mlflow_metrics(metrics)
