"""Points integrated gradients needs to converge, per trace, against its length, and where each stopping
rule stops against a converged truth: the real_cpu env's question.

    python benchmarks/ig_convergence.py                       # SmolLM2-135M on the first 6 world traces
    python benchmarks/ig_convergence.py --model world --traces 50
    python benchmarks/ig_convergence.py --traces 5 7 9        # these world traces (indices) only

Each trace is refined once, tightly (``--truth-tolerance``, 0.002, up to ``--truth-max-steps`` 512 points,
the reflection-keyword segments, every attribution-reading selection of ``SelectionConfig()`` checked), and
the refinement's rounds, which never depend on the rule or the tolerance, are read at ``--tolerance`` (0.02)
under both stopping rules (``attribution.stopping``): the points each needs, and there the L1 error of the
segment strength shares and the worst Jaccard overlap of the selections against the tight run's last
round (the truth). Written to ``benchmarks/results/ig_convergence.json`` (one entry per model, replaced
when run again), with each round's share error estimate and gaps, so the curve of error against points is
there too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tracesieve import provenance
from tracesieve.attribution import integrated_gradients, rules_met, segment_index_of, segment_shares_and_consistency
from tracesieve.attribution.driver import selection_check
from tracesieve.choices import DEFAULT_MAX_STEPS, DEFAULT_TOLERANCE, STOPPING_RULES
from tracesieve.config import SegmentationConfig, SelectionConfig
from tracesieve.launch.smollm2 import prepare_smollm2
from tracesieve.modeling import load_causal_lm, load_tokenizer
from tracesieve.rendering import encode_example
from tracesieve.segmentation import segment_traces

ROOT = Path(__file__).resolve().parents[1]
# Every selection that reads attributions, at the defaults: the set each stop is judged (and waits) on.
SELECTION = SelectionConfig(strategies=("paper", "paper_authors", "strength_only", "consistency_only", "share_floor"))
MODELS = {
    "smollm2": (ROOT / "data/06_models/smollm2-135m-instruct", ROOT / "data/06_models/smollm2-135m-instruct"),
    "world": (ROOT / "data/06_models/teacher", ROOT / "data/06_models/tokenizer"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", choices=sorted(MODELS))
    parser.add_argument("--traces", type=int, nargs="+", default=[6], help="one number: the first N traces; more: these indices")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--truth-tolerance", type=float, default=0.002)
    parser.add_argument("--truth-max-steps", type=int, default=DEFAULT_MAX_STEPS)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/ig_convergence.json")
    args = parser.parse_args()
    model_dir, tokenizer_dir = MODELS[args.model]
    if args.model == "smollm2":
        prepare_smollm2(model_dir)
    model, tokenizer = load_causal_lm(model_dir).eval(), load_tokenizer(tokenizer_dir)
    records = [json.loads(line) for line in (ROOT / "data/01_raw/world_traces.jsonl").read_text().splitlines()]
    chosen = records[: args.traces[0]] if len(args.traces) == 1 else [records[index] for index in args.traces]
    traces = pd.DataFrame(chosen)[["trace_id", "question", "reasoning", "answer"]]
    segments = segment_traces(traces, tokenizer, SegmentationConfig())
    rows = []
    run_started = time.perf_counter()
    for trace in traces.itertuples(index=False):
        example = encode_example(tokenizer, trace.question, trace.reasoning, trace.answer)
        own = segments[segments["trace_id"] == trace.trace_id]
        spans = [(int(start), int(end)) for start, end in own[["token_start", "token_end"]].itertuples(index=False)]
        selects = selection_check(SELECTION, spans)
        rounds = []
        started = time.perf_counter()
        _, completeness = integrated_gradients(
            model, example.input_ids, example.target_positions, tolerance=args.truth_tolerance, max_steps=args.truth_max_steps,
            segments=spans, stopping="completeness", selects=selects, return_completeness=True,
            on_refinement=lambda estimate, c, rounds=rounds: rounds.append((estimate.copy(), c, time.perf_counter())),
        )
        index = segment_index_of(spans, len(rounds[-1][0]))
        truth = segment_shares_and_consistency(rounds[-1][0], index)
        stops = {rule: _stop(rounds, rule, args.tolerance, truth, index, selects, started) for rule in STOPPING_RULES}
        rows.append({
            "trace_id": trace.trace_id, "tokens": len(example.input_ids), "segments": len(spans), "steps": completeness.steps,
            "converged": completeness.converged, "relative_gap": completeness.relative_gap, "share_error": completeness.share_error,
            "consistency_error": completeness.consistency_error, "f_difference": completeness.target_score - completeness.baseline_score,
            "seconds": time.perf_counter() - started, "stops": stops,
            "rounds": [{"steps": c.steps, "relative_gap": c.relative_gap, "mass_gap": c.mass_gap, "share_error": c.share_error,
                        "rules_met": list(rules_met(c, args.tolerance))} for _, c, _ in rounds],
        })
        said = "; ".join(f"{rule}: {stop['steps']} points, share error {stop['true_share_error']:.4f}, Jaccard {stop['jaccard']:.2f}"
                         if stop["reached"] else f"{rule}: not reached" for rule, stop in stops.items())
        print(f"{trace.trace_id}: {rows[-1]['tokens']} tokens, truth {completeness.steps} points (gap {completeness.relative_gap:.4f}); "
              f"{said}; {rows[-1]['seconds']:.0f} s", flush=True)
        _write(args, rows, time.perf_counter() - run_started)  # after every trace: a stopped run keeps what it measured


def _stop(rounds, rule: str, tolerance: float, truth, index, selects, started: float) -> dict:
    """Where ``rule`` stops at ``tolerance`` on a tight run's rounds, and how far that is from its last round."""
    for estimate, completeness, at in rounds:
        if rule in rules_met(completeness, tolerance):
            shares, consistency = segment_shares_and_consistency(estimate, index)
            chosen, true_chosen = dict(selects(shares, consistency)), dict(selects(*truth))
            jaccards = [len(set(chosen[s]) & set(true_chosen[s])) / max(len(set(chosen[s]) | set(true_chosen[s])), 1) for s in chosen]
            return {"reached": True, "steps": completeness.steps, "seconds": at - started, "relative_gap": completeness.relative_gap,
                    "mass_gap": completeness.mass_gap, "true_share_error": float(np.abs(shares - truth[0]).sum()),
                    "jaccard": float(min(jaccards))}
    return {"reached": False}


