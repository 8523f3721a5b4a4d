"""Evaluation problems checked against the training traces' questions before any model is graded on them.

A problem is contaminated when its question, normalised (lower case, every run of characters other than
letters and digits one space), equals a training question, or when at least ``overlap`` of its word
``n``-grams (13, as in decontamination practice since GPT-3) occur in the training questions. Questions
shorter than ``n`` words are checked by exact match only. ``contamination_table`` gives every problem its
figures; ``apply_policy`` drops the contaminated ones, flags them, or stops the run, naming them.
"""

from __future__ import annotations

import logging
import re

import pandas as pd

from tracesieve.choices import CONTAMINATION_POLICIES

logger = logging.getLogger(__name__)

CONTAMINATION_COLUMNS = ["problem_id", "exact_match", "ngram_overlap", "nearest_trace_id", "contaminated", "reason"]
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> str:
    """Lower case, every run of characters other than letters and digits one space, trimmed."""
    return _NOT_WORD.sub(" ", text.lower()).strip()


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[index : index + n]) for index in range(len(words) - n + 1)}


def contamination_table(eval_problems: pd.DataFrame, traces: pd.DataFrame, *, n: int = 13, overlap: float = 0.5) -> pd.DataFrame:
    """Per evaluation problem (``CONTAMINATION_COLUMNS``): whether its normalised question is a training
    question, the share of its ``n``-grams found in the training questions, the trace sharing the most of
    them, and whether that makes it contaminated (exact match, or a share of at least ``overlap``)."""
    exact = {}
    owners: dict[tuple[str, ...], str] = {}
    for trace in traces[["trace_id", "question"]].itertuples(index=False):
        exact.setdefault(normalise(trace.question), trace.trace_id)
        for gram in word_ngrams(trace.question, n):
            owners.setdefault(gram, trace.trace_id)
    rows = []
    for problem in eval_problems[["problem_id", "question"]].itertuples(index=False):
        match = exact.get(normalise(problem.question))
        grams = word_ngrams(problem.question, n)
        shared = [owners[gram] for gram in grams if gram in owners]
        share = len(shared) / len(grams) if grams else 0.0
        nearest = match or (max(set(shared), key=shared.count) if shared else None)
        reason = "exact_match" if match else (f"{n}gram_overlap" if grams and share >= overlap else "")
        rows.append((problem.problem_id, match is not None, share, nearest, bool(reason), reason))
    return pd.DataFrame(rows, columns=CONTAMINATION_COLUMNS)


def apply_policy(eval_problems: pd.DataFrame, table: pd.DataFrame, policy: str) -> pd.DataFrame:
    """The problems evaluation grades: all but the contaminated ones (``drop``), all with a ``contaminated``
    column (``flag``), or an error naming them (``fail``)."""
    if policy not in CONTAMINATION_POLICIES:
        raise ValueError(f"evaluation.contamination must be one of {CONTAMINATION_POLICIES}, got {policy!r}")
    contaminated = table.loc[table["contaminated"], ["problem_id", "reason", "nearest_trace_id"]]
    named = ", ".join(f"{row.problem_id!r} ({row.reason}, trace {row.nearest_trace_id!r})" for row in contaminated.head(5).itertuples())
    if len(contaminated) and policy == "fail":
        raise ValueError(
            f"{len(contaminated)} evaluation problems are in the training traces: {named}. Remove them from the evaluation "
            "file, or set evaluation.contamination: drop (grade without them) or flag (grade them, marked)."
        )
    if len(contaminated) and policy == "drop" and len(contaminated) == len(eval_problems):
        raise ValueError(
            f"every one of the {len(eval_problems)} evaluation problems is in the training traces ({named}): dropping them "
            "leaves nothing to grade. Evaluate on problems the traces do not hold, or set evaluation.contamination: flag."
        )
    if len(contaminated):
        logger.warning("%d evaluation problems are in the training traces (%s): %s", len(contaminated), policy, named)
    if policy == "drop":
        return eval_problems[~eval_problems["problem_id"].isin(contaminated["problem_id"])].reset_index(drop=True)
    return eval_problems.assign(contaminated=eval_problems["problem_id"].isin(contaminated["problem_id"]).to_numpy())


def contamination_summary(table: pd.DataFrame, policy: str) -> dict[str, float]:
    return {
        "problems": float(len(table)),
        "contaminated": float(table["contaminated"].sum()),
        "exact_matches": float(table["exact_match"].sum()),
        "ngram_overlap_max": float(table["ngram_overlap"].max()) if len(table) else 0.0,
        "dropped": float(table["contaminated"].sum()) if policy == "drop" else 0.0,
    }
