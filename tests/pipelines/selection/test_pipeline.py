"""The selection pipeline on hand-made attributions: metrics per segment, one selection per strategy."""

import numpy as np
import pandas as pd

from tests.pipelines.conftest import run_pipeline
from tracesieve.pipelines.selection import create_pipeline


def _inputs():
    # One trace of 9 tokens in three segments: strong and mixed, weak, strong and one-directional.
    attributions = pd.DataFrame(
        {"trace_id": ["t"], "n_tokens": [9], "attributions": [np.array([0, 3, -3, 0.1, 0.1, 0, 2, 2, 2], dtype=np.float32)]}
    )
    segments = pd.DataFrame(
        {"trace_id": "t", "segment_index": [0, 1, 2], "char_start": [0, 10, 20], "char_end": [10, 20, 30],
         "token_start": [0, 3, 6], "token_end": [3, 6, 9], "n_tokens": 3, "example_tokens": 9}
    )
    return {"token_attributions": attributions, "segments": segments}


def test_every_strategy_selects_and_the_paper_rule_drops_the_consistent_strong_segment():
    catalog = run_pipeline(create_pipeline(), _inputs(), {"selection": {"tau": 0.9, "beta": 0.8}})
    metrics = catalog.load("segment_metrics")
    assert metrics["consistency"].round(6).tolist() == [0.0, 1.0, 1.0]
    selections = catalog.load("selections").set_index("strategy")
    assert list(selections.index) == ["paper", "paper_authors", "all", "strength_only", "consistency_only", "random", "position", "random_matched", "share_floor"]
    assert list(selections.loc["share_floor", "selected_segments"]) == [0, 2]  # shares of 0.49 >= 0.75 / 3; 2 is also last
    assert list(selections.loc["paper_authors", "selected_segments"]) == [0, 1, 2]  # first, penultimate, last kept
    assert list(selections.loc["strength_only", "selected_segments"]) == [0, 2]
    assert list(selections.loc["paper", "selected_segments"]) == [0]  # segment 2 is too consistent
    assert [list(span) for span in selections.loc["paper", "mask_char_spans"]] == [[0, 10]]
    assert selections.loc["random", "selected_tokens"] == selections.loc["paper", "selected_tokens"] == 3
    summary = {name: entry["value"] for name, entry in catalog.load("selection_metrics").items()}
    assert summary["all.token_share_mean"] == 1.0 and summary["paper.token_share_mean"] == 1 / 3
