"""The results documents, generated from the stamped result files, never typed by hand.

Each JSON under ``benchmarks/results/`` carries a ``provenance`` block (``tracesieve.provenance``). This
module renders every one of them into ``docs/results.md`` (each table under the commit, date and machine it
was measured on), draws the figures under ``docs/figures/``, and fills the README's headline blocks, which
stand between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``. ``python -m tracesieve.launch.results``
(``make results``) writes them; ``--check`` says which block differs from what the committed JSON gives,
which is what the tests run, so no figure can drift from its file.

A result is stale when code it measured has changed since its commit: each result names the files and
folders it depends on (``depends_on``), and ``git diff --name-only <commit> -- <those>`` lists the ones
whose content differs now. Stale results are listed and marked ("changed since: ..."), never a failure:
the mark is the one line the check leaves out, since it moves with every commit.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tracesieve import experiment
from tracesieve.choices import DEFAULT_STOPPING_RULE
from tracesieve.metrics import format_figure, is_missing
from tracesieve.provenance import PROJECT_ROOT

RESULTS_DIR = Path("benchmarks/results")
RESULTS_DOC = Path("docs/results.md")
FIGURES_DIR = Path("docs/figures")
CHANGED_SINCE = "> Changed since it was measured:"  # the one line a check leaves out (it moves with every commit)
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.DOTALL)


def number(value, digits: int = 2) -> str:
    """A figure as the tables print it; a missing or NaN value as a dash."""
    return "-" if is_missing(value) else f"{value:,.{digits}f}"


# --- one renderer per result file ---------------------------------------------------------------------------

# Each gate's figure: the metric it is read from and what that measures (world/roles.py, world/distractors.py).
GATE_VALUES = {
    "label_validity": ("gate.label_validity_auroc", "within-trace AUROC of occlusion drops, source steps against filler"),
    "label_validity_upstream": ("gate.label_validity_upstream_auroc", "AUROC, the next step's starting count, upstream against filler"),
    "sft_effect": ("gate.sft_effect_accuracy", "accuracy, full SFT minus the base student"),
    "oracle_headroom": ("gate.oracle_headroom_accuracy", "accuracy, the oracle's mask minus full SFT"),
    "oracle_vs_budget": ("gate.oracle_vs_budget_accuracy", "accuracy, the oracle's mask minus random segments at its token budget"),
    "position_only": ("gate.position_only_share", "share of that headroom first, penultimate and last recover (undefined without headroom)"),
    "distractor_effect": ("gate.distractor_effect", "student accuracy without minus with a distractor"),
    "distractor_teacher": ("gate.distractor_effect_teacher", "the teacher's, the same"),
    "kd_effect": ("gate.kd_effect_accuracy", "accuracy, KD minus the base student"),
    "leaf_oracle": ("gate.leaf_oracle_accuracy", "accuracy, distillation on oracle counterfactuals minus KD"),
}


def _default_run(result: dict) -> str:
    gates = result["gates"]
    lines = [
        (f"The default `kedro run` from scratch on a clean copy of the project: {number(result['wall_seconds'], 0)} s wall "
         f"(goal {number(result['budget_seconds'], 0)} s: {'met' if result['within_budget'] else 'not met'}) at "
         f"{number(result['matmul_gflops'], 0)} GFLOP/s float32 matmul; checkpoints {number(result['checkpoint_bytes'] / 2**20, 1)} MiB, "
         f"all data {number(result['data_bytes'] / 2**20, 1)} MiB."),
        "",
        "| gate | what is measured | value [95% CI] | passed |",
        "| --- | --- | --- | --- |",
    ]
    for gate, (key, measured) in GATE_VALUES.items():
        if f"gate.{gate}_passed" not in gates:
            lines.append(f"| `{gate}` | {measured} | not measured | **no** (a missing gate fails) |")
            continue
        shown = format_figure(gates, key, signed=True) if gates.get(key) is not None else "undefined"
        lines.append(f"| `{gate}` | {measured} | {shown} | {'yes' if gates[f'gate.{gate}_passed'] else '**no**'} |")
    metrics = result["metrics"]
    models = _default_run_models(metrics)
    lines += ["", "| model | accuracy | seen skeletons | held-out skeletons | mean response tokens | truncated share | supervised tokens |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for model in sorted(models, key=lambda m: -metrics[f"{m}.accuracy"]):
        row = [metrics.get(f"{model}.{key}") for key in ("accuracy", "accuracy_seen_skeleton", "accuracy_heldout_skeleton",
                                                           "mean_response_tokens", "truncated_share", "supervised_tokens")]
        lines.append(f"| {model} | {number(row[0], 3)} | {number(row[1], 3)} | {number(row[2], 3)} | {number(row[3], 1)} "
                     f"| {number(row[4], 3)} | {number(row[5], 0)} |")
    nodes = result["node_seconds"]
    lines += ["", "Node seconds (the ten longest; every node is in the JSON):", "", "| node | seconds |", "| --- | ---: |"]
    lines += [f"| `{name}` | {number(seconds, 1)} |" for name, seconds in list(nodes.items())[:10]]
    return "\n".join(lines)


def _default_run_models(metrics: dict) -> list[str]:
    """The models the default run evaluated (LeaF's comparison table's rows are not models)."""
    return sorted({name.split(".")[0] for name in metrics if name.endswith(".accuracy") and not name.startswith("leaf_")})


def _default_run_headline(result: dict, _root: Path) -> str:
    gates = result["gates"]
    passed = sorted(name.removeprefix("gate.").removesuffix("_passed") for name, value in gates.items() if name.endswith("_passed") and value)
    failed = sorted(name.removeprefix("gate.").removesuffix("_passed") for name, value in gates.items() if name.endswith("_passed") and not value)
    missing = [gate for gate in GATE_VALUES if f"gate.{gate}_passed" not in gates]
    return (
        f"- A fresh default run: {number(result['wall_seconds'] / 60, 1)} minutes at {number(result['matmul_gflops'], 0)} GFLOP/s "
        f"(goal {number(result['budget_seconds'] / 60, 0)}), {number(result['checkpoint_bytes'] / 2**20, 0)} MiB of checkpoints.\n"
        f"- The world's gates passing: {', '.join(f'`{name}`' for name in passed) or 'none'}; failing: "
        f"{', '.join(f'`{name}`' for name in failed) or 'none'}"
        + (f"; not measured, so failing: {', '.join(f'`{name}`' for name in missing)}" if missing else "")
        + ". A failing gate marks the verdicts it invalidates."
    )


def ig_bench_table(cases: list[dict]) -> str:
    """The headline of every IG case: accuracy reached, seconds at equal accuracy, ratios, the floor."""
    lines = [
        ("| case | tokens | truth (points, gap, share change) | ours at tolerance 0.02 (stopping rule: points, s, share error, Jaccard) "
         "| ours under the other stopping rule (rule: points, share error, Jaccard) "
         "| authors' J = 50 (share error, Jaccard) | J needed: authors / Gauss-Legendre | speedup at equal accuracy vs authors / captum "
         "| memory ratio vs authors (default batch / batch 1) | s per point: ours / authors / captum / floor |"),
        "| --- | ---: | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for entry in cases:
        point = entry["seconds_per_point"]
        costs = (f"{number(point['ours'], 3)} / {number(point['reference'], 3)} / {number(point['captum'], 3)} / "
                 f"{number(entry['floor_seconds_per_point'], 3)}")
        memory = f"{number(entry['memory_ratio_vs_reference'])} / {number(entry['batch_1']['memory_ratio_vs_reference'])}"
        if not entry.get("accuracy_measured"):
            lines.append(f"| {entry['case']} | {entry['tokens']} | not measured (cost only) | - | - | - | - | - | {memory} | {costs} |")
            continue
        truth, ours, rules = entry["truth"], entry["ours"], entry["rules"]
        at_50 = rules["authors_linspace"]["at_J_50"]

        def needed(rule, rules=rules):
            return str(rules[rule]["J_needed"]) if rules[rule]["reached"] else f"> {max(int(j) for j in rules[rule]['by_J'])}"

        bound = ">= " if entry.get("speedups_are_lower_bounds") else ""
        # Entries measured before the selection rule hold the completeness rule's stop as "ours".
        ours_text = (f"{ours.get('stopping', 'completeness')}: {ours['steps']}, {number(ours['seconds'], 1)}, "
                     f"{number(ours['share_error'], 3)}, {number(ours['jaccard'])}" if ours["reached"] else "not reached")
        other = next((entry[key] for key in entry if key.startswith("ours_stopping_")), None)
        held_text = ("-" if other is None else f"{other['stopping']}: {other['steps']}, {number(other['share_error'], 3)}, "
                     f"{number(other['jaccard'])}" if other["reached"] else f"{other['stopping']}: not reached")
        speedups = (f"{bound}{number(entry.get('speedup_vs_reference_at_equal_accuracy'), 1)} / "
                    f"{bound}{number(entry.get('speedup_vs_captum_at_equal_accuracy'), 1)}" if ours["reached"] else "-")
        lines.append(
            f"| {entry['case']} | {entry['tokens']} | {truth['steps']}, {truth['relative_gap']:.1e}, "
            f"{number(truth['share_change_between_refinements'], 4)}{'' if truth['converged'] else ' (not converged)'} | {ours_text} "
            f"| {held_text} "
            f"| {number(at_50['share_error'], 3)}, {number(at_50['jaccard'])} | {needed('authors_linspace')} / {needed('gausslegendre')} "
            f"| {speedups} | {memory} | {costs} |"
        )
    return "\n".join(lines)


def _ig_bench(result: dict) -> str:
    return ig_bench_table(result["cases"])


def _points_to_tolerance(row: dict) -> int | None:
    """Points one trace needed at the tolerance: where the selection rule stopped on the tight run (entries
    that compare the rules), else the refinement's own points (earlier entries, held to the completeness gap)."""
    if "stops" not in row:
        return row["steps"]
    stop = row["stops"]["selection"]
    return stop["steps"] if stop["reached"] else None


