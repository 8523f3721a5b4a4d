"""Attributing many traces: every trace attributed or rejected, and a killed run resumes without redoing work."""

from __future__ import annotations

import pandas as pd
import pytest

import tracesieve.attribution.driver as attribution  # where attribute_traces looks integrated_gradients up
from tests.conftest import tiny_world_params
from tracesieve.attribution import attribute_traces, attribution_summary, quality_line
from tracesieve.config import AttributionConfig, SegmentationConfig, SelectionConfig, WorldConfig
from tracesieve.modeling import build_llama
from tracesieve.result_store import ResultStore
from tracesieve.segmentation import segment_traces
from tracesieve.world.generate import generate_world
from tracesieve.world.tokenizer import build_word_tokenizer


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    config = WorldConfig.model_validate(tiny_world_params(tmp_path_factory.mktemp("world")))
    tables = generate_world(config)
    traces = pd.DataFrame(tables.trace_records)[["trace_id", "question", "reasoning", "answer"]].head(6)
    tokenizer = build_word_tokenizer([*tables.problems["question"], *tables.problems["reasoning"]], numbers_up_to=50)
    model = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=512, seed=0)
    return traces, tokenizer, model.eval()


SETTINGS = AttributionConfig(tolerance=None, steps=4)


def test_a_killed_run_resumes_and_gives_identical_results(world, tmp_path, monkeypatch):
    traces, tokenizer, model = world
    uninterrupted = attribute_traces(traces, model, tokenizer, SETTINGS, ResultStore(tmp_path / "clean")).attributions

    store = ResultStore(tmp_path / "store")
    real = attribution.integrated_gradients
    calls = []

    def crash_on_the_fourth_trace(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(attribution, "integrated_gradients", crash_on_the_fourth_trace)
    with pytest.raises(KeyboardInterrupt):
        attribute_traces(traces, model, tokenizer, SETTINGS, store)
    monkeypatch.setattr(attribution, "integrated_gradients", real)

    resumed = attribute_traces(traces, model, tokenizer, SETTINGS, store)
    assert (resumed.resumed, resumed.computed) == (3, 3)
    columns = [column for column in uninterrupted.columns if column != "seconds"]
    pd.testing.assert_frame_equal(
        resumed.attributions[columns].assign(attributions=lambda t: t["attributions"].map(list)),
        uninterrupted[columns].assign(attributions=lambda t: t["attributions"].map(list)),
    )
    # A finished run found again does no work at all; a changed setting does not reuse stale results.
    assert attribute_traces(traces, model, tokenizer, SETTINGS, store).computed == 0
    assert attribute_traces(traces.head(1), model, tokenizer, AttributionConfig(tolerance=None, steps=5), store).computed == 1


def test_long_traces_follow_the_policy(world):
    traces, tokenizer, model = world
    lengths = [len(tokenizer(text)["input_ids"]) for text in traces["reasoning"]]
    limit = sorted(lengths)[len(lengths) // 2] + 40  # the prompt adds about 40 tokens
    run = attribute_traces(traces, model, tokenizer, AttributionConfig(tolerance=None, steps=2, max_tokens=limit))
    assert len(run.attributions) + len(run.rejects) == len(traces)
    assert len(run.rejects) > 0 and set(run.rejects["kind"]) == {"too_long"}
    assert run.rejects["reason"].str.contains("over attribution.max_tokens").all()
    summary = attribution_summary(run)
    assert summary["traces_attributed"] == len(run.attributions) and summary["rejected_too_long"] == len(run.rejects)
    assert summary["traces_computed"] == len(run.attributions) and summary["traces_resumed"] == 0
    assert summary["completeness_gap_max"] == run.attributions["completeness_gap"].max()
    with pytest.raises(ValueError, match="long_trace_policy: skip"):
        attribute_traces(traces, model, tokenizer, AttributionConfig(tolerance=None, steps=2, max_tokens=8, long_trace_policy="fail"))


def test_records_carry_diagnostics(world):
    traces, tokenizer, model = world
    table = attribute_traces(traces.head(2), model, tokenizer, SETTINGS).attributions
    row = table.iloc[0]
    assert len(row["attributions"]) == len(row["input_ids"]) == row["n_tokens"] == len(row["token_starts"])
    assert row["attribution_sum"] == pytest.approx(float(row["attributions"].sum()), rel=1e-4)
    assert row["completeness_gap"] >= 0 and row["seconds"] > 0


def test_unconverged_traces_follow_the_policy_and_are_counted(world):
    """A budget too small to converge: skip puts each trace in the rejects with its figures, use keeps it,
    fail stops naming it; the diagnostics and summary count every integrated trace either way."""
    traces, tokenizer, model = world
    starved = {"tolerance": 1e-6, "max_steps": 9}
    skipped = attribute_traces(traces, model, tokenizer, AttributionConfig(**starved))
    assert skipped.attributions.empty and len(skipped.rejects) == len(traces)
    assert set(skipped.rejects["kind"]) == {"unconverged"}
    assert skipped.rejects["reason"].str.contains(r"not converged in 9 points \(completeness gap").all()
    assert len(skipped.diagnostics) == len(traces) and not skipped.diagnostics["kept"].any()
    summary = attribution_summary(skipped)
    assert summary["converged_share"] == 0 and summary["rejected_unconverged"] == len(traces) and summary["steps_max"] == 9

    used = attribute_traces(traces, model, tokenizer, AttributionConfig(**starved, unconverged_policy="use"))
    assert len(used.attributions) == len(traces) and not used.attributions["converged"].any()
    assert "0/6 traces converged" in quality_line(used.diagnostics, AttributionConfig(**starved, unconverged_policy="use"))
    with pytest.raises(ValueError, match="world-traces-00000.*raise attribution.max_steps"):
        attribute_traces(traces, model, tokenizer, AttributionConfig(**starved, unconverged_policy="fail"))


def test_default_refinement_converges_on_world_traces_and_says_so(world):
    traces, tokenizer, model = world
    segments = segment_traces(traces, tokenizer, SegmentationConfig())
    run = attribute_traces(traces, model, tokenizer, AttributionConfig(), segments=segments, selection=SelectionConfig())
    assert len(run.attributions) + len(run.rejects) == len(traces)
    assert run.attributions["converged"].all() and (run.attributions["completeness_gap"] <= 0.02).all()
    assert (run.attributions["share_error"] <= 0.02).all() and run.attributions["steps"].min() >= 9
    line = quality_line(run.diagnostics, AttributionConfig())
    assert line.startswith("Attribution quality (tolerance 0.02, at most 512 points): ") and "worst: world-traces-" in line
    # Stopping on the selection: the gap is held to the attributions' L1 mass instead, and still reported.
    on_selection = attribute_traces(traces, model, tokenizer, AttributionConfig(stopping="selection"), segments=segments, selection=SelectionConfig())
    assert on_selection.attributions["converged"].all() and (on_selection.attributions["mass_gap"] <= 0.02).all()
    assert on_selection.attributions["steps"].min() > 9 and on_selection.attributions["completeness_gap"].notna().all()


def test_stored_results_under_selection_stopping_depend_on_the_selection_settings(world, tmp_path):
    """Where refinement stops on the selection, other selection settings are another result; held to the
    completeness gap, the same result serves every selection."""
    traces, tokenizer, model = world
    head = traces.head(2)
    segments = segment_traces(head, tokenizer, SegmentationConfig())
    store = ResultStore(tmp_path)
    for config, recomputed in ((AttributionConfig(stopping="selection"), 2), (AttributionConfig(stopping="completeness"), 2)):
        assert attribute_traces(head, model, tokenizer, config, store, segments, SelectionConfig()).computed == 2
        again = attribute_traces(head, model, tokenizer, config, store, segments, SelectionConfig(tau=0.5))
        assert again.computed == (recomputed if config.stopping == "selection" else 0)


def test_stored_refined_results_depend_on_the_segments(world, tmp_path):
    """The segments steer the refinement, so other segments are another result, never a stale one."""
    traces, tokenizer, model = world
    store = ResultStore(tmp_path)
    by_keyword = segment_traces(traces.head(2), tokenizer, SegmentationConfig())
    by_sentence = segment_traces(traces.head(2), tokenizer, SegmentationConfig(method="sentence"))
    assert attribute_traces(traces.head(2), model, tokenizer, AttributionConfig(), store, by_keyword).computed == 2
    assert attribute_traces(traces.head(2), model, tokenizer, AttributionConfig(), store, by_keyword).computed == 0
    differ = sum(
        by_keyword[by_keyword.trace_id == trace_id][["token_start", "token_end"]].values.tolist()
        != by_sentence[by_sentence.trace_id == trace_id][["token_start", "token_end"]].values.tolist()
        for trace_id in traces.head(2)["trace_id"]
    )
    assert differ >= 1
    assert attribute_traces(traces.head(2), model, tokenizer, AttributionConfig(), store, by_sentence).computed == differ
