"""Speed and peak memory of each model-heavy stage against sequence length and model size.

Models are built from their published configs with random weights (no download: the architecture, not the
weights, sets time and memory), with SDPA attention. For each (model, stage, length) a fresh process runs:

- ``ig``: integrated gradients of a 4-token answer onto every token (tracesieve.attribution), ``--ig-steps``
  path points, one point per forward/backward at these lengths (the memory-bounded default batch);
- ``train``: ``--train-steps`` optimiser steps of tracesieve.training.train_causal_lm (TRL's SFTTrainer since
  issue 19; the plain Trainer when scale_bench_cpu.json was measured; AdamW) on one sequence of the length,
  loss on every token;
- ``generate``: greedy decoding of ``--new-tokens`` tokens after a prompt of the length (KV cache).

Peak memory is the GPU's ``max_memory_allocated`` on CUDA and the process's peak resident set on CPU (VmHWM,
reset through /proc/self/clear_refs once the model is built). The memory in use before the stage (the
model, and on CPU the process's libraries) is reported beside it: the stage's working memory is the difference.

    python benchmarks/scale_bench.py --device cpu                                   # the CPU table of docs/results.md
    python benchmarks/scale_bench.py --device cuda --models qwen2-1.5b --lengths 4096 16384 --ig-steps 50

Results: benchmarks/results/scale_bench_<device>.json (one row per measurement, plus least-squares fits of
peak memory against length per model and stage).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from peak_memory import (  # benchmarks/, the script's own folder
    measure_in_fresh_process,
    memory_now,
    peak,
    reset_peak,
    step_clock,
)

from tracesieve import provenance

RESULTS = Path(__file__).parent / "results"

# Published configs of the papers' models and of SmolLM2 (config.json values); weights are random.
MODELS = {
    "smollm2-135m": {"family": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                     "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152, "tie_word_embeddings": True},
    "qwen2-0.5b": {"family": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                   "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": True},
    # DeepSeek-R1-Distill-Qwen-1.5B: segment-level selective SFT's attribution model and SFT base.
    "qwen2-1.5b": {"family": "qwen2", "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                   "num_attention_heads": 12, "num_key_value_heads": 2, "vocab_size": 151936, "tie_word_embeddings": False},
    # LeaF's student and teacher.
    "llama-3.2-1b": {"family": "llama", "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": True},
    "llama-3.1-8b": {"family": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                     "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False},
}


def build_model(name: str, device: str, dtype: str, max_positions: int):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    spec = dict(MODELS[name])
    config_class = {"llama": LlamaConfig, "qwen2": Qwen2Config}[spec.pop("family")]
    config = config_class(**spec, max_position_embeddings=max_positions, pad_token_id=0, eos_token_id=1, bos_token_id=None)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype), attn_implementation="sdpa")
    return model


def measure(job: dict) -> dict:
    """One measurement in this (fresh) process."""
    import torch

    device, stage, length = job["device"], job["stage"], job["length"]
    model = build_model(job["model"], device, job["dtype"], max_positions=max(length + job["new_tokens"], 2048))
    parameters = sum(parameter.numel() for parameter in model.parameters())
    model_memory = memory_now(device) / 2**30
    reset_peak(device)  # building the model's own peak does not count
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(2, model.config.vocab_size, (length,), generator=generator)
    row = {**job, "parameters": parameters, "model_memory_gib": model_memory}

    def synchronize():
        if device == "cuda":
            torch.cuda.synchronize()

    if stage == "ig":
        from tracesieve.attribution import integrated_gradients

        model.eval()
        targets = list(range(length - 4, length))
        started = time.perf_counter()
        integrated_gradients(model, ids.to(device), targets, steps=job["ig_steps"], method="gausslegendre", batch_size=job["ig_batch"],
                             gradient_checkpointing=job["gradient_checkpointing"])
        synchronize()
        seconds = time.perf_counter() - started
        row.update(seconds_per_trace=seconds, seconds_per_gradient=seconds / job["ig_steps"],
                   seconds_per_trace_j50=seconds / job["ig_steps"] * 50)
    elif stage == "train":
        import tempfile

        from tracesieve.config import TrainingConfig
        from tracesieve.training import train_causal_lm
        from tracesieve.world.tokenizer import build_word_tokenizer

        clock = step_clock(device)
        example = {"input_ids": ids.tolist(), "labels": ids.tolist()}
        config = TrainingConfig(max_steps=job["train_steps"], batch_size=1, learning_rate=1e-5, warmup_ratio=0.0, logging_steps=1,
                                save_steps=10**9, bf16=job["dtype"] == "bfloat16", gradient_checkpointing=job["gradient_checkpointing"])
        if job["dtype"] == "bfloat16":
            model = model.float()  # mixed precision: fp32 master weights, bf16 autocast, as fine-tuning runs
        with tempfile.TemporaryDirectory() as folder:
            # The ids are random: the tokenizer only tells the trainer the padding id.
            tokenizer = build_word_tokenizer(["a"], numbers_up_to=0)
            train_causal_lm(model, [example], config, output_dir=folder, tokenizer=tokenizer, callbacks=[clock])
        seconds = clock.steady_seconds()  # the first step warms up
        row.update(seconds_per_step=seconds, tokens_per_second=length / seconds)
    elif stage == "generate":
        model.eval()
        model.generation_config.pad_token_id = 0
        with torch.no_grad():
            started = time.perf_counter()
            model.generate(ids[None].to(device), max_new_tokens=job["new_tokens"], min_new_tokens=job["new_tokens"], do_sample=False)
            synchronize()
        seconds = time.perf_counter() - started
        row.update(seconds=seconds, new_tokens_per_second=job["new_tokens"] / seconds)
    else:
        raise ValueError(f"unknown stage {stage!r}")
    row["peak_memory_gib"] = peak(device) / 2**30
    return row


def linear_fits(rows: list[dict]) -> list[dict]:
    """Peak memory ~ a + b * length per (model, stage): the intercept is mostly the model (and optimiser)."""
    fits = []
    for key in sorted({(row["model"], row["stage"]) for row in rows}):
        points = [(row["length"], row["peak_memory_gib"]) for row in rows if (row["model"], row["stage"]) == key]
        if len(points) < 2:
            continue
        n = len(points)
        mean_x = sum(x for x, _ in points) / n
        mean_y = sum(y for _, y in points) / n
        slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
        fits.append({"model": key[0], "stage": key[1], "intercept_gib": mean_y - slope * mean_x,
                     "gib_per_1k_tokens": slope * 1000, "points": n})
    return fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--models", nargs="+", default=None, choices=sorted(MODELS))
    parser.add_argument("--stages", nargs="+", default=["ig", "train", "generate"], choices=["ig", "train", "generate"])
    parser.add_argument("--lengths", nargs="+", type=int, default=None)
    parser.add_argument("--dtype", default=None, choices=["float32", "bfloat16"], help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--ig-steps", type=int, default=None, help="path points per trace (default: 50 on cuda, 2 on cpu)")
    parser.add_argument("--ig-batch", type=int, default=1, help="path points per forward/backward")
    parser.add_argument("--train-steps", type=int, default=None, help="optimiser steps (default: 6 on cuda, 3 on cpu)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--gradient-checkpointing", action="store_true", default=None)
    parser.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(measure(json.loads(args.worker))), flush=True)
        return

    gpu = args.device == "cuda"
    models = args.models or (["qwen2-1.5b", "llama-3.2-1b"] if gpu else ["smollm2-135m", "qwen2-0.5b"])
    lengths = args.lengths or ([4096, 16384] if gpu else [256, 512, 1024, 2048])
    common = {
        "device": args.device,
        "dtype": args.dtype or ("bfloat16" if gpu else "float32"),
        "ig_steps": args.ig_steps or (50 if gpu else 2),
        "ig_batch": args.ig_batch,
        "train_steps": args.train_steps or (6 if gpu else 3),
        "new_tokens": args.new_tokens,
        "gradient_checkpointing": gpu if args.gradient_checkpointing is None else args.gradient_checkpointing,
    }
    rows = []
    for model in models:
        for stage in args.stages:
            for length in lengths:
                job = {**common, "model": model, "stage": stage, "length": length}
                started = time.perf_counter()
                row = measure_in_fresh_process(__file__, job)
                rows.append(row)
                if "error" in row:
                    print(f"{model} {stage} {length}: failed ({row['error']})", flush=True)
                    continue
                speed = {key: round(value, 3) for key, value in row.items() if "second" in key}
                print(f"{model} {stage} {length} tokens: peak {row['peak_memory_gib']:.2f} GiB (model {row['model_memory_gib']:.2f}), "
                      f"{speed} [{time.perf_counter() - started:.0f} s]", flush=True)
    measured = [row for row in rows if "error" not in row]
    output = args.output or RESULTS / f"scale_bench_{args.device}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"provenance": provenance.stamp(config=common, device=args.device), "settings": common, "rows": rows, "memory_fits": linear_fits(measured)}, indent=2))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
