"""The segment-method testbed designed on dev worlds (issue 41): does SFT on the world's traces teach the base
student what it lacks, and does imitating filler cost accuracy that the oracle mask recovers?

    python benchmarks/world_design.py --seeds 0 1 2            # the dev worlds of one base seed
    python benchmarks/world_design.py --seeds 0 --base-seed 1  # another base seed

One base student per base seed, warmed up on a curriculum that gives it the step but not the long chain:
short chains (``--short-steps``) worked step by step with no filler, and long chains (``--long-steps``)
answered directly, with no reasoning. Each world seed then draws its own 200 traces of long chains with
filler (detours in the surface form of real steps, ``problems.detour_form: step``) and its own evaluation
problems, and fine-tunes the base on them under three masks:

- ``full``: every trace token;
- ``oracle``: the planted steps and the final segment, no filler;
- ``random_budget``: random segments at the oracle's own token budget, trace by trace (the control that
  removes the reweighting confound: a mean loss over fewer tokens weighs each kept token more).

Every model is graded greedily on ``--n-eval`` problems; beside accuracy and length, the mechanism: the share
of generations that write more step lines than the question has actions (a detour or other filler) and the
accuracy with and without one. The gates (``tracesieve.world.roles``) are read off these figures. Results go
to ``benchmarks/results/dev_worlds.json``, one entry per (design, base seed, world seed), replaced when run
again; nothing here reads a test world.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import pandas as pd
from transformers import set_seed

from tracesieve import provenance
from tracesieve.config import ProblemConfig, TrainingConfig
from tracesieve.evaluation import is_correct
from tracesieve.generation import generate_completions
from tracesieve.modeling import build_llama
from tracesieve.rendering import ANSWER_CLOSE, ANSWER_PREFIX, INSTRUCTION
from tracesieve.selection import select_random_segments
from tracesieve.training import encode_for_sft, supervised_token_count, train_causal_lm
from tracesieve.world.problems import FINAL, SOURCE, UPSTREAM, generate_problems
from tracesieve.world.roles import oracle_headroom, oracle_vs_budget, sft_effect
from tracesieve.world.tokenizer import build_word_tokenizer

ROOT = Path(__file__).resolve().parents[1]
STEP_LINE = re.compile(r"\d+ (?:plus|minus) \d+ is \d+")


def step_lines(text: str) -> int:
    """Arithmetic lines a trace or generation writes ("9 minus 4 is 5"): steps, detours and checks alike."""
    return len(STEP_LINE.findall(text))


def problem_options(args, *, min_steps: int, max_steps: int, filler: bool, action_set: str = "common") -> dict:
    rates = {"check_rate": args.check_rate, "restatement_rate": args.restatement_rate, "detour_rate": args.detour_rate} if filler else {
        "check_rate": 0.0, "restatement_rate": 0.0, "detour_rate": 0.0}
    return ProblemConfig(min_steps=min_steps, max_steps=max_steps, max_value=args.max_value, final=args.final, distractor_rate=0.0,
                         decoy_rate=0.0, after_final_rate=0.0, detour_form=args.detour_form, action_set=action_set,
                         **rates).model_dump()


def warmup_rows(args) -> list[dict]:
    """The base student's curriculum: short chains step by step (with filler under ``--warmup-filler``), and a
    share ``--direct-share`` of long chains answered directly."""
    n_direct = round(args.direct_share * args.n_warmup)
    short = generate_problems(args.n_warmup - n_direct, seed=args.base_seed, split="warmup-short",
                              **problem_options(args, min_steps=args.short_steps[0], max_steps=args.short_steps[1], filler=args.warmup_filler))
    long = generate_problems(n_direct, seed=args.base_seed, split="warmup-long",
                             **problem_options(args, min_steps=args.long_steps[0], max_steps=args.long_steps[1], filler=False))
    rows = [{"question": p.question, "reasoning": p.reasoning, "answer": p.answer} for p in short]
    rows += [{"question": p.question, "reasoning": "", "answer": p.answer} for p in long]
    return rows


def world_problems(args, world_seed: int, exclude: set[str]):
    """A world's traces (long chains with filler) and evaluation problems, none of whose questions the warm-up saw."""
    options = problem_options(args, min_steps=args.long_steps[0], max_steps=args.long_steps[1], filler=True, action_set=args.action_set)
    drawn = generate_problems(3 * (args.n_traces + args.n_eval), seed=world_seed, split=f"world-{args.base_seed}", **options)
    seen, traces, evaluation = set(exclude), [], []
    for problem in drawn:
        if problem.question in seen:
            continue
        seen.add(problem.question)
        (traces if len(traces) < args.n_traces else evaluation).append(problem)
        if len(evaluation) == args.n_eval:
            break
    return traces, evaluation


