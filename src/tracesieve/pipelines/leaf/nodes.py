"""Nodes of the ``leaf`` pipeline: thin wrappers over ``tracesieve.leaf``; parameters validated on entry."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import pandas as pd
from transformers import set_seed

from tracesieve.attribution import AttributionStore
from tracesieve.config import DistillationVariant, EvaluationConfig, LeafConfig
from tracesieve.evaluation import compare_with_reference, is_correct
from tracesieve.generation import generate_from_prompts
from tracesieve.leaf.confounders import (
    confounder_spans,
    counterfactual_span_sets,
    deletes_only_planted_text,
    flag_confounders,
    planted_distractor_scores,
)
from tracesieve.leaf.distillation import distill, distillation_item
from tracesieve.leaf.gradients import compare_gradients, encode_leaf_example, leaf_example
from tracesieve.metrics import as_mlflow_metrics
from tracesieve.modeling import resolve_device, weights_digest
from tracesieve.reporting import leaf_report_markdown

logger = logging.getLogger(__name__)
COUNTERFACTUAL_COLUMNS = ["trace_id", "counterfactual_index", "level", "pruning", "spans", "removed_text", "original_text", "pruned_text", "answer"]
SUBSETS = {"all": None, "with_distractor": True, "without_distractor": False}


def _examples(traces: pd.DataFrame, tokenizer, config: LeafConfig, level: str | None = None) -> dict:
    level = level or config.level
    return {
        row.trace_id: leaf_example(
            tokenizer, row.trace_id, row.question, row.reasoning, row.answer, level=level, response_prefix_share=config.response_prefix_share
        )
        for row in traces.itertuples(index=False)
    }


def compare_teacher_student_gradients(
    traces: pd.DataFrame, teacher_model, student_model, tokenizer, leaf_params: dict[str, Any], leaf_gradient_store: AttributionStore
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per analysed token of every trace: normalised g_T, g_S and delta; the traces that could not be analysed."""
    config = LeafConfig.from_params(leaf_params, name="leaf")
    device = resolve_device()
    teacher_model, student_model = teacher_model.to(device), student_model.to(device)
    started = time.perf_counter()
    comparison = compare_gradients(
        traces,
        teacher_model,
        student_model,
        tokenizer,
        level=config.level,
        response_prefix_share=config.response_prefix_share,
        batch_size=config.gradient_batch_size,
        max_tokens=config.max_tokens,
        store=leaf_gradient_store,
    )
    seconds = time.perf_counter() - started
    analysed = comparison.scores["trace_id"].nunique()
    if analysed + len(comparison.rejects) != len(traces):
        raise RuntimeError(f"the gradient comparison lost traces: {len(traces)} in, {analysed} analysed, {len(comparison.rejects)} rejected")
    logger.info(
        "Gradient comparison (%s level): %d traces analysed (%d resumed), %d rejected, %.0f s",
        config.level, analysed, comparison.resumed, len(comparison.rejects), seconds,
    )
    metrics = {
        "traces_analysed": analysed,
        "traces_rejected": len(comparison.rejects),
        "traces_resumed": comparison.resumed,
        "analysed_tokens_mean": comparison.scores.groupby("trace_id").size().mean() if analysed else float("nan"),
        "gradient_seconds": seconds,
    }
    return comparison.scores, comparison.rejects, as_mlflow_metrics(metrics)


