"""The faithfulness pipeline: every scorer on the attribution model, deletion curves and AOPC in MLflow's shape."""

from tests.pipelines.conftest import run_pipeline
from tracesieve.choices import SCORERS
from tracesieve.config import SegmentationConfig
from tracesieve.modeling import build_llama
from tracesieve.pipelines.faithfulness import create_pipeline
from tracesieve.segmentation import segment_traces


def test_scores_curves_and_aopc_reach_the_catalog(tiny_world):
    traces, tokenizer, _planted = tiny_world
    model = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=512, seed=0)
    segments = segment_traces(traces, tokenizer, SegmentationConfig())
    metrics = segments[["trace_id", "segment_index"]].assign(strength_share=1.0 / segments.groupby("trace_id")["segment_index"].transform("size"))
    inputs = {"traces": traces, "teacher.model": model, "tokenizer": tokenizer, "segments": segments, "segment_metrics": metrics}
    catalog = run_pipeline(create_pipeline(), inputs, {"faithfulness": {"fractions": [0.5, 1.0]}, "selection": {"tau": 0.7}})
    scores = catalog.load("segment_scores")
    assert set(scores["scorer"]) == set(SCORERS) and len(scores) == len(SCORERS) * len(segments)
    curves = catalog.load("faithfulness_curves")
    assert len(curves) == len(traces) * len(SCORERS) * 2
    metrics_out = catalog.load("faithfulness_metrics")
    assert {f"{scorer}.aopc_comprehensiveness" for scorer in SCORERS} <= set(metrics_out)
    assert "occlusion.aopc_comprehensiveness_vs_random" in metrics_out and metrics_out["traces"]["value"] == len(traces)
    # Each scorer but random gives a selection the <scorer>_sft variants can train on, one row per trace.
    selections = catalog.load("scorer_selections")
    assert set(selections["strategy"]) == {"occlusion_top", "gradient_x_input_top", "perplexity_top", "entropy_top"}
    assert len(selections) == 4 * len(traces)
