"""The fine_tuning pipeline: one namespace per configured variant, each training on its strategy's masks."""

import pandas as pd
import pytest

from tests.pipelines.conftest import run_pipeline
from tracesieve.modeling import build_llama
from tracesieve.pipelines.fine_tuning import create_pipeline
from tracesieve.config import SelectionConfig
from tracesieve.rendering import render_example, tokenize_with_offsets
from tracesieve.selection import select_loss_segments


def test_one_namespace_per_variant_from_the_same_base_model():
    pipeline = create_pipeline()
    variants = ["full_sft", "oracle_budget_sft", "oracle_sft", "position_sft", "random_matched_sft", "random_sft", "selective_sft", "selective_sft_authors"]
    assert sorted(node.name for node in pipeline.nodes) == [f"{variant}.train_variant" for variant in variants]
    for node in pipeline.nodes:
        # The oracle's masks come from the world's planted roles, every other strategy's from selection.
        table = "oracle_selections" if node.namespace in ("oracle_sft", "oracle_budget_sft") else "selections"
        assert node.inputs == ["student.model", "tokenizer", "traces", table, "params:fine_tuning"]
        variant = node.namespace
        assert node.outputs == [f"{variant}.model", f"{variant}.training_metrics", f"{variant}.training_log", f"{variant}.length_rejects"]


def _selections(traces, tokenizer):
    """Selections of every strategy where each trace is a single segment of its whole reasoning."""
    rows = []
    for trace in traces.itertuples(index=False):
        rendered = render_example(tokenizer, trace.question, trace.reasoning, trace.answer)
        _ids, offsets = tokenize_with_offsets(tokenizer, rendered.text)
        tokens = sum(rendered.reasoning_start <= start < rendered.reasoning_end for start, _ in offsets)
        rows.append({"trace_id": trace.trace_id, "segment_index": 0, "n_tokens": tokens, "attribution_sum": 1.0,
                     "attribution_abs_sum": 1.0, "strength": 1.0, "strength_share": 1.0, "consistency": 0.5 if len(rows) % 2 else 0.9,
                     "degenerate": "", "char_start": 0, "char_end": len(trace.reasoning), "token_start": 0, "token_end": tokens})
    return select_loss_segments(pd.DataFrame(rows), SelectionConfig())


@pytest.mark.train
def test_variants_differ_only_in_their_labels(tiny_world, tmp_path):
    traces, tokenizer, _ = tiny_world
    base = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=512, seed=0)
    # Three of the default variants: the oracle's masks come from the world's planted roles (tested there).
    pipeline = create_pipeline().only_nodes(*(f"{variant}.train_variant" for variant in ("full_sft", "selective_sft", "random_sft")))
    parameters = {"fine_tuning": {"max_steps": 2, "batch_size": 2, "logging_steps": 1, "save_steps": 2, "checkpoint_dir": str(tmp_path)}}
    catalog = run_pipeline(pipeline, {"student.model": base, "tokenizer": tokenizer, "traces": traces, "selections": _selections(traces, tokenizer)}, parameters)
    logs = {variant: catalog.load(f"{variant}.training_log")["summary"] for variant in ("full_sft", "selective_sft", "random_sft")}
    assert {variant: log["strategy"] for variant, log in logs.items()} == {"full_sft": "all", "selective_sft": "paper", "random_sft": "random"}
    assert logs["selective_sft"]["supervised_tokens"] < logs["full_sft"]["supervised_tokens"]
    assert all(log["train_traces"] == len(traces) and log["train_steps"] == 2 for log in logs.values())
    assert [point["step"] for point in catalog.load("selective_sft.training_metrics")["train_loss"]] == [1, 2]
    assert len({path.name.rsplit("-", 1)[0] for path in tmp_path.iterdir()}) == 3  # a checkpoint folder per strategy


def test_a_scorers_variant_reads_the_scorers_selections():
    from tracesieve.pipelines.shape import PipelineShape

    shape = PipelineShape.from_parameters({"fine_tuning": {"variants": ["full_sft", "occlusion_sft"]}})
    inputs = {node.namespace: node.inputs[3] for node in create_pipeline(shape).nodes}
    assert inputs == {"full_sft": "selections", "occlusion_sft": "scorer_selections"}
