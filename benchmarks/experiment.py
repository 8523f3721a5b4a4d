"""The world's experiment: every variant under several training seeds, with the gates, pooled with intervals.

``make experiment`` copies the project (src/, conf/ without conf/local, pyproject.toml) into
``data/experiment/project`` and, for each training seed, runs the default ``kedro run`` there with
``fine_tuning.seed``, ``leaf.distillation.seed`` and ``evaluation.seed`` set to it and 1,000 held-out
problems (the world, its teacher and student, attribution and the scorers are seed-independent and resume
from the first run, or from the content-keyed caches of a finished ``make run``), then the ``evaluation``
pipeline again sampling as the authors evaluate (t = 0.6, top-p 0.95, 4 samples per problem on the first
500 problems, accuracy over all samples, pass@1 and pass@4), for the first seed only unless
``--sampled-seeds`` says more (sampling is the slow part here: long sampled responses keep a batch going). Every run logs to the project's own MLflow store, one run
each. After each run the generations are copied out, so a killed experiment resumes at the next seed.

``benchmarks/results/experiment.json`` holds per seed and pooled: every variant's accuracy and mean response
tokens with 95% intervals and its difference from full SFT (pooled: per-problem means over seeds, the
interval over problems), the share of the oracle's headroom each selective variant recovers, the gates, and
the scorers' within-trace AUROC and AOPC. A verdict per method follows from the pooled intervals and the
gates; the gates are never adjusted toward it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tracesieve import tracking  # noqa: E402
from tracesieve.evaluation import paired_difference, pass_at_k  # noqa: E402
from tracesieve.metrics import mean_interval  # noqa: E402
from tracesieve.world.roles import oracle_headroom  # noqa: E402

# Every variant: the default run's five, strength_only and consistency_only, and the paper's ablation
# scorers' (occlusion, gradient x input, perplexity, entropy: their strongest segments up to tau).
SCORER_VARIANTS = ("occlusion_sft", "gradient_x_input_sft", "perplexity_sft", "entropy_sft")
SFT_VARIANTS = ("full_sft", "selective_sft", "selective_sft_authors", "strength_only", "consistency_only", "random_sft", *SCORER_VARIANTS, "oracle_sft")
LEAF_VARIANTS = ("kd", "leaf_distilled")
SELECTIVE = ("selective_sft", "selective_sft_authors", "strength_only", "consistency_only", "random_sft", *SCORER_VARIANTS)
# Greedy on 1,000 held-out problems (3,000 generations per model over the seeds); sampled as the authors
# evaluate on the first 500 of them, 4 samples each.
N_EVAL = 1000
SAMPLING = {"num_samples": 4, "temperature": 0.6, "top_p": 0.95, "pass_at_k": [1, 4], "max_problems": 500}
# Content-keyed caches a finished `make run` leaves: copying them into the experiment's project is always
# safe (a key covers everything that shapes the result) and spares retraining the world's models.
CACHES = ("data/06_models/checkpoints", "data/03_primary/attribution_store", "data/03_primary/leaf_gradient_store")
GATE_KEYS = (
    "label_validity_auroc", "label_validity_passed", "oracle_headroom_accuracy", "oracle_headroom_accuracy_ci_low",
    "oracle_headroom_accuracy_ci_high", "oracle_headroom_tokens", "oracle_headroom_tokens_ci_low", "oracle_headroom_tokens_ci_high",
    "oracle_headroom_passed", "distractor_effect", "distractor_effect_ci_low", "distractor_effect_ci_high", "distractor_effect_passed",
    "distractor_effect_teacher", "distractor_pruning_fixes_share",
)
RUN_ONE = """
import json, sys
from pathlib import Path
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
project = Path.cwd()
bootstrap_project(project)
with KedroSession.create(project_path=project, runtime_params=json.loads(sys.argv[1])) as session:
    session.run(pipeline_name=sys.argv[2] or None)
