"""Batched generation from the paper's prompt format."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from tracesieve.rendering import render_prompt


@dataclass(frozen=True)
class Completion:
    """One generated continuation of a prompt."""

    text: str
    n_tokens: int
    truncated: bool  # stopped by max_new_tokens rather than by EOS


@torch.inference_mode()
def generate_completions(
    model,
    tokenizer,
    questions: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 64,
    progress: bool = True,
) -> list[Completion]:
    """Greedy continuations of the rendered prompt of each question, batched with left padding."""
    prompts = [render_prompt(tokenizer, question) for question in questions]
    device = next(model.parameters()).device
    completions: list[Completion] = []
    original_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only models continue from the last position of each row
    try:
        for start in tqdm(range(0, len(prompts), batch_size), desc="generating", disable=not progress):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {key: value.to(device) for key, value in batch.items()}
            output = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            for row in new_tokens.tolist():
                ended = tokenizer.eos_token_id in row
                length = row.index(tokenizer.eos_token_id) + 1 if ended else len(row)
                text = tokenizer.decode(row[:length], skip_special_tokens=True)
                completions.append(Completion(text=text, n_tokens=length, truncated=not ended))
    finally:
        tokenizer.padding_side = original_side
    return completions
