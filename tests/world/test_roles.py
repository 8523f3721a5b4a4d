"""Attribution quality against the world's planted roles, the label-validity and oracle-headroom gates, and
the oracle's loss masks, on hand-made segments."""

import math
import types

import pandas as pd
import pytest
import torch

from tracesieve.world.roles import (
    ORACLE_HEADROOM_MIN,
    SFT_EFFECT_LOW_MIN,
    SFT_EFFECT_MIN,
    fine_tuning_gates,
    label_validity,
    oracle_headroom,
    oracle_selections,
    oracle_vs_budget,
    planted_role_of_segments,
    planted_role_quality,
    position_only,
    sft_effect,
    upstream_label_validity,
    within_trace_auroc,
)

ROLES = ["source", "detour", "upstream", "check", "decoy", "source", "final"]


def _tables():
    starts = [10 * index for index in range(len(ROLES))]
    planted = pd.DataFrame({"trace_id": "t", "start": starts, "end": [s + 10 for s in starts], "role": ROLES})
    metrics = pd.DataFrame(
        {"trace_id": "t", "segment_index": range(len(ROLES)), "char_start": starts, "char_end": [s + 10 for s in starts],
         "token_start": [3 * index for index in range(len(ROLES))], "token_end": [3 * index + 3 for index in range(len(ROLES))],
         "n_tokens": 3, "strength_share": [0.3, 0.05, 0.1, 0.05, 0.2, 0.25, 0.05], "consistency": [0.5, 0.9, 0.7, 0.6, 0.5, 0.4, 1.0]}
    )
    selections = pd.DataFrame({"trace_id": ["t", "t"], "strategy": ["paper", "all"], "selected_segments": [[0, 5], list(range(len(ROLES)))]})
    return planted, metrics, selections


def test_roles_follow_the_largest_character_overlap():
    planted, metrics, _ = _tables()
    shifted = metrics.assign(char_start=[0, 8, 20, 30, 40, 50, 60], char_end=[8, 19, 30, 40, 50, 60, 70])
    assert planted_role_of_segments(shifted, planted).tolist() == ROLES
    with pytest.raises(ValueError, match="trace 'u' has no planted segments"):
        planted_role_of_segments(metrics.assign(trace_id="u"), planted)


def test_quality_per_role_and_role_separation_by_hand():
    planted, metrics, selections = _tables()
    table, quality = planted_role_quality(metrics, selections, planted)
    by_role = table.set_index("role")
    assert by_role.loc["source", "segments"] == 2 and by_role.loc["source", "strength_share_mean"] == pytest.approx(0.275)
    assert by_role.loc["source", "selected_share_paper"] == 1.0 and by_role.loc["detour", "selected_share_paper"] == 0.0
    # Sources (0.3, 0.25) beat both filler segments (detour 0.05, check 0.05): within-trace AUROC 1.
    assert quality["ig.within_trace_auroc"] == 1.0 and quality["ig.pooled_auroc"] == 1.0
    # Upstream (0.1) beats filler; both sources beat the decoy's 0.2: the score does not follow the answer's string.
    assert quality["ig.within_trace_auroc_upstream_vs_filler"] == 1.0
    assert quality["ig.within_trace_auroc_source_vs_decoy"] == 1.0


def test_every_scorer_gets_its_own_role_separation():
    planted, metrics, selections = _tables()
    # A string matcher scores the decoy (which contains the answer's value) highest: it loses to it.
    scores = pd.DataFrame({"trace_id": "t", "segment_index": range(len(ROLES)), "scorer": "string_match",
                           "score": [0.5, 0.0, 0.0, 0.0, 1.0, 0.5, 0.0]})
    _, quality = planted_role_quality(metrics, selections, planted, scores)
    assert quality["string_match.within_trace_auroc"] == 1.0
    assert quality["string_match.within_trace_auroc_source_vs_decoy"] == 0.0
    assert quality["string_match.within_trace_auroc_upstream_vs_filler"] == 0.5


