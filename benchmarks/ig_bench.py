"""Integrated-gradients benchmark at equal accuracy: our engine against the authors' loop and captum.

    python benchmarks/ig_bench.py                                   # world teacher; SmolLM2-135M at 512 and 2048 tokens
    python benchmarks/ig_bench.py --cases world                     # a quick look (about a minute)
    make bench-gpu       # GPU readiness: a random-weight 1.5B Qwen2 in bf16 at 4k (full) and 16k tokens (cost)

Speed only means something at equal accuracy, so each case is measured in three steps:
  1. A truth. Our refinement run to ``--truth-tolerance`` (1e-4) or its step cap, on the case's segments.
     Its rounds do not depend on the tolerance, so the same run passes through what ``tolerance=0.02``
     returns (timed there, from the start of the call: ``ours``). The truth is shown converged when its
     segment shares moved by at most 0.005 (L1) between two refinements: the last round and the last one
     with at most 80% of its points (``truth_convergence``).
  2. Accuracy of the fixed rules against the truth: the authors' ``linspace(0, 1, J)`` with the mean, and
     captum's Gauss-Legendre, at J = 50 and up a ladder of J until both accuracy goals hold: L1 error of the
     segment strength shares <= 0.02 and Jaccard overlap of the paper rule's selection (tau 0.7, beta 0.8)
     >= 0.95. A rule's accuracy does not depend on who implements it, so the ladder runs on our engine.
  3. Cost: the authors' loop (re-implemented faithfully, below) and captum with its defaults each run at
     J = 50 in a fresh subprocess, for seconds and peak memory; their seconds at the J they need are
     seconds per point x J (both are a loop over points). Their J = 50 attributions are checked against
     our engine's same rule, so step 2's accuracy is theirs.
Headline per case: ``speedup_vs_reference_at_equal_accuracy``, ``speedup_vs_captum_at_equal_accuracy``,
``memory_ratio_vs_reference``, and our seconds per point against the floor (4 x parameters x tokens
plus attention FLOPs per point, over this machine's measured float32 matmul rate). Where a rule does not
reach the accuracy within the ladder, its speedup is a lower bound (``reached: false``).

Peak memory: on CPU the peak resident set above the one before the call (VmHWM), on GPU
``torch.cuda.max_memory_allocated`` above the memory allocated before it. Writes
``benchmarks/results/ig_bench.json`` (one entry per case, replaced when measured again). Needs the world
teacher (``kedro run --pipeline world``) and SmolLM2 (``make setup`` installs it; ``make bench`` does both).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from peak_memory import memory_now, peak, reset_peak  # benchmarks/, the script's own folder

from tracesieve import provenance
from tracesieve.attribution import DEFAULT_BATCH_TOKENS, integrated_gradients, rules_met, segment_index_of, segment_shares_and_consistency
from tracesieve.attribution.driver import selection_check
from tracesieve.choices import STOPPING_RULES
from tracesieve.config import AttributionConfig, SegmentationConfig, SelectionConfig
from tracesieve.generated_docs import ig_bench_table
from tracesieve.launch.smollm2 import prepare_smollm2
from tracesieve.modeling import load_causal_lm, load_tokenizer
from tracesieve.rendering import encode_example
from tracesieve.segmentation import segment_traces
from tracesieve.selection import segment_metrics, select_segments
from tracesieve.world.problems import generate_problem

ROOT = Path(__file__).resolve().parents[1]
WORLD_MODEL, WORLD_TOKENIZER = ROOT / "data/06_models/teacher", ROOT / "data/06_models/tokenizer"
SMOLLM2 = ROOT / "data/06_models/smollm2-135m-instruct"
WORLD_TRACES = ROOT / "data/01_raw/world_traces.jsonl"
# A 1.5B-size Qwen2 (Qwen2.5-1.5B's shape) with random weights: GPU readiness without a download.
RANDOM_1_5B = dict(
    vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
    num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True, pad_token_id=151643,
)
# name -> (model, tokens wanted or None for a world trace at its own length, which world trace: an index into
# data/01_raw/world_traces.jsonl or "longest" of the first 50)
CASES = {
    "world": ("world", None, 0),
    "world-long": ("world", None, "longest"),
    # SmolLM2 on world traces of 150-250 tokens (the default run's world: traces 5, 7 and 9 are 200, 179
    # and 166 tokens long): short enough that the fixed rules' ladder can run far enough to reach the
    # accuracy, so their speed-ups are figures rather than bounds.
    "smollm2-trace-5": ("smollm2", None, 5),
    "smollm2-trace-7": ("smollm2", None, 7),
    "smollm2-trace-9": ("smollm2", None, 9),
    "smollm2-512": ("smollm2", 512, None),
    "smollm2-2048": ("smollm2", 2048, None),
    "random-1.5b-4096": ("random-1.5b", 4096, None),
    "random-1.5b-16384": ("random-1.5b", 16384, None),
}
TOLERANCE = 0.02  # ours, and the accuracy goal on shares
JACCARD_GOAL = 0.95
TAU, BETA = 0.7, 0.8
PAPER_RULE = SelectionConfig(tau=TAU, beta=BETA, strategies=("paper",))
DEFAULT_STOPPING = AttributionConfig.model_fields["stopping"].default
AUTHORS_J = 50


# ----------------------------------------------------------------------------- the authors' loop
def reference_integrated_gradients(model, input_ids: torch.Tensor, target_positions: list[int], baseline_id: int, steps: int = 50):
    """The authors' scheme, re-implemented faithfully, defects included (docs/design.md, "Known defects").

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
    targets = torch.as_tensor(target_positions, device=ids.device)

    def forward(embeds: torch.Tensor) -> torch.Tensor:
        log_probs = torch.log_softmax(model(inputs_embeds=embeds).logits.float(), dim=-1)
        return log_probs[:, targets - 1, ids[targets]].sum(-1)

    return forward


