"""Nodes of the ``world`` pipeline: generate the embedded world, its tokenizer and its warm-up models."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import set_seed

from tracesieve.answers import exact_match
from tracesieve.config import ModelSpec, WorldConfig
from tracesieve.generation import generate_completions
from tracesieve.metrics import as_mlflow_metrics, wilson_interval
from tracesieve.modeling import build_llama, count_parameters
from tracesieve.rendering import ANSWER_CLOSE, ANSWER_PREFIX, INSTRUCTION
from tracesieve.training import TrainingConfig, encode_for_sft, train_causal_lm
from tracesieve.world.generate import generate_world, sample_traces_markdown
from tracesieve.world.tokenizer import build_word_tokenizer

logger = logging.getLogger(__name__)


def generate_world_tables(world_params: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, list[dict], str]:
    """Problems of every split, planted segments, planted distractors, the raw trace records and a sample."""
    config = WorldConfig.from_params(world_params, name="world")
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
        }
    )


def build_world_tokenizer(world_problems: pd.DataFrame, world_params: dict[str, Any]):
    """A word-level tokenizer covering every word the world writes and every number it can produce."""
    config = WorldConfig.from_params(world_params, name="world")
    texts = [*world_problems["question"], *world_problems["reasoning"], INSTRUCTION, ANSWER_PREFIX + ANSWER_CLOSE]
    # Detours may double or add a distractor to the largest value, so numbers go beyond max_value.
    return build_word_tokenizer(texts, numbers_up_to=2 * config.problems.max_value + 10)


def _checkpoint_dir(config: WorldConfig, spec: ModelSpec, vocab_size: int) -> Path:
    """A checkpoint folder keyed by everything that shapes the trained weights, so resuming is always safe."""
    fingerprint = json.dumps(
        {"world": config.model_dump(exclude={"teacher", "student", "n_eval", "n_sample_traces"}), "spec": spec.model_dump(), "vocab": vocab_size},
        sort_keys=True,
    )
    return Path(config.checkpoint_dir) / f"warmup-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"


def train_warmup_model(
    world_problems: pd.DataFrame, tokenizer, spec_params: dict[str, Any], world_params: dict[str, Any]
) -> tuple[Any, dict[str, list[dict[str, float]]], dict[str, float]]:
    """Train a Llama from scratch on the full traces of the training split (prompt masked, EOS supervised)."""
    config = WorldConfig.from_params(world_params, name="world")
    spec = ModelSpec.model_validate(spec_params)
    set_seed(config.seed)
    train = world_problems[world_problems["split"] == "train"]
    examples = [
        encode_for_sft(tokenizer, row.question, row.reasoning, row.answer) for row in train.itertuples(index=False)
    ]
    longest = max(len(example["input_ids"]) for example in examples)
    model = build_llama(
        tokenizer,
        hidden_size=spec.hidden_size,
        num_layers=spec.num_layers,
        num_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_positions=max(512, longest + config.max_new_tokens),
        seed=config.seed,
    )
    training = TrainingConfig(
        max_steps=spec.train_steps,
        batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        logging_steps=max(1, spec.train_steps // 50),
        save_steps=max(1, spec.train_steps // 4),
        seed=config.seed,
    )
    started = time.perf_counter()
    model, history = train_causal_lm(
        model, examples, training, output_dir=_checkpoint_dir(config, spec, len(tokenizer)), pad_token_id=tokenizer.pad_token_id
    )
    seconds = time.perf_counter() - started
    curves = {
        "train_loss": [{"step": entry["step"], "value": entry["loss"]} for entry in history],
        "learning_rate": [{"step": entry["step"], "value": entry["learning_rate"]} for entry in history],
    }
    summary = {
        "parameters": float(count_parameters(model)),
        "train_seconds": seconds,
        "train_examples": float(len(examples)),
        "final_train_loss": history[-1]["loss"] if history else float("nan"),
    }
    logger.info("Trained a %d-parameter model for %d steps in %.0f s", count_parameters(model), spec.train_steps, seconds)
    return model, curves, summary


@torch.inference_mode()
def evaluate_warmup_model(
    model, tokenizer, world_problems: pd.DataFrame, world_params: dict[str, Any], training_summary: dict[str, float]
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Greedy generations on the held-out split, graded by exact match of the last boxed answer."""
    config = WorldConfig.from_params(world_params, name="world")
    held_out = world_problems[world_problems["split"] == "eval"]
    started = time.perf_counter()
    completions = generate_completions(
        model, tokenizer, list(held_out["question"]), max_new_tokens=config.max_new_tokens, batch_size=config.eval_batch_size
    )
    seconds = time.perf_counter() - started
    correct = [exact_match(completion.text, gold) for completion, gold in zip(completions, held_out["answer"], strict=True)]
    generations = pd.DataFrame(
        {
            "trace_id": held_out["trace_id"].to_numpy(),
            "has_distractor": held_out["has_distractor"].to_numpy(),
            "answer": held_out["answer"].to_numpy(),
            "completion": [completion.text for completion in completions],
            "n_tokens": [completion.n_tokens for completion in completions],
            "truncated": [completion.truncated for completion in completions],
            "correct": correct,
        }
    )
    accuracy = float(generations["correct"].mean())
    low, high = wilson_interval(int(generations["correct"].sum()), len(generations))
    metrics = {
        **training_summary,
        "heldout_accuracy": accuracy,
        "heldout_accuracy_ci_low": low,
        "heldout_accuracy_ci_high": high,
        "heldout_accuracy_with_distractor": float(generations.loc[generations["has_distractor"], "correct"].mean()),
        "heldout_accuracy_without_distractor": float(generations.loc[~generations["has_distractor"], "correct"].mean()),
        "heldout_mean_response_tokens": float(generations["n_tokens"].mean()),
        "heldout_truncated_share": float(generations["truncated"].mean()),
        "heldout_problems": float(len(generations)),
        "eval_seconds": seconds,
    }
    logger.info("Held-out exact-answer accuracy %.3f [%.3f, %.3f] on %d problems", accuracy, low, high, len(generations))
    return generations, as_mlflow_metrics(metrics)


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
    return as_mlflow_metrics(metrics)


def share_models_with_leaf(teacher_model, student_model, tokenizer):
    """The world's teacher, student and tokenizer, published as LeaF's (a real environment points those
    names at other folders: LeaF distils other models than the segment-level method trains)."""
    return teacher_model, student_model, tokenizer
