"""The pre-registered experiment across worlds: frozen settings, dev and test worlds, world-level intervals.

Each seed of the experiment draws a new world: its problems, its teacher and student, the attributions, the
random masks, LeaF's counterfactuals and the training order all follow from the seed (``world_overrides``).
Settings may be chosen on dev worlds only; the test worlds run once with the plan frozen in
``benchmarks/experiment_plan.yml``, whose hash, with the commit, goes into the result so that a reader can
tell which settings a verdict was read under. The headline intervals are over worlds (a t interval of the
per-world differences, the world the unit of replication), with the pooled per-problem intervals beside.

Framework-free: ``benchmarks/experiment.py`` runs the worlds through ``kedro run`` and calls this module.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tracesieve.evaluation import paired_difference
from tracesieve.metrics import format_figure, is_missing, t_interval

PHASES = ("dev", "test")
REFERENCE = "full_sft"
LEAF_REFERENCE = "kd"


@dataclass(frozen=True)
class Plan:
    """What the experiment runs, frozen before the test worlds (``benchmarks/experiment_plan.yml``)."""

    dev_seeds: tuple[int, ...]
    test_seeds: tuple[int, ...]
    regimes: tuple[str, ...]
    variants: tuple[str, ...]  # fine-tuning variants; the base model, kd and leaf_distilled always run
    controls: Mapping[str, str]  # method -> its matched random control
    parameters: Mapping  # conf/local parameters shared by every world (frozen)
    sampling: Mapping  # evaluation overrides of the sampled evaluation
    sampled_worlds_per_regime: int
    text: str  # the plan file as read: its hash is the frozen config's

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def seeds(self, phase: str) -> tuple[int, ...]:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
        return self.dev_seeds if phase == "dev" else self.test_seeds


def load_plan(path: Path) -> Plan:
    text = path.read_text()
    raw = yaml.safe_load(text)
    required = {"dev_seeds", "test_seeds", "regimes", "variants", "controls", "parameters", "sampling", "sampled_worlds_per_regime"}
    if missing := required - set(raw):
        raise ValueError(f"{path}: the plan lacks {sorted(missing)}")
    if overlap := set(raw["dev_seeds"]) & set(raw["test_seeds"]):
        raise ValueError(f"{path}: seeds {sorted(overlap)} are both dev and test worlds; a setting chosen on a world is never read there")
    if REFERENCE not in raw["variants"]:
        raise ValueError(f"{path}: variants must include {REFERENCE}, the reference of every comparison")
    return Plan(tuple(raw["dev_seeds"]), tuple(raw["test_seeds"]), tuple(raw["regimes"]), tuple(raw["variants"]),
                dict(raw["controls"]), raw["parameters"], raw["sampling"], int(raw["sampled_worlds_per_regime"]), text)


def _merge(base: dict, extra: Mapping) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = _merge(merged.get(key, {}), value) if isinstance(value, Mapping) else value
    return merged


def world_overrides(plan: Plan, regime: str, seed: int) -> dict:
    """The conf/local parameters of one world: the plan's frozen ones, the regime, and the seed everywhere a
    draw is made (world, random masks, training order, distillation, sampling)."""
    seeded = {
        "world": {"seed": seed, "problems": {"final": regime}},
        "selection": {"seed": seed},
        "fine_tuning": {"seed": seed, "variants": list(plan.variants)},
        "leaf": {"distillation": {"seed": seed}},
        "evaluation": {"seed": seed},
    }
    return _merge(dict(plan.parameters), seeded)


def world_name(phase: str, regime: str, seed: int) -> str:
    return f"{phase}-{regime}-{seed}"


# --- one world's figures ------------------------------------------------------------------------------------

def per_problem(generations: pd.DataFrame) -> pd.DataFrame:
    """Per problem, the mean over its samples (one greedy sample: the sample itself) of being right, of the
    response's tokens and of being truncated: the unit every figure and paired difference is taken over."""
    return generations.groupby("problem_id").agg(correct=("correct", "mean"), n_tokens=("n_tokens", "mean"),
                                                 truncated=("truncated", "mean"))