# ----------------------------------------------------------------------------- accuracy against the truth
def accuracy(attributions: np.ndarray, truth: np.ndarray, segments: list[tuple[int, int]]) -> dict:
    """L1 error of segment strength shares and Jaccard of the paper rule's selection, against the truth."""
    index = segment_index_of(segments, len(truth))
    shares, _ = segment_shares_and_consistency(np.asarray(attributions[: len(truth)], dtype=np.float64), index)
    true_shares, _ = segment_shares_and_consistency(truth, index)
    chosen, true_chosen = set(_paper_selection(attributions, segments)), set(_paper_selection(truth, segments))
    union = chosen | true_chosen
    jaccard = len(chosen & true_chosen) / len(union) if union else 1.0
    share_error = float(np.abs(shares - true_shares).sum())
    return {"share_error": share_error, "jaccard": jaccard, "accurate": share_error <= TOLERANCE and jaccard >= JACCARD_GOAL}


def truth_convergence(snapshots: list[dict], segments: list[tuple[int, int]]) -> dict:
    """The truth is the last refinement round; it is shown converged when the segment shares moved by at
    most 0.005 (L1) since an earlier refinement, the last round with at most 80% of its points."""
    final = snapshots[-1]
    truth = np.asarray(final["estimate"])
    earlier = [s for s in snapshots if s["steps"] <= 0.8 * final["steps"]]
    change = accuracy(np.asarray(earlier[-1]["estimate"]), truth, segments)["share_error"] if earlier else math.nan
    return {
        "steps": final["steps"], "relative_gap": final["relative_gap"], "share_error_estimate": final["share_error"],
        "seconds": final["seconds"], "compared_with_round_of_steps": earlier[-1]["steps"] if earlier else None,
        "share_change_between_refinements": change, "converged": bool(change <= 0.005),
    }


def _paper_selection(attributions: np.ndarray, segments: list[tuple[int, int]]) -> list[int]:
    metrics = segment_metrics(("t", number, attributions[start:end]) for number, (start, end) in enumerate(segments))
    return select_segments(metrics, TAU, BETA)


# ----------------------------------------------------------------------------- workers (one subprocess each)
def _load(case: dict, device: str):
    torch.manual_seed(0)
    if case["model"] == "random-1.5b":
        from transformers import Qwen2Config, Qwen2ForCausalLM

        # Built on the device in its dtype: initialising 1.5B parameters on the CPU would take most of a minute.
        with torch.device(device):
            model = Qwen2ForCausalLM._from_config(Qwen2Config(**RANDOM_1_5B), torch_dtype=getattr(torch, case["dtype"]))
    else:
        model = load_causal_lm(case["model_dir"]).to(device=device, dtype=getattr(torch, case["dtype"]))
    return model.eval()


