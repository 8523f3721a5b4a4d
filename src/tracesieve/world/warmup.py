"""The world's warm-up models: a teacher trained on full traces (its gradients must mean something) and a
weaker base student that leaves room for fine-tuning to improve, both Llamas trained from scratch."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import torch
from transformers import set_seed

from tracesieve.answers import exact_match
from tracesieve.config import ModelSpec, TrainingConfig, WorldConfig
from tracesieve.content_keys import content_key
from tracesieve.generation import generate_completions
from tracesieve.metrics import wilson_interval
from tracesieve.modeling import build_llama, count_parameters
from tracesieve.training import encode_for_sft, train_causal_lm

logger = logging.getLogger(__name__)


ROLES = ("teacher", "student")


def warmup_checkpoint_dir(
    config: WorldConfig, spec: ModelSpec, vocab_size: int, *, all_relevant: bool = False, init_model=None
) -> Path:
    """A checkpoint folder keyed by everything that shapes the trained weights (the weights it starts from
    included), so resuming is always safe."""
    settings = {
        "world": config.model_dump(exclude={"teacher", "student", "n_eval", "n_eval_heldout_skeleton", "n_sample_traces", "student_warmup"}),
        "spec": spec.model_dump(),
        "vocab": vocab_size,
    }
    if all_relevant:  # absent otherwise, so that the teacher's key does not depend on the student's data
        settings["data"] = "all_relevant"
    models = [init_model] if init_model is not None else []
    return Path(config.checkpoint_dir) / f"warmup-{content_key(settings, models=models, length=12)}"


def warmup_examples(world_problems: pd.DataFrame, config: WorldConfig, role: str) -> pd.DataFrame:
    """The (question, reasoning, answer) rows one warm-up model trains on: the training split, in its
    all-relevant form for the student when ``world.student_warmup`` says so."""
    if role not in ROLES:
        raise ValueError(f"unknown warm-up role {role!r}; expected one of {ROLES}")
    train = world_problems[world_problems["split"] == "train"]
    if role == "student" and config.student_warmup == "all_relevant":
        columns = {"question_all_relevant": "question", "reasoning_all_relevant": "reasoning", "answer_all_relevant": "answer"}
        return train[list(columns)].rename(columns=columns)
    return train[["question", "reasoning", "answer"]]


def train_warmup_model(world_problems: pd.DataFrame, tokenizer, config: WorldConfig, role: str, init_model=None):
    """Train a Llama (``world.<role>`` says its size) on the full traces of the training split (prompt
    masked, EOS supervised), from scratch or, with ``init: student``, from a copy of ``init_model`` (the
    trained student); returns (the model, its loss history, a summary: parameters, seconds, examples, loss)."""
    train = warmup_examples(world_problems, config, role)
    spec: ModelSpec = getattr(config, role)
    if (spec.init == "student") != (init_model is not None):
        raise ValueError(f"world.{role}.init is {spec.init!r}: {'give it the trained student' if spec.init == 'student' else 'it takes no model to start from'}")
    set_seed(config.seed)
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
        max_positions=max(512, longest + config.max_new_tokens) if init_model is None else init_model.config.max_position_embeddings,
        seed=config.seed,
    )
    if init_model is not None:
        # The student's weights in a model of its own. Not copy.deepcopy: a model that went through a Trainer
        # carries accelerate's forward wrapper, a closure over the original, so a deep copy trains its own
        # weights but answers with the student's (measured: identical logits after 300 steps).
        model.load_state_dict(init_model.state_dict())
    training = TrainingConfig(
        max_steps=spec.train_steps,
        batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        logging_steps=max(1, spec.train_steps // 50),
        save_steps=max(1, spec.train_steps // 4),
        seed=config.seed,
        bf16=False,  # the world's tiny models train in float32 everywhere
    )
    started = time.perf_counter()
    model, history = train_causal_lm(
        model, examples, training, output_dir=warmup_checkpoint_dir(
            config, spec, len(tokenizer), all_relevant=role == "student" and config.student_warmup == "all_relevant", init_model=init_model
        ), tokenizer=tokenizer
    )
    seconds = time.perf_counter() - started
    summary = {
        "parameters": float(count_parameters(model)),
        "train_seconds": seconds,
        "train_examples": float(len(examples)),
        "final_train_loss": history[-1]["loss"] if history else float("nan"),
    }
    logger.info("Trained a %d-parameter model for %d steps in %.0f s", count_parameters(model), spec.train_steps, seconds)
    return model, history, summary


@torch.inference_mode()
def evaluate_warmup_model(model, tokenizer, world_problems: pd.DataFrame, config: WorldConfig) -> tuple[pd.DataFrame, dict[str, float]]:
    """Greedy generations on the held-out split, graded by exact match of the last boxed answer; the
    held-out accuracy with its 95% Wilson interval, by distractor, lengths, truncation, seconds."""
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
    return generations, metrics