SUBSETS = {"all": None, "seen_skeleton": ("heldout_skeleton", False), "heldout_skeleton": ("heldout_skeleton", True)}


def model_figures(generations: pd.DataFrame) -> dict[str, float]:
    """Greedy (or sampled: per-problem means) accuracy, mean tokens and truncated share, on every subset."""
    figures = {}
    for subset, condition in SUBSETS.items():
        table = generations if condition is None else generations[generations[condition[0]] == condition[1]]
        if table.empty:
            continue
        means = per_problem(table)
        prefix = "" if subset == "all" else f"{subset}."
        figures[f"{prefix}accuracy"] = float(means["correct"].mean())
        figures[f"{prefix}mean_response_tokens"] = float(means["n_tokens"].mean())
        figures[f"{prefix}truncated_share"] = float(means["truncated"].mean())
        figures[f"{prefix}problems"] = len(means)
    return figures


def world_result(generations: Mapping[str, pd.DataFrame], metrics: Mapping[str, float], wall_seconds: float) -> dict:
    """What one world contributes: every model's figures, each one's paired difference from its reference
    (full SFT, or KD for LeaF), the gates, LeaF's figures and the supervised tokens, and the wall time."""
    models = {}
    for name, table in generations.items():
        entry = model_figures(table)
        entry["supervised_tokens"] = metrics.get(f"{name}.supervised_tokens")
        models[name] = entry
    return {
        "wall_seconds": wall_seconds,
        "models": models,
        "gates": {name.removeprefix("gate."): value for name, value in metrics.items() if name.startswith("gate.")},
        "leaf": {name: value for name, value in metrics.items() if name.startswith(("leaf_check.", "leaf_distractor."))
                 or name.endswith("counterfactual_item_share")},
        "world": {name: value for name, value in metrics.items() if name.startswith("world.")},
    }




# --- across worlds ------------------------------------------------------------------------------------------

def _triple(prefix: str, values: tuple[float, float, float]) -> dict[str, float]:
    return {prefix: values[0], f"{prefix}_ci_low": values[1], f"{prefix}_ci_high": values[2]}


def across_worlds(worlds: Mapping[str, dict], generations: Mapping[str, Mapping[str, pd.DataFrame]], plan: Plan) -> dict:
    """Per model: world-level means and t intervals of its figures and of its differences from its reference
    and (for a method with one) from its matched random control; beside them the pooled per-problem
    interval; for each fine-tuning variant the share of the oracle's headroom it recovers."""
    names = sorted({name for world in worlds.values() for name in world["models"]})
    summary = {}
    for name in names:
        reference = LEAF_REFERENCE if name == "leaf_distilled" else REFERENCE
        present = [world for world in worlds if name in worlds[world]["models"]]
        entry = {"worlds": len(present)}
        for key in ("accuracy", "mean_response_tokens", "truncated_share", "heldout_skeleton.accuracy", "seen_skeleton.accuracy",
                    "supervised_tokens"):
            entry |= _triple(key, t_interval([worlds[world]["models"][name].get(key) for world in present]))
        for other, label in ((reference, "vs_reference"), (plan.controls.get(name), "vs_control")):
            if other is None or other == name:
                continue
            paired = [world for world in present if other in worlds[world]["models"]]
            for key in ("accuracy", "mean_response_tokens"):
                diffs = [worlds[w]["models"][name][key] - worlds[w]["models"][other][key] for w in paired]
                entry |= _triple(f"{key}_{label}", t_interval(diffs))
            entry[f"{label}_model"] = other
            # Pooled over worlds, problem by problem (a problem is a world's problem): narrower, since it
            # leaves the variance between worlds out; reported beside, never as the headline.
            if paired:
                mine, theirs = (pd.concat([per_problem(generations[w][model]).add_prefix(f"{w}:", axis=0) for w in paired])
                                for model in (name, other))
                entry |= _triple(f"accuracy_{label}_pooled", paired_difference(mine["correct"], theirs["correct"]))
        if name not in (REFERENCE, "oracle_sft") and "oracle_sft" in names and name in plan.variants:
            entry |= headroom_share(worlds, name)
        summary[name] = entry
    return summary


