"""Points integrated gradients needs to converge, per trace, against its length: the real_cpu env's question.

    python benchmarks/ig_convergence.py                       # SmolLM2-135M on the first 6 world traces
    python benchmarks/ig_convergence.py --model world --traces 50

Each trace is attributed as the pipeline does it (``attribution.tolerance`` 0.02, ``max_steps`` 512, the
reflection-keyword segments) and its length, points used, convergence, completeness gap, share error and
seconds are written to ``benchmarks/results/ig_convergence.json`` (one entry per model, replaced when run
again). The rounds record, for each trace, the share error estimate after every refinement, so the
curve of error against points is there too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from tracesieve import provenance
from tracesieve.attribution import integrated_gradients
from tracesieve.choices import DEFAULT_MAX_STEPS, DEFAULT_TOLERANCE
from tracesieve.config import SegmentationConfig
from tracesieve.launch.smollm2 import prepare_smollm2
from tracesieve.modeling import load_causal_lm, load_tokenizer
from tracesieve.rendering import encode_example
from tracesieve.segmentation import segment_traces

ROOT = Path(__file__).resolve().parents[1]
MODELS = {
    "smollm2": (ROOT / "data/06_models/smollm2-135m-instruct", ROOT / "data/06_models/smollm2-135m-instruct"),
    "world": (ROOT / "data/06_models/teacher", ROOT / "data/06_models/tokenizer"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", choices=sorted(MODELS))
    parser.add_argument("--traces", type=int, default=6)
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS)
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/ig_convergence.json")
    args = parser.parse_args()
    model_dir, tokenizer_dir = MODELS[args.model]
    if args.model == "smollm2":
        prepare_smollm2(model_dir)
    model, tokenizer = load_causal_lm(model_dir).eval(), load_tokenizer(tokenizer_dir)
    records = [json.loads(line) for line in (ROOT / "data/01_raw/world_traces.jsonl").read_text().splitlines()][: args.traces]
    traces = pd.DataFrame(records)[["trace_id", "question", "reasoning", "answer"]]
    segments = segment_traces(traces, tokenizer, SegmentationConfig())
    rows = []
    run_started = time.perf_counter()
    for trace in traces.itertuples(index=False):
        example = encode_example(tokenizer, trace.question, trace.reasoning, trace.answer)
        own = segments[segments["trace_id"] == trace.trace_id]
        spans = [(int(start), int(end)) for start, end in own[["token_start", "token_end"]].itertuples(index=False)]
        rounds = []
        started = time.perf_counter()
        _, completeness = integrated_gradients(
            model, example.input_ids, example.target_positions, tolerance=args.tolerance, max_steps=args.max_steps,
            segments=spans, return_completeness=True,
            on_refinement=lambda _estimate, c: rounds.append({"steps": c.steps, "relative_gap": c.relative_gap, "share_error": c.share_error}),
        )
        rows.append({
            "trace_id": trace.trace_id, "tokens": len(example.input_ids), "segments": len(spans), "steps": completeness.steps,
            "converged": completeness.converged, "relative_gap": completeness.relative_gap, "share_error": completeness.share_error,
            "consistency_error": completeness.consistency_error, "f_difference": completeness.target_score - completeness.baseline_score,
            "seconds": time.perf_counter() - started, "rounds": rounds,
        })
        print(f"{trace.trace_id}: {rows[-1]['tokens']} tokens, {completeness.steps} points, converged {completeness.converged}, "
              f"gap {completeness.relative_gap:.4f}, {rows[-1]['seconds']:.0f} s", flush=True)
        _write(args, rows, time.perf_counter() - run_started)  # after every trace: a stopped run keeps what it measured


def _write(args, rows: list[dict], wall_seconds: float) -> None:
    """One entry per model, each with its own provenance; the file's provenance is the latest entry's."""
    settings = {"model": args.model, "traces": args.traces, "tolerance": args.tolerance, "max_steps": args.max_steps}
    entry = {
        "model": args.model, "tolerance": args.tolerance, "max_steps": args.max_steps,
        "provenance": provenance.stamp(config=settings, wall_seconds=wall_seconds),
        "converged_share": sum(row["converged"] for row in rows) / len(rows), "traces": rows,
    }
    earlier = json.loads(args.output.read_text())["cases"] if args.output.is_file() else []
    results = [e for e in earlier if e["model"] != args.model] + [entry]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    cases = sorted(results, key=lambda e: e["model"])
    args.output.write_text(json.dumps({"provenance": entry["provenance"], "cases": cases}, indent=2) + "\n")
    print(f"Wrote {len(rows)} traces of {args.model} to {args.output}: {entry['converged_share']:.0%} converged", flush=True)


if __name__ == "__main__":
    main()
