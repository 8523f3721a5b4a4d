"""Peak memory and speed of training on long traces: masked SFT and distillation, before and after.

SFT, on one trace of each length, loss on every token (full) or on half of them (selective: alternate
64-token blocks of the trace, as a selection leaves them):

- ``trainer``: the transformers Trainer with the model's own loss, full-vocabulary logits for every token
  (what fine-tuning ran on before TRL);
- ``trl``: TRL's SFTTrainer as ``tracesieve.training.train_causal_lm`` runs it now (fused LM head: the
  logits are built in tiles and rebuilt in the backward pass, not kept).

Distillation (LeaF's trainer, ``tracesieve.leaf.distillation.distill``), the last three quarters of the
trace as the response, a teacher and a student of the same architecture:

- ``kl_whole``: both models' full logits and their float32 log-softmax for the whole response (before);
- ``kl_chunked``: the KL a chunk of ``--kl-chunk`` response tokens at a time (``kl_chunk_size``, now).

Every measurement is a fresh process: peak memory is the GPU's ``max_memory_allocated`` on CUDA and the
process's peak resident set on CPU (VmHWM, reset once the models are built), with the memory in use before
training beside it. Tokens/s is over the steps after the first (which warms up). Weights are SmolLM2-135M's
(``data/06_models/smollm2-135m-instruct``, converted by ``python -m tracesieve.launch.smollm2``); the token
ids are random, since the architecture, not the text, sets time and memory.

    python benchmarks/long_trace_bench.py                      # CPU: 1k, 2k, 4k tokens, 3 steps
    python benchmarks/long_trace_bench.py --device cuda --lengths 4096 16384

Results: benchmarks/results/long_trace_bench_<device>.json, with after/before ratios per length.
"""

from __future__ import annotations

import argparse
import json
import tempfile
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
MODEL = Path("data/06_models/smollm2-135m-instruct")
SFT_ENGINES = ("trainer", "trl")
KL_MODES = ("kl_whole", "kl_chunked")
BEFORE_AFTER = {"sft": ("trainer", "trl"), "distill": ("kl_whole", "kl_chunked")}