NO_HEADROOM_SHARE = {"headroom_share": math.nan, "headroom_share_ci_low": math.nan, "headroom_share_ci_high": math.nan}


def headroom_share(worlds: Mapping[str, dict], name: str, resamples: int = 2000, seed: int = 0) -> dict[str, float]:
    """The share of the oracle's accuracy headroom over full SFT that ``name`` recovers, as a ratio of the
    world-level means, with a bootstrap over worlds (a per-world ratio explodes where a world's headroom is
    near 0)."""
    paired = [w for w in worlds if {name, "oracle_sft", REFERENCE} <= set(worlds[w]["models"])]
    if len(paired) < 2:
        return dict(NO_HEADROOM_SHARE)
    gains = np.array([worlds[w]["models"][name]["accuracy"] - worlds[w]["models"][REFERENCE]["accuracy"] for w in paired])
    headroom = np.array([worlds[w]["models"]["oracle_sft"]["accuracy"] - worlds[w]["models"][REFERENCE]["accuracy"] for w in paired])
    if not t_interval(headroom)[1] > 0:  # a share of headroom the worlds do not establish is no figure
        return dict(NO_HEADROOM_SHARE)
    share = float(gains.mean() / headroom.mean()) if headroom.mean() != 0 else math.nan
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(paired), size=(resamples, len(paired)))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = gains[draws].mean(axis=1) / headroom[draws].mean(axis=1)
    ratios = ratios[np.isfinite(ratios)]
    low, high = (float(np.quantile(ratios, 0.025)), float(np.quantile(ratios, 0.975))) if len(ratios) else (math.nan, math.nan)
    return {"headroom_share": share, "headroom_share_ci_low": low, "headroom_share_ci_high": high}


# The gates each verdict rests on (issue 41). A fine-tuning verdict needs a world where SFT teaches, filler
# costs what the oracle recovers beyond the reweighting of a smaller mask, and the planted roles matter to
# the model; a rule that keeps segments by position needs position not to tell roles; LeaF needs a misled
# student, a teacher that sees through distractors, a KD that helps and room for pruning to beat it.
FINE_TUNING_GATES = ("sft_effect", "oracle_headroom", "oracle_vs_budget", "label_validity", "label_validity_upstream")
POSITION_GATES = ("position_only",)
LEAF_GATES = ("distractor_effect", "distractor_teacher", "kd_effect", "leaf_oracle")
# The variants whose rule keeps the first, penultimate and last segments whatever their scores.
KEEPS_BY_POSITION = ("selective_sft_authors", "position_sft", "random_matched_sft")


def verdict_gates(name: str) -> tuple[str, ...]:
    """The gates the verdict on model ``name`` rests on."""
    if name == "leaf_distilled":
        return LEAF_GATES
    return FINE_TUNING_GATES + (POSITION_GATES if name in KEEPS_BY_POSITION else ())


def gates_hold(gates: Mapping[str, dict], required: Sequence[str]) -> bool:
    """Whether every required gate passed on every world; a gate missing from the worlds fails (never all([]))."""
    return all(gate in gates and gates[gate]["worlds"] > 0 and gates[gate]["passed_worlds"] == gates[gate]["worlds"]
               for gate in required)


def gate_passes(worlds: Mapping[str, dict]) -> dict[str, dict]:
    """Per gate: how many worlds pass it, of how many."""
    names = sorted({name.removesuffix("_passed") for world in worlds.values() for name in world["gates"] if name.endswith("_passed")})
    passes = {}
    for gate in names:
        flags = [world["gates"].get(f"{gate}_passed") for world in worlds.values()]
        passes[gate] = {"passed_worlds": int(sum(bool(flag) for flag in flags if flag is not None)), "worlds": len(flags)}
    return passes


