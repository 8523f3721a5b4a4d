"""Nodes of the ``world`` pipeline: generate the embedded world, its tokenizer and its warm-up models."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tracesieve.config import WorldConfig
from tracesieve.lazy import lazy_module
from tracesieve.metrics import as_mlflow_metrics, training_metrics
from tracesieve.rendering import ANSWER_CLOSE, ANSWER_PREFIX, INSTRUCTION
from tracesieve.world.generate import generate_world, sample_traces_markdown
from tracesieve.world.problems import DECOY, FILLER, FINAL, SOURCE, UPSTREAM

warmup = lazy_module("tracesieve.world.warmup")  # torch, transformers, TRL: loaded when a model trains
world_tokenizer = lazy_module("tracesieve.world.tokenizer")  # transformers


def generate_world_tables(config: WorldConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[dict], str]:
    """Problems of every split, planted segments, planted distractors, the raw trace records and a sample."""
    tables = generate_world(config)
    sample = sample_traces_markdown(tables.problems, tables.segments, config.n_sample_traces)
    return tables.problems, tables.segments, tables.distractors, tables.trace_records, sample


def export_eval_problems(world_problems: pd.DataFrame) -> pd.DataFrame:
    """The held-out split as the evaluation table every model is graded on (a real env points at a file)."""
    held_out = world_problems[world_problems["split"] == "eval"]
    return pd.DataFrame(
        {
            "problem_id": held_out["trace_id"].to_numpy(),
            "question": held_out["question"].to_numpy(),
            "answer": held_out["answer"].astype(str).to_numpy(),
            "has_distractor": held_out["has_distractor"].to_numpy(),
            "heldout_skeleton": held_out["heldout_skeleton"].to_numpy(),
        }
    )


def build_world_tokenizer(world_problems: pd.DataFrame, config: WorldConfig):
    """A word-level tokenizer covering every word the world writes and every number it can produce."""
    texts = [
        *world_problems["question"], *world_problems["reasoning"],
        *world_problems["question_all_relevant"], *world_problems["reasoning_all_relevant"],
        INSTRUCTION, ANSWER_PREFIX + ANSWER_CLOSE,
    ]
    # Detours and decoys may step past max_value.
    return world_tokenizer.build_word_tokenizer(texts, numbers_up_to=2 * config.problems.max_value + 10)


def warmup_training_node(role: str):
    """The training node of one warm-up namespace (``teacher`` or ``student``): its size and schedule are
    ``world.<role>`` of the block Kedro validated once for the run."""

    def train_warmup_model(
        world_problems: pd.DataFrame, tokenizer, config: WorldConfig, init_model=None
    ) -> tuple[Any, dict, dict[str, float]]:
        """Train a Llama on the full traces of the training split (prompt masked, EOS supervised), from scratch
        or from the trained student (``init: student``)."""
        model, history, summary = warmup.train_warmup_model(world_problems, tokenizer, config, role, init_model)
        return model, training_metrics({}, history), summary

    return train_warmup_model


def evaluate_warmup_model(
    model, tokenizer, world_problems: pd.DataFrame, config: WorldConfig, training_summary: dict[str, float]
) -> tuple[pd.DataFrame, dict]:
    """Greedy generations on the held-out split, graded by exact match; the training summary and held-out metrics."""
    generations, metrics = warmup.evaluate_warmup_model(model, tokenizer, world_problems, config)
    return generations, as_mlflow_metrics({**training_summary, **metrics})


def summarize_world(
    world_problems: pd.DataFrame, world_segments: pd.DataFrame, world_distractors: pd.DataFrame, tokenizer
) -> dict[str, Any]:
    """Sizes of the world: problems per split, segments per role, distractors, trace lengths in tokens."""
    metrics: dict[str, float] = {f"problems_{split}": float(count) for split, count in world_problems["split"].value_counts().items()}
    for role, count in world_segments["role"].value_counts().items():
        metrics[f"segments_{role}"] = float(count)
    metrics["distractors"] = float(len(world_distractors))
    metrics["vocab_size"] = float(len(tokenizer))
    lengths = [len(ids) for ids in tokenizer(list(world_problems["reasoning"]), add_special_tokens=False)["input_ids"]]
    metrics["reasoning_tokens_mean"] = float(sum(lengths) / len(lengths))
    metrics["reasoning_tokens_max"] = float(max(lengths))
    metrics["decoy_trace_share"] = float(world_problems["decoy"].mean())
    # The share of trace tokens that filler takes (what a model imitating full traces spends on it), on the
    # exported traces: every split is drawn alike, and tokenising all of them would take seconds.
    traces = world_problems.loc[world_problems["split"] == "traces", ["trace_id", "reasoning"]]
    texts = world_segments.merge(traces, on="trace_id")
    texts["text"] = [reasoning[start:end] for reasoning, start, end in zip(texts["reasoning"], texts["start"], texts["end"], strict=True)]
    texts["n_tokens"] = [len(ids) for ids in tokenizer(list(texts["text"]), add_special_tokens=False)["input_ids"]]
    tokens_by_role = texts.groupby("role")["n_tokens"].sum()
    metrics["filler_token_share"] = float(tokens_by_role.reindex([*FILLER, DECOY]).fillna(0).sum() / tokens_by_role.sum())
    metrics |= position_role_shares(world_segments[world_segments["trace_id"].isin(traces["trace_id"])])
    metrics["problems_eval_heldout_skeleton"] = float(world_problems["heldout_skeleton"].sum())
    return as_mlflow_metrics(metrics)


def position_role_shares(world_segments: pd.DataFrame) -> dict[str, float]:
    """How often the first, penultimate and last segments of a trace hold the roles that the authors' kept set
    would get by position alone (the first step, the source step, the final segment): 1.0 means position
    tells the role."""
    rows = [trace.sort_values("segment_index")["role"].tolist() for _, trace in world_segments.groupby("trace_id")]
    return {
        "position_role_share.first_is_step": float(sum(roles[0] in (SOURCE, UPSTREAM) for roles in rows) / len(rows)),
        "position_role_share.penultimate_is_source": float(sum(len(roles) > 1 and roles[-2] == SOURCE for roles in rows) / len(rows)),
        "position_role_share.last_is_final": float(sum(roles[-1] == FINAL for roles in rows) / len(rows)),
    }


def share_models_with_leaf(teacher_model, student_model, tokenizer):
    """The world's teacher, student and tokenizer, published as LeaF's (a real environment points those
    names at other folders: LeaF distils other models than the segment-level method trains)."""
    return teacher_model, student_model, tokenizer