def run_worker(case_path: Path, task: str, device: str, output: Path) -> None:
    case = json.loads(case_path.read_text())
    model = _load(case, device)
    ids = torch.tensor(case["input_ids"], device=device)
    targets = case["target_positions"]
    baseline_id = model.config.pad_token_id
    batch_size = case["batch_size"]
    result: dict = {}
    before = memory_now(device)
    reset_peak(device)
    started = time.perf_counter()
    if task == "truth":
        snapshots = []

        def record(estimate, completeness):
            _synchronize(device)
            snapshots.append({"seconds": time.perf_counter() - started, "steps": completeness.steps,
                              "rules_met": list(rules_met(completeness, TOLERANCE)), "mass_gap": completeness.mass_gap,
                              "relative_gap": completeness.relative_gap, "share_error": completeness.share_error,
                              "consistency_error": completeness.consistency_error, "estimate": estimate.tolist()})

        # The paper rule's selection (the one the accuracy goal reads) is what the selection stopping rule waits for.
        integrated_gradients(model, ids, targets, tolerance=case["truth_tolerance"], max_steps=case["truth_max_steps"],
                             segments=case["segments"], selects=selection_check(PAPER_RULE, case["segments"]), batch_size=batch_size,
                             return_completeness=True, on_refinement=record)
        result["snapshots"] = snapshots
    elif task == "ladder":
        result["rules"] = {}
        for rule in case["ladder_rules"]:
            result["rules"][rule] = {}
            for steps in case["ladder"]:
                began = time.perf_counter()
                attributions, completeness = integrated_gradients(model, ids, targets, steps=steps, method=rule, batch_size=batch_size,
                                                                  return_completeness=True)
                _synchronize(device)
                entry = {"relative_gap": completeness.relative_gap, "attributions": attributions.tolist(), "seconds": time.perf_counter() - began}
                result["rules"][rule][str(steps)] = entry
                if steps >= AUTHORS_J and accuracy(attributions.numpy(), np.asarray(case["truth"]), case["segments"])["accurate"]:
                    break
    elif task == "reference":
        result["attributions"] = reference_integrated_gradients(model, ids, targets, baseline_id, steps=case["cost_steps"]).tolist()
    elif task == "captum":
        from captum.attr import IntegratedGradients

        embedding = model.get_input_embeddings()
        with torch.no_grad():
            inputs = embedding(ids[None])
            baseline = embedding(torch.full_like(ids, baseline_id)[None])
        result["attributions"] = IntegratedGradients(full_logits_score(model, ids, targets)).attribute(
            inputs, baselines=baseline, n_steps=case["cost_steps"], method="gausslegendre", internal_batch_size=batch_size
        ).sum(-1)[0].detach().float().cpu().tolist()
    elif task in ("ours_cost", "ours_cost_batch_1", "ours_cost_checkpointing"):
        # our engine at the default batch (points x tokens within DEFAULT_BATCH_TOKENS), at one point per
        # batch, and with activation checkpointing
        result["attributions"] = integrated_gradients(
            model, ids, targets, steps=case["cost_steps"], method="gausslegendre", batch_size=1 if task == "ours_cost_batch_1" else batch_size,
            gradient_checkpointing=task == "ours_cost_checkpointing",
        ).tolist()
    else:
        raise ValueError(f"unknown task {task!r}")
    _synchronize(device)
    result["seconds"] = time.perf_counter() - started
    result["peak_memory_mb"] = max(0, peak(device) - before) / 2**20
    output.write_text(json.dumps(result))


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ----------------------------------------------------------------------------- inputs
def _case_input(name: str, tokenizer) -> tuple[dict, str]:
    """Tokens, targets and segments of the case's trace; a description of the trace."""
    model_name, wanted, world_index = CASES[name]
    if wanted is None:
        records = [json.loads(line) for line in WORLD_TRACES.read_text().splitlines()]
        record = max(records[:50], key=lambda r: len(r["reasoning"])) if world_index == "longest" else records[world_index]
        question, reasoning, answer = record["question"], record["reasoning"], record["answer"]
        description = f"world trace {record['trace_id']}"
    else:
        # One long problem of the world's kind, written as a real trace is: one story, one chain of steps with
        # checks, restatements and detours, its own answer. Never unrelated traces glued together.
        for n_steps in range(2, 400):
            problem = generate_problem(random.Random(f"ig-bench:{n_steps}"), "ig-bench", min_steps=n_steps, max_steps=n_steps,
                                       max_value=99, distractor_rate=0.0, check_rate=0.4, restatement_rate=0.3,
                                       detour_rate=0.4, decoy_rate=0.0)
            if len(encode_example(tokenizer, problem.question, problem.reasoning, problem.answer).input_ids) >= wanted:
                break
        question, reasoning, answer = problem.question, problem.reasoning, problem.answer
        description = f"one world-kind problem of {n_steps} steps (max_value 99), chat template"
    example = encode_example(tokenizer, question, reasoning, answer)
    traces = pd.DataFrame([{"trace_id": "case", "question": question, "reasoning": reasoning, "answer": answer}])
    segments = segment_traces(traces, tokenizer, SegmentationConfig())
    spans = [(int(start), int(end)) for start, end in segments[["token_start", "token_end"]].itertuples(index=False)]
    return {"input_ids": example.input_ids, "target_positions": example.target_positions, "segments": spans}, description


