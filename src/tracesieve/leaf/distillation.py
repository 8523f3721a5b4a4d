"""Teacher-to-student distillation with LeaF's counterfactuals, as an extension of TRL's SFTTrainer.

    L = lambda * KL(p_T(y|X) || p_S(y|X)) + (1 - lambda) * KL(p_T(y|X\\A) || p_S(y|X\\A))

Forward KL at temperature t (scaled by t^2, so gradients keep their size across temperatures), averaged
over the response tokens of the batch. Logits are shifted: the distribution that predicts response token
k is read at position k - 1, which the authors' code got wrong by one. Original and counterfactual are one
training item, so both terms of an example meet in the same step (the authors' code only appended pruned
copies to the data file). An example without a kept counterfactual has X\\A = X: its second term is its
first. Standard KD is the same trainer with lambda = 1 and no counterfactuals. The teacher stays in eval
mode, frozen, under no_grad.

Long traces: with ``kl_chunk_size`` set (the default), neither model's full-vocabulary logits are built for
the whole response. Both models return their last hidden states; the KL is computed a chunk of response
tokens at a time, each chunk projected through both LM heads, in float32, under activation checkpointing, so
only one chunk's logits exist at once, in the forward and in the backward pass.
"""

from __future__ import annotations

import functools
import time
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from torch.utils.checkpoint import checkpoint
from transformers import set_seed
from trl import SFTConfig, SFTTrainer

from tracesieve.content_keys import content_key
from tracesieve.leaf.examples import EncodedLeafExample, encode_leaf_example, leaf_examples
from tracesieve.modeling import right_pad
from tracesieve.training import train_causal_lm, within_length

if TYPE_CHECKING:  # the schemas import this package's names
    from tracesieve.config import DistillationVariant, LeafConfig, TrainingConfig


def distillation_item(original: EncodedLeafExample, counterfactual: EncodedLeafExample | None = None) -> dict[str, list[int]]:
    """One training item: the original sequence and, when there is one, its counterfactual."""
    item = {"input_ids": list(original.input_ids), "response_mask": [int(flag) for flag in original.response_mask]}
    if counterfactual is not None:
        item["pruned_input_ids"] = list(counterfactual.input_ids)
        item["pruned_response_mask"] = [int(flag) for flag in counterfactual.response_mask]
    return item