"""


def _copy_project(work: Path) -> None:
    """The project's code and configuration in ``work`` (data stays there between seeds: checkpoints resume)."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "pyproject.toml", work)
    for folder in ("src", "conf"):
        shutil.rmtree(work / folder, ignore_errors=True)
    shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "conf", work / "conf", ignore=shutil.ignore_patterns("local"))
    (work / "conf" / "local").mkdir(exist_ok=True)
    # What every run of the experiment shares, in the copy's conf/local (the variants are read when the
    # pipelines are built): every variant, and the larger held-out set.
    local = {"fine_tuning": {"variants": list(SFT_VARIANTS)}, "world": {"n_eval": N_EVAL}}
    (work / "conf" / "local" / "parameters_experiment.yml").write_text(json.dumps(local))  # JSON is YAML
    for cache in CACHES:
        if (ROOT / cache).is_dir():
            shutil.copytree(ROOT / cache, work / cache, dirs_exist_ok=True)


def _kedro_run(work: Path, params: dict, pipeline: str, tracking_uri: str, log: Path) -> float:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "KEDRO_DISABLE_TELEMETRY": "1", "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    with log.open("w") as handle:
        result = subprocess.run([sys.executable, "-c", RUN_ONE, json.dumps(params), pipeline], cwd=work, env=env, stdout=handle, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"kedro run ({pipeline or 'default'}, {params}) failed after {seconds:.0f} s; see {log}")
    return seconds


def _latest_run_metrics(tracking_uri: str) -> dict[str, float]:
    mlflow.set_tracking_uri(tracking_uri)
    return tracking.flat_metrics(tracking.latest_kedro_run())


def _collect(work: Path, into: Path, models: tuple[str, ...]) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for model in models:
        shutil.copy(work / "data/07_model_output" / f"{model}_generations.parquet", into / f"{model}.parquet")


def _model_figures(generations: dict[str, pd.DataFrame], reference: str = "full_sft") -> dict[str, dict]:
    """Accuracy and mean tokens with 95% intervals over problems (per-problem means: seeds and samples
    pooled within a problem), and the paired difference from ``reference``."""
    per_problem = {name: table.groupby("problem_id").agg(correct=("correct", "mean"), n_tokens=("n_tokens", "mean")) for name, table in generations.items()}
    figures = {}
    for name, table in per_problem.items():
        entry = {}
        for column, label in (("correct", "accuracy"), ("n_tokens", "mean_response_tokens")):
            entry[label], entry[f"{label}_ci_low"], entry[f"{label}_ci_high"] = mean_interval(table[column])
            if name != reference and reference in per_problem:
                diff = paired_difference(table[column], per_problem[reference][column])
                entry[f"{label}_diff_vs_{reference}"], entry[f"{label}_diff_ci_low"], entry[f"{label}_diff_ci_high"] = diff
        table_in = generations[name]
        samples = table_in.groupby("problem_id")["correct"].agg(["size", "sum"])
        if int(table_in["sample_index"].max()) > 0:  # sampled (not only pooled seeds): pass@k up to the samples per problem
            for k in sorted({1, int(samples["size"].min())}):
                entry[f"pass_at_{k}"] = float(np.mean([pass_at_k(int(n), int(c), k) for n, c in samples.itertuples(index=False)]))
        figures[name] = entry
    return figures


