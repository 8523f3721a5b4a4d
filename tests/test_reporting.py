"""The attribution viewer, the figures' claims and the report's verdicts."""

import numpy as np
import pandas as pd
import pytest

from tracesieve.reporting import (
    attribution_viewer_html,
    plot_selection_boundaries,
    summary_report_markdown,
    verdict,
)
from tracesieve.selection import segment_metrics, select_segments, share_of_stronger_segments


def _metrics(seed=0, traces=30):
    rng = np.random.default_rng(seed)
    rows = []
    for trace in range(traces):
        for segment in range(int(rng.integers(1, 7))):
            rows.append((f"t{trace}", segment, rng.normal(size=int(rng.integers(1, 9))) * rng.exponential()))
    return segment_metrics(rows)


@pytest.mark.parametrize("seed", range(5))
def test_paper_selection_is_the_rectangle_the_boundary_plot_draws(seed):
    metrics = _metrics(seed)
    for _, trace in metrics.groupby("trace_id"):
        before = share_of_stronger_segments(trace)
        inside = trace.loc[(before < 0.7 - 1e-12) & (trace["consistency"] <= 0.8), "segment_index"]
        assert select_segments(trace, 0.7, 0.8) == sorted(inside.astype(int))


def test_boundary_plot_draws_tau_and_beta():
    figure = plot_selection_boundaries(_metrics().reset_index(drop=True), tau=0.6, beta=0.75)
    axes = figure.axes[0]
    lines = {(tuple(line.get_xdata()), tuple(line.get_ydata())) for line in axes.get_lines()}
    assert ((0.6, 0.6), (0, 1)) in lines and ((0, 1), (0.75, 0.75)) in lines
    assert len(axes.collections[0].get_offsets()) == len(_metrics())


def test_viewer_shows_every_segment_with_its_numbers_and_flags():
    reasoning = "First <step> & more.\n\nWait, check it.\n\nSo 5."
    traces = pd.DataFrame({"trace_id": ["a"], "question": ["Q?"], "reasoning": [reasoning], "answer": ["5"]})
    bounds = [(0, 20), (20, 37), (37, len(reasoning))]
    metrics = segment_metrics([("a", i, np.array([0.5 * (i + 1), -0.1])) for i in range(3)])
    metrics = metrics.assign(char_start=[b[0] for b in bounds], char_end=[b[1] for b in bounds])
    roles = pd.Series(["necessary", "check", "final"], index=metrics.index)
    page = attribution_viewer_html(traces, metrics, {"a": [0, 2]}, ["a"], strategy="paper", roles=roles)
    assert "First &lt;step&gt; &amp; more." in page  # trace text is escaped, never injected
    assert page.count("class='segment selected'") == 2 and page.count("class='segment'") == 1
    assert "role check" in page and "<td>final</td>" in page
    # A segment that starts with a blank line is outlined from its first character: the newlines stay outside.
    assert "\n\n<span class='segment' data-segment='1'" in page and ">Wait, check it.</span>" in page
    assert "token-toggle" not in page and "<script" not in page  # no heatmap without token attributions
    with pytest.raises(ValueError, match="'missing'"):
        attribution_viewer_html(traces, metrics, {}, ["missing"], strategy="paper")


def test_viewer_token_heatmap_colours_each_token_by_its_signed_attribution():
    prompt = "Q: two? "
    reasoning = "Take 2.\n\nSo 2."
    traces = pd.DataFrame({"trace_id": ["a"], "question": ["two?"], "reasoning": [reasoning], "answer": ["2"]})
    metrics = segment_metrics([("a", 0, np.array([1.0, 0.5])), ("a", 1, np.array([0.2]))])
    metrics = metrics.assign(char_start=[0, 7], char_end=[7, len(reasoning)])
    offset = len(prompt)
    words = [(0, 4, 0.8), (5, 7, -0.4), (9, 11, 0.1), (12, 14, 0.0)]  # Take, 2., So, 2. (reasoning offsets)
    tokens = pd.DataFrame(
        {
            "trace_id": ["a"],
            "reasoning_start": [offset],
            "token_starts": [[0, 3] + [offset + start for start, _, _ in words]],  # two prompt tokens first
            "token_ends": [[3, offset] + [offset + end for _, end, _ in words]],
            "attributions": [[5.0, -5.0] + [value for _, _, value in words]],
        }
    )
    page = attribution_viewer_html(traces, metrics, {"a": [0]}, ["a"], strategy="paper", token_attributions=tokens)
    assert page.count("class='tok'") == 4  # the reasoning's tokens only; the prompt's stay out
    # Scaled to the largest reasoning token (0.8, not the prompt's 5.0): full red, half blue, faint red.
    assert "--signed: rgba(214, 39, 40, 0.800)' title='attribution +0.8000'>Take</span>" in page
    assert "--signed: rgba(31, 119, 180, 0.425)' title='attribution -0.4000'>2.</span>" in page
    assert "title='attribution +0.1000'>So</span>" in page
    assert "id='token-toggle'" in page and "classList.toggle('tokens'" in page
    assert "src=" not in page and "http" not in page  # one file, nothing fetched


