"""LeaF's confounders scored against the embedded world's planted distractor sentences (world only: real
traces have no planted distractors). A confounder detector that works should flag distractor tokens more
often than flagging at random would (``chance_precision``). And the world's distractor gate: whether the
distractors mislead the student at all, which LeaF needs before it can be judged.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tracesieve.evaluation import is_correct
from tracesieve.generation import generate_completions
from tracesieve.leaf.examples import delete_spans
from tracesieve.metrics import Z_95
from tracesieve.world.roles import accuracy_difference

# The distractor gate passes when the LeaF student loses at least this much accuracy to a distractor (with
# less, there is no confounding for a confounder-pruning method to remove) and the teacher at most
# TEACHER_DISTRACTOR_EFFECT_MAX: LeaF's premise is a teacher that sees through the distractor.
DISTRACTOR_EFFECT_THRESHOLD = 0.30
DISTRACTOR_EFFECT_LOW_MIN = 0.15  # ... and the low end of its interval at least this
TEACHER_DISTRACTOR_EFFECT_MAX = 0.05
TEACHER_DISTRACTOR_EFFECT_HIGH_MAX = 0.10  # ... the high end of the teacher's interval at most this
TEACHER_ACCURACY_MIN = 0.90  # the teacher's accuracy without a distractor: a teacher that cannot solve the task teaches nothing
# KD must help the student (LeaF is judged against KD: a KD that teaches nothing leaves nothing to improve on).
KD_EFFECT_MIN = 0.10


def _spans_by_trace(planted: pd.DataFrame) -> dict[str, list[tuple[int, int]]]:
    return {trace_id: list(zip(group["start"], group["end"], strict=True)) for trace_id, group in planted.groupby("trace_id")}


def in_planted_spans(tokens: pd.DataFrame, planted: pd.DataFrame) -> np.ndarray:
    """Whether each token's first character lies in a planted span of its trace (both in the same coordinates)."""
    spans = _spans_by_trace(planted)
    return np.array(
        [any(low <= start < high for low, high in spans.get(trace_id, ())) for trace_id, start in zip(tokens["trace_id"], tokens["start"], strict=True)],
        dtype=bool,
    )


def deletes_only_planted_text(counterfactuals: pd.DataFrame, planted: pd.DataFrame) -> np.ndarray:
    """Whether each counterfactual deletes something, and only characters inside planted spans of its trace."""
    spans = _spans_by_trace(planted)
    return np.array(
        [
            len(row.spans) > 0 and all(any(low <= start and end <= high for low, high in spans.get(row.trace_id, ())) for start, end in row.spans)
            for row in counterfactuals.itertuples()
        ],
        dtype=bool,
    )


def planted_distractor_scores(confounders: pd.DataFrame, distractors: pd.DataFrame) -> dict[str, float]:
    """Precision and recall of the flagged tokens against planted distractor sentences (token level).

    ``chance_precision`` is the precision of flagging prunable tokens at random: the share of distractor
    tokens among them. ``traces_with_distractor_hit`` is the share of traces with a distractor where at
    least one flagged token lies in it.
    """
    prunable = confounders[confounders["prunable"]]
    in_distractor = in_planted_spans(prunable, distractors)
    flagged = prunable["confounder"].to_numpy(dtype=bool)
    hits = int((flagged & in_distractor).sum())
    traces_with = set(distractors["trace_id"]) & set(prunable["trace_id"])
    hit_traces = set(prunable.loc[flagged & in_distractor, "trace_id"])
    return {
        "confounder_tokens": float(flagged.sum()),
        "distractor_tokens": float(in_distractor.sum()),
        "precision": hits / flagged.sum() if flagged.sum() else float("nan"),
        "recall": hits / in_distractor.sum() if in_distractor.sum() else float("nan"),
        "chance_precision": float(in_distractor.mean()) if len(in_distractor) else float("nan"),
        "traces_with_distractor_hit": len(hit_traces) / len(traces_with) if traces_with else float("nan"),
    }


def score_against_planted_distractors(
    confounders: pd.DataFrame, checked_counterfactuals: pd.DataFrame, distractors: pd.DataFrame, traces: pd.DataFrame
) -> dict[str, float]:
    """``planted_distractor_scores`` over the analysed traces, and the share of counterfactuals that delete
    only distractor text, before and after the intervention check.

    ``distractors`` spans are checked against the questions of ``traces`` first: a span that does not
    hold its text is an error naming the trace.
    """
    questions = dict(zip(traces["trace_id"], traces["question"], strict=True))
    distractors = distractors[distractors["trace_id"].isin(questions)]
    for row in distractors.itertuples():
        if questions[row.trace_id][row.start : row.end] != row.text:
            raise ValueError(f"trace {row.trace_id!r}: the planted distractor {row.text!r} is not at characters {row.start}-{row.end} of its question")
    scores = planted_distractor_scores(confounders, distractors)
    only_distractor = deletes_only_planted_text(checked_counterfactuals, distractors)
    kept = checked_counterfactuals["kept"].to_numpy(dtype=bool)
    scores |= {
        "counterfactuals_only_distractor_share": float(only_distractor.mean()) if len(checked_counterfactuals) else float("nan"),
        "kept_only_distractor_share": float(only_distractor[kept].mean()) if kept.any() else float("nan"),
    }
    return scores