def _present(folder: Path, models: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    return {m: pd.read_parquet(folder / f"{m}.parquet") for m in models if (folder / f"{m}.parquet").exists()}


def _pooled(seed_dirs: list[Path], models: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    return {model: pd.concat([pd.read_parquet(folder / f"{model}.parquet") for folder in seed_dirs], ignore_index=True) for model in models}


def _headroom_share(figures: dict[str, dict]) -> dict[str, float]:
    """The share of the oracle's accuracy headroom over full SFT that each selective variant recovers."""
    headroom = figures["oracle_sft"]["accuracy_diff_vs_full_sft"]
    if not headroom or math.isnan(headroom):
        return {}
    return {name: figures[name]["accuracy_diff_vs_full_sft"] / headroom for name in SELECTIVE if name in figures}


def _verdict(entry: dict, gate_passed: bool, method: str) -> str:
    low, high = entry["accuracy_diff_ci_low"], entry["accuracy_diff_ci_high"]
    tokens_low, tokens_high = entry["mean_response_tokens_diff_ci_low"], entry["mean_response_tokens_diff_ci_high"]
    if low > 0:
        accuracy = "more accurate"
    elif high < 0:
        accuracy = "less accurate"
    else:
        accuracy = "accuracy not distinguishable"
    length = "shorter" if tokens_high < 0 else "longer" if tokens_low > 0 else "length not distinguishable"
    text = f"{accuracy}, {length} than {method}"
    return text if gate_passed else f"{text} (gate failing: not a verdict on the method)"


def _markdown(pooled: dict[str, dict], gates: dict[str, float], shares: dict[str, float]) -> str:
    lines = ["| model | accuracy | diff vs reference | mean tokens | diff vs reference | verdict |", "| --- | --- | --- | --- | --- | --- |"]

    def interval(entry, key, digits=3):
        if f"{key}_ci_low" not in entry and f"{key}" not in entry:
            return "-"
        return f"{entry[key]:.{digits}f} [{entry[f'{key}_ci_low']:.{digits}f}, {entry[f'{key}_ci_high']:.{digits}f}]"

    def diff(entry, label, reference, digits=3):
        key = f"{label}_diff_vs_{reference}"
        if key not in entry:
            return "reference"
        return f"{entry[key]:+.{digits}f} [{entry[f'{label}_diff_ci_low']:+.{digits}f}, {entry[f'{label}_diff_ci_high']:+.{digits}f}]"

    for name, entry in pooled.items():
        reference = "kd" if name in LEAF_VARIANTS else "full_sft"
        verdict = entry.get("verdict", "")
        if name in shares:
            verdict += f"; recovers {shares[name]:+.0%} of the oracle's headroom"
        lines.append(
            f"| {name} | {interval(entry, 'accuracy')} | {diff(entry, 'accuracy', reference)} | {interval(entry, 'mean_response_tokens', 1)} "
            f"| {diff(entry, 'mean_response_tokens', reference, 1)} | {verdict} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=ROOT / "data/experiment")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks/results/experiment.json")
    parser.add_argument(
        "--sampled-seeds", type=int, nargs="*", default=None,
        help="seeds that also get the sampled evaluation (default: the first seed; sampling 4 x 500 problems for 12 "
        "models takes about 15 minutes a seed here, so every seed would take the experiment past an hour)",
    )
    args = parser.parse_args()

    project = args.work / "project"
    _copy_project(project)
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlflow.db'}")
    started = time.perf_counter()
    per_seed, seconds = {}, {}
    sampling_seeds = args.seeds[:1] if args.sampled_seeds is None else args.sampled_seeds
    for seed in args.seeds:
        greedy_dir, sampled_dir = args.work / f"seed-{seed}" / "greedy", args.work / f"seed-{seed}" / "sampled"
        done = greedy_dir / "metrics.json"
        if not done.exists():  # resume: a finished seed is not run again
            params = {"fine_tuning": {"seed": seed}, "leaf": {"distillation": {"seed": seed}}, "evaluation": {"seed": seed}}
            print(f"seed {seed}: kedro run ...", flush=True)
            seconds[f"seed_{seed}_run"] = _kedro_run(project, params, "", tracking_uri, args.work / f"seed-{seed}.log")
            _collect(project, greedy_dir, ("base", *SFT_VARIANTS, *LEAF_VARIANTS))
            done.write_text(json.dumps(_latest_run_metrics(tracking_uri)))
        if seed in sampling_seeds and not (sampled_dir / "done").exists():
            params = {"fine_tuning": {"seed": seed}, "evaluation": {"seed": seed, **SAMPLING}}
            print(f"seed {seed}: sampled evaluation ...", flush=True)
            seconds[f"seed_{seed}_sampled"] = _kedro_run(project, params, "evaluation", tracking_uri, args.work / f"seed-{seed}-sampled.log")
            _collect(project, sampled_dir, ("base", *SFT_VARIANTS))
            (sampled_dir / "done").write_text("")
        metrics = json.loads(done.read_text())
        per_seed[seed] = {
            "greedy": _model_figures({m: pd.read_parquet(greedy_dir / f"{m}.parquet") for m in ("base", *SFT_VARIANTS)}),
            "leaf_greedy": _model_figures({m: pd.read_parquet(greedy_dir / f"{m}.parquet") for m in LEAF_VARIANTS}, reference="kd"),
            "gates": {key: metrics.get(f"gate.{key}") for key in GATE_KEYS},
            "scorers": {
                name: value for name, value in metrics.items()
                if name.startswith(("planted_roles.", "faithfulness.")) and ("within_trace_auroc" in name or "aopc" in name)
            },
        }
        sampled = _present(sampled_dir, ("base", *SFT_VARIANTS))
        if sampled:  # a killed sampled evaluation leaves the models it finished (copied out by hand)
            per_seed[seed]["sampled"] = _model_figures(sampled)
            per_seed[seed]["sampled_complete"] = (sampled_dir / "done").exists()

    seed_dirs = [args.work / f"seed-{seed}" / "greedy" for seed in args.seeds]
    pooled_generations = _pooled(seed_dirs, ("base", *SFT_VARIANTS))
    pooled = _model_figures(pooled_generations)
    pooled_leaf = _model_figures(_pooled(seed_dirs, LEAF_VARIANTS), reference="kd")
    gates = per_seed[args.seeds[0]]["gates"]  # the gates that do not depend on the training seed, and seed 0's headroom
    # The gate's own rule on the seeds pooled (per-problem means over seeds, like every pooled figure).
    gates["oracle_headroom_passed_pooled"] = oracle_headroom(pooled_generations["oracle_sft"], pooled_generations["full_sft"])["oracle_headroom_passed"]
    for name in SELECTIVE:
        pooled[name]["verdict"] = _verdict(pooled[name], bool(gates["oracle_headroom_passed_pooled"]), "full SFT")
    pooled_leaf["leaf_distilled"]["verdict"] = _verdict(pooled_leaf["leaf_distilled"], bool(gates.get("distractor_effect_passed")), "KD")
    shares = _headroom_share(pooled)
    result = {
        "benchmark": "the world's experiment: every variant under several training seeds (make experiment)",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "seeds": args.seeds,
        "wall_seconds": time.perf_counter() - started,
        "run_seconds": seconds,
        "sampling": SAMPLING,
        "gates": gates,
        "pooled": {"greedy": pooled, "leaf_greedy": pooled_leaf, "oracle_headroom_share": shares},
        "per_seed": per_seed,
    }
    # Sampled evaluation pooled over the seeds that have it (``--no-sampling`` skips it for the seeds still to run).
    sampled_seeds = [seed for seed in args.seeds if "sampled" in per_seed[seed]]
    if sampled_seeds:
        result["sampled_seeds"] = sampled_seeds
        folders = [args.work / f"seed-{seed}" / "sampled" for seed in sampled_seeds]
        models = [m for m in ("base", *SFT_VARIANTS) if all((folder / f"{m}.parquet").exists() for folder in folders)]
        result["pooled"]["sampled"] = _model_figures(_pooled(folders, tuple(models)))
    result["markdown"] = _markdown({**pooled, **pooled_leaf}, gates, shares)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(result["markdown"])
    print(json.dumps(gates, indent=2))


if __name__ == "__main__":
    main()
