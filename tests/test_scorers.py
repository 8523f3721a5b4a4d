"""Segment scorers beside IG and their deletion faithfulness, checked against direct computations."""

import numpy as np
import pandas as pd
import pytest
import torch

from tests.test_occlusion import QUESTION, REASONING, model_and_tokenizer  # noqa: F401 (a fixture)
from tracesieve.choices import SCORERS
from tracesieve.config import FaithfulnessConfig, SegmentationConfig
from tracesieve.occlusion import answer_log_probs
from tracesieve.rendering import encode_example
from tracesieve.scorers import deletion_curves, faithfulness_summary, segment_scores, top_segments
from tracesieve.segmentation import segment_traces


@pytest.fixture(scope="module")
def setup(model_and_tokenizer):  # noqa: F811
    model, tokenizer = model_and_tokenizer
    traces = pd.DataFrame({"trace_id": ["a", "b"], "question": QUESTION, "reasoning": [REASONING, REASONING.split("\n\n")[0]], "answer": "7"})
    segments = segment_traces(traces, tokenizer, SegmentationConfig())
    metrics = segments[["trace_id", "segment_index"]].assign(strength_share=[0.5, 0.3, 0.2, 1.0])
    return model, tokenizer, traces, segments, metrics


def test_every_scorer_scores_every_segment_once(setup):
    model, tokenizer, traces, segments, metrics = setup
    scores = segment_scores(model, tokenizer, traces, segments, metrics, seed=0)
    assert set(scores["scorer"]) == set(SCORERS)
    assert scores.groupby("scorer").size().eq(len(segments)).all()
    assert not scores.duplicated(["trace_id", "segment_index", "scorer"]).any() and np.isfinite(scores["score"]).all()
    again = segment_scores(model, tokenizer, traces, segments, metrics, seed=0)
    pd.testing.assert_frame_equal(scores, again)  # deterministic, random included
    other = segment_scores(model, tokenizer, traces, segments, metrics, scorers=("ig", "random"), seed=1)
    assert not np.allclose(other.loc[other["scorer"] == "random", "score"], scores.loc[scores["scorer"] == "random", "score"])
    with pytest.raises(ValueError, match="unknown scorers"):
        segment_scores(model, tokenizer, traces, segments, metrics, scorers=("ig", "magic"))


def test_perplexity_is_the_segments_mean_token_nll(setup):
    model, tokenizer, traces, segments, metrics = setup
    scores = segment_scores(model, tokenizer, traces, segments, metrics, scorers=("perplexity", "occlusion"))
    example = encode_example(tokenizer, QUESTION, REASONING, "7")
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=torch.tensor([example.input_ids])).logits[0].double(), -1)
    segment = segments[(segments["trace_id"] == "a") & (segments["segment_index"] == 1)].iloc[0]
    expected = -np.mean([float(log_probs[t - 1, example.input_ids[t]]) for t in range(segment.token_start, segment.token_end)])
    got = scores[(scores["scorer"] == "perplexity") & (scores["trace_id"] == "a") & (scores["segment_index"] == 1)]["score"].item()
    assert got == pytest.approx(expected, rel=1e-4)


def test_top_segments_takes_the_ceiling_and_breaks_ties_by_position():
    scores, index = pd.Series([0.2, 0.5, 0.5, 0.1]), pd.Series([0, 1, 2, 3])
    assert top_segments(scores, index, 0.25) == [1]
    assert top_segments(scores, index, 0.3) == [1, 2]
    assert top_segments(scores, index, 1.0) == [1, 2, 0, 3]


