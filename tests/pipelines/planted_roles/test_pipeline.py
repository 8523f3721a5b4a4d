"""The planted_roles pipeline: attribution quality per planted role, the oracle's masks and the world's gates."""

import pandas as pd

from tests.pipelines.conftest import run_pipeline
from tests.world.test_roles import ROLES, _ContextModel, _generations, _tables
from tracesieve.pipelines.planted_roles import create_pipeline


def _scores(metrics, drops):
    return pd.DataFrame({"trace_id": "t", "segment_index": metrics["segment_index"], "scorer": "occlusion", "score": drops})


def test_the_role_table_and_every_scorers_auroc_reach_the_catalog():
    planted, metrics, selections = _tables()
    pipeline = create_pipeline().only_nodes("measure_planted_roles")
    scores = _scores(metrics, [3.0, 0.0, 0.1, 0.2, 0.0, 2.0, 0.0])
    catalog = run_pipeline(pipeline, {"segment_metrics": metrics, "selections": selections, "world_segments": planted, "segment_scores": scores})
    assert set(catalog.load("planted_role_table")["role"]) == set(ROLES)
    quality = catalog.load("planted_role_metrics")
    assert quality["ig.within_trace_auroc"]["value"] == 1.0 and quality["occlusion.within_trace_auroc"]["value"] == 1.0


def test_the_label_validity_gate_reads_the_occlusion_scores():
    planted, metrics, _ = _tables()
    pipeline = create_pipeline().only_nodes("measure_label_validity")
    # The upstream gate reads the traces through the attribution model: with no trace text it measures nothing
    # and fails, saying so (its own test feeds it models that pass and fail).
    inputs = {"segment_scores": _scores(metrics, [3.0, 0.0, 0.1, 0.2, 0.0, 2.0, 0.0]), "segments": metrics, "world_segments": planted,
              "traces": pd.DataFrame(columns=["trace_id", "question", "reasoning", "answer"]),
              "teacher.model": _ContextModel(8, copies=True), "tokenizer": None}
    catalog = run_pipeline(pipeline, inputs)
    assert catalog.load("label_validity")["role"].tolist() == ROLES
    gate = {name: entry["value"] for name, entry in catalog.load("gate_metrics").items()}
    assert gate["label_validity_auroc"] == 1.0 and gate["label_validity_passed"] == 1.0 and gate["label_validity_traces"] == 1
    assert gate["label_validity_upstream_pairs"] == 0 and gate["label_validity_upstream_passed"] == 0.0


def test_the_oracle_masks_and_the_fine_tuning_gates_are_wired_for_the_default_variants():
    planted, metrics, _ = _tables()
    pipeline = create_pipeline()
    assert {"select_oracle_segments", "measure_fine_tuning_gates"} <= {node.name for node in pipeline.nodes}  # conf/base trains them
    catalog = run_pipeline(pipeline.only_nodes("select_oracle_segments"), {"segments": metrics, "world_segments": planted})
    assert catalog.load("oracle_selections")["strategy"].tolist() == ["oracle", "oracle_budget"]
    base = _generations([False] * 100, [120] * 100)
    full = _generations([True, False] * 50, [100] * 100)
    position = _generations([True, False] * 50, [95] * 100)
    gates = run_pipeline(
        pipeline.only_nodes("measure_fine_tuning_gates"),
        {"base.generations": base, "full_sft.generations": full, "oracle_sft.generations": _generations([True] * 100, [90] * 100),
         "position_sft.generations": position, "oracle_budget_sft.generations": _generations([True, False] * 50, [92] * 100)},
    )
    gate = {name: entry["value"] for name, entry in gates.load("fine_tuning_gate_metrics").items()}
    assert gate["oracle_headroom_passed"] == 1.0 and gate["oracle_headroom_tokens"] == -10.0
    assert gate["sft_effect_accuracy"] == 0.5 and gate["sft_effect_passed"] == 1.0
    assert gate["position_only_share"] == 0.0 and gate["position_only_passed"] == 1.0
    assert gate["oracle_vs_budget_accuracy"] == 0.5 and gate["oracle_vs_budget_passed"] == 1.0
    assert gates.load("fine_tuning_gates")["position_only_passed"] == 1.0
