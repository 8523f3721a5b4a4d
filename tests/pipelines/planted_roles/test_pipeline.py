"""The planted_roles pipeline: attribution quality per planted role, and the label-validity gate."""

from tests.pipelines.conftest import run_pipeline
from tests.world.test_roles import _tables
from tracesieve.modeling import build_llama
from tracesieve.pipelines.planted_roles import create_pipeline
from tracesieve.segmentation import segment_traces
from tracesieve.config import SegmentationConfig


def test_the_role_table_and_auroc_reach_the_catalog():
    planted, metrics, selections = _tables()
    pipeline = create_pipeline().only_nodes("measure_planted_roles")
    catalog = run_pipeline(pipeline, {"segment_metrics": metrics, "selections": selections, "world_segments": planted})
    assert set(catalog.load("planted_role_table")["role"]) == {"necessary", "detour", "final"}
    quality = catalog.load("planted_role_metrics")
    assert quality["auroc_strength_share_necessary_vs_filler"]["value"] == 1.0
    assert "auroc_strength_share_necessary_vs_restatement" not in quality  # NaN: no restatement to compare with


def test_the_gate_scores_every_segment_by_occlusion_on_the_attribution_model(tiny_world):
    traces, tokenizer, planted = tiny_world
    model = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=512, seed=0)
    segments = segment_traces(traces, tokenizer, SegmentationConfig())
    pipeline = create_pipeline().only_nodes("measure_label_validity")
    inputs = {"traces": traces, "teacher.model": model, "tokenizer": tokenizer, "segments": segments, "world_segments": planted}
    catalog = run_pipeline(pipeline, inputs)
    table = catalog.load("label_validity")
    assert len(table) == len(segments) and set(table["role"]) <= {"necessary", "check", "restatement", "detour", "final"}
    gate = {name: entry["value"] for name, entry in catalog.load("gate_metrics").items()}
    assert 0 <= gate["label_validity_auroc"] <= 1 and gate["label_validity_passed"] in (0.0, 1.0)
    assert gate["label_validity_traces"] >= 1