def test_within_trace_auroc_compares_segments_of_one_trace_only():
    # Trace a ranks its source above both fillers; trace b below its check; trace c has no filler.
    scores = pd.Series([0.9, 0.1, 0.2, 0.3, 0.5, 0.7])
    roles = pd.Series(["source", "detour", "restatement", "source", "check", "source"])
    traces = pd.Series(["a", "a", "a", "b", "b", "c"])
    assert within_trace_auroc(scores, roles, traces) == (0.5, 2)
    assert within_trace_auroc(scores, roles, traces, negative=("detour",)) == (1.0, 1)
    assert math.isnan(within_trace_auroc(scores, roles, traces, positive=("final",))[0])


def test_the_label_validity_gate_reads_occlusion_drops_against_the_planted_roles():
    planted, metrics, _ = _tables()
    segments = metrics[["trace_id", "segment_index", "char_start", "char_end"]]
    causal = pd.DataFrame({"trace_id": "t", "segment_index": range(len(ROLES)), "drop": [3.0, 0.0, 0.1, 0.2, 0.0, 2.0, 0.0]})
    table, gate = label_validity(causal, segments, planted)
    assert table["role"].tolist() == ROLES
    assert gate["label_validity_auroc"] == 1.0 and gate["label_validity_passed"] == 1.0 and gate["label_validity_traces"] == 1
    assert gate["occlusion_drop_mean.source"] == 2.5 and gate["label_validity_within_trace_auroc_source_vs_decoy"] == 1.0
    copied = causal.assign(drop=[0.0, 0.1, 0.0, 0.0, 0.0, 0.0, 8.0])  # only the final segment matters: not causal
    _, failing = label_validity(copied, segments, planted)
    assert failing["label_validity_auroc"] == 0.25 and failing["label_validity_passed"] == 0.0


def test_the_oracle_trains_on_the_steps_and_the_final_segment_only():
    planted, metrics, _ = _tables()
    table = oracle_selections(metrics, planted)
    row, budget = table.to_dict("records")
    assert row["strategy"] == "oracle" and row["selected_segments"] == [0, 2, 5, 6]
    assert row["mask_char_spans"] == [[0, 10], [20, 30], [50, 70]] and row["mask_token_spans"] == [[0, 3], [6, 9], [15, 21]]
    assert row["selected_tokens"] == 12 and row["reasoning_tokens"] == 21
    # its control: random segments of the same trace at the oracle's token budget (the loss's reweighting alike)
    assert budget["strategy"] == "oracle_budget" and budget["trace_id"] == row["trace_id"]
    assert abs(budget["selected_tokens"] - row["selected_tokens"]) <= max(metrics["n_tokens"]) // 2 + 1
    assert budget["selected_segments"] != row["selected_segments"] or budget["selected_tokens"] == row["selected_tokens"]


def _generations(correct, tokens):
    return pd.DataFrame({"problem_id": [f"p{i}" for i in range(len(correct))], "correct": correct, "n_tokens": tokens, "truncated": False})


def test_the_headroom_gate_passes_only_on_an_accuracy_gain_beyond_its_interval():
    full = _generations([True, False] * 50, [100] * 100)
    better = _generations([True] * 100, [90 + (i % 3) for i in range(100)])
    gate = oracle_headroom(better, full)
    assert gate["oracle_headroom_accuracy"] == pytest.approx(0.5) and gate["oracle_headroom_accuracy_ci_low"] > 0
    assert gate["oracle_headroom_passed"] == 1.0
    # Shorter at equal accuracy is reported, but fails: length never passes the gate on its own.
    shorter = _generations([True, False] * 50, [80 + (i % 3) for i in range(100)])
    shorter_gate = oracle_headroom(shorter, full)
    assert shorter_gate["oracle_headroom_tokens_ci_high"] < 0 and shorter_gate["oracle_headroom_passed"] == 0.0
    # A small gain whose interval reaches 0 fails too (seed 2 of the old world passed on length alone).
    slightly = _generations([True, False] * 48 + [True] * 4, [100] * 100)
    assert oracle_headroom(slightly, full)["oracle_headroom_accuracy_ci_low"] <= 0
    assert oracle_headroom(slightly, full)["oracle_headroom_passed"] == 0.0
    assert oracle_headroom(full, full)["oracle_headroom_passed"] == 0.0


