"""Nodes of the ``leaf`` pipeline: each unpacks its inputs, calls one step of ``tracesieve.leaf`` and packs
the result for the catalog and MLflow."""

from __future__ import annotations

import logging
import time
from typing import Any

import pandas as pd

from tracesieve.config import EvaluationConfig, LeafConfig
from tracesieve.lazy import lazy_module
from tracesieve.metrics import as_mlflow_metrics, training_metrics
from tracesieve.pipelines.evaluation.nodes import generations_and_logs

logger = logging.getLogger(__name__)

modeling = lazy_module("tracesieve.modeling")  # torch, transformers
result_store = lazy_module("tracesieve.result_store")  # pyarrow
reporting = lazy_module("tracesieve.reporting")  # matplotlib
evaluation = lazy_module("tracesieve.evaluation")  # math-verify, torch
counterfactuals = lazy_module("tracesieve.leaf.counterfactuals")  # the LeaF steps: torch, transformers, TRL
distillation = lazy_module("tracesieve.leaf.distillation")
gradients = lazy_module("tracesieve.leaf.gradients")
intervention = lazy_module("tracesieve.leaf.intervention")
distractors = lazy_module("tracesieve.world.distractors")


def compare_teacher_student_gradients(
    traces: pd.DataFrame, teacher_model, student_model, tokenizer, config: LeafConfig, leaf_gradient_store: result_store.ResultStore
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per analysed token of every trace: normalised g_T, g_S and delta; the traces that could not be analysed."""
    device = modeling.resolve_device()
    started = time.perf_counter()
    comparison = gradients.compare_gradients(traces, teacher_model.to(device), student_model.to(device), tokenizer, config, store=leaf_gradient_store)
    summary = gradients.gradient_comparison_summary(comparison, time.perf_counter() - started)
    if summary["traces_analysed"] + summary["traces_rejected"] != len(traces):
        raise RuntimeError(f"the gradient comparison lost traces: {len(traces)} in, {summary['traces_analysed']} analysed, {summary['traces_rejected']} rejected")
    logger.info(
        "Gradient comparison (%s level): %d traces analysed (%d resumed), %d rejected, %.0f s",
        config.level, summary["traces_analysed"], comparison.resumed, summary["traces_rejected"], summary["gradient_seconds"],
    )
    return comparison.scores, comparison.rejects, as_mlflow_metrics(summary)


def build_counterfactuals(traces: pd.DataFrame, leaf_gradients: pd.DataFrame, tokenizer, config: LeafConfig) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Flag the confounders of every analysed trace and write its counterfactuals (one per span, or one in all)."""
    confounders, built = counterfactuals.build_counterfactuals(traces, leaf_gradients, tokenizer, config)
    summary = counterfactuals.counterfactual_summary(confounders, built)
    logger.info(
        "%d confounder tokens (q=%.2f) -> %d counterfactuals (%s pruning) over %d traces",
        summary["confounder_tokens"], config.quantile, len(built), config.pruning, summary["traces_with_counterfactual"],
    )
    return confounders, built, as_mlflow_metrics(summary)


def check_counterfactuals(
    leaf_counterfactuals: pd.DataFrame, traces: pd.DataFrame, teacher_model, student_model, tokenizer, config: LeafConfig
) -> tuple[pd.DataFrame, dict]:
    """The intervention check: keep the counterfactuals that teacher and student both still answer correctly."""
    device = modeling.resolve_device()
    checked = intervention.check_counterfactuals(leaf_counterfactuals, traces, teacher_model.to(device), student_model.to(device), tokenizer, config)
    summary = intervention.intervention_summary(checked)
    if "teacher_correct" in summary:
        logger.info(
            "Intervention check: %d counterfactuals; teacher right on %d, student on %d; %d kept",
            len(checked), summary["teacher_correct"], summary["student_correct"], summary["kept"],
        )
    return checked, as_mlflow_metrics(summary)


def score_against_planted_distractors(
    leaf_confounders: pd.DataFrame, leaf_checked_counterfactuals: pd.DataFrame, world_distractors: pd.DataFrame, traces: pd.DataFrame, config: LeafConfig
) -> dict:
    """Precision and recall of the confounder tokens against the world's planted distractor sentences."""
    if config.level != "instruction":
        logger.warning("Planted distractors are in the questions; the %s level analyses reasoning prefixes: not scored", config.level)
        return {}
    scores = distractors.score_against_planted_distractors(leaf_confounders, leaf_checked_counterfactuals, world_distractors, traces)
    logger.info(
        "Against planted distractors: precision %.3f (chance %.3f), recall %.3f", scores["precision"], scores["chance_precision"], scores["recall"]
    )
    return as_mlflow_metrics(scores)


def measure_distractor_gate(
    leaf_student_generations: pd.DataFrame,
    teacher_heldout_generations: pd.DataFrame,
    eval_problems: pd.DataFrame,
    world_distractors: pd.DataFrame,
    student_model,
    tokenizer,
    evaluation_config: EvaluationConfig,
) -> tuple[dict, dict[str, float]]:
    """The world's distractor gate: does a distractor mislead LeaF's student (and not the teacher)? For
    MLflow, and as figures for the report."""
    gate = distractors.distractor_gate(
        leaf_student_generations, teacher_heldout_generations, eval_problems, world_distractors, student_model.to(modeling.resolve_device()), tokenizer,
        max_new_tokens=evaluation_config.max_new_tokens, batch_size=evaluation_config.batch_size,
    )
    verdict = "passes" if gate["distractor_effect_passed"] else "FAILS: the student is not misled, so LeaF has no confounding to remove here"
    logger.info(
        "Distractor gate %s (student accuracy without minus with a distractor %.3f [%.3f, %.3f], threshold %.2f; teacher %.3f)",
        verdict, gate["distractor_effect"], gate["distractor_effect_ci_low"], gate["distractor_effect_ci_high"],
        distractors.DISTRACTOR_EFFECT_THRESHOLD, gate["distractor_effect_teacher"],
    )
    return as_mlflow_metrics(gate), gate


def distillation_node(variant: str):
    """The training node of one distillation namespace: its lambda and counterfactual use are
    ``leaf.variants.<variant>`` of the block Kedro validated once for the run."""

    def distill_variant(
        student_model, teacher_model, tokenizer, traces: pd.DataFrame, leaf_checked_counterfactuals: pd.DataFrame, config: LeafConfig
    ) -> tuple[Any, dict, dict, pd.DataFrame]:
        """Distil the teacher into the student: plain KD (lambda 1, no counterfactuals) or LeaF, same steps and
        seed; the traces over ``leaf.distillation.max_length`` left out go to the length rejects."""
        settings = config.variants[variant]
        model, history, summary, rejects = distillation.distill_variant(
            student_model, teacher_model, tokenizer, traces, leaf_checked_counterfactuals, config, settings
        )
        logger.info(
            "Distillation (lambda %.2f): %d items, %d with a counterfactual, %.0f s",
            settings.original_weight, summary["train_items"], summary["items_with_counterfactual"], summary["train_seconds"],
        )
        return model, training_metrics(summary, history), {"summary": summary, "history": history}, rejects

    return distill_variant


def compare_distillation(leaf_config: LeafConfig, evaluation_config: EvaluationConfig, **models: pd.DataFrame | dict) -> tuple[pd.DataFrame, dict]:
    """Base student, KD and LeaF on the held-out problems: all, with and without a distractor; accuracy and
    length with 95% intervals and the problem-by-problem difference from the reference (KD).

    ``models`` holds ``<name>_generations`` for every model and ``<name>_training_log`` for every variant.
    """
    generations, logs = generations_and_logs(models)
    comparison, metrics = evaluation.comparison_by_distractor_subset(generations, logs, leaf_config.reference, evaluation_config.pass_at_k)
    logger.info(
        "KD versus LeaF:\n%s",
        comparison[["subset", "model", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "mean_response_tokens"]].to_string(index=False),
    )
    return comparison, as_mlflow_metrics(metrics)


def write_leaf_report(
    leaf_comparison: pd.DataFrame,
    leaf_checked_counterfactuals: pd.DataFrame,
    leaf_confounders: pd.DataFrame,
    config: LeafConfig,
    world_distractors: pd.DataFrame | None = None,
) -> str:
    """The LeaF summary in Markdown: what the check kept, the planted-distractor scores, KD versus LeaF."""
    planted = None
    if world_distractors is not None and config.level == "instruction":
        analysed = world_distractors[world_distractors["trace_id"].isin(leaf_confounders["trace_id"])]
        planted = distractors.planted_distractor_scores(leaf_confounders, analysed)
    return reporting.leaf_report_markdown(leaf_comparison, leaf_checked_counterfactuals, config, planted, leaf_confounders)