def _write(args, rows: list[dict], wall_seconds: float) -> None:
    """One entry per model, each with its own provenance; the file's provenance is the latest entry's."""
    settings = {"model": args.model, "traces": args.traces, "tolerance": args.tolerance, "truth_tolerance": args.truth_tolerance,
                "truth_max_steps": args.truth_max_steps}
    entry = {
        "model": args.model, "tolerance": args.tolerance, "truth_tolerance": args.truth_tolerance, "max_steps": args.truth_max_steps,
        "provenance": provenance.stamp(config=settings, wall_seconds=wall_seconds),
        "converged_share": sum(row["converged"] for row in rows) / len(rows),
        "points_by_rule": {rule: sum(row["stops"][rule].get("steps", 0) for row in rows) for rule in STOPPING_RULES},
        "traces": rows,
    }
    earlier = json.loads(args.output.read_text())["cases"] if args.output.is_file() else []
    results = [e for e in earlier if e["model"] != args.model] + [entry]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cases = sorted(results, key=lambda e: e["model"])
    args.output.write_text(json.dumps({"provenance": entry["provenance"], "cases": cases}, indent=2) + "\n")
    print(f"Wrote {len(rows)} traces of {args.model} to {args.output}: {entry['converged_share']:.0%} converged", flush=True)


if __name__ == "__main__":
    main()
