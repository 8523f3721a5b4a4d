"""Teacher-to-student distillation with LeaF's counterfactuals, on the transformers Trainer.

    L = lambda * KL(p_T(y|X) || p_S(y|X)) + (1 - lambda) * KL(p_T(y|X\\A) || p_S(y|X\\A))

Forward KL at temperature t (scaled by t^2, so gradients keep their size across temperatures), averaged
over the response tokens of the batch. Logits are shifted: the distribution that predicts response token
k is read at position k - 1, which the authors' code got wrong by one. Original and counterfactual are one
training item, so both terms of an example meet in the same step (the authors' code only appended pruned
copies to the data file). An example without a kept counterfactual has X\\A = X: its second term is its
first. Standard KD is the same trainer with lambda = 1 and no counterfactuals. The teacher stays in eval
mode, frozen, under no_grad.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from transformers import Trainer, set_seed

from tracesieve.content_keys import content_key
from tracesieve.leaf.examples import EncodedLeafExample, encode_leaf_example, leaf_examples
from tracesieve.training import train_causal_lm

if TYPE_CHECKING:  # the schemas import this package's names
    from tracesieve.config import DistillationVariant, LeafConfig, TrainingConfig


def distillation_item(original: EncodedLeafExample, counterfactual: EncodedLeafExample | None = None) -> dict[str, list[int]]:
    """One training item: the original sequence and, when there is one, its counterfactual."""
    item = {"input_ids": list(original.input_ids), "response_mask": [int(flag) for flag in original.response_mask]}
    if counterfactual is not None:
        item["pruned_input_ids"] = list(counterfactual.input_ids)
        item["pruned_response_mask"] = [int(flag) for flag in counterfactual.response_mask]
    return item


def _pad(rows: Sequence[list[int]], value: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [value] * (width - len(row)) for row in rows], dtype=torch.long)


class DistillationCollator:
    """Right-pads originals and counterfactuals separately; ``pruned_rows`` says whose counterfactual is whose."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        batch = {
            "input_ids": _pad([item["input_ids"] for item in items], self.pad_token_id),
            "attention_mask": _pad([[1] * len(item["input_ids"]) for item in items], 0),
            "response_mask": _pad([item["response_mask"] for item in items], 0),
        }
        rows = [row for row, item in enumerate(items) if "pruned_input_ids" in item]
        if rows:
            batch["pruned_rows"] = torch.tensor(rows, dtype=torch.long)
            batch["pruned_input_ids"] = _pad([items[row]["pruned_input_ids"] for row in rows], self.pad_token_id)
            batch["pruned_attention_mask"] = _pad([[1] * len(items[row]["pruned_input_ids"]) for row in rows], 0)
            batch["pruned_response_mask"] = _pad([items[row]["pruned_response_mask"] for row in rows], 0)
        return batch


