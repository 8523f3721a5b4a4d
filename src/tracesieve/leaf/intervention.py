"""LeaF's intervention check: a counterfactual is kept only when both the teacher and the student still
answer it correctly (greedy, graded by the evaluation's math-verify grader). Deleting a token the problem
needs (usually a number) changes the problem; the check drops those counterfactuals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from tracesieve.evaluation import is_correct
from tracesieve.generation import generate_from_prompts
from tracesieve.leaf.examples import leaf_examples

if TYPE_CHECKING:  # the schemas import this package's names
    from tracesieve.config import LeafConfig


def check_counterfactuals(
    counterfactuals: pd.DataFrame, traces: pd.DataFrame, teacher, student, tokenizer, config: LeafConfig
) -> pd.DataFrame:
    """``counterfactuals`` with ``teacher_correct``, ``student_correct``, ``kept`` (both right) and
    ``student_original_correct`` (the student on the unpruned example: a counterfactual the student gets
    right where it got the original wrong is one that removed what misled it). With
    ``config.intervention_check`` off, nothing is generated: every counterfactual is kept, the correctness
    columns are empty."""
    checked = counterfactuals.copy()
    if not config.intervention_check or checked.empty:
        for column in ("teacher_correct", "student_correct", "student_original_correct"):
            checked[column] = pd.Series([None] * len(checked), dtype="object")
        checked["kept"] = True
        return checked
    analysed = traces[traces["trace_id"].isin(checked["trace_id"])]
    examples = leaf_examples(analysed, tokenizer, level=config.level, response_prefix_share=config.response_prefix_share)
    prompts = [examples[row.trace_id].pruned([tuple(span) for span in row.spans]).context for row in checked.itertuples()]
    for role, model in (("teacher", teacher), ("student", student)):
        completions = generate_from_prompts(model, tokenizer, prompts, max_new_tokens=config.check_max_new_tokens, batch_size=config.check_batch_size)
        checked[f"{role}_correct"] = [is_correct(completion.text, gold) for completion, gold in zip(completions, checked["answer"], strict=True)]
    checked["kept"] = checked["teacher_correct"] & checked["student_correct"]
    originals = list(dict.fromkeys(checked["trace_id"]))
    completions = generate_from_prompts(
        student, tokenizer, [examples[trace_id].context for trace_id in originals], max_new_tokens=config.check_max_new_tokens, batch_size=config.check_batch_size
    )
    answers = checked.drop_duplicates("trace_id").set_index("trace_id")["answer"]
    original_correct = {trace_id: is_correct(completion.text, answers[trace_id]) for trace_id, completion in zip(originals, completions, strict=True)}
    checked["student_original_correct"] = checked["trace_id"].map(original_correct).astype(bool)
    return checked


def _wrong_to_right_share(checked: pd.DataFrame) -> float:
    """Of the counterfactuals of examples the student got wrong, the share it gets right once pruned."""
    wrong = checked[~checked["student_original_correct"].astype(bool)]
    return float(wrong["student_correct"].astype(bool).mean()) if len(wrong) else float("nan")


def intervention_summary(checked: pd.DataFrame) -> dict[str, float]:
    """How many counterfactuals each model got right and how many were kept (only the counts when the
    check did not run: ``check_counterfactuals`` leaves the correctness columns empty then)."""
    if checked["teacher_correct"].isna().all():
        return {"counterfactuals": len(checked), "kept": len(checked)}
    return {
        "counterfactuals": len(checked),
        "teacher_correct": int(checked["teacher_correct"].sum()),
        "student_correct": int(checked["student_correct"].sum()),
        "kept": int(checked["kept"].sum()),
        "kept_share": float(checked["kept"].mean()),
        "student_wrong_to_right_share": _wrong_to_right_share(checked),
        "traces_with_kept_counterfactual": checked.loc[checked["kept"], "trace_id"].nunique(),
    }