def _direction(entry: Mapping, key: str, better: str) -> str:
    low, high = entry.get(f"{key}_ci_low"), entry.get(f"{key}_ci_high")
    if is_missing(low) or is_missing(high):
        return "undetermined"
    if low > 0:
        return "higher" if better == "higher" else "worse"
    if high < 0:
        return "lower" if better == "lower" else "worse"
    return "tie"


def verdicts(summary: Mapping[str, dict], gates: Mapping[str, dict]) -> dict[str, dict]:
    """Per method: whether it beats its reference and its matched control on accuracy and on length, with
    world-level intervals, and whether the gates its verdict needs passed on every world."""
    out = {}
    for name, entry in summary.items():
        if "accuracy_vs_reference" not in entry:
            continue
        verdict = {
            "reference": entry["vs_reference_model"],
            "accuracy_vs_reference": _direction(entry, "accuracy_vs_reference", "higher"),
            "length_vs_reference": _direction(entry, "mean_response_tokens_vs_reference", "lower"),
            "gates_passed_on_every_world": gates_hold(gates, verdict_gates(name)),
            "gates": list(verdict_gates(name)),
        }
        if "accuracy_vs_control" in entry:
            verdict |= {"control": entry["vs_control_model"],
                        "accuracy_vs_control": _direction(entry, "accuracy_vs_control", "higher"),
                        "length_vs_control": _direction(entry, "mean_response_tokens_vs_control", "lower")}
        out[name] = verdict
    return out


def model_order(names, variants: Sequence[str] = ()) -> list[str]:
    """The base model, the reference, the plan's variants in its order, then LeaF's models; others last."""
    first = ["base", REFERENCE, *[name for name in variants if name != REFERENCE], LEAF_REFERENCE, "leaf_distilled"]
    return [name for name in first if name in names] + sorted(set(names) - set(first))


def markdown(regime: str, summary: Mapping[str, dict], verdict: Mapping[str, dict], gates: Mapping[str, dict],
             variants: Sequence[str] = ()) -> str:
    """One regime's table: every model, world-level intervals, the verdicts as they follow from them."""
    lines = [f"### `final: {regime}`", "",
             "Gates, worlds passing: " + ", ".join(f"`{gate}` {g['passed_worlds']}/{g['worlds']}" for gate, g in gates.items()) + ".", "",
             "| model | worlds | accuracy | vs reference | vs its control | mean tokens | tokens vs reference | truncated | oracle headroom recovered | verdict |",
             "| --- | ---: | --- | --- | --- | --- | --- | ---: | --- | --- |"]
    for name in model_order(summary, variants):
        entry, v = summary[name], verdict.get(name)
        text = "reference" if v is None else (
            f"accuracy {v['accuracy_vs_reference']}, length {v['length_vs_reference']} than {v['reference']}"
            + (f"; against {v['control']}: accuracy {v['accuracy_vs_control']}, length {v['length_vs_control']}" if "control" in v else "")
            + ("" if v["gates_passed_on_every_world"] else " (a gate fails on some world: not a verdict on the method)"))
        lines.append(
            f"| {name} | {entry['worlds']} | {format_figure(entry, 'accuracy')} | {format_figure(entry, 'accuracy_vs_reference', signed=True)} "
            f"| {format_figure(entry, 'accuracy_vs_control', signed=True)} | {format_figure(entry, 'mean_response_tokens', 1)} "
            f"| {format_figure(entry, 'mean_response_tokens_vs_reference', 1, signed=True)} | {format_figure(entry, 'truncated_share', 3)} "
            f"| {format_figure(entry, 'headroom_share', 2, signed=True)} | {text} |"
        )
    return "\n".join(lines)