def vocabulary_texts(args) -> list[str]:
    """Every word the world can write: a large draw of both chain ranges with filler (the vocabulary is
    closed: names, items, verbs, openers; numbers are added by range)."""
    texts = [INSTRUCTION, ANSWER_PREFIX + ANSWER_CLOSE]
    for low, high in (args.short_steps, args.long_steps):
        for problem in generate_problems(2000, seed=10_000 + args.base_seed, split="vocabulary",
                                         **problem_options(args, min_steps=low, max_steps=high, filler=True, action_set=args.action_set)):
            texts += [problem.question, problem.reasoning]
    return texts


def mask_spans(problem, roles: set[str] | None) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in problem.segments if roles is None or s.role in roles]


def without_filler(problem, roles: set[str]) -> str:
    """The trace with every segment whose role is not in ``roles`` cut out, context and all: what SFT would see
    if the traces had no filler (the ceiling the filler is measured against)."""
    return "".join(problem.reasoning[s.start:s.end] for s in problem.segments if s.role in roles).lstrip()


def segment_tokens(problem, tokenizer) -> pd.DataFrame:
    """Each planted segment's index and token count, as ``selection.select_random_segments`` reads them."""
    sizes = [len(tokenizer(problem.reasoning[s.start:s.end], add_special_tokens=False)["input_ids"]) for s in problem.segments]
    return pd.DataFrame({"segment_index": range(len(sizes)), "n_tokens": sizes})


def random_budget_spans(problem, tokenizer, roles: set[str], seed: int) -> list[tuple[int, int]]:
    """Random segments at the token budget of the segments whose roles are ``roles`` (the oracle's), this trace:
    the same draw as the pipeline's ``oracle_budget`` control (``select_random_segments``)."""
    sizes = segment_tokens(problem, tokenizer)
    budget = int(sum(n for n, s in zip(sizes["n_tokens"], problem.segments, strict=True) if s.role in roles))
    chosen = select_random_segments(sizes, budget, seed=seed)
    return [(problem.segments[i].start, problem.segments[i].end) for i in chosen]


def grade(model, tokenizer, evaluation, args) -> pd.DataFrame:
    completions = generate_completions(model, tokenizer, [p.question for p in evaluation], max_new_tokens=args.max_new_tokens,
                                       batch_size=100, progress=False)
    return pd.DataFrame({
        "problem_id": [p.trace_id for p in evaluation],
        "correct": [is_correct(c.text, p.answer) for c, p in zip(completions, evaluation, strict=True)],
        "n_tokens": [c.n_tokens for c in completions],
        "truncated": [c.truncated for c in completions],
        # more arithmetic lines than the question has actions: the generation wrote a detour or a check
        "writes_filler": [step_lines(c.text) > p.n_steps for c, p in zip(completions, evaluation, strict=True)],
        "completion": [c.text for c in completions],
    })