class DistillationCollator:
    """Right-pads originals and counterfactuals separately; ``pruned_rows`` says whose counterfactual is whose."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        batch = {
            "input_ids": right_pad([item["input_ids"] for item in items], self.pad_token_id),
            "attention_mask": right_pad([[1] * len(item["input_ids"]) for item in items], 0),
            "response_mask": right_pad([item["response_mask"] for item in items], 0),
        }
        # Items without a counterfactual lack its keys (a datasets table gives them None there).
        rows = [row for row, item in enumerate(items) if item.get("pruned_input_ids") is not None]
        if rows:
            batch["pruned_rows"] = torch.tensor(rows, dtype=torch.long)
            batch["pruned_input_ids"] = right_pad([items[row]["pruned_input_ids"] for row in rows], self.pad_token_id)
            batch["pruned_attention_mask"] = right_pad([[1] * len(items[row]["pruned_input_ids"]) for row in rows], 0)
            batch["pruned_response_mask"] = right_pad([items[row]["pruned_response_mask"] for row in rows], 0)
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
    return scaled_forward_kl(teacher, student, temperature, vocab_size), rows


def scaled_forward_kl(teacher: torch.Tensor, student: torch.Tensor, temperature: float, vocab_size: int | None) -> torch.Tensor:
    """t^2 * KL(softmax(z_T/t) || softmax(z_S/t)) per row of float32 logits (the one KL formula: the whole
    response at once and each chunk of it read it); ``vocab_size`` drops the projection's padding rows."""
    if vocab_size is not None:
        teacher, student = teacher[:, :vocab_size], student[:, :vocab_size]
    teacher_log_probs = torch.log_softmax(teacher / temperature, dim=-1)
    student_log_probs = torch.log_softmax(student / temperature, dim=-1)
    return (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(-1) * temperature**2


def add_hidden_state_forward(model) -> None:
    """Let ``model(..., hidden_states_only=True)`` return the backbone's last hidden states and skip the LM
    head. Patched on the model itself (under PEFT, on its base model), so a call through a DDP, FSDP or PEFT
    wrapper reaches it like any forward, and gradients sync as usual; other calls are unchanged."""
    causal_lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(causal_lm, "_tracesieve_hidden_forward", False):
        return
    config = causal_lm.config.get_text_config()
    for name in ("final_logit_softcapping", "logit_scale", "logits_scaling"):
        if getattr(config, name, None) not in (None, 1, 1.0):
            raise ValueError(
                f"{type(causal_lm).__name__} transforms its logits ({name}); the chunked KL projects the hidden states "
                "through the LM head alone. Set leaf.distillation.kl_chunk_size: null for this model."
            )
    original_forward = causal_lm.forward

    @functools.wraps(type(causal_lm).forward)
    def forward(self, *args, hidden_states_only: bool = False, **kwargs):
        if not hidden_states_only:
            return original_forward(*args, **kwargs)
        return self.base_model(*args, **kwargs).last_hidden_state

    causal_lm.forward = types.MethodType(forward, causal_lm)
    causal_lm._tracesieve_hidden_forward = True


def _chunk_kl(teacher_hidden, student_hidden, teacher_head, student_head, temperature: float, vocab_size: int | None):
    with torch.no_grad():
        teacher = teacher_head(teacher_hidden).float()
    return scaled_forward_kl(teacher, student_head(student_hidden).float(), temperature, vocab_size)


def chunked_forward_kl_per_token(
    teacher_hidden: torch.Tensor,
    student_hidden: torch.Tensor,
    teacher_head: torch.nn.Module,
    student_head: torch.nn.Module,
    response_mask: torch.Tensor,
    temperature: float = 1.0,
    vocab_size: int | None = None,
    chunk_size: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``forward_kl_per_token`` from the models' last hidden states, ``chunk_size`` response tokens at a time.

    Each chunk goes through both LM heads under activation checkpointing: its logits are freed after its KL
    and rebuilt in the backward pass, so peak memory holds one chunk's logits, not the whole response's.
    """
    predicts_response = response_mask[:, 1:].bool()
    rows = predicts_response.nonzero()[:, 0]
    teacher_states = teacher_hidden[:, :-1][predicts_response]
    student_states = student_hidden[:, :-1][predicts_response]
    chunks = [
        checkpoint(
            _chunk_kl, teacher_states[start : start + chunk_size], student_states[start : start + chunk_size],
            teacher_head, student_head, temperature, vocab_size, use_reentrant=False,
        )
        for start in range(0, len(student_states), chunk_size)
    ]
    kl = torch.cat(chunks) if chunks else student_states.new_zeros(0)
    return kl, rows


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


@dataclass
class LeafDistillationConfig(SFTConfig):
    """SFTConfig plus LeaF's distillation settings, the shape of TRL's ``GKDConfig``."""

    temperature: float = field(default=1.0, metadata={"help": "t of the forward KL at temperature t (times t^2)."})
    original_weight: float = field(default=0.5, metadata={"help": "lambda: the original's share of the loss; 1 is plain KD."})
    kl_chunk_size: int | None = field(
        default=None, metadata={"help": "response tokens per KL chunk through both LM heads; None: all logits at once."}
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.original_weight <= 1:
            raise ValueError(f"lambda must be in [0, 1], got {self.original_weight}")


class DistillationTrainer(SFTTrainer):
    """TRL's SFTTrainer with LeaF's objective against a frozen teacher in ``compute_loss`` (TRL's GKDTrainer
    extends it the same way). The teacher is prepared through the trainer's accelerator in evaluation mode,
    so it lands on the student's device, under the same mixed precision, and stays frozen."""

    def __init__(self, *args, teacher_model, vocab_size: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.teacher_model = self.accelerator.prepare_model(teacher_model.eval().requires_grad_(False), evaluation_mode=True)
        self.vocab_size = vocab_size
        if self.args.kl_chunk_size is not None:
            add_hidden_state_forward(self.teacher_model)
            add_hidden_state_forward(self.model)

    def _token_kl(self, model, input_ids, attention_mask, response_mask):
        temperature, teacher = self.args.temperature, self.teacher_model
        if self.args.kl_chunk_size is not None:
            with torch.no_grad():
                teacher_hidden = teacher(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, hidden_states_only=True)
            student_hidden = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, hidden_states_only=True)
            return chunked_forward_kl_per_token(
                teacher_hidden, student_hidden, self.accelerator.unwrap_model(teacher).get_output_embeddings(),
                self.accelerator.unwrap_model(model).get_output_embeddings(), response_mask,
                temperature, self.vocab_size, self.args.kl_chunk_size,
            )
        with torch.no_grad():
            teacher_logits = teacher(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        student_logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
        return forward_kl_per_token(teacher_logits, student_logits, response_mask, temperature, self.vocab_size)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        original_kl, original_rows = self._token_kl(model, inputs["input_ids"], inputs["attention_mask"], inputs["response_mask"])
        pruned_kl = pruned_rows = None
        if "pruned_rows" in inputs and self.args.original_weight < 1:
            pruned_kl, _ = self._token_kl(model, inputs["pruned_input_ids"], inputs["pruned_attention_mask"], inputs["pruned_response_mask"])
            pruned_rows = inputs["pruned_rows"]
        loss = leaf_objective(original_kl, original_rows, pruned_kl, pruned_rows, self.args.original_weight)
        return (loss, None) if return_outputs else loss


def distill(
    student,
    teacher,
    items: Sequence[dict[str, list[int]]],
    config: TrainingConfig,
    *,
    output_dir: str | Path,
    tokenizer,
    vocab_size: int,
    temperature: float = 1.0,
    original_weight: float = 0.5,
    kl_chunk_size: int | None = None,
    callbacks: Sequence = (),
):
    """Distil ``teacher`` into ``student`` on ``items``; returns (the student, the logged loss history).
    ``kl_chunk_size``: response tokens per KL chunk (None: all logits at once).

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
        tokenizer=tokenizer,
        collator=DistillationCollator(tokenizer.pad_token_id),
        callbacks=callbacks,
        trainer_class=DistillationTrainer,
        arguments_class=LeafDistillationConfig,
        arguments={"temperature": temperature, "original_weight": original_weight, "kl_chunk_size": kl_chunk_size},
        trainer_kwargs={"teacher_model": teacher, "vocab_size": vocab_size},
    )


def distillation_items(
    traces: pd.DataFrame, counterfactuals: pd.DataFrame, tokenizer, config: LeafConfig, variant: DistillationVariant
) -> tuple[list[dict[str, list[int]]], pd.DataFrame]:
    """Training items in trace order: the original (whole response, instruction level) of every trace, paired
    with each of its kept counterfactuals when the variant uses them (one item per counterfactual); a trace
    without one is an item alone. Returns (items, length rejects): a trace over
    ``config.distillation.max_length`` tokens stops the run or, with ``over_length: reject``, is left out
    and listed (a counterfactual is never longer than its original)."""
    originals = leaf_examples(traces, tokenizer, level="instruction")
    analysed = originals if config.level == "instruction" else leaf_examples(traces, tokenizer, level=config.level, response_prefix_share=config.response_prefix_share)
    kept = counterfactuals[counterfactuals["kept"].astype(bool)] if variant.counterfactuals else counterfactuals.iloc[0:0]
    by_trace = {trace_id: group for trace_id, group in kept.groupby("trace_id")}
    trace_ids = sorted(originals)
    encoded = {trace_id: encode_leaf_example(tokenizer, originals[trace_id]) for trace_id in trace_ids}
    settings = config.distillation
    fits, rejects = within_length(
        trace_ids, [len(encoded[trace_id].input_ids) for trace_id in trace_ids], settings.max_length, settings.over_length, "leaf.distillation"
    )
    items = []
    for trace_id in (trace_id for trace_id, fit in zip(trace_ids, fits, strict=True) if fit):
        original = encoded[trace_id]
        group = by_trace.get(trace_id)
        if group is None:
            items.append(distillation_item(original))
            continue
        for row in group.sort_values("counterfactual_index").itertuples():
            pruned = analysed[trace_id].pruned([tuple(span) for span in row.spans])
            items.append(distillation_item(original, encode_leaf_example(tokenizer, pruned)))
    if not items:
        raise ValueError(f"every trace is over leaf.distillation.max_length={settings.max_length}: nothing is left to distil on")
    return items, rejects


def distillation_checkpoint_dir(config: LeafConfig, variant: DistillationVariant, teacher, student, items: list[dict]) -> str:
    """Keyed by the optimisation, the variant, both models' weights and the items: resuming is always safe."""
    # kl_chunk_size changes how the loss is computed, not its value: a checkpoint resumes across it.
    settings = {"distillation": config.distillation.model_dump(exclude={"checkpoint_dir", "kl_chunk_size"}), "variant": variant.model_dump()}
    key = content_key(settings, models=[teacher, student], data=items, length=12)
    return f"{config.distillation.checkpoint_dir}/distill-{key}"


def distill_variant(
    student, teacher, tokenizer, traces: pd.DataFrame, checked_counterfactuals: pd.DataFrame, config: LeafConfig, variant: DistillationVariant
):
    """Distil ``teacher`` into ``student`` with one variant's lambda and counterfactuals (plain KD: lambda 1,
    none), the same steps, seed and optimiser for every variant; returns (the student, the loss history,
    a summary: lambda, items, items with a counterfactual, response tokens, steps, seconds, final loss; and
    the length rejects)."""
    items, rejects = distillation_items(traces, checked_counterfactuals, tokenizer, config, variant)
    output_dir = distillation_checkpoint_dir(config, variant, teacher, student, items)
    set_seed(config.distillation.seed)
    started = time.perf_counter()
    model, history = distill(
        student,
        teacher,
        items,
        config.distillation,
        output_dir=output_dir,
        tokenizer=tokenizer,
        vocab_size=len(tokenizer),
        temperature=config.distillation.temperature,
        original_weight=variant.original_weight,
        kl_chunk_size=config.distillation.kl_chunk_size,
    )
    summary = {
        "lambda": variant.original_weight,
        "counterfactuals": variant.counterfactuals,
        "train_items": len(items),
        "length_rejects": len(rejects),
        "items_with_counterfactual": sum("pruned_input_ids" in item for item in items),
        # What LeaF has to distil beyond KD: the share of items whose second term differs from the first.
        "counterfactual_item_share": sum("pruned_input_ids" in item for item in items) / len(items),
        "response_tokens": sum(sum(item["response_mask"]) for item in items),
        "train_steps": config.distillation.max_steps,
        "train_seconds": time.perf_counter() - started,
        "final_train_loss": history[-1]["loss"] if history else float("nan"),
    }
    return model, history, summary, rejects