def measure(job: dict) -> dict:
    """One measurement in this (fresh) process."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer

    from tracesieve.config import TrainingConfig

    device, length = job["device"], job["length"]
    dtype = torch.bfloat16 if job["bf16"] else torch.float32

    def load():
        return AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32, attn_implementation="sdpa").to(device)

    tokenizer = AutoTokenizer.from_pretrained(job["model"])
    model = load()
    teacher = load().to(dtype) if job["stage"] == "distill" else None
    model_memory = memory_now(device) / 2**30
    reset_peak(device)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(2, len(tokenizer), (length,), generator=generator).tolist()

    clock = step_clock(device)
    config = TrainingConfig(max_steps=job["steps"], batch_size=1, learning_rate=1e-5, warmup_ratio=0.0, logging_steps=1,
                            save_steps=10**9, bf16=job["bf16"], gradient_checkpointing=job["gradient_checkpointing"])
    with tempfile.TemporaryDirectory() as folder:
        if job["stage"] == "sft":
            from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

            from tracesieve.training import IGNORE_INDEX, train_causal_lm

            if job["mask"] == "full":
                labels = list(ids)
            else:  # selective: every other 64-token block supervised
                labels = [token if (position // 64) % 2 else IGNORE_INDEX for position, token in enumerate(ids)]
            example = {"input_ids": ids, "labels": labels}
            supervised = sum(label != IGNORE_INDEX for label in labels)
            if job["engine"] == "trl":
                train_causal_lm(model, [example], config, output_dir=folder, tokenizer=tokenizer, callbacks=[clock])
            else:
                collator = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)
                train_causal_lm(model, [example], config, output_dir=folder, tokenizer=tokenizer, callbacks=[clock],
                                trainer_class=Trainer, collator=collator)
        else:
            from tracesieve.leaf.distillation import distill, distillation_item
            from tracesieve.leaf.examples import EncodedLeafExample

            response_start = length // 4
            original = EncodedLeafExample(input_ids=ids, response_mask=[position >= response_start for position in range(length)],
                                          analysed_positions=[], analysed_offsets=[])
            supervised = length - response_start
            distill(model, teacher, [distillation_item(original)], config, output_dir=folder, tokenizer=tokenizer,
                    vocab_size=len(tokenizer), kl_chunk_size=job["kl_chunk"] if job["engine"] == "kl_chunked" else None, callbacks=[clock])
    seconds = clock.steady_seconds()
    return {**job, "model_memory_gib": model_memory, "peak_memory_gib": peak(device) / 2**30,
            "seconds_per_step": seconds, "tokens_per_second": length / seconds, "supervised_tokens": supervised}


def ratios(rows: list[dict]) -> list[dict]:
    """After / before at each (stage, mask, length): peak memory above the models, and tokens/s."""
    found = []
    index = {(row["stage"], row.get("mask"), row["length"], row["engine"]): row for row in rows if "error" not in row}
    for (stage, mask, length, engine), after in sorted(index.items(), key=lambda item: str(item[0])):
        before_engine, after_engine = BEFORE_AFTER[stage]
        before = index.get((stage, mask, length, before_engine))
        if engine != after_engine or before is None:
            continue
        working = lambda row: row["peak_memory_gib"] - row["model_memory_gib"]  # noqa: E731 - the stage's own memory
        found.append({
            "stage": stage, "mask": mask, "length": length, "before": before_engine, "after": after_engine,
            "peak_memory_gib_before": before["peak_memory_gib"], "peak_memory_gib_after": after["peak_memory_gib"],
            "working_memory_ratio": working(after) / working(before),
            "tokens_per_second_ratio": after["tokens_per_second"] / before["tokens_per_second"],
        })
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--stages", nargs="+", default=["sft", "distill"], choices=["sft", "distill"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[1024, 2048, 4096])
    parser.add_argument("--steps", type=int, default=3, help="optimiser steps per measurement (tokens/s over all but the first)")
    parser.add_argument("--kl-chunk", type=int, default=1024)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(measure(json.loads(args.worker))), flush=True)
        return
    if not (args.model / "config.json").is_file():
        raise SystemExit(f"no model at {args.model}: run `python -m tracesieve.launch.smollm2` first (make setup installs it)")
    common = {"device": args.device, "model": str(args.model), "steps": args.steps, "kl_chunk": args.kl_chunk,
              "bf16": args.device == "cuda", "gradient_checkpointing": args.gradient_checkpointing}
    jobs = []
    for length in args.lengths:
        if "sft" in args.stages:
            jobs += [{**common, "stage": "sft", "mask": mask, "engine": engine, "length": length} for mask in ("full", "selective") for engine in SFT_ENGINES]
        if "distill" in args.stages:
            jobs += [{**common, "stage": "distill", "mask": None, "engine": engine, "length": length} for engine in KL_MODES]
    rows = []
    for job in jobs:
        started = time.perf_counter()
        row = measure_in_fresh_process(__file__, job)
        rows.append(row)
        if "error" in row:
            print(f"{job['stage']} {job['engine']} {job['mask']} {job['length']}: failed ({row['error']})", flush=True)
            continue
        print(f"{row['stage']} {row['engine']} {row['mask'] or ''} {row['length']} tokens: peak {row['peak_memory_gib']:.2f} GiB "
              f"(models {row['model_memory_gib']:.2f}), {row['tokens_per_second']:.0f} tokens/s [{time.perf_counter() - started:.0f} s]", flush=True)
    output = args.output or RESULTS / f"long_trace_bench_{args.device}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"provenance": provenance.stamp(config=common, device=args.device), "settings": common, "rows": rows, "ratios": ratios(rows)}, indent=2))
    for entry in ratios(rows):
        print(f"{entry['stage']} {entry['mask'] or ''} {entry['length']}: peak {entry['peak_memory_gib_before']:.2f} -> "
              f"{entry['peak_memory_gib_after']:.2f} GiB, working memory x{entry['working_memory_ratio']:.2f}, "
              f"tokens/s x{entry['tokens_per_second_ratio']:.2f}")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