def _floor_flops_per_point(config, tokens: int) -> float:
    """FLOPs of one path point with frozen weights: forward 2 P T, input gradients another 2 P T, attention's
    score and value products 2 x 2 L T^2 d forward (causal: half), the same again backward."""
    layers = config.num_hidden_layers
    return 4 * layers * _layer_parameters(config) * tokens + 4 * layers * tokens**2 * config.hidden_size


def _layer_parameters(config) -> int:
    """Matmul weights of one decoder layer: q, o; k, v (grouped); gate, up, down."""
    d = config.hidden_size
    kv = d // config.num_attention_heads * config.num_key_value_heads
    return d * d * 2 + d * kv * 2 + 3 * d * config.intermediate_size


# ----------------------------------------------------------------------------- the driver
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["world", "world-long", "smollm2-512", "smollm2-2048"], choices=sorted(CASES))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--truth-tolerance", type=float, default=1e-4)
    parser.add_argument("--truth-max-steps", type=int, default=None, help="default: 2048 for the world, 512 for SmolLM2 up to 256 tokens, 384 up to 1024, 256 else")
    parser.add_argument("--ladder", nargs="+", type=int, default=None, help="J tried for the fixed rules (default: 50 100 200 400 800; SmolLM2 50 100 200)")
    parser.add_argument("--cost-only", nargs="*", default=["smollm2-2048"], help="cases measured for cost per point only (no truth)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/ig_bench.json")
    parser.add_argument("--table", action="store_true", help="print the results file as docs/results.md's Markdown table and exit")
    parser.add_argument("--worker", nargs=3, metavar=("CASE", "TASK", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.table:
        print(ig_bench_table(read_cases(args.output)))
        return
    if args.worker:
        case, task, output = args.worker
        run_worker(Path(case), task, args.device, Path(output))
        return
    for name in args.cases:
        started = time.perf_counter()
        result = _measure_case(name, args)
        # each case is stamped on its own: a rerun of one case leaves the others' provenance as it was
        result["provenance"] = provenance.stamp(config={key: value for key, value in vars(args).items() if key != "output"},
                                                wall_seconds=time.perf_counter() - started, device=args.device)
        _record(result, args.output)


def _measure_case(name: str, args) -> dict:
    model_name = CASES[name][0]
    dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    if model_name == "world":
        model_dir, tokenizer_dir = WORLD_MODEL, WORLD_TOKENIZER
        if not (model_dir / "config.json").is_file():
            sys.exit(f"No model at {model_dir}: run `kedro run --pipeline world` first (make bench does it)")
    else:
        try:
            prepare_smollm2(SMOLLM2)
        except (FileNotFoundError, ValueError) as error:
            sys.exit(f"SmolLM2: {error} (make bench installs it)")
        model_dir, tokenizer_dir = SMOLLM2, SMOLLM2
    tokenizer = load_tokenizer(tokenizer_dir)
    inputs, description = _case_input(name, tokenizer)
    tokens = len(inputs["input_ids"])
    world = model_name == "world"
    ladder = args.ladder or ([50, 100, 200, 400, 800] if world or tokens <= 256 else [50, 100, 200])
    truth_max = args.truth_max_steps or (2048 if world else 512 if tokens <= 256 else 384 if tokens <= 1024 else 256)
    case = {
        **inputs, "model": model_name, "model_dir": str(model_dir), "dtype": dtype, "truth_tolerance": args.truth_tolerance,
        "truth_max_steps": truth_max, "ladder": ladder, "cost_steps": AUTHORS_J,
        # the probe-placed adaptive rule at fixed steps (the engine's earlier default) where points are cheap
        "ladder_rules": ["authors_linspace", "gausslegendre", *(["adaptive"] if world else [])],
        "batch_size": max(1, DEFAULT_BATCH_TOKENS // tokens) if args.device == "cpu" else max(1, 65536 // tokens),
    }
    cost_only = name in (args.cost_only or [])
    if cost_only:
        case["cost_steps"] = 4  # seconds per point and memory only: a few points say it
    print(f"== {name}: {description}, {tokens} tokens, {len(inputs['segments'])} segments", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        case_path = Path(scratch) / "case.json"

        def run(task: str) -> dict:
            case_path.write_text(json.dumps(case))
            output = Path(scratch) / f"{task}.json"
            command = [sys.executable, __file__, "--device", args.device, "--worker", str(case_path), task, str(output)]
            subprocess.run(command, check=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
            measured = json.loads(output.read_text())
            print(f"   {task}: {measured['seconds']:.1f} s, {measured['peak_memory_mb']:.0f} MB", flush=True)
            return measured

        cost_tasks = ["reference", "captum", "ours_cost", "ours_cost_batch_1"]
        if tokens >= 2048:  # where activations start to dominate memory
            cost_tasks.append("ours_cost_checkpointing")
        costs = {task: run(task) for task in cost_tasks}
        config = _load_config(case)
        rate = provenance.matmul_gflops(args.device, getattr(torch, dtype), size=2048) * 1e9
        per_point = {task: costs[task]["seconds"] / case["cost_steps"] for task in costs}
        result = {
            "case": name, "model": model_name, "trace": description, "tokens": tokens, "answer_tokens": len(inputs["target_positions"]),
            "segments": len(inputs["segments"]), "parameters": _parameters(config), "device": args.device, "dtype": dtype,
            "seconds_per_point": {"reference": per_point["reference"], "captum": per_point["captum"], "ours": per_point["ours_cost"]},
            "peak_memory_mb": {"reference": costs["reference"]["peak_memory_mb"], "captum": costs["captum"]["peak_memory_mb"],
                               "ours": costs["ours_cost"]["peak_memory_mb"]},
            "memory_ratio_vs_reference": costs["ours_cost"]["peak_memory_mb"] / costs["reference"]["peak_memory_mb"],
            "memory_ratio_vs_captum": costs["ours_cost"]["peak_memory_mb"] / costs["captum"]["peak_memory_mb"],
            # one path point per batch: the least memory our engine can run in, at its seconds per point
            "batch_1": {"seconds_per_point": costs["ours_cost_batch_1"]["seconds"] / case["cost_steps"],
                        "peak_memory_mb": costs["ours_cost_batch_1"]["peak_memory_mb"],
                        "memory_ratio_vs_reference": costs["ours_cost_batch_1"]["peak_memory_mb"] / costs["reference"]["peak_memory_mb"]},
            "batch_size": case["batch_size"],
            **({"checkpointing": {"seconds_per_point": costs["ours_cost_checkpointing"]["seconds"] / case["cost_steps"],
                                  "peak_memory_mb": costs["ours_cost_checkpointing"]["peak_memory_mb"]}}
               if "ours_cost_checkpointing" in costs else {}),
            "floor_seconds_per_point": _floor_flops_per_point(config, tokens) / rate,
            "matmul_gflops": rate / 1e9,
        }
        result["ours_seconds_per_point_over_floor"] = per_point["ours_cost"] / result["floor_seconds_per_point"]
        result["per_point_speedup_vs_reference"] = per_point["reference"] / per_point["ours_cost"]
        result["per_point_speedup_vs_captum"] = per_point["captum"] / per_point["ours_cost"]
        if cost_only:
            result["accuracy_measured"] = False
            return result

        truth_run = run("truth")
        snapshots = truth_run["snapshots"]
        truth = np.asarray(snapshots[-1]["estimate"])
        case["truth"] = truth.tolist()
        ladder_run = run("ladder")
        segments = inputs["segments"]

        def first(predicate):
            return next((s for s in snapshots if predicate(s)), None)

        # Ours: where the refinement stops under each rule at the tolerance ("ours" is the pipeline's
        # default rule); the same run passes through both, so they are read off its rounds.
        stops = {rule: first(lambda s, rule=rule: rule in s["rules_met"]) for rule in STOPPING_RULES}
        ours = stops[DEFAULT_STOPPING]
        near_authors_j = [s for s in snapshots if s["steps"] <= AUTHORS_J][-1]
        result["truth"] = truth_convergence(snapshots, segments)
        for rule, stop in stops.items():
            entry = {"tolerance": TOLERANCE, "stopping": rule, "reached": stop is not None}
            if stop is not None:
                entry.update(steps=stop["steps"], seconds=stop["seconds"], relative_gap=stop["relative_gap"], mass_gap=stop["mass_gap"],
                             **accuracy(np.asarray(stop["estimate"]), truth, segments))
            result["ours" if rule == DEFAULT_STOPPING else f"ours_stopping_{rule}"] = entry
        result["ours_at_about_50_points"] = {"steps": near_authors_j["steps"], **accuracy(np.asarray(near_authors_j["estimate"]), truth, segments)}
        rules = {}
        for rule in case["ladder_rules"]:
            implementation = {"authors_linspace": "reference", "gausslegendre": "captum", "adaptive": "ours_cost"}[rule]
            tried = {int(j): entry for j, entry in ladder_run["rules"][rule].items()}
            rows = {j: {"relative_gap": entry["relative_gap"], **accuracy(np.asarray(entry["attributions"]), truth, segments)} for j, entry in tried.items()}
            needed = next((j for j in sorted(rows) if rows[j]["accurate"]), None)
            j_for_cost = needed or max(rows)
            ours_fixed_same_rule = np.asarray(tried[AUTHORS_J]["attributions"])
            theirs = np.asarray(costs[implementation]["attributions"])
            if rule == "adaptive":
                # our engine's earlier default: J gradient points placed by J + 1 forward-only probes, timed as run
                rules[rule] = {"implementation": "ours (probe-placed, fixed J)", f"at_J_{AUTHORS_J}": rows[AUTHORS_J], "by_J": rows,
                               "J_needed": needed, "reached": needed is not None, "seconds_at_J_needed": tried[j_for_cost]["seconds"]}
                continue
            rules[rule] = {
                "implementation": implementation,
                f"at_J_{AUTHORS_J}": rows[AUTHORS_J],
                "by_J": rows,
                "J_needed": needed,
                "reached": needed is not None,
                "seconds_at_J_needed": per_point[implementation] * j_for_cost,
                # agreement of their implementation with our engine's same rule at J = 50 (float noise only)
                "relative_difference_to_our_engine_same_rule": float(np.abs(theirs - ours_fixed_same_rule).sum() / max(np.abs(ours_fixed_same_rule).sum(), 1e-30)),
            }
        result["rules"] = rules
        result["authors_J_50_reaches_accuracy"] = rules["authors_linspace"][f"at_J_{AUTHORS_J}"]["accurate"]
        if ours is not None:
            result["speedup_vs_reference_at_equal_accuracy"] = rules["authors_linspace"]["seconds_at_J_needed"] / ours["seconds"]
            result["speedup_vs_captum_at_equal_accuracy"] = rules["gausslegendre"]["seconds_at_J_needed"] / ours["seconds"]
            result["speedups_are_lower_bounds"] = not (rules["authors_linspace"]["reached"] and rules["gausslegendre"]["reached"])
        result["accuracy_measured"] = True
        result["goals"] = {"speedup_vs_reference_at_equal_accuracy": 5, "speedup_vs_captum_at_equal_accuracy": 2, "memory_ratio_vs_reference": 0.5}
        return result


def _load_config(case: dict):
    if case["model"] == "random-1.5b":
        from transformers import Qwen2Config

        return Qwen2Config(**RANDOM_1_5B)
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(case["model_dir"])


def _parameters(config) -> int:
    return config.num_hidden_layers * _layer_parameters(config) + config.vocab_size * config.hidden_size


def read_cases(output: Path) -> list[dict]:
    """The cases of a results file (``{"provenance", "cases"}``), each with its own provenance."""
    return json.loads(output.read_text())["cases"] if output.is_file() else []


def _record(result: dict, output: Path) -> None:
    """Add one case to the results file as soon as it is measured; a case measured again replaces its entry.
    The file's provenance is the latest case's."""
    results = [entry for entry in read_cases(output) if entry["case"] != result["case"]]
    output.parent.mkdir(parents=True, exist_ok=True)
    cases = sorted([*results, result], key=lambda r: r["case"])
    output.write_text(json.dumps({"provenance": result["provenance"], "cases": cases}, indent=2) + "\n")
    print(f"Wrote {result['case']} to {output}", flush=True)


if __name__ == "__main__":
    main()
