"""The attribution pipeline: every trace attributed or rejected, diagnostics, resuming from the store."""

from tests.pipelines.conftest import run_pipeline
from tracesieve.config import SegmentationConfig
from tracesieve.modeling import build_llama
from tracesieve.segmentation import segment_traces
from tracesieve.pipelines.attribution import create_pipeline
from tracesieve.result_store import ResultStore


def test_traces_are_attributed_once_and_served_from_the_store_on_a_rerun(tiny_world, tmp_path):
    traces, tokenizer, _ = tiny_world
    model = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=512, seed=0)
    segments = segment_traces(traces, tokenizer, SegmentationConfig())
    inputs = {"traces": traces, "teacher.model": model, "tokenizer": tokenizer, "segments": segments, "attribution_store": ResultStore(tmp_path)}
    # Refined to tolerance 0.02 on the segments, until the selection the run's settings make is settled.
    parameters = {"attribution": {"max_tokens": 4096, "stopping": "selection"}, "selection": {"tau": 0.7}}
    first = run_pipeline(create_pipeline(), inputs, parameters)
    table = first.load("token_attributions")
    rejects = first.load("attribution_rejects")
    assert len(table) + len(rejects) == len(traces) and set(rejects["kind"]) <= {"unconverged"}
    diagnostics = first.load("attribution_diagnostics")
    assert list(diagnostics["trace_id"]) == list(traces["trace_id"])  # kept or skipped, every integrated trace
    assert diagnostics["steps"].between(9, 512).all() and list(diagnostics["kept"]) == list(diagnostics["converged"])
    metrics = {name: entry["value"] for name, entry in first.load("attribution_metrics").items()}
    assert metrics["traces_computed"] == len(traces) and metrics.get("traces_resumed", 0) == 0
    assert metrics["converged_share"] == diagnostics["converged"].mean() and metrics["steps_max"] == diagnostics["steps"].max()
    again = {name: entry["value"] for name, entry in run_pipeline(create_pipeline(), inputs, parameters).load("attribution_metrics").items()}
    assert again["traces_resumed"] == len(traces) and again.get("traces_computed", 0) == 0