def _comparison():
    return pd.DataFrame(
        {
            "model": ["full_sft", "selective_sft", "random_sft"],
            "accuracy": [0.5, 0.6, 0.5],
            "accuracy_ci_low": [0.45, 0.55, 0.45],
            "accuracy_ci_high": [0.55, 0.65, 0.55],
            "mean_response_tokens": [100.0, 80.0, 101.0],
            "accuracy_diff_vs_full_sft": [np.nan, 0.1, 0.0],
            "accuracy_diff_ci_low": [np.nan, 0.05, -0.02],
            "accuracy_diff_ci_high": [np.nan, 0.15, 0.02],
            "mean_response_tokens_diff_vs_full_sft": [np.nan, -20.0, 1.0],
            "mean_response_tokens_diff_ci_low": [np.nan, -25.0, 0.5],
            "mean_response_tokens_diff_ci_high": [np.nan, -15.0, 1.5],
        }
    )


def test_verdicts_follow_the_intervals():
    comparison = _comparison()
    assert "(better); mean response length difference -20.0 [-25.0, -15.0] tokens (better)" in verdict(comparison, "selective_sft", "full_sft")
    # An interval that straddles zero is not a win; a longer response is worse.
    assert "(not distinguishable); mean response length difference +1.0 [+0.5, +1.5] tokens (worse)" in verdict(comparison, "random_sft", "full_sft")


def test_summary_report_has_the_table_the_verdicts_and_the_figures():
    report = summary_report_markdown(_comparison(), reference="full_sft", figures={"Training loss": "training_loss.png"})
    assert "| selective_sft |" in report
    assert report.count("versus full_sft") == 2
    assert "![Training loss](training_loss.png)" in report


def test_the_report_leads_with_the_gates_and_marks_the_verdicts_a_failing_gate_invalidates():
    gates = {
        "label_validity_auroc": 0.95, "label_validity_passed": 1.0,
        "oracle_headroom_accuracy": 0.01, "oracle_headroom_accuracy_ci_low": -0.02, "oracle_headroom_accuracy_ci_high": 0.04,
        "oracle_headroom_tokens": -1.0, "oracle_headroom_tokens_ci_low": -3.0, "oracle_headroom_tokens_ci_high": 1.0,
        "oracle_headroom_passed": 0.0,
    }
    report = summary_report_markdown(_comparison(), reference="full_sft", figures={}, gates=gates)
    assert report.index("## The world's gates") < report.index("## Models on the held-out problems")
    assert "| label_validity | 0.950 |" in report and "| oracle_headroom | +0.010 [-0.020, +0.040] |" in report
    assert "| distractor_effect | not measured |" in report  # a run without LeaF: said, not hidden
    assert "**distractor_effect is not measured**: a missing gate counts as failing" in report
    assert "**oracle_headroom fails**" in report and "label_validity fails" not in report
    # Both selective variants' verdicts carry the mark; without gates no verdict does.
    assert report.count("Oracle-headroom gate failing") == 2
    plain = summary_report_markdown(_comparison(), reference="full_sft", figures={})
    assert "gates" not in plain and "Oracle-headroom gate failing" not in plain
    passing = summary_report_markdown(_comparison(), reference="full_sft", figures={}, gates={**gates, "oracle_headroom_passed": 1.0})
    assert "Oracle-headroom gate failing" not in passing and "**oracle_headroom fails**" not in passing


def test_the_report_says_how_far_attribution_converged():
    from tracesieve.config import AttributionConfig, EvaluationConfig
    from tracesieve.pipelines.reporting.nodes import write_summary_report

    diagnostics = pd.DataFrame(
        {
            "trace_id": ["a", "b", "c"], "completeness_gap": [0.004, 0.011, 0.3], "steps": [41, 57, 512],
            "converged": [True, True, False], "share_error": [0.001, 0.002, 0.08], "kept": [True, True, False],
        }
    )
    selections = pd.DataFrame({"trace_id": ["a"], "strategy": ["paper"], "selected_tokens": [5], "reasoning_tokens": [10]})
    report = write_summary_report(
        _comparison(), selections, EvaluationConfig(), attribution_diagnostics=diagnostics, attribution=AttributionConfig()
    )
    section = report.split("## Attribution quality", 1)[1].split("##", 1)[0]
    assert "2/3 traces converged" in section and "max 0.3" in section and "worst: c (gap 0.3, 512 points)" in section
    assert "1 unconverged skipped into attribution_rejects" in section
    assert report.index("## Attribution quality") < report.index("## Models on the held-out problems")