def test_the_sft_effect_gate_fails_when_full_sft_does_not_beat_the_base_student():
    base = _generations([True, False, False, False] * 25, [90] * 100)
    learnt = _generations([True, True, True, False] * 25, [80] * 100)
    gate = sft_effect(learnt, base)
    assert gate["sft_effect_accuracy"] == pytest.approx(0.5) and gate["sft_effect_passed"] == 1.0
    # What the old world's fresh run measured: SFT at about the base's accuracy.
    same = _generations([True, False, False, False] * 24 + [True, True, False, False] * 1, [90] * 100)
    assert sft_effect(same, base)["sft_effect_passed"] == 0.0
    assert sft_effect(base, learnt)["sft_effect_passed"] == 0.0


def test_the_sft_effect_gate_needs_a_large_effect_not_only_a_significant_one():
    base = _generations([True, False, False, False] * 250, [90] * 1000)
    # +0.15 on 1,000 problems: significant, but under the 0.20 the testbed needs
    modest = _generations([True, True, False, False] * 150 + [True, False, False, False] * 100, [90] * 1000)
    gate = sft_effect(modest, base)
    assert gate["sft_effect_accuracy"] == pytest.approx(0.15)
    assert gate["sft_effect_accuracy_ci_low"] > 0 and gate["sft_effect_passed"] == 0.0
    large = _generations([True, True, False, False] * 250, [90] * 1000)  # +0.25, interval low above 0.10
    assert sft_effect(large, base)["sft_effect_accuracy_ci_low"] >= SFT_EFFECT_LOW_MIN
    assert sft_effect(large, base)["sft_effect_passed"] == 1.0


def test_the_headroom_gate_needs_a_large_gain_and_shorter_answers():
    full = _generations([True, False] * 500, [100] * 1000)
    small = _generations([True, False] * 470 + [True] * 60, [90] * 1000)  # +0.03, significant
    assert oracle_headroom(small, full)["oracle_headroom_accuracy_ci_low"] > 0
    assert oracle_headroom(small, full)["oracle_headroom_passed"] == 0.0
    longer = _generations([True] * 700 + [False] * 300, [120] * 1000)  # +0.20 but longer than full SFT
    assert oracle_headroom(longer, full)["oracle_headroom_passed"] == 0.0
    shorter = _generations([True] * 700 + [False] * 300, [80] * 1000)
    assert oracle_headroom(shorter, full)["oracle_headroom_accuracy"] >= ORACLE_HEADROOM_MIN
    assert oracle_headroom(shorter, full)["oracle_headroom_passed"] == 1.0


def test_the_oracle_vs_budget_gate_fails_when_a_random_mask_of_the_oracles_size_does_as_well():
    oracle = _generations([True] * 80 + [False] * 20, [80] * 100)
    # a world where any mask of the oracle's size gains as much: the headroom is the loss's reweighting
    same_budget = _generations([True] * 79 + [False] * 21, [81] * 100)
    assert oracle_vs_budget(oracle, same_budget)["oracle_vs_budget_passed"] == 0.0
    worse_budget = _generations([True, False] * 50, [95] * 100)
    gate = oracle_vs_budget(oracle, worse_budget)
    assert gate["oracle_vs_budget_accuracy"] == pytest.approx(0.3) and gate["oracle_vs_budget_passed"] == 1.0