def test_deletion_curves_match_direct_scoring_of_the_cut_traces(setup):
    model, tokenizer, traces, segments, metrics = setup
    scores = pd.DataFrame({"trace_id": "a", "segment_index": [0, 1, 2], "scorer": "by_hand", "score": [0.9, 0.1, 0.5]})
    curves = deletion_curves(model, tokenizer, traces.head(1), segments, scores, (0.34, 1.0))
    parts = REASONING.split("\n\n")
    texts = [REASONING, "\n\n" + parts[1] + "\n\n" + parts[2], parts[0]]  # full, without the top third, only it
    full, without_top, only_top = answer_log_probs(
        model, [encode_example(tokenizer, QUESTION, text, "7") for text in texts], pad_token_id=tokenizer.pad_token_id
    )
    # 0.34 of 3 segments rounds up to 2: the top two are segments 0 and 2.
    row = curves[curves["fraction"] == 0.34].iloc[0]
    assert row["segments_removed"] == 2
    only_two = answer_log_probs(model, [encode_example(tokenizer, QUESTION, parts[0] + "\n\n" + parts[2], "7")], pad_token_id=tokenizer.pad_token_id)[0]
    without_two = answer_log_probs(model, [encode_example(tokenizer, QUESTION, "\n\n" + parts[1], "7")], pad_token_id=tokenizer.pad_token_id)[0]
    assert row["comprehensiveness"] == pytest.approx(full - without_two, abs=1e-5)
    assert row["sufficiency"] == pytest.approx(full - only_two, abs=1e-5)
    everything = curves[curves["fraction"] == 1.0].iloc[0]
    assert everything["sufficiency"] == pytest.approx(0.0, abs=1e-6)  # keeping every segment changes nothing
    assert without_top != only_top  # the cut texts differ, so the check above is not vacuous


def test_aopc_is_the_mean_over_fractions_and_is_read_against_random_order():
    curves = pd.DataFrame(
        {"trace_id": ["a"] * 4 + ["b"] * 4, "scorer": ["good", "good", "random", "random"] * 2, "fraction": [0.5, 1.0] * 4,
         "segments_removed": 1, "comprehensiveness": [2.0, 4.0, 1.0, 1.0, 3.0, 5.0, 0.0, 2.0], "sufficiency": [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 2.0]}
    )
    summary = faithfulness_summary(curves)
    assert summary["good.aopc_comprehensiveness"] == pytest.approx(3.5)  # traces: 3 and 4
    assert summary["random.aopc_comprehensiveness"] == pytest.approx(1.0)
    assert summary["good.aopc_comprehensiveness_vs_random"] == pytest.approx(2.5)
    assert summary["good.aopc_sufficiency_vs_random"] == pytest.approx(-1.5)
    assert "random.aopc_comprehensiveness_vs_random" not in summary and summary["traces"] == 2


def test_the_config_needs_occlusion_and_fractions_in_range():
    assert FaithfulnessConfig().scorers == SCORERS
    with pytest.raises(ValueError, match="must include occlusion"):
        FaithfulnessConfig(scorers=("ig", "random"))
    with pytest.raises(ValueError, match="fractions must lie"):
        FaithfulnessConfig(fractions=(0.0, 0.5))


def test_a_scorers_selection_keeps_its_strongest_segments_up_to_tau():
    from tracesieve.scorers import scorer_selections

    segments = pd.DataFrame(
        {"trace_id": "t", "segment_index": [0, 1, 2, 3], "char_start": [0, 10, 20, 30], "char_end": [10, 20, 30, 40],
         "token_start": [0, 2, 4, 6], "token_end": [2, 4, 6, 8], "n_tokens": 2}
    )
    scores = pd.DataFrame(
        {"trace_id": "t", "segment_index": [0, 1, 2, 3] * 3, "scorer": ["occlusion"] * 4 + ["perplexity"] * 4 + ["random"] * 4,
         "score": [3.0, -1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.9, 0.5, 0.2]}
    )
    table = scorer_selections(scores, segments, tau=0.7).set_index("strategy")
    # Occlusion: positive scores 3 and 1 (shares 0.75, 0.25); the first alone reaches 0.7. A negative drop counts 0.
    assert list(table.loc["occlusion_top", "selected_segments"]) == [0]
    assert table.loc["occlusion_top", "mask_token_spans"] == [[0, 2]]
    # No positive score: nothing to rank by, every segment kept. Random order has its own variant: no strategy.
    assert list(table.loc["perplexity_top", "selected_segments"]) == [0, 1, 2, 3]
    assert "random_top" not in table.index