def _ig_convergence(result: dict) -> str:
    lines = ["| model | traces | converged | tokens | points (median, max) | seconds per trace (median) | seconds per point |",
             "| --- | ---: | ---: | --- | --- | ---: | ---: |"]
    compared = []
    for case in result["cases"]:
        traces = case["traces"]
        if any("stops" in row for row in traces):
            compared.append(case)
            continue
        tokens = sorted(row["tokens"] for row in traces)
        steps = sorted(row["steps"] for row in traces)
        seconds = sorted(row["seconds"] for row in traces)
        per_point = sum(row["seconds"] for row in traces) / sum(row["steps"] for row in traces)
        lines.append(f"| {case['model']} | {len(traces)} | {number(case['converged_share'], 2)} | {tokens[0]}-{tokens[-1]} "
                     f"| {steps[len(steps) // 2]}, {steps[-1]} | {number(seconds[len(seconds) // 2], 1)} | {number(per_point, 3)} |")
    for case in compared:
        lines += ["", (f"{case['model']}: where each stopping rule stops at tolerance {case['tolerance']}, read off one refinement "
                       f"per trace to {case['truth_tolerance']} (the truth: its last round); share error and the worst Jaccard of "
                       "the attribution-reading selections are against that truth."), "",
                  ("| trace | tokens | segments | truth points (gap) | selection rule: points, share error, Jaccard "
                   "| completeness rule: points, share error, Jaccard |"),
                  "| --- | ---: | ---: | --- | --- | --- |"]
        for row in case["traces"]:
            cells = []
            for rule in ("selection", "completeness"):
                stop = row["stops"][rule]
                cells.append(f"{stop['steps']}, {number(stop['true_share_error'], 4)}, {number(stop['jaccard'])}" if stop["reached"] else "not reached")
            lines.append(f"| {row['trace_id']} | {row['tokens']} | {row['segments']} | {row['steps']} ({row['relative_gap']:.1e}) "
                         f"| {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _engine_bench(result: dict) -> str:
    lines = ["| mode | engine | generated tokens | seconds | tokens/s | start-up s |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for row in result["rows"]:
        lines.append(f"| {row['mode']} | {row['engine']} | {number(row.get('generated_tokens'), 0)} | {number(row.get('seconds'), 1)} "
                     f"| {number(row.get('tokens_per_second'), 0)} | {number(row.get('startup_seconds'), 1)} |")
    summary = result["summary"]
    lines += ["", (f"Greedy texts identical: {number(summary['greedy_identical_text_share'], 2)}; vLLM over hf in tokens/s: greedy "
                   f"x{number(summary['greedy_tokens_per_second_ratio_vllm_over_hf'])}, sampled "
                   f"x{number(summary['sampled_tokens_per_second_ratio_vllm_over_hf'])}.")]
    return "\n".join(lines)


def _startup(result: dict) -> str:
    names = ("registry_list", "refused_missing_models", "refused_bad_key")
    lines = ["| tree | kedro --version s | " + " | ".join(f"{name.replace('_', ' ')} s (x version)" for name in names)
             + " | refused runs opened an MLflow store |", "| --- | ---: | " + " | ".join("---:" for _ in names) + " | --- |"]
    for tree, row in result["trees"].items():
        cells = [f"{number(row['seconds'][name], 2)} (x{number(row['ratio_to_version'][name], 2)})" for name in names]
        lines.append(f"| {tree} | {number(row['seconds']['version'], 2)} | " + " | ".join(cells)
                     + f" | {'yes' if row['refused_runs_left_an_mlflow_store'] else 'no'} |")
    lines += ["", f"Least of repeated runs, interleaved across trees; goal: every ratio at most {number(result['goal_ratio'], 1)}."]
    return "\n".join(lines)


def _long_trace_bench(result: dict) -> str:
    lines = ["| stage | labels | tokens | peak before GiB | peak after GiB | working memory after/before | tokens/s after/before |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for entry in result["ratios"]:
        lines.append(f"| {entry['stage']} | {entry['mask'] or '-'} | {entry['length']} | {number(entry['peak_memory_gib_before'])} "
                     f"| {number(entry['peak_memory_gib_after'])} | x{number(entry['working_memory_ratio'])} | x{number(entry['tokens_per_second_ratio'])} |")
    return "\n".join(lines)


def _scale_bench(result: dict) -> str:
    rows = [row for row in result["rows"] if "error" not in row]
    lengths = sorted({row["length"] for row in rows})
    lines = ["Each cell: peak resident GiB, and seconds per IG gradient, training tokens per second or generated tokens per second.", "",
             "| stage | model | " + " | ".join(f"{length} tokens" for length in lengths) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in lengths) + " |"]
    for stage in dict.fromkeys(row["stage"] for row in rows):
        for model in dict.fromkeys(row["model"] for row in rows if row["stage"] == stage):
            cells = {row["length"]: row for row in rows if row["stage"] == stage and row["model"] == model}
            lines.append(f"| {stage} | {model} | " + " | ".join(_scale_cell(cells.get(length)) for length in lengths) + " |")
    fits = result.get("memory_fits", {})
    if fits:
        lines += ["", "Linear fits of peak memory against length (GiB + GiB per 1k tokens):", ""]
        lines += [f"- {fit['stage']}, {fit['model']}: {number(fit['intercept_gib'])} + {number(fit['gib_per_1k_tokens'])} L"
                  for fit in sorted(fits, key=lambda fit: (fit["stage"], fit["model"]))]
    return "\n".join(lines)


def _scale_cell(row: dict | None) -> str:
    if row is None:
        return "-"
    speed = next((f"{number(row[key], digits)} {unit}" for key, digits, unit in
                  (("seconds_per_gradient", 1, "s/gradient"), ("tokens_per_second", 0, "tokens/s"), ("new_tokens_per_second", 1, "new tokens/s"))
                  if key in row), "")
    return f"{number(row['peak_memory_gib'])}, {speed}" if speed else number(row["peak_memory_gib"])


def _experiment(result: dict) -> str:
    if "by_regime" not in result:  # the earlier experiment: training seeds on one world
        return _experiment_over_training_seeds(result)
    worlds = result["worlds"]
    lines = [
        f"Plan `{result['plan_hash']}` (`benchmarks/experiment_plan.yml`), {result['phase']} worlds {result['seeds']}"
        f" (dev worlds {result['dev_seeds']} are never reported); {len(worlds)} world{'s' if len(worlds) != 1 else ''}"
        + ("" if result["complete"] else " so far: **incomplete**, the experiment was stopped and resumes at the next world")
        + f"; {number(sum(world['wall_seconds'] + world.get('sampled_wall_seconds', 0) for world in worlds.values()) / 60, 0)} minutes of runs.",
        "",
        "Intervals are 95% t intervals over worlds (the world is the unit); each method is compared with its reference",
        "(full SFT, or KD for LeaF) and its matched random control world by world. A verdict needs the gates it rests on",
        "to pass on every world.",
        "",
    ]
    gate_names = sorted({g.removesuffix("_passed") for w in worlds.values() for g in w["gates"] if g.endswith("_passed")})
    lines += ["| world | minutes | " + " | ".join(gate_names) + " |", "| --- | ---: | " + " | ".join("---" for _ in gate_names) + " |"]
    for name, world in worlds.items():
        flags = ["yes" if world["gates"].get(f"{gate}_passed") else "**no**" for gate in gate_names]
        lines.append(f"| {name} | {number(world['wall_seconds'] / 60, 1)} | " + " | ".join(flags) + " |")
    for regime in result["regimes"]:
        entry = result["by_regime"][regime]
        lines += ["", experiment.markdown(regime, entry["greedy"], entry["verdicts"], entry["gates"], result.get("variants", ()))]
        if "sampled" in entry:
            sampled = entry["sampled"]
            caption = (f"Sampled as the authors evaluate (worlds {', '.join(entry['sampled_worlds'])}; accuracy over every sample, "
                       "t intervals over worlds):")
            lines += ["", caption, "", "| model | accuracy | vs reference |", "| --- | --- | --- |"]
            lines += [f"| {name} | {format_figure(sampled[name], 'accuracy')} "
                      f"| {format_figure(sampled[name], 'accuracy_vs_reference', signed=True)} |"
                      for name in experiment.model_order(sampled, result.get("variants", ()))]
    return "\n".join(lines)


def _experiment_over_training_seeds(result: dict) -> str:
    pooled = result["pooled"]["greedy"]
    lines = [f"Seeds {result['seeds']} (they vary the training order only; the world is the same in each).", "",
             "| model | accuracy [95% CI] | vs full_sft | mean tokens | verdict |", "| --- | --- | --- | ---: | --- |"]
    for model, figures in pooled.items():
        lines.append(
            f"| {model} | {format_figure(figures, 'accuracy')} "
            f"| {format_figure(figures, 'accuracy_diff_vs_full_sft', signed=True)} "
            f"| {number(figures.get('mean_response_tokens'), 1)} | {figures.get('verdict', '')} |"
        )
    return "\n".join(lines)


DEV_WORLD_GATES = ("sft_effect", "oracle_headroom", "oracle_vs_budget")


def _dev_worlds(result: dict) -> str:
    """The world designs tried on dev worlds (benchmarks/world_design.py): per design and world, each model's
    accuracy, length and how often it writes filler, and the segment testbed's gates. ``clean`` is SFT on the
    same traces with their filler cut out: what the traces teach when there is no filler to imitate."""
    lines = ["| design | base seed | world | base (short chains) | base | full SFT | oracle | random at oracle's budget | clean SFT "
             "| filler share: full / oracle | full SFT accuracy with / without filler | "
             + " | ".join(f"`{gate}`" for gate in DEV_WORLD_GATES) + " |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | " + " | ".join("---" for _ in DEV_WORLD_GATES) + " |"]
    for entry in result["entries"]:
        models, gates = entry["models"], entry["gates"]

        def accuracy(name: str) -> str:
            if name not in models:
                return "-"
            return f"{number(models[name]['accuracy'], 3)} ({number(models[name]['mean_tokens'], 0)} tok)"

        full = models["full"]
        cells = [
            f"{format_figure(gates, f'{gate}_accuracy', 3, signed=True)} {'yes' if gates.get(f'{gate}_passed') else '**no**'}"
            for gate in DEV_WORLD_GATES
        ]
        lines.append(
            f"| {entry['design']} | {entry['base_seed']} | {entry['world_seed']} | {number(entry.get('base_short_chain_accuracy'), 3)} "
            f"| {accuracy('base')} | {accuracy('full')} | {accuracy('oracle')} | {accuracy('random_budget')} | {accuracy('clean')} "
            f"| {number(full['filler_share'], 2)} / {number(models['oracle']['filler_share'], 2)} "
            f"| {number(full['accuracy_with_filler'], 3)} / {number(full['accuracy_without_filler'], 3)} | " + " | ".join(cells) + " |"
        )
    lines += ["", "Settings of each design (warm-up curriculum, verbs, chain lengths, filler rates, SFT steps) are in the file's "
              "`settings` (a clean SFT run added later to a design's world has its own in `clean_run`); every world here is a "
              "dev world (seeds 0-2), never one a verdict is read from."]
    return "\n".join(lines)


@dataclass(frozen=True)
class Result:
    """One result file: what it is, the code its figures depend on, and how it renders."""

    file: str
    title: str
    depends_on: tuple[str, ...]
    render: Callable[[dict], str]


RESULTS: tuple[Result, ...] = (
    Result("default_run.json", "The default run",
           ("src/tracesieve", "conf/base", "benchmarks/default_run_bench.py"), _default_run),
    Result("experiment.json", "The world's experiment",
           ("src/tracesieve", "conf/base", "benchmarks/experiment.py"), _experiment),
    Result("dev_worlds.json", "World designs on dev worlds",
           ("src/tracesieve/world", "src/tracesieve/training.py", "benchmarks/world_design.py"), _dev_worlds),
    Result("startup.json", "Start-up of commands that run no node",
           ("src/tracesieve/hooks.py", "src/tracesieve/lazy.py", "src/tracesieve/pipelines", "src/tracesieve/datasets",
            "benchmarks/startup_bench.py"), _startup),
    Result("ig_bench.json", "Integrated gradients at equal accuracy",
           ("src/tracesieve/attribution", "src/tracesieve/selection.py", "benchmarks/ig_bench.py"), _ig_bench),
    Result("ig_convergence.json", "Points IG needs to converge",
           ("src/tracesieve/attribution", "benchmarks/ig_convergence.py"), _ig_convergence),
    Result("engine_bench_cpu.json", "Evaluation engines, hf against vLLM",
           ("src/tracesieve/generation.py", "benchmarks/engine_bench.py"), _engine_bench),
    Result("long_trace_bench_cpu.json", "Long traces, SFT through TRL and the chunked KL",
           ("src/tracesieve/training.py", "src/tracesieve/leaf/distillation.py", "benchmarks/long_trace_bench.py"), _long_trace_bench),
    Result("scale_bench_cpu.json", "Time and memory against length and model size",
           ("src/tracesieve/attribution", "src/tracesieve/training.py", "src/tracesieve/generation.py", "benchmarks/scale_bench.py"),
           _scale_bench),
)
RESULT_BY_FILE = {result.file: result for result in RESULTS}
HEADLINE_METHODS = ("selective_sft", "selective_sft_authors", "share_floor_sft", "oracle_sft", "leaf_distilled")


def _experiment_headline(result: dict, _root: Path) -> str:
    if "by_regime" not in result:
        return ("- The committed `experiment.json` predates the experiment across worlds (its seeds varied the training "
                "order on one world); `make experiment` replaces it.")
    lines = [f"{len(result['worlds'])} test world{'s' if len(result['worlds']) != 1 else ''}" + ("" if result["complete"] else " (incomplete: the experiment resumes at the next world)")
             + "; 95% t intervals over worlds, each method against its reference (full SFT; KD for LeaF).", "",
             "| regime | method | accuracy vs reference | mean tokens vs reference | vs its random control | oracle headroom recovered | gates on every world |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for regime in result["regimes"]:
        summary, verdicts = result["by_regime"][regime]["greedy"], result["by_regime"][regime]["verdicts"]
        for method in HEADLINE_METHODS:
            if method not in summary or method not in verdicts:
                continue
            entry = summary[method]
            control = (format_figure(entry, "accuracy_vs_control", signed=True) if "accuracy_vs_control" in entry else "-")
            oracle = summary.get("oracle_sft", {})
            established = (oracle.get("accuracy_vs_reference_ci_low") or math.nan) > 0
            share = (format_figure(entry, "headroom_share", 2, signed=True)
                     if established and method not in ("oracle_sft", "leaf_distilled")
                     else "- (no headroom established)" if method not in ("oracle_sft", "leaf_distilled") else "-")
            lines.append(
                f"| {regime} | {method} | {format_figure(entry, 'accuracy_vs_reference', signed=True)} "
                f"| {format_figure(entry, 'mean_response_tokens_vs_reference', 1, signed=True)} "
                f"| {control} | {share} | {'yes' if verdicts[method]['gates_passed_on_every_world'] else '**no**'} |"
            )
    return "\n".join(lines)


def _attribution_cost_headline(result: dict, root: Path) -> str:
    """What converged attribution costs on the real model: points and seconds per trace where the default
    stopping rule stops, and what that makes of the traces ``root``'s conf/real_cpu attributes."""
    case = next((case for case in result["cases"] if case["model"] == "smollm2" and any("stops" in row for row in case["traces"])), None)
    if case is None:
        return "- No SmolLM2 convergence measured yet: `python benchmarks/ig_convergence.py --model smollm2` measures it."
    stops = [row["stops"][DEFAULT_STOPPING_RULE] for row in case["traces"] if row["stops"][DEFAULT_STOPPING_RULE]["reached"]]
    tokens = sorted(row["tokens"] for row in case["traces"])
    points, seconds = sorted(stop["steps"] for stop in stops), sorted(stop["seconds"] for stop in stops)
    machine = (case["provenance"].get("machine") or {})
    n_traces = _real_cpu_traces(root)
    median = seconds[len(seconds) // 2]
    return (
        f"- Converged attribution on SmolLM2-135M (tolerance {case['tolerance']}, stopping rule `{DEFAULT_STOPPING_RULE}`): world "
        f"traces of {tokens[0]}-{tokens[-1]} tokens needed {points[0]}-{points[-1]} gradient points, {number(seconds[0], 0)}-"
        f"{number(seconds[-1], 0)} s a trace on {machine.get('cores', '?')} cores ({len(stops)} of {len(case['traces'])} traces, "
        f"`{case['provenance'].get('command', '?')}`).\n"
        f"- At that median, `make real-cpu`'s {n_traces} traces take about {number(n_traces * median / 60, 0)} minutes of "
        "attribution before any training; the walkthrough above caps it at 16 points and keeps unconverged traces "
        "(`unconverged_policy: use`), so its selections are a first look, not a result."
    )


def _real_cpu_traces(root: Path) -> int:
    return int(yaml.safe_load((root / "conf/real_cpu/parameters.yml").read_text())["world"]["n_traces"])


# name -> (result file, renderer(result, root)): ``root`` is the checkout being rendered, for a headline that
# also reads its conf.
HEADLINES: dict[str, tuple[str, Callable[[dict, Path], str]]] = {
    "default-run": ("default_run.json", _default_run_headline),
    "attribution-cost": ("ig_convergence.json", _attribution_cost_headline),
    "experiment": ("experiment.json", _experiment_headline),
}


# --- provenance and staleness ---------------------------------------------------------------------------------

def load(root: Path, result: Result) -> dict:
    path = root / RESULTS_DIR / result.file
    try:
        loaded = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read the result file ({error})") from error
    if "provenance" not in loaded:
        raise ValueError(f"{path}: no provenance block (every result file records what produced it: tracesieve.provenance.stamp)")
    return loaded


def changed_since(root: Path, commit: str | None, paths: tuple[str, ...]) -> list[str] | None:
    """Files under ``paths`` whose content now differs from ``commit`` (committed or not); None when the
    commit is unknown or not in this clone."""
    if not commit:
        return None
    done = subprocess.run(["git", "diff", "--name-only", commit, "--", *paths], cwd=root, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None
    return sorted(line for line in done.stdout.splitlines() if line)


def _measured_at(provenance: dict) -> str:
    machine = provenance.get("machine") or {}
    described = machine.get("described") or ", ".join(
        str(part) for part in (machine.get("cpu"), f"{machine.get('cores')} cores" if machine.get("cores") else None,
                               f"{machine.get('memory_gib')} GiB" if machine.get("memory_gib") else None,
                               f"torch {machine.get('torch')}" if machine.get("torch") else None, machine.get("device")) if part)
    commit = (provenance.get("commit") or "unknown")[:10]
    dirty = " (with uncommitted changes)" if provenance.get("dirty") else ""
    text = f"> Measured at `{commit}`{dirty} on {provenance.get('date', 'an unknown date')[:10]}, {described}; `{provenance.get('command', '?')}`"
    if provenance.get("wall_seconds") is not None:
        text += f", {number(provenance['wall_seconds'], 0)} s"
    if provenance.get("recorded_by", "benchmark") != "benchmark":
        text += f".\n> Provenance: {provenance['recorded_by']}"
    return text + "."


def _changed_line(changed: list[str] | None) -> str:
    if changed is None:
        return f"{CHANGED_SINCE} unknown (its commit is not in this clone)."
    if not changed:
        return f"{CHANGED_SINCE} nothing."
    shown = ", ".join(f"`{path}`" for path in changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
    return f"{CHANGED_SINCE} {shown}."


def staleness(root: Path = PROJECT_ROOT) -> dict[str, list[str] | None]:
    """Per result file, the files it depends on that changed since it was measured."""
    return {result.file: changed_since(root, load(root, result)["provenance"].get("commit"), result.depends_on) for result in RESULTS}


# --- the documents --------------------------------------------------------------------------------------------

FIGURES: tuple[tuple[str, str], ...] = (
    ("accuracy_vs_tokens.svg", "Accuracy against mean response tokens per model, the default run"),
    ("ig_points_vs_tokens.svg", "Points IG needs to converge against trace length"),
)


def results_markdown(root: Path = PROJECT_ROOT) -> str:
    """``docs/results.md``: every result file's tables under its provenance, and the figures."""
    parts = [
        "# Results",
        "",
        "Generated by `make results` from the JSON files under `benchmarks/results/`; do not edit by hand (a test",
        "fails when this file differs from what they give). Each section says the commit, date, machine and command",
        "that produced it, and which of the files it measured have changed since.",
        "",
    ]
    for result in RESULTS:
        loaded = load(root, result)
        parts += [f"## {result.title}", "", f"`{RESULTS_DIR / result.file}`", "", _measured_at(loaded["provenance"]),
                  _changed_line(changed_since(root, loaded["provenance"].get("commit"), result.depends_on)), "",
                  result.render(loaded), ""]
    parts += ["## Figures", ""]
    parts += [f"![{caption}](figures/{name})" + "\n" for name, caption in FIGURES]
    return "\n".join(parts).rstrip() + "\n"


def draw_figures(root: Path = PROJECT_ROOT) -> dict[str, bytes]:
    """The figures as SVG bytes (no timestamp, fixed ids: the same JSON gives the same file)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "tracesieve"
    figures = {}
    default_run = load(root, RESULT_BY_FILE["default_run.json"])
    metrics = default_run["metrics"]
    figure, axes = plt.subplots(figsize=(6, 4))
    for model in _default_run_models(metrics):
        x, y = metrics.get(f"{model}.mean_response_tokens"), metrics[f"{model}.accuracy"]
        axes.scatter([x], [y])
        axes.annotate(model, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes.set_xlabel("mean response tokens")
    axes.set_ylabel("accuracy (greedy, held-out problems)")
    axes.set_title(f"default run at {(default_run['provenance'].get('commit') or '?')[:7]}")
    figures["accuracy_vs_tokens.svg"] = figure
    figure, axes = plt.subplots(figsize=(6, 4))
    for case in load(root, RESULT_BY_FILE["ig_convergence.json"])["cases"]:
        rows = [row for row in case["traces"] if _points_to_tolerance(row) is not None]
        axes.scatter([row["tokens"] for row in rows], [_points_to_tolerance(row) for row in rows], label=case["model"])
    axes.set_xlabel("trace tokens")
    axes.set_ylabel("path points to tolerance")
    axes.legend()
    figures["ig_points_vs_tokens.svg"] = figure
    rendered = {}
    for name, figure in figures.items():
        buffer = io.BytesIO()
        figure.tight_layout()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
        plt.close(figure)
        rendered[name] = buffer.getvalue()
    return rendered


def fill_blocks(text: str, root: Path = PROJECT_ROOT) -> str:
    """``text`` with every ``<!-- results:NAME -->`` block rendered anew from its result file."""
    def render(match: re.Match) -> str:
        name = match.group("name")
        if name not in HEADLINES:
            raise ValueError(f"<!-- results:{name} -->: no such headline (known: {', '.join(sorted(HEADLINES))})")
        file, renderer = HEADLINES[name]
        loaded = load(root, RESULT_BY_FILE[file])
        return f"{match.group(1)}{renderer(loaded, root)}\n{match.group(4)}"

    return BLOCK.sub(render, text)


BLOCK_FILES = (Path("README.md"),)


def rendered_documents(root: Path = PROJECT_ROOT) -> dict[Path, str]:
    """Every generated text document, by path relative to ``root``: docs/results.md and the files with blocks."""
    documents = {RESULTS_DOC: results_markdown(root), CONFIGURATION_DOC: configuration_markdown(root)}
    for path in BLOCK_FILES:
        documents[path] = fill_blocks((root / path).read_text(), root)
    return documents


def _comparable(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith(CHANGED_SINCE))


def differing_documents(root: Path = PROJECT_ROOT) -> list[Path]:
    """The generated documents whose text differs from what the result files give (staleness marks aside)."""
    differing = []
    for path, text in rendered_documents(root).items():
        on_disk = (root / path).read_text() if (root / path).exists() else ""
        if _comparable(on_disk) != _comparable(text):
            differing.append(path)
    return differing


def write_documents(root: Path = PROJECT_ROOT) -> list[Path]:
    """Write every generated document and figure whose content changed; returns what was rewritten."""
    written = []
    outputs: dict[Path, bytes] = {path: text.encode() for path, text in rendered_documents(root).items()}
    outputs.update({FIGURES_DIR / name: data for name, data in draw_figures(root).items()})
    for path, data in outputs.items():
        target = root / path
        if target.exists() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(path)
    return written


# --- the configuration reference ------------------------------------------------------------------------------

CONFIGURATION_DOC = Path("docs/configuration.md")


def _blocks() -> dict[str, type]:
    """Each top-level parameter block and the schema Kedro validates it against (config.py)."""
    from tracesieve import config

    return {"world": config.WorldConfig, "ingestion": config.IngestionConfig, "attribution": config.AttributionConfig,
            "segmentation": config.SegmentationConfig, "selection": config.SelectionConfig,
            "faithfulness": config.FaithfulnessConfig, "fine_tuning": config.FineTuningConfig, "leaf": config.LeafConfig,
            "evaluation": config.EvaluationConfig, "reporting": config.ReportingConfig}


def _accepted(annotation) -> str:
    import typing

    text = str(annotation).replace("typing.", "")
    if typing.get_origin(annotation) is typing.Literal:
        text = " | ".join(map(str, typing.get_args(annotation)))
    text = re.sub(r"<class '(\w+)'>", r"\1", text)
    return text.replace("|", "\\|")


_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>\w+):(?P<value>[^#]*)(?:#\s?(?P<comment>.*))?$")


def yaml_comments(text: str) -> dict[str, str]:
    """The comment beside each key of a parameter file, by dotted path (and the comment lines that continue
    it, aligned under it): what conf/base says of a key whose schema field has no description."""
    comments, stack, last = {}, [], None
    for line in text.splitlines():
        match = _KEY_LINE.match(line)
        if match:
            depth = len(match["indent"])
            stack = [(d, k) for d, k in stack if d < depth] + [(depth, match["key"])]
            last = ".".join(key for _, key in stack)
            if match["comment"]:
                comments[last] = match["comment"].strip()
            elif not match["value"].strip():
                last = None  # a block's own line: its comment lines are not its first key's
            continue
        stripped = line.strip()
        # a comment line indented past its key continues the key's comment; one at the key's indent does not
        if stripped.startswith("#") and last in comments and line.index("#") > stack[-1][0] + 2:
            comments[last] += " " + stripped.lstrip("#").strip()
        elif stripped:
            last = None
    return comments


def _field_rows(schema: type, base: dict, prefix: str, comments: dict[str, str] | None = None) -> list[str]:
    from pydantic import BaseModel

    rows = []
    for name, field in schema.model_fields.items():
        path = f"{prefix}.{name}"
        annotation = field.annotation
        value = base.get(name, "(default)") if isinstance(base, dict) else "(default)"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _field_rows(annotation, value if isinstance(value, dict) else {}, path, comments)
            continue
        default = field.get_default(call_default_factory=True)
        shown = json.dumps(value, default=str) if value != "(default)" else "(schema default)"
        description = (field.description or (comments or {}).get(path, "")).replace("|", "\\|")
        rows.append(f"| `{path}` | `{json.dumps(default, default=str)}` | `{shown}` | {_accepted(annotation)} | {description} |".replace("`(schema default)`", "="))
    return rows


def configuration_markdown(root: Path = PROJECT_ROOT) -> str:
    """``docs/configuration.md``: every parameter file of conf/base, its blocks, and every key of their schemas."""
    import yaml

    parts = [
        "# Configuration",
        "",
        "Generated by `make results` from the schemas in `src/tracesieve/config.py` and the files in `conf/base/`;",
        "do not edit by hand. Kedro validates each block once per run, before the first node, against its",
        "schema: an unknown or mistyped key stops the run naming it. An environment (`conf/real`, `conf/real_cpu`,",
        "`conf/paper`, see [environments.md](environments.md)) overrides keys of `conf/base`; `kedro run --params",
        "\"selection.tau=0.5\"` overrides one run; `conf/local/` (git-ignored) overrides yours. The YAML files'",
        "comments say why each base value was chosen; a key the schema does not describe is described by that comment.",
        "\"base\" is the value in `conf/base` (= the schema's default).",
        "",
    ]
    paths = sorted((root / "conf" / "base").glob("parameters*.yml"))
    files = {path.name: yaml.safe_load(path.read_text()) or {} for path in paths}
    comments = {key: text for path in paths for key, text in yaml_comments(path.read_text()).items()}
    for block, schema in _blocks().items():
        file = next((name for name, content in files.items() if block in content), None)
        parts += [f"## `{block}` (`conf/base/{file}`)" if file else f"## `{block}`", "", (schema.__doc__ or "").strip().splitlines()[0], "",
                  "| key | schema default | base | accepts | what it controls |", "| --- | --- | --- | --- | --- |"]
        parts += _field_rows(schema, files.get(file, {}).get(block, {}) if file else {}, block, comments)
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"