def test_the_position_only_gate_fails_when_position_recovers_the_oracles_headroom():
    full = _generations([True, False] * 50, [100] * 100)
    oracle = _generations([True] * 90 + [False] * 10, [80] * 100)  # +0.4 over full
    near_full = _generations([True, False] * 48 + [True] * 4, [100] * 100)  # +0.02: 5% of the headroom
    gate = position_only(near_full, oracle, full)
    assert gate["position_only_share"] == pytest.approx(0.02 / 0.4) and gate["position_only_passed"] == 1.0
    # A world where the first, penultimate and last segments are the steps: position alone gets the oracle's gain.
    near_oracle = _generations([True] * 85 + [False] * 15, [82] * 100)
    assert position_only(near_oracle, oracle, full)["position_only_share"] == pytest.approx(0.35 / 0.4)
    assert position_only(near_oracle, oracle, full)["position_only_passed"] == 0.0
    # No headroom: nothing can be read, and the gate says so by failing.
    no_headroom = position_only(near_full, full, full)
    assert math.isnan(no_headroom["position_only_share"]) and no_headroom["position_only_passed"] == 0.0
    # Nor can it on a headroom whose interval reaches 0, even where position does worse than full SFT (the
    # restates world's first run: headroom +0.018 [-0.012, +0.048], position -0.036, a "share" of -2).
    unsure = _generations([True, False] * 48 + [True] * 4, [90] * 100)
    worse = _generations([True, False] * 45 + [False] * 10, [70] * 100)
    unsure_gate = position_only(worse, unsure, full)
    assert math.isnan(unsure_gate["position_only_share"]) and unsure_gate["position_only_passed"] == 0.0


def test_the_fine_tuning_gates_merge_and_the_position_gate_needs_its_control():
    base = _generations([False] * 100, [90] * 100)
    full = _generations([True, False] * 50, [100] * 100)
    oracle = _generations([True] * 90 + [False] * 10, [80] * 100)
    gates = fine_tuning_gates(base, full, oracle)
    assert gates["sft_effect_passed"] == 1.0 and gates["oracle_headroom_passed"] == 1.0 and "position_only_share" not in gates
    assert fine_tuning_gates(base, full, oracle, full)["position_only_passed"] == 1.0


class _ContextModel(torch.nn.Module):
    """A stand-in LM: at every position it predicts the tokens seen so far (``copies``) or nothing in
    particular (uniform logits), so its occlusion drops are known without training anything."""

    def __init__(self, vocab_size: int, copies: bool):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab_size, 1)
        self.copies = copies

    def get_input_embeddings(self):
        return self.embedding

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        seen = torch.nn.functional.one_hot(input_ids, self.embedding.num_embeddings).float()
        logits = 8.0 * seen.cumsum(dim=1).clamp(max=1) if self.copies else torch.zeros_like(seen)
        return types.SimpleNamespace(logits=logits)


def test_the_upstream_label_validity_gate_passes_a_model_that_reads_the_upstream_step_and_fails_one_that_does_not():
    from tracesieve.config import WorldConfig
    from tracesieve.world.generate import generate_world
    from tracesieve.world.tokenizer import build_word_tokenizer

    config = WorldConfig(n_train=10, n_traces=40, n_eval=2, problems={"restatement_rate": 0.0, "check_rate": 0.0, "decoy_rate": 0.0})
    tables = generate_world(config)
    traces = tables.problems[tables.problems["split"] == "traces"]
    tokenizer = build_word_tokenizer([*traces["question"], *traces["reasoning"], "\\boxed{} So, the final answer is"], numbers_up_to=40)
    # Detours (no checks, no restatements) never write an upstream step's result: only the step itself does,
    # so a model that copies what it has read loses the next step's starting count exactly when the step goes.
    reading = upstream_label_validity(_ContextModel(len(tokenizer), copies=True), tokenizer, traces, tables.segments)
    assert reading["label_validity_upstream_pairs"] > 10 and reading["label_validity_upstream_auroc"] > 0.9
    assert reading["label_validity_upstream_passed"] == 1.0 and reading["label_validity_upstream_drop_mean"] > 1.0
    blind = upstream_label_validity(_ContextModel(len(tokenizer), copies=False), tokenizer, traces, tables.segments)
    assert blind["label_validity_upstream_auroc"] == 0.5 and blind["label_validity_upstream_passed"] == 0.0
