"""Batched generation from the paper's prompt format: greedy, or n seeded samples per prompt."""

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
    prompt_index: int = 0
    sample_index: int = 0


@torch.inference_mode()
def generate_completions(
    model,
    tokenizer,
    questions: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 64,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[Completion]:
    """Continuations of the rendered prompt of each question, batched with left padding, stopped at EOS.

    ``num_samples == 1`` decodes greedily; otherwise every prompt gets ``num_samples`` samples at
    ``temperature``/``top_p``. Sampling is seeded per batch, so results depend on the seed and the batch
    size, not on what ran before. Completions come back prompt by prompt, samples in order.
    """
    prompts = [render_prompt(tokenizer, question) for question in questions]
    return generate_from_prompts(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, num_samples=num_samples,
        temperature=temperature, top_p=top_p, seed=seed, progress=progress,
    )


@torch.inference_mode()
def generate_from_prompts(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int = 64,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    progress: bool = True,
) -> list[Completion]:
    """``generate_completions`` for prompts the caller rendered (e.g. a chat prompt and a reasoning prefix)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    sampling = num_samples > 1
    device = next(model.parameters()).device
    completions: list[Completion] = []
    original_side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # decoder-only models continue from the last position of each row
    was_training = model.training
    model.eval()
    try:
        for batch_index, start in enumerate(tqdm(range(0, len(prompts), batch_size), desc="generating", disable=not progress)):
            batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {key: value.to(device) for key, value in batch.items()}
            options = {"do_sample": False}
            if sampling:
                torch.manual_seed(seed * 1_000_003 + batch_index)
                options = {"do_sample": True, "temperature": temperature, "top_p": top_p, "num_return_sequences": num_samples}
            output = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **options,
            )
            new_tokens = output[:, batch["input_ids"].shape[1] :]
            for row_index, row in enumerate(new_tokens.tolist()):
                ended = tokenizer.eos_token_id in row
                length = row.index(tokenizer.eos_token_id) + 1 if ended else len(row)
                text = tokenizer.decode(row[:length], skip_special_tokens=True)
                completions.append(
                    Completion(
                        text=text,
                        n_tokens=length,
                        truncated=not ended,
                        prompt_index=start + row_index // num_samples,
                        sample_index=row_index % num_samples,
                    )
                )
    finally:
        tokenizer.padding_side = original_side
        model.train(was_training)
    return completions
