"""The experiment across worlds: the plan's pre-registration, each world's own seeds, world-level intervals."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tracesieve import experiment
from tracesieve.config import EvaluationConfig, FineTuningConfig, SelectionConfig, WorldConfig
from tracesieve.metrics import t_interval
from tracesieve.provenance import PROJECT_ROOT

PLAN = PROJECT_ROOT / "benchmarks" / "experiment_plan.yml"


def test_the_committed_plan_is_valid_and_every_world_validates():
    plan = experiment.load_plan(PLAN)
    assert len(plan.test_seeds) >= 5 and set(plan.regimes) == {"silent", "restates"}
    assert not set(plan.dev_seeds) & set(plan.test_seeds)
    overrides = experiment.world_overrides(plan, "restates", plan.test_seeds[0])
    world = WorldConfig(**overrides["world"])
    assert world.seed == plan.test_seeds[0] and world.problems.final == "restates"
    tuning = FineTuningConfig(**overrides["fine_tuning"])
    assert tuning.seed == plan.test_seeds[0] and set(tuning.variants) == set(plan.variants)
    assert SelectionConfig(**overrides["selection"]).seed == plan.test_seeds[0]
    assert EvaluationConfig(**overrides["evaluation"]).seed == plan.test_seeds[0]
    EvaluationConfig(**plan.sampling)  # the sampled evaluation's overrides are valid settings


def test_a_plan_whose_dev_and_test_worlds_overlap_is_refused(tmp_path):
    text = PLAN.read_text().replace("dev_seeds: [0, 1, 2]", "dev_seeds: [0, 1000]")
    (tmp_path / "plan.yml").write_text(text)
    with pytest.raises(ValueError, match=r"\[1000\] are both dev and test worlds"):
        experiment.load_plan(tmp_path / "plan.yml")


def test_the_plan_hash_changes_with_any_setting(tmp_path):
    (tmp_path / "plan.yml").write_text(PLAN.read_text().replace("share_floor: 0.75", "share_floor: 0.5"))
    assert experiment.load_plan(tmp_path / "plan.yml").digest != experiment.load_plan(PLAN).digest


def _generations(correct: list[bool], tokens: int, heldout: list[bool] | None = None) -> pd.DataFrame:
    n = len(correct)
    return pd.DataFrame({"problem_id": [f"p{i}" for i in range(n)], "sample_index": 0, "correct": correct,
                         "n_tokens": tokens, "truncated": False, "heldout_skeleton": heldout or [False] * n})


def _worlds(gains: dict[str, list[float]], n: int = 40):
    """Worlds whose models are right on a given share of the same problems (full SFT on half)."""
    worlds, generations = {}, {}
    for index in range(len(next(iter(gains.values())))):
        tables = {"full_sft": _generations([i < n // 2 for i in range(n)], 80)}
        for name, per_world in gains.items():
            right = n // 2 + round(per_world[index] * n)
            tables[name] = _generations([i < right for i in range(n)], 60)
        name = f"test-silent-{index}"
        generations[name] = tables
        worlds[name] = experiment.world_result(tables, {"gate.sft_effect_passed": 1.0, "gate.oracle_headroom_passed": float(index != 0)}, 1.0)
    return worlds, generations


def test_differences_are_per_world_then_across_worlds_and_the_headroom_share_is_a_ratio_of_means():
    plan = experiment.load_plan(PLAN)
    worlds, generations = _worlds({"oracle_sft": [0.15, 0.2, 0.175], "selective_sft": [0.05, 0.1, 0.0], "random_sft": [0.0, 0.0, 0.0]})
    summary = experiment.across_worlds(worlds, generations, plan)
    selective = summary["selective_sft"]
    assert selective["worlds"] == 3
    assert selective["accuracy_vs_reference"] == pytest.approx(0.05)
    expected = t_interval([0.05, 0.1, 0.0])
    assert (selective["accuracy_vs_reference_ci_low"], selective["accuracy_vs_reference_ci_high"]) == pytest.approx(expected[1:])
    assert selective["vs_control_model"] == "random_sft" and selective["accuracy_vs_control"] == pytest.approx(0.05)
    assert selective["mean_response_tokens_vs_reference"] == pytest.approx(-20)
    assert selective["headroom_share"] == pytest.approx(0.05 / 0.175)
    # where the worlds do not establish the oracle's headroom, no share of it is reported
    unsure, unsure_generations = _worlds({"oracle_sft": [0.1, 0.2, -0.05], "selective_sft": [0.05, 0.1, 0.0], "random_sft": [0.0, 0.0, 0.0]})
    assert math.isnan(experiment.across_worlds(unsure, unsure_generations, plan)["selective_sft"]["headroom_share"])
    # the pooled per-problem interval is narrower than the world-level one, which keeps the worlds' variance
    pooled = selective["accuracy_vs_reference_pooled_ci_high"] - selective["accuracy_vs_reference_pooled_ci_low"]
    assert pooled < selective["accuracy_vs_reference_ci_high"] - selective["accuracy_vs_reference_ci_low"]


def test_a_verdict_needs_every_world_to_pass_the_gates_it_rests_on():
    plan = experiment.load_plan(PLAN)
    worlds, generations = _worlds({"oracle_sft": [0.2, 0.2, 0.2], "selective_sft": [0.1, 0.12, 0.11], "random_sft": [0.0, 0.01, 0.0]})
    summary = experiment.across_worlds(worlds, generations, plan)
    gates = experiment.gate_passes(worlds)
    assert gates["oracle_headroom"] == {"passed_worlds": 2, "worlds": 3}
    verdict = experiment.verdicts(summary, gates)["selective_sft"]
    assert verdict["accuracy_vs_reference"] == "higher" and verdict["length_vs_reference"] == "lower"
    assert verdict["accuracy_vs_control"] == "higher"
    assert verdict["gates_passed_on_every_world"] is False
    assert "not a verdict on the method" in experiment.markdown("silent", summary, experiment.verdicts(summary, gates), gates)


def test_a_gate_missing_from_the_worlds_fails_the_verdict_that_rests_on_it():
    every = {gate: {"passed_worlds": 3, "worlds": 3} for gate in experiment.FINE_TUNING_GATES + experiment.POSITION_GATES}
    assert experiment.gates_hold(every, experiment.verdict_gates("selective_sft"))
    for missing in experiment.FINE_TUNING_GATES:
        assert not experiment.gates_hold({k: v for k, v in every.items() if k != missing}, experiment.verdict_gates("selective_sft"))
    # the authors' rule keeps segments by position: without the position gate its verdict is no verdict
    assert not experiment.gates_hold({k: v for k, v in every.items() if k != "position_only"}, experiment.verdict_gates("selective_sft_authors"))
    assert experiment.gates_hold({k: v for k, v in every.items() if k != "position_only"}, experiment.verdict_gates("selective_sft"))
    assert not experiment.gates_hold({}, experiment.verdict_gates("leaf_distilled"))  # all([]) would pass
    assert not experiment.gates_hold({"sft_effect": {"passed_worlds": 0, "worlds": 0}}, ("sft_effect",))


def test_subsets_split_seen_and_heldout_skeletons():
    table = _generations([True, False, True, True], 10, heldout=[False, False, True, True])
    figures = experiment.model_figures(table)
    assert figures["accuracy"] == 0.75 and figures["seen_skeleton.accuracy"] == 0.5 and figures["heldout_skeleton.accuracy"] == 1.0


def test_the_driver_refuses_worlds_the_plan_does_not_have():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(Path(PROJECT_ROOT) / "benchmarks/experiment.py"), "--seeds", "0"],
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "not among the plan's test worlds" in done.stderr


def test_the_result_renders_into_the_results_document_and_the_readme_table():
    from tracesieve import generated_docs

    plan = experiment.load_plan(PLAN)
    worlds, generations = _worlds({"oracle_sft": [0.2, 0.1, 0.15], "selective_sft": [0.05, 0.0, 0.02], "random_sft": [0.0, 0.01, 0.0]})
    summary = experiment.across_worlds(worlds, generations, plan)
    gates = experiment.gate_passes(worlds)
    verdicts = experiment.verdicts(summary, gates)
    result = {"plan_hash": plan.digest, "phase": "test", "seeds": [0, 1, 2], "dev_seeds": list(plan.dev_seeds), "complete": False,
              "regimes": ["silent"], "worlds": worlds,
              "by_regime": {"silent": {"greedy": summary, "verdicts": verdicts, "gates": gates,
                                       "markdown": experiment.markdown("silent", summary, verdicts, gates)}}}
    document = generated_docs._experiment(result)
    assert "**incomplete**" in document and "test-silent-2" in document and "| selective_sft | 3 |" in document
    headline = generated_docs._experiment_headline(result, PROJECT_ROOT)
    row = next(line for line in headline.splitlines() if line.startswith("| silent | selective_sft |"))
    assert "+0.025 [" in row and row.endswith("| **no** |")  # one world fails the oracle-headroom gate
