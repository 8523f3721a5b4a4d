"""The segmentation pipeline: every trace cut into segments that tile it, with metrics."""

from tests.pipelines.conftest import run_pipeline
from tracesieve.pipelines.segmentation import create_pipeline


def test_segments_tile_every_trace_and_the_metrics_count_them(tiny_world):
    traces, tokenizer, planted = tiny_world
    catalog = run_pipeline(create_pipeline(), {"traces": traces, "tokenizer": tokenizer}, {"segmentation": {}})
    segments = catalog.load("segments")
    for trace in traces.itertuples(index=False):
        own = segments[segments["trace_id"] == trace.trace_id].sort_values("segment_index")
        assert "".join(own["text"]) == trace.reasoning
    # The paper's keyword split recovers the world's planted segments exactly.
    assert len(segments) == len(planted[planted["trace_id"].isin(traces["trace_id"])])
    metrics = {name: entry["value"] for name, entry in catalog.load("segmentation_metrics").items()}
    assert metrics["traces"] == len(traces) and metrics["segments"] == len(segments)
    assert metrics["segments_without_tokens"] == 0
