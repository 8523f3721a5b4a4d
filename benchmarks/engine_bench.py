"""Generation throughput of the two evaluation engines side by side: ``hf`` (transformers generate) and
``vllm``, on SmolLM2-135M-Instruct and the embedded world's question style, greedy and sampled.

Both engines answer the same prompts through ``tracesieve.generation.generate_completions`` with the same
settings; each row gives the generated tokens, the seconds and tokens/s, and for vLLM the engine start-up
(writing the model, loading it, sizing the KV cache) apart from the decoding, since a short evaluation pays
it once per model. Greedy rows also give the share of prompts whose text is identical on both engines.
Needs vLLM (``make setup-vllm`` on CPU).

    python benchmarks/engine_bench.py                      # 64 prompts, 128 new tokens, greedy and n=4
    python benchmarks/engine_bench.py --prompts 256 --new-tokens 512 --device cuda

Results: benchmarks/results/engine_bench_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODEL = Path("data/06_models/smollm2-135m-instruct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--samples", type=int, default=4, help="samples per prompt in the sampled rows")
    parser.add_argument("--hf-batch", type=int, default=64)
    parser.add_argument("--memory", type=float, default=0.3, help="vLLM gpu_memory_utilization (CPU memory share on CPU)")
    parser.add_argument("--modes", nargs="+", default=["greedy", "sampled"], choices=["greedy", "sampled"])
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    import torch
    import vllm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tracesieve import provenance
    from tracesieve.config import WorldConfig
    from tracesieve.generation import generate_completions
    from tracesieve.world.problems import generate_problems

    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(args.device).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    options = WorldConfig().problems.model_dump()  # the default world's problem settings
    questions = [problem.question for problem in generate_problems(args.prompts, seed=0, split="eval", **options)]
    rows, texts = [], {}
    for mode, samples in (("greedy", 1), ("sampled", args.samples)):
        if mode not in args.modes:
            continue
        for engine in ("hf", "vllm"):
            options = {"gpu_memory_utilization": args.memory} if engine == "vllm" else None
            started = time.perf_counter()
            if engine == "vllm":  # the start-up alone: one prompt, one token
                generate_completions(model, tokenizer, questions[:1], max_new_tokens=1, engine=engine, engine_options=options, progress=False)
            startup = time.perf_counter() - started
            started = time.perf_counter()
            completions = generate_completions(
                model, tokenizer, questions, max_new_tokens=args.new_tokens, batch_size=args.hf_batch, num_samples=samples,
                temperature=0.7, top_p=1.0, seed=0, engine=engine, engine_options=options, progress=False,
            )
            total = time.perf_counter() - started
            seconds = total - (startup if engine == "vllm" else 0.0)
            tokens = sum(completion.n_tokens for completion in completions)
            texts[(mode, engine)] = [completion.text for completion in completions]
            row = {"engine": engine, "mode": mode, "prompts": len(questions), "samples_per_prompt": samples, "new_tokens": args.new_tokens,
                   "generated_tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / seconds,
                   "truncated_share": sum(completion.truncated for completion in completions) / len(completions)}
            if engine == "vllm":
                row["startup_seconds"] = startup
                row["seconds_with_startup"] = total
                row["note"] = "seconds: the run less the start-up, which a one-token run measured apart"
            rows.append(row)
            print(json.dumps(row), flush=True)
    same = sum(a == b for a, b in zip(texts[("greedy", "hf")], texts[("greedy", "vllm")], strict=True)) / len(questions)
    by = {(row["mode"], row["engine"]): row for row in rows}
    summary = {
        "greedy_identical_text_share": same,
        "greedy_tokens_per_second_ratio_vllm_over_hf": by[("greedy", "vllm")]["tokens_per_second"] / by[("greedy", "hf")]["tokens_per_second"],
        "sampled_tokens_per_second_ratio_vllm_over_hf": by[("sampled", "vllm")]["tokens_per_second"] / by[("sampled", "hf")]["tokens_per_second"],
    }
    print(json.dumps(summary))
    output = args.output or RESULTS / f"engine_bench_{args.device}.json"
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items() if key != "output"}
    stamped = provenance.stamp(config=settings, device=args.device) | {"vllm": vllm.__version__, "dtype": str(dtype)}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"provenance": stamped, "settings": settings, "rows": rows, "summary": summary}, indent=2))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