def accuracy_drop(generations: pd.DataFrame) -> tuple[float, float, float]:
    """Accuracy without a distractor minus with one (``has_distractor``, ``correct``), with a 95% normal
    interval for the difference of two independent proportions (different problems on each side)."""
    with_distractor = generations.loc[generations["has_distractor"].astype(bool), "correct"].astype(float)
    without = generations.loc[~generations["has_distractor"].astype(bool), "correct"].astype(float)
    if with_distractor.empty or without.empty:
        return math.nan, math.nan, math.nan
    difference = without.mean() - with_distractor.mean()
    half = Z_95 * math.sqrt(
        without.mean() * (1 - without.mean()) / len(without) + with_distractor.mean() * (1 - with_distractor.mean()) / len(with_distractor)
    )
    return float(difference), float(difference - half), float(difference + half)


def distractor_gate(
    student_generations: pd.DataFrame,
    teacher_generations: pd.DataFrame,
    eval_problems: pd.DataFrame,
    distractors: pd.DataFrame,
    student,
    tokenizer,
    *,
    max_new_tokens: int,
    batch_size: int,
) -> dict[str, float]:
    """The distractor gate, on both models: the student's accuracy drop to a distractor (passes at
    ``DISTRACTOR_EFFECT_THRESHOLD``), the teacher's (passes at most ``TEACHER_DISTRACTOR_EFFECT_MAX``), and the share of the
    student's wrong answers to a problem with a distractor that deleting the distractor sentence turns right
    (greedy, graded like every evaluation).

    ``student_generations`` and ``teacher_generations`` are greedy held-out generations (one row per
    problem) with ``has_distractor`` and ``correct``, keyed by ``problem_id`` or ``trace_id``.
    """
    effect, low, high = accuracy_drop(student_generations)
    teacher_effect, teacher_low, teacher_high = accuracy_drop(teacher_generations)
    clean = teacher_generations.loc[~teacher_generations["has_distractor"].astype(bool), "correct"]
    teacher_clean = float(clean.astype(float).mean()) if len(clean) else math.nan
    gate = {
        "distractor_effect": effect,
        "distractor_effect_ci_low": low,
        "distractor_effect_ci_high": high,
        "distractor_effect_passed": float(effect >= DISTRACTOR_EFFECT_THRESHOLD and low >= DISTRACTOR_EFFECT_LOW_MIN),
        "distractor_effect_teacher": teacher_effect,
        "distractor_effect_teacher_ci_low": teacher_low,
        "distractor_effect_teacher_ci_high": teacher_high,
        "teacher_accuracy_without_distractor": teacher_clean,
        # NaN compares False: a gate that could not be measured fails
        "distractor_teacher_passed": float(
            teacher_effect <= TEACHER_DISTRACTOR_EFFECT_MAX and teacher_high <= TEACHER_DISTRACTOR_EFFECT_HIGH_MAX
            and teacher_clean >= TEACHER_ACCURACY_MIN
        ),
    }
    wrong = student_generations[student_generations["has_distractor"].astype(bool) & ~student_generations["correct"].astype(bool)]
    spans = {trace_id: sorted(zip(group["start"], group["end"], strict=True)) for trace_id, group in distractors.groupby("trace_id")}
    problems = eval_problems.set_index("problem_id").loc[wrong["problem_id"].unique()]
    pruned = [delete_spans(row.question, spans[problem_id]) for problem_id, row in problems.iterrows()]
    if pruned:
        completions = generate_completions(student, tokenizer, pruned, max_new_tokens=max_new_tokens, batch_size=batch_size)
        right = [is_correct(completion.text, str(gold)) for completion, gold in zip(completions, problems["answer"], strict=True)]
        gate["distractor_pruning_fixes_share"] = float(np.mean(right))
    gate["distractor_wrong_answers"] = float(len(pruned))
    return gate


def kd_effect(kd_generations: pd.DataFrame, base_generations: pd.DataFrame) -> dict[str, float]:
    """The KD-effect gate: plain distillation minus the base student it starts from, paired on the same
    held-out problems. It passes at ``KD_EFFECT_MIN`` with the interval's low end above 0; failing, the teacher
    has nothing to pass on, and LeaF against KD compares two models that learned nothing."""
    gate = accuracy_difference(kd_generations, base_generations, "kd_effect")
    gate["kd_effect_passed"] = float(gate["kd_effect_accuracy"] >= KD_EFFECT_MIN and gate["kd_effect_accuracy_ci_low"] > 0)
    return gate


def leaf_oracle(oracle_generations: pd.DataFrame, kd_generations: pd.DataFrame) -> dict[str, float]:
    """The LeaF-oracle gate, LeaF's analogue of the oracle mask: distillation on oracle counterfactuals (the
    planted distractor spans pruned) minus plain KD, paired. It passes when the interval's low end is above 0;
    failing, even perfect confounder detection would not beat KD here, so LeaF's verdict cannot be positive."""
    gate = accuracy_difference(oracle_generations, kd_generations, "leaf_oracle")
    gate["leaf_oracle_passed"] = float(gate["leaf_oracle_accuracy_ci_low"] > 0)
    return gate
