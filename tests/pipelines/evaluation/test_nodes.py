"""The comparison node: paired differences against the reference, and the variant-list check."""

import pandas as pd
import pytest

from tracesieve.config import EvaluationConfig
from tracesieve.pipelines.evaluation.nodes import compare_models


def _generations(correct, tokens):
    return pd.DataFrame(
        {"problem_id": list("abcd"), "sample_index": 0, "correct": correct, "n_tokens": tokens, "truncated": False}
    )


def _inputs():
    return {
        "base_generations": _generations([False, False, True, False], [10, 10, 10, 10]),
        "full_sft_generations": _generations([True, False, True, False], [20, 20, 20, 20]),
        "selective_sft_generations": _generations([True, True, True, False], [15, 15, 15, 16]),
        "full_sft_training_log": {"summary": {"strategy": "all", "supervised_tokens": 100}, "history": []},
        "selective_sft_training_log": {"summary": {"strategy": "paper", "supervised_tokens": 40}, "history": []},
    }


def test_comparison_has_a_row_per_model_and_paired_differences():
    table, metrics = compare_models(EvaluationConfig(reference="full_sft"), **_inputs())
    rows = table.set_index("model")
    assert list(rows.index) == ["base", "full_sft", "selective_sft"]
    assert rows.loc["selective_sft", "supervised_tokens"] == 40 and rows.loc["base", "strategy"] == "(base model)"
    assert rows.loc["selective_sft", "accuracy_diff_vs_full_sft"] == pytest.approx(0.25)
    assert rows.loc["selective_sft", "mean_response_tokens_diff_vs_full_sft"] == pytest.approx(-4.75)
    assert metrics["selective_sft.accuracy_diff_vs_full_sft"]["value"] == pytest.approx(0.25)
    assert pd.isna(rows.loc["full_sft"].get("accuracy_diff_vs_full_sft"))  # the reference is not compared with itself


def test_a_reference_that_is_no_compared_variant_stops_naming_the_variants():
    with pytest.raises(ValueError, match="reference 'random_sft' is not among"):
        compare_models(EvaluationConfig(reference="random_sft"), **_inputs())