def build_counterfactuals(
    traces: pd.DataFrame, leaf_gradients: pd.DataFrame, tokenizer, leaf_params: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Flag the confounders of every analysed trace and write its counterfactuals (one per span, or one in all)."""
    config = LeafConfig.from_params(leaf_params, name="leaf")
    confounders = flag_confounders(leaf_gradients, config.quantile)
    examples = _examples(traces[traces["trace_id"].isin(confounders["trace_id"])], tokenizer, config)
    answers = dict(zip(traces["trace_id"], traces["answer"].astype(str), strict=True))
    rows = []
    for trace_id, tokens in confounders.groupby("trace_id", sort=True):
        tokens = tokens.sort_values("token_index")
        offsets = list(zip(tokens["start"], tokens["end"], strict=True))
        spans = confounder_spans(tokens["confounder"].to_numpy(), offsets)
        text = examples[trace_id].analysed_text
        for index, span_set in enumerate(counterfactual_span_sets(spans, config.pruning)):
            rows.append(
                {
                    "trace_id": trace_id,
                    "counterfactual_index": index,
                    "level": config.level,
                    "pruning": config.pruning,
                    "spans": [[int(start), int(end)] for start, end in span_set],
                    "removed_text": " | ".join(text[start:end] for start, end in span_set),
                    "original_text": text,
                    "pruned_text": examples[trace_id].pruned(span_set).analysed_text,
                    "answer": answers[trace_id],
                }
            )
    counterfactuals = pd.DataFrame(rows, columns=COUNTERFACTUAL_COLUMNS)
    metrics = {
        "confounder_tokens": float(confounders["confounder"].sum()) if len(confounders) else 0.0,
        "confounder_token_share": float(confounders["confounder"].sum() / max(1, confounders["prunable"].sum())) if len(confounders) else 0.0,
        "counterfactuals": len(counterfactuals),
        "traces_with_counterfactual": counterfactuals["trace_id"].nunique(),
    }
    logger.info(
        "%d confounder tokens (q=%.2f) -> %d counterfactuals (%s pruning) over %d traces",
        metrics["confounder_tokens"], config.quantile, len(counterfactuals), config.pruning, metrics["traces_with_counterfactual"],
    )
    return confounders, counterfactuals, as_mlflow_metrics(metrics)


def check_counterfactuals(
    leaf_counterfactuals: pd.DataFrame, traces: pd.DataFrame, teacher_model, student_model, tokenizer, leaf_params: dict[str, Any]
) -> tuple[pd.DataFrame, dict]:
    """The intervention check: greedy answers of teacher and student on each counterfactual, graded with the
    evaluation's math-verify grader; ``kept`` when both are right (or always, when the check is off)."""
    config = LeafConfig.from_params(leaf_params, name="leaf")
    checked = leaf_counterfactuals.copy()
    if not config.intervention_check or checked.empty:
        checked["teacher_correct"] = pd.Series([None] * len(checked), dtype="object")
        checked["student_correct"] = pd.Series([None] * len(checked), dtype="object")
        checked["kept"] = True
        return checked, as_mlflow_metrics({"counterfactuals": len(checked), "kept": len(checked)})
    examples = _examples(traces[traces["trace_id"].isin(checked["trace_id"])], tokenizer, config)
    prompts = [examples[row.trace_id].pruned([tuple(span) for span in row.spans]).context for row in checked.itertuples()]
    device = resolve_device()
    for role, model in (("teacher", teacher_model), ("student", student_model)):
        completions = generate_from_prompts(
            model.to(device), tokenizer, prompts, max_new_tokens=config.check_max_new_tokens, batch_size=config.check_batch_size
        )
        checked[f"{role}_correct"] = [is_correct(completion.text, gold) for completion, gold in zip(completions, checked["answer"], strict=True)]
    checked["kept"] = checked["teacher_correct"] & checked["student_correct"]
    metrics = {
        "counterfactuals": len(checked),
        "teacher_correct": int(checked["teacher_correct"].sum()),
        "student_correct": int(checked["student_correct"].sum()),
        "kept": int(checked["kept"].sum()),
        "kept_share": float(checked["kept"].mean()),
        "traces_with_kept_counterfactual": checked.loc[checked["kept"], "trace_id"].nunique(),
    }
    logger.info(
        "Intervention check: %d counterfactuals; teacher right on %d, student on %d; %d kept",
        len(checked), metrics["teacher_correct"], metrics["student_correct"], metrics["kept"],
    )
    return checked, as_mlflow_metrics(metrics)


def score_against_planted_distractors(
    leaf_confounders: pd.DataFrame, leaf_checked_counterfactuals: pd.DataFrame, world_distractors: pd.DataFrame, traces: pd.DataFrame, leaf_params: dict[str, Any]
) -> dict:
    """Precision and recall of the confounder tokens against the world's planted distractor sentences, and
    how many counterfactuals delete only distractor text, before and after the intervention check."""
    config = LeafConfig.from_params(leaf_params, name="leaf")
    if config.level != "instruction":
        logger.warning("Planted distractors are in the questions; the %s level analyses reasoning prefixes: not scored", config.level)
        return {}
    questions = dict(zip(traces["trace_id"], traces["question"], strict=True))
    distractors = world_distractors[world_distractors["trace_id"].isin(questions)]
    for row in distractors.itertuples():
        if questions[row.trace_id][row.start : row.end] != row.text:
            raise ValueError(f"trace {row.trace_id!r}: the planted distractor {row.text!r} is not at characters {row.start}-{row.end} of its question")
    scores = planted_distractor_scores(leaf_confounders, distractors)
    checked = leaf_checked_counterfactuals
    only_distractor = deletes_only_planted_text(checked, distractors)
    kept = checked["kept"].to_numpy(dtype=bool)
    scores |= {
        "counterfactuals_only_distractor_share": float(only_distractor.mean()) if len(checked) else float("nan"),
        "kept_only_distractor_share": float(only_distractor[kept].mean()) if kept.any() else float("nan"),
    }
    logger.info(
        "Against planted distractors: precision %.3f (chance %.3f), recall %.3f", scores["precision"], scores["chance_precision"], scores["recall"]
    )
    return as_mlflow_metrics(scores)


def _checkpoint_dir(config: LeafConfig, variant: DistillationVariant, teacher, student, items: list[dict]) -> str:
    settings = {"distillation": config.distillation.model_dump(exclude={"checkpoint_dir"}), "variant": variant.model_dump()}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(weights_digest(teacher).encode())
    digest.update(weights_digest(student).encode())
    digest.update(json.dumps(items).encode())
    return f"{config.distillation.checkpoint_dir}/distill-{digest.hexdigest()[:12]}"


def distillation_items(
    traces: pd.DataFrame, counterfactuals: pd.DataFrame, tokenizer, config: LeafConfig, variant: DistillationVariant
) -> list[dict[str, list[int]]]:
    """Training items in trace order: the original (whole response, instruction level) of every trace, paired
    with each of its kept counterfactuals when the variant uses them (one item per counterfactual)."""
    originals = _examples(traces, tokenizer, config, level="instruction")
    analysed = originals if config.level == "instruction" else _examples(traces, tokenizer, config)
    kept = counterfactuals[counterfactuals["kept"].astype(bool)] if variant.counterfactuals else counterfactuals.iloc[0:0]
    by_trace = {trace_id: group for trace_id, group in kept.groupby("trace_id")}
    limit = config.distillation.max_length
    items = []
    for trace_id in sorted(originals):
        original = encode_leaf_example(tokenizer, originals[trace_id])
        if limit is not None and len(original.input_ids) > limit:
            raise ValueError(f"trace {trace_id!r} is {len(original.input_ids)} tokens, over leaf.distillation.max_length={limit}")
        group = by_trace.get(trace_id)
        if group is None:
            items.append(distillation_item(original))
            continue
        for row in group.sort_values("counterfactual_index").itertuples():
            pruned = analysed[trace_id].pruned([tuple(span) for span in row.spans])
            items.append(distillation_item(original, encode_leaf_example(tokenizer, pruned)))
    return items


def distill_variant(
    student_model, teacher_model, tokenizer, traces: pd.DataFrame, leaf_checked_counterfactuals: pd.DataFrame,
    leaf_params: dict[str, Any], variant_params: dict[str, Any],
) -> tuple[Any, dict, dict]:
    """Distil the teacher into the student: plain KD (lambda 1, no counterfactuals) or LeaF, same steps and seed."""
    config = LeafConfig.from_params(leaf_params, name="leaf")
    variant = DistillationVariant.model_validate(variant_params)
    items = distillation_items(traces, leaf_checked_counterfactuals, tokenizer, config, variant)
    output_dir = _checkpoint_dir(config, variant, teacher_model, student_model, items)
    set_seed(config.distillation.seed)
    started = time.perf_counter()
    model, history = distill(
        student_model,
        teacher_model,
        items,
        config.distillation.training_config(),
        output_dir=output_dir,
        pad_token_id=tokenizer.pad_token_id,
        vocab_size=len(tokenizer),
        temperature=config.distillation.temperature,
        original_weight=variant.original_weight,
    )
    seconds = time.perf_counter() - started
    paired = sum("pruned_input_ids" in item for item in items)
    summary = {
        "lambda": variant.original_weight,
        "counterfactuals": variant.counterfactuals,
        "train_items": len(items),
        "items_with_counterfactual": paired,
        "response_tokens": sum(sum(item["response_mask"]) for item in items),
        "train_steps": config.distillation.max_steps,
        "train_seconds": seconds,
        "final_train_loss": history[-1]["loss"] if history else float("nan"),
    }
    logger.info("Distillation (lambda %.2f): %d items, %d with a counterfactual, %.0f s", variant.original_weight, len(items), paired, seconds)
    metrics = as_mlflow_metrics({name: float(value) for name, value in summary.items()})
    if history:
        metrics["train_loss"] = [{"step": entry["step"], "value": entry["loss"]} for entry in history]
        metrics["learning_rate"] = [{"step": entry["step"], "value": entry["learning_rate"]} for entry in history]
    return model, metrics, {"summary": summary, "history": history}


def compare_distillation(leaf_params: dict[str, Any], evaluation_params: dict[str, Any], **models: pd.DataFrame | dict) -> tuple[pd.DataFrame, dict]:
    """Base student, KD and LeaF on the held-out problems: all, with and without a distractor; accuracy and
    length with 95% intervals and the problem-by-problem difference from the reference (KD)."""
    config = LeafConfig.from_params(leaf_params, name="leaf")
    evaluation = EvaluationConfig.from_params(evaluation_params, name="evaluation")
    generations = {name.removesuffix("_generations"): table for name, table in models.items() if name.endswith("_generations")}
    logs = {name.removesuffix("_training_log"): log for name, log in models.items() if name.endswith("_training_log")}
    rows, metrics = [], {}
    for subset, flag in SUBSETS.items():
        if flag is None:
            chosen = generations
        elif all("has_distractor" in table for table in generations.values()):
            chosen = {name: table[table["has_distractor"] == flag] for name, table in generations.items()}
            if any(table.empty for table in chosen.values()):
                continue
        else:
            continue
        subset_rows, subset_metrics = compare_with_reference(chosen, config.reference, evaluation.pass_at_k)
        for row in subset_rows:
            summary = logs.get(row["model"], {}).get("summary", {})
            rows.append({"subset": subset, "lambda": summary.get("lambda"), "train_items": summary.get("train_items"), **row})
            for name in ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "mean_response_tokens"):
                metrics[f"{row['model']}.{subset}.{name}"] = row[name]
        for name, value in subset_metrics.items():  # <model>.<difference> -> <model>.<subset>.<difference>
            model, _, difference = name.partition(".")
            metrics[f"{model}.{subset}.{difference}"] = value
    comparison = pd.DataFrame(rows)
    logger.info(
        "KD versus LeaF:\n%s",
        comparison[["subset", "model", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "mean_response_tokens"]].to_string(index=False),
    )
    return comparison, as_mlflow_metrics(metrics)


def write_leaf_report(
    leaf_comparison: pd.DataFrame,
    leaf_checked_counterfactuals: pd.DataFrame,
    leaf_confounders: pd.DataFrame,
    leaf_params: dict[str, Any],
    world_distractors: pd.DataFrame | None = None,
) -> str:
    """The LeaF summary in Markdown: what the check kept, the planted-distractor scores, KD versus LeaF."""
    config = LeafConfig.from_params(leaf_params, name="leaf")
    planted = None
    if world_distractors is not None and config.level == "instruction":
        analysed = world_distractors[world_distractors["trace_id"].isin(leaf_confounders["trace_id"])]
        planted = planted_distractor_scores(leaf_confounders, analysed)
    return leaf_report_markdown(leaf_comparison, leaf_checked_counterfactuals, config, planted, leaf_confounders)