def model_figures(generations: pd.DataFrame) -> dict:
    with_filler = generations[generations["writes_filler"]]
    without = generations[~generations["writes_filler"]]
    return {
        "accuracy": float(generations["correct"].mean()),
        "mean_tokens": float(generations["n_tokens"].mean()),
        "filler_share": float(generations["writes_filler"].mean()),
        "accuracy_with_filler": float(with_filler["correct"].mean()) if len(with_filler) else None,
        "accuracy_without_filler": float(without["correct"].mean()) if len(without) else None,
    }


def train(model_init, tokenizer, examples, config: TrainingConfig, output_dir: Path):
    model = build_llama(tokenizer, **model_init)
    set_seed(config.seed)
    model, _history = train_causal_lm(model, examples, config, output_dir=output_dir, tokenizer=tokenizer)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--design", default="curriculum-step-detour")
    parser.add_argument("--base-design", help="the design whose base student this one reuses (default: its own)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--base-seed", type=int, default=0)
    parser.add_argument("--short-steps", type=int, nargs=2, default=[1, 2])
    parser.add_argument("--long-steps", type=int, nargs=2, default=[3, 5])
    parser.add_argument("--max-value", type=int, default=20)
    parser.add_argument("--action-set", default="common", choices=["common", "with_new"],
                        help="the verbs of the world's traces and evaluation problems; the warm-up always has the common ones")
    parser.add_argument("--final", default="silent")
    parser.add_argument("--check-rate", type=float, default=0.3)
    parser.add_argument("--restatement-rate", type=float, default=0.2)
    parser.add_argument("--detour-rate", type=float, default=0.5)
    parser.add_argument("--detour-form", default="step", choices=["step", "retracted"])
    parser.add_argument("--n-warmup", type=int, default=22400)
    parser.add_argument("--direct-share", type=float, default=0.5, help="share of the warm-up that is long chains answered directly")
    parser.add_argument("--warmup-steps", type=int, default=700)
    parser.add_argument("--warmup-filler", action="store_true",
                        help="the short chains of the warm-up carry filler at the world's rates (with the common verbs only)")
    parser.add_argument("--n-traces", type=int, default=200)
    parser.add_argument("--n-eval", type=int, default=1000)
    parser.add_argument("--sft-steps", type=int, default=100)
    parser.add_argument("--sft-lr", type=float, default=5e-4)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--variants", nargs="+", default=["full", "oracle", "random_budget"],
                        choices=["full", "oracle", "random_budget", "clean"],
                        help="clean: SFT on the traces with their filler cut out (a mechanism figure, not a mask)")
    parser.add_argument("--work", type=Path, default=ROOT / "data/06_models/checkpoints/world_design")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/dev_worlds.json")
    args = parser.parse_args()
    started = time.perf_counter()

    tokenizer = build_word_tokenizer(vocabulary_texts(args), numbers_up_to=2 * args.max_value + 10)
    rows = warmup_rows(args)
    base_examples = [encode_for_sft(tokenizer, r["question"], r["reasoning"], r["answer"]) for r in rows]
    shape = {"hidden_size": 128, "num_layers": 2, "num_heads": 4, "intermediate_size": 384, "max_positions": 512, "seed": args.base_seed}
    base_config = TrainingConfig(max_steps=args.warmup_steps, batch_size=32, learning_rate=3e-3, logging_steps=50,
                                 save_steps=args.warmup_steps, seed=args.base_seed, bf16=False)
    t0 = time.perf_counter()
    base_key = (f"{args.base_design or args.design}-base{args.base_seed}-{args.short_steps}-{args.long_steps}-{args.n_warmup}-{args.warmup_steps}"
                f"-{args.direct_share}").replace(" ", "")
    base = train(shape, tokenizer, base_examples, base_config, args.work / base_key)
    base_seconds = time.perf_counter() - t0
    base_state = {k: v.clone() for k, v in base.state_dict().items()}
    warm_questions = {r["question"] for r in rows}

    entries = []
    for seed in args.seeds:
        t_world = time.perf_counter()
        traces, evaluation = world_problems(args, seed, warm_questions)
        figures, generations, budgets = {}, {}, {}
        generations["base"] = grade(base, tokenizer, evaluation, args)
        # the base on its own curriculum: does it have the step it is meant to have?
        short = generate_problems(200, seed=seed, split="check-short",
                                  **problem_options(args, min_steps=args.short_steps[0], max_steps=args.short_steps[1], filler=False))
        base_short_accuracy = float(grade(base, tokenizer, short, args)["correct"].mean())
        print(f"base on its short chains: {base_short_accuracy:.3f}", flush=True)
        oracle_roles = {SOURCE, UPSTREAM, FINAL}
        masks = {
            "full": [encode_for_sft(tokenizer, p.question, p.reasoning, p.answer) for p in traces],
            "oracle": [encode_for_sft(tokenizer, p.question, p.reasoning, p.answer, supervised_spans=mask_spans(p, oracle_roles))
                       for p in traces],
            "random_budget": [encode_for_sft(tokenizer, p.question, p.reasoning, p.answer,
                                             supervised_spans=random_budget_spans(p, tokenizer, oracle_roles, seed=seed + index))
                              for index, p in enumerate(traces)],
            "clean": [encode_for_sft(tokenizer, p.question, without_filler(p, oracle_roles), p.answer) for p in traces],
        }
        masks = {name: masks[name] for name in args.variants}
        for name, examples in masks.items():
            budgets[name] = supervised_token_count(examples)
            model = build_llama(tokenizer, **shape)
            model.load_state_dict(base_state)
            config = TrainingConfig(max_steps=args.sft_steps, batch_size=16, learning_rate=args.sft_lr, save_steps=args.sft_steps, seed=seed, bf16=False)
            set_seed(seed)
            model, _ = train_causal_lm(model, examples, config, output_dir=args.work / f"{args.design}-{base_key}-w{seed}-{name}-{args.sft_steps}-{args.sft_lr}-{args.detour_rate}",
                                        tokenizer=tokenizer)  # keyed by the design: a finished checkpoint is resumed
            generations[name] = grade(model, tokenizer, evaluation, args)
        for name, table in generations.items():
            figures[name] = model_figures(table)
        print(json.dumps(figures, indent=1), flush=True)
        gates = {}
        if "full" in generations:
            gates.update(sft_effect(generations["full"], generations["base"]))
        if {"full", "oracle"} <= set(generations):
            gates.update(oracle_headroom(generations["oracle"], generations["full"]))
        if {"oracle", "random_budget"} <= set(generations):
            gates.update(oracle_vs_budget(generations["oracle"], generations["random_budget"]))
        entry = {"design": args.design, "base_seed": args.base_seed, "world_seed": seed, "models": figures, "gates": gates,
                 "supervised_tokens": budgets, "base_short_chain_accuracy": base_short_accuracy, "trace_filler_share": sum(step_lines(p.reasoning) > p.n_steps for p in traces) / len(traces),
                 "world_seconds": time.perf_counter() - t_world, "base_seconds": base_seconds,
                 "sample_generations": {name: table["completion"].head(2).tolist() for name, table in generations.items()}}
        entries.append(entry)
        print(json.dumps({k: entry[k] for k in ("world_seed", "models", "gates", "supervised_tokens")}, indent=1), flush=True)

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    earlier = json.loads(args.output.read_text())["entries"] if args.output.is_file() else []
    keys = {(e["design"], e["base_seed"], e["world_seed"]) for e in entries}
    kept = [e for e in earlier if (e["design"], e["base_seed"], e["world_seed"]) not in keys]
    for entry in entries:
        entry["settings"] = settings
        entry["provenance"] = provenance.stamp(config=settings, wall_seconds=time.perf_counter() - started)
    result = {"provenance": entries[-1]["provenance"], "entries": sorted(kept + entries, key=lambda e: (e["design"], e["base_seed"], e["world_seed"]))}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
