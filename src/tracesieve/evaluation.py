"""Grading and scoring of generated answers: math-verify equivalence, accuracy with intervals, pass@k.

A completion's answer is the content of its last complete ``\\boxed{}`` (``answers.last_boxed``); it is
correct when math-verify finds it mathematically equivalent to the gold answer (``1/2``, ``0.5`` and
``\\frac{1}{2}`` are one answer). Scores count every sample: the authors' evaluation graded only the first
of n samples, which overstates a sampled model's accuracy whenever the first sample is its best.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from math_verify import parse, verify

from tracesieve.answers import last_boxed
from tracesieve.generation import generate_completions
from tracesieve.metrics import mean_interval, wilson_interval

if TYPE_CHECKING:  # the schemas live at the edge; evaluation reads their fields
    from tracesieve.config import EvaluationConfig



@lru_cache(maxsize=65536)
def _parsed(answer: str):
    # Wrapped in $...$ so math-verify reads the bare answer as LaTeX; cached: the gold side repeats a lot.
    return tuple(parse(f"${answer}$"))


def answers_equivalent(predicted: str, gold: str) -> bool:
    """True when ``predicted`` and ``gold`` are the same mathematical object (math-verify), or the same string."""
    if predicted.replace(" ", "") == gold.replace(" ", ""):
        return True
    gold_parsed, predicted_parsed = _parsed(gold), _parsed(predicted)
    if not gold_parsed or not predicted_parsed:
        return False
    return bool(verify(list(gold_parsed), list(predicted_parsed)))


def is_correct(completion: str, gold: str) -> bool:
    """Whether the last boxed answer of ``completion`` is mathematically equivalent to ``gold``.

    No box (or only an unclosed one, as in a truncated generation) is wrong, whatever the text says.
    """
    predicted = last_boxed(completion)
    return predicted is not None and answers_equivalent(predicted, gold)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k) (Chen et al., 2021)."""
    if not 0 < k <= n:
        raise ValueError(f"pass@{k} needs 1 <= k <= n samples, got n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def accuracy_interval(correct: pd.Series, problem_ids: pd.Series) -> tuple[float, float]:
    """95% interval of the accuracy over problems.

    One sample per problem: Wilson's interval. Several: samples of one problem are not independent, so the
    interval is the normal one over per-problem mean accuracies (the problem is the unit that is sampled).
    """
    per_problem = correct.astype(float).groupby(problem_ids.to_numpy()).mean()
    if len(per_problem) == len(correct):
        return wilson_interval(int(correct.sum()), len(correct))
    _, low, high = mean_interval(per_problem)
    if math.isnan(low):  # one problem: no interval
        return math.nan, math.nan
    return max(0.0, low), min(1.0, high)


# Flags an evaluation table may carry per problem, and the names of the subsets they split it into (the
# world's planted distractors; its problems whose skeleton no training problem has).
SUBSET_FLAGS = {"has_distractor": ("with_distractor", "without_distractor"), "heldout_skeleton": ("heldout_skeleton", "seen_skeleton")}


def summarize_generations(generations: pd.DataFrame, pass_ks: Sequence[int] = (1,)) -> dict[str, float]:
    """Accuracy (over all samples) with its 95% interval, pass@k, response lengths and the truncated share.

    ``generations`` has one row per sample: ``problem_id``, ``correct``, ``n_tokens``, ``truncated``, and
    optionally the ``SUBSET_FLAGS`` (accuracy and length per subset).
    """
    if generations.empty:
        raise ValueError("no generations to summarize")
    low, high = accuracy_interval(generations["correct"], generations["problem_id"])
    per_problem = generations.groupby("problem_id", sort=False)["correct"].agg(["size", "sum"])
    summary = {
        "accuracy": float(generations["correct"].mean()),
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "problems": float(len(per_problem)),
        "samples_per_problem": float(per_problem["size"].min()),
        "mean_response_tokens": float(generations["n_tokens"].mean()),
        "median_response_tokens": float(generations["n_tokens"].median()),
        "truncated_share": float(generations["truncated"].mean()),
    }
    for k in pass_ks:
        if k <= per_problem["size"].min():
            summary[f"pass_at_{k}"] = float(np.mean([pass_at_k(int(n), int(c), k) for n, c in per_problem.itertuples(index=False)]))
    for column, names in SUBSET_FLAGS.items():
        if column in generations:
            for flag, name in zip((True, False), names, strict=True):
                subset = generations.loc[generations[column] == flag]
                if len(subset):
                    summary[f"accuracy_{name}"] = float(subset["correct"].mean())
                    summary[f"mean_response_tokens_{name}"] = float(subset["n_tokens"].mean())
    return summary


def paired_difference(values: pd.Series, reference: pd.Series) -> tuple[float, float, float]:
    """Mean of ``values - reference`` over the same problems, with a 95% normal interval.

    Both series are indexed by problem; pairing removes the between-problem variance, which is most of it
    when two variants of one model answer the same problems.
    """
    joined = pd.concat({"values": values, "reference": reference}, axis=1, join="inner")
    if joined.empty:
        raise ValueError("the two variants share no problems")
    return mean_interval(joined["values"] - joined["reference"])


def _per_problem(table: pd.DataFrame) -> pd.DataFrame:
    return table.groupby("problem_id").agg(correct=("correct", "mean"), n_tokens=("n_tokens", "mean"))


def compare_with_reference(
    generations: dict[str, pd.DataFrame], reference: str, pass_ks: Sequence[int] = (1,)
) -> tuple[list[dict], dict[str, float]]:
    """One row per model: its summary and, for every model but ``reference``, the problem-by-problem
    difference from it in accuracy and response length with 95% intervals; and those differences as metrics
    named ``<model>.<accuracy|mean_response_tokens>_diff_vs_<reference>[_ci_low|_ci_high]``."""
    if reference not in generations:
        raise ValueError(f"the reference {reference!r} is not among the evaluated models {list(generations)}")
    baseline = _per_problem(generations[reference])
    rows, metrics = [], {}
    for name, table in generations.items():
        row = {"model": name, **summarize_generations(table, pass_ks)}
        if name != reference:
            ours = _per_problem(table)
            for column, label in (("correct", "accuracy"), ("n_tokens", "mean_response_tokens")):
                mean, low, high = paired_difference(ours[column], baseline[column])
                row[f"{label}_diff_vs_{reference}"] = mean
                row[f"{label}_diff_ci_low"] = low
                row[f"{label}_diff_ci_high"] = high
                metrics[f"{name}.{label}_diff_vs_{reference}"] = mean
                metrics[f"{name}.{label}_diff_vs_{reference}_ci_low"] = low
                metrics[f"{name}.{label}_diff_vs_{reference}_ci_high"] = high
        rows.append(row)
    return rows, metrics


EVAL_PROBLEM_COLUMNS = ["problem_id", "question", "answer"]  # plus the SUBSET_FLAGS where the data has them


def check_eval_problems(eval_problems: pd.DataFrame) -> None:
    """The held-out table has the columns evaluation needs and one row per problem, or an error says which not."""
    missing = [column for column in EVAL_PROBLEM_COLUMNS if column not in eval_problems]
    if missing:
        raise ValueError(f"eval_problems lacks the columns {missing}; it needs {EVAL_PROBLEM_COLUMNS}")
    if eval_problems["problem_id"].duplicated().any():
        duplicated = eval_problems.loc[eval_problems["problem_id"].duplicated(), "problem_id"].iloc[0]
        raise ValueError(f"eval_problems has problem_id {duplicated!r} more than once")


def evaluate_on_problems(model, tokenizer, eval_problems: pd.DataFrame, config: EvaluationConfig) -> tuple[pd.DataFrame, dict[str, float]]:
    """Generations for the held-out problems (the first ``config.max_problems``; one row per sample), graded
    with math-verify, and their ``summarize_generations`` plus ``eval_seconds``."""
    check_eval_problems(eval_problems)
    problems = eval_problems.head(config.max_problems) if config.max_problems else eval_problems
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
        engine=config.engine,
        engine_options=config.vllm,
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
    for column in SUBSET_FLAGS:
        if column in rows:
            generations[column] = rows[column].astype(bool)
    summary = summarize_generations(generations, config.pass_at_k)
    summary["eval_seconds"] = seconds
    return generations, summary


def model_comparison(
    generations: Mapping[str, pd.DataFrame], training_logs: Mapping[str, dict], reference: str, pass_ks: Sequence[int] = (1,)
) -> tuple[pd.DataFrame, dict[str, float]]:
    """``compare_with_reference`` as a table, one row per model, with each trained model's strategy and
    supervised tokens from its training log (the base model has none: ``(base model)``)."""
    rows, metrics = compare_with_reference(dict(generations), reference, pass_ks)
    for row in rows:
        log_summary = training_logs.get(row["model"], {}).get("summary", {})
        row["strategy"] = log_summary.get("strategy", "(base model)")
        row["supervised_tokens"] = log_summary.get("supervised_tokens")
    comparison = pd.DataFrame(rows)
    leading = ["model", "strategy", "supervised_tokens"]
    return comparison[[*leading, *(column for column in comparison if column not in leading)]], metrics


# Held-out subsets by the planted distractor flag: None is every problem.
DISTRACTOR_SUBSETS = {"all": None, "with_distractor": True, "without_distractor": False}


def comparison_by_distractor_subset(
    generations: Mapping[str, pd.DataFrame], training_logs: Mapping[str, dict], reference: str, pass_ks: Sequence[int] = (1,)
) -> tuple[pd.DataFrame, dict[str, float]]:
    """``compare_with_reference`` on all problems, those with a distractor and those without (when every
    table has ``has_distractor`` and no subset is empty), one row per subset and model with the model's
    lambda and training items from its log; metrics named ``<model>.<subset>.<name>``."""
    rows, metrics = [], {}
    for subset, flag in DISTRACTOR_SUBSETS.items():
        if flag is None:
            chosen = dict(generations)
        elif all("has_distractor" in table for table in generations.values()):
            chosen = {name: table[table["has_distractor"] == flag] for name, table in generations.items()}
            if any(table.empty for table in chosen.values()):
                continue
        else:
            continue
        subset_rows, subset_metrics = compare_with_reference(chosen, reference, pass_ks)
        for row in subset_rows:
            summary = training_logs.get(row["model"], {}).get("summary", {})
            rows.append({"subset": subset, "lambda": summary.get("lambda"), "train_items": summary.get("train_items"), **row})
            for name in ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "mean_response_tokens"):
                metrics[f"{row['model']}.{subset}.{name}"] = row[name]
        for name, value in subset_metrics.items():  # <model>.<difference> -> <model>.<subset>.<difference>
            model, _, difference = name.partition(".")
            metrics[f"{model}.{subset}.{difference}"] = value
    return pd.DataFrame(rows), metrics
