"""The embedded world as tables: problems per split, planted segments and planted distractors."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tracesieve.config import WorldConfig
from tracesieve.world.problems import WorldProblem, generate_problems, heldout_skeletons

SPLITS = ("train", "traces", "eval")


@dataclass(frozen=True)
class WorldTables:
    # trace_id, split, question, reasoning, answer, n_steps, n_segments, has_distractor, decoy, skeleton,
    # heldout_skeleton (eval only can be True), and the all-relevant form (question_all_relevant,
    # reasoning_all_relevant, answer_all_relevant)
    problems: pd.DataFrame
    segments: pd.DataFrame  # trace_id, segment_index, start, end, role (character spans of the reasoning)
    distractors: pd.DataFrame  # trace_id, start, end, text (character spans of the question)
    trace_records: list[dict]  # the "traces" split in the world's own record format


def _draw_unique(n: int, *, seed: int, split: str, exclude: set[str], config: WorldConfig, **accept) -> list[WorldProblem]:
    """``n`` problems whose questions are new: held-out sets never repeat a question seen in training.
    ``accept``: the skeleton filters of ``problems.generate_problem``."""
    options = config.problems.model_dump()
    chosen: list[WorldProblem] = []
    seen = set(exclude)
    attempt = 0
    while len(chosen) < n:
        # Draw in rounds with a fresh salt, so that rejected duplicates are replaced deterministically.
        batch = generate_problems(n, seed=seed, split=f"{split}-{attempt}" if attempt else split, **options, **accept)
        for problem in batch:
            if problem.question not in seen and len(chosen) < n:
                seen.add(problem.question)
                chosen.append(problem)
        attempt += 1
        if attempt > 20:
            raise ValueError(
                f"Could not draw {n} distinct {split!r} problems; the world is too small for its sizes: "
                "raise problems.max_value or problems.max_steps, or lower the split sizes."
            )
    # Ids follow the final order, whatever round a problem came from.
    return [problem.renamed(f"world-{split}-{index:05d}") for index, problem in enumerate(chosen)]


def _all_relevant_columns(problem: WorldProblem) -> dict[str, str]:
    relevant = problem.all_relevant or problem  # without a distractor the problem is its own all-relevant form
    return {
        "question_all_relevant": relevant.question,
        "reasoning_all_relevant": relevant.reasoning,
        "answer_all_relevant": relevant.answer,
    }


def generate_world(config: WorldConfig) -> WorldTables:
    """Draw the splits deterministically from ``config.seed``: held-out questions are unseen, and the
    evaluation split adds ``n_eval_heldout_skeleton`` problems whose skeleton no training, trace or warm-up
    problem has (``heldout_skeleton``)."""
    held_out = heldout_skeletons(config.seed, config.heldout_skeleton_share, config.problems.min_steps, config.problems.max_steps)

    def seen(signs: str) -> bool:
        return signs not in held_out

    def unseen(signs: str) -> bool:
        return signs in held_out

    train = generate_problems(
        config.n_train, seed=config.seed, split="train", **config.problems.model_dump(),
        accept_skeleton=seen, accept_relevant_skeleton=seen,
    )
    train_questions = {problem.question for problem in train}
    traces = _draw_unique(
        config.n_traces, seed=config.seed, split="traces", exclude=train_questions, config=config,
        accept_skeleton=seen, accept_relevant_skeleton=seen,
    )
    excluded = train_questions | {problem.question for problem in traces}
    evaluation = _draw_unique(config.n_eval, seed=config.seed, split="eval", exclude=excluded, config=config, accept_skeleton=seen)
    novel = []
    if config.n_eval_heldout_skeleton:
        if not held_out:
            raise ValueError("world.n_eval_heldout_skeleton asks for held-out skeletons, but heldout_skeleton_share is 0")
        novel = _draw_unique(
            config.n_eval_heldout_skeleton, seed=config.seed, split="eval-novel", exclude=excluded, config=config, accept_skeleton=unseen
        )
        novel = [problem.renamed(f"world-eval-{config.n_eval + index:05d}") for index, problem in enumerate(novel)]
    heldout_ids = {problem.trace_id for problem in novel}
    problems, segments, distractors = [], [], []
    for split, split_problems in zip(SPLITS, (train, traces, evaluation + novel), strict=True):
        for problem in split_problems:
            problems.append(
                {
                    "trace_id": problem.trace_id,
                    "split": split,
                    "question": problem.question,
                    "reasoning": problem.reasoning,
                    "answer": problem.answer,
                    "n_steps": problem.n_steps,
                    "n_segments": len(problem.segments),
                    "has_distractor": bool(problem.distractors),
                    "decoy": problem.decoy,
                    "skeleton": problem.skeleton,
                    "heldout_skeleton": problem.trace_id in heldout_ids,
                    **_all_relevant_columns(problem),
                }
            )
            segments.extend(
                {"trace_id": problem.trace_id, "segment_index": index, "start": s.start, "end": s.end, "role": s.role}
                for index, s in enumerate(problem.segments)
            )
            distractors.extend(
                {"trace_id": problem.trace_id, "start": d.start, "end": d.end, "text": d.text} for d in problem.distractors
            )
    return WorldTables(
        problems=pd.DataFrame(problems),
        segments=pd.DataFrame(segments, columns=["trace_id", "segment_index", "start", "end", "role"]),
        distractors=pd.DataFrame(distractors, columns=["trace_id", "start", "end", "text"]),
        trace_records=[problem.to_record() for problem in traces],
    )


def sample_traces_markdown(problems: pd.DataFrame, segments: pd.DataFrame, n: int) -> str:
    """A readable sample of rendered traces with each segment's planted role, for MLflow and humans."""
    lines = ["# Sample traces of the embedded world", ""]
    sample = problems[problems["split"] == "traces"].head(n)
    for problem in sample.itertuples():
        lines += [f"## {problem.trace_id} (answer {problem.answer})", "", f"**Question.** {problem.question}", ""]
        for segment in segments[segments["trace_id"] == problem.trace_id].itertuples():
            text = problem.reasoning[segment.start : segment.end].strip()
            lines.append(f"- `{segment.role}`: {text}")
        lines.append("")
    return "\n".join(lines)