def forward_kl_per_token(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, response_mask: torch.Tensor, temperature: float = 1.0, vocab_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """t^2 * KL(softmax(z_T/t) || softmax(z_S/t)) for every response token; and the batch row of each.

    ``response_mask[b, k]`` marks response token k; the logits that predict it sit at position k - 1.
    ``vocab_size`` drops padding rows of the vocabulary projection (models often round it up).
    """
    predicts_response = response_mask[:, 1:].bool()
    rows = predicts_response.nonzero()[:, 0]
    teacher = teacher_logits[:, :-1][predicts_response].float()
    student = student_logits[:, :-1][predicts_response].float()
    if vocab_size is not None:
        teacher, student = teacher[:, :vocab_size], student[:, :vocab_size]
    teacher_log_probs = torch.log_softmax(teacher / temperature, dim=-1)
    student_log_probs = torch.log_softmax(student / temperature, dim=-1)
    kl = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(-1)
    return kl * temperature**2, rows


def leaf_objective(
    original_kl: torch.Tensor, original_rows: torch.Tensor, pruned_kl: torch.Tensor | None, pruned_rows: torch.Tensor | None, original_weight: float
) -> torch.Tensor:
    """lambda * mean KL on the originals + (1 - lambda) * mean KL on the counterfactuals, token-averaged;
    rows without a counterfactual stand in with their original tokens (nothing pruned: X\\A = X)."""
    if pruned_kl is None or pruned_rows is None or original_weight == 1:
        return original_kl.mean()
    without = ~torch.isin(original_rows, pruned_rows)
    counterfactual_term = torch.cat([pruned_kl, original_kl[without]]).mean()
    return original_weight * original_kl.mean() + (1 - original_weight) * counterfactual_term


class DistillationTrainer(Trainer):
    """A Trainer whose loss is LeaF's objective against a frozen teacher."""

    def __init__(self, *args, teacher, temperature: float, original_weight: float, vocab_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 <= original_weight <= 1:
            raise ValueError(f"lambda must be in [0, 1], got {original_weight}")
        self.teacher = teacher.to(self.args.device).eval().requires_grad_(False)
        self.temperature = temperature
        self.original_weight = original_weight
        self.vocab_size = vocab_size

    def _token_kl(self, model, input_ids, attention_mask, response_mask):
        with torch.no_grad():
            teacher_logits = self.teacher(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        student_logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        return forward_kl_per_token(teacher_logits, student_logits, response_mask, self.temperature, self.vocab_size)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        original_kl, original_rows = self._token_kl(model, inputs["input_ids"], inputs["attention_mask"], inputs["response_mask"])
        pruned_kl = pruned_rows = None
        if "pruned_rows" in inputs and self.original_weight < 1:
            pruned_kl, _ = self._token_kl(model, inputs["pruned_input_ids"], inputs["pruned_attention_mask"], inputs["pruned_response_mask"])
            pruned_rows = inputs["pruned_rows"]
        loss = leaf_objective(original_kl, original_rows, pruned_kl, pruned_rows, self.original_weight)
        return (loss, None) if return_outputs else loss


def distill(
    student,
    teacher,
    items: Sequence[dict[str, list[int]]],
    config: TrainingConfig,
    *,
    output_dir: str | Path,
    pad_token_id: int,
    vocab_size: int,
    temperature: float = 1.0,
    original_weight: float = 0.5,
):
    """Distil ``teacher`` into ``student`` on ``items``; returns (the student, the logged loss history).

    Checkpoints and resuming work as in ``training.train_causal_lm``, which this runs with the LeaF loss.
    """
    for name, model in (("teacher", teacher), ("student", student)):
        rows = model.get_output_embeddings().weight.shape[0]
        if rows < vocab_size:
            raise ValueError(f"the {name}'s output layer has {rows} rows, fewer than the tokenizer's {vocab_size} tokens")
    return train_causal_lm(
        student,
        items,
        config,
        output_dir=output_dir,
        pad_token_id=pad_token_id,
        collator=DistillationCollator(pad_token_id),
        trainer_class=DistillationTrainer,
        trainer_kwargs={"teacher": teacher, "temperature": temperature, "original_weight": original_weight, "vocab_size": vocab_size},
    )


def distillation_items(
    traces: pd.DataFrame, counterfactuals: pd.DataFrame, tokenizer, config: LeafConfig, variant: DistillationVariant
) -> list[dict[str, list[int]]]:
    """Training items in trace order: the original (whole response, instruction level) of every trace, paired
    with each of its kept counterfactuals when the variant uses them (one item per counterfactual); a trace
    without one is an item alone. A trace over ``config.distillation.max_length`` tokens stops the run."""
    originals = leaf_examples(traces, tokenizer, level="instruction")
    analysed = originals if config.level == "instruction" else leaf_examples(traces, tokenizer, level=config.level, response_prefix_share=config.response_prefix_share)
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


def distillation_checkpoint_dir(config: LeafConfig, variant: DistillationVariant, teacher, student, items: list[dict]) -> str:
    """Keyed by the optimisation, the variant, both models' weights and the items: resuming is always safe."""
    settings = {"distillation": config.distillation.model_dump(exclude={"checkpoint_dir"}), "variant": variant.model_dump()}
    key = content_key(settings, models=[teacher, student], data=items, length=12)
    return f"{config.distillation.checkpoint_dir}/distill-{key}"


def distill_variant(
    student, teacher, tokenizer, traces: pd.DataFrame, checked_counterfactuals: pd.DataFrame, config: LeafConfig, variant: DistillationVariant
):
    """Distil ``teacher`` into ``student`` with one variant's lambda and counterfactuals (plain KD: lambda 1,
    none), the same steps, seed and optimiser for every variant; returns (the student, the loss history,
    a summary: lambda, items, items with a counterfactual, response tokens, steps, seconds, final loss)."""
    items = distillation_items(traces, checked_counterfactuals, tokenizer, config, variant)
    output_dir = distillation_checkpoint_dir(config, variant, teacher, student, items)
    set_seed(config.distillation.seed)
    started = time.perf_counter()
    model, history = distill(
        student,
        teacher,
        items,
        config.distillation,
        output_dir=output_dir,
        pad_token_id=tokenizer.pad_token_id,
        vocab_size=len(tokenizer),
        temperature=config.distillation.temperature,
        original_weight=variant.original_weight,
    )
    summary = {
        "lambda": variant.original_weight,
        "counterfactuals": variant.counterfactuals,
        "train_items": len(items),
        "items_with_counterfactual": sum("pruned_input_ids" in item for item in items),
        "response_tokens": sum(sum(item["response_mask"]) for item in items),
        "train_steps": config.distillation.max_steps,
        "train_seconds": time.perf_counter() - started,
        "final_train_loss": history[-1]["loss"] if history else float("nan"),
    }
    return model, history, summary
