"""LeaF's counterfactual table, built from a hand-made gradient comparison."""

import pandas as pd

from tracesieve.config import LeafConfig
from tracesieve.leaf.counterfactuals import COUNTERFACTUAL_COLUMNS, build_counterfactuals, counterfactual_summary
from tracesieve.leaf.examples import leaf_example


def _gradients(tokenizer, trace, low_indices):
    """A gradient table on the words of the trace's question whose delta is 0 at ``low_indices``, 1 elsewhere."""
    example = leaf_example(tokenizer, trace.trace_id, trace.question, trace.reasoning, trace.answer)
    text = example.analysed_text
    rows, cursor = [], 0
    for index, word in enumerate(text.split(" ")):
        start = text.index(word, cursor)
        cursor = start + len(word)
        rows.append({"trace_id": trace.trace_id, "token_index": index, "start": start, "end": cursor, "text": word,
                     "g_teacher": 0.5, "g_student": 0.5, "delta": 0.0 if index in low_indices else 1.0})
    return pd.DataFrame(rows)


def test_each_confounder_span_becomes_one_counterfactual_with_exactly_its_characters_deleted(world):
    tokenizer, _, traces = world
    trace = next(traces.itertuples(index=False))
    words = trace.question.split(" ")
    gradients = _gradients(tokenizer, trace, {1, 3})  # two separate words: two spans
    config = LeafConfig(quantile=0.05)
    confounders, counterfactuals = build_counterfactuals(traces.head(1), gradients, tokenizer, config)
    assert list(counterfactuals.columns) == COUNTERFACTUAL_COLUMNS
    assert confounders.loc[confounders["confounder"], "text"].tolist() == [words[1], words[3]]
    assert len(counterfactuals) == 2 and counterfactuals["counterfactual_index"].tolist() == [0, 1]
    for row in counterfactuals.itertuples():
        ((start, end),) = row.spans
        assert row.removed_text == trace.question[start:end] and row.original_text == trace.question
        assert row.pruned_text == trace.question[:start] + trace.question[end:]
        assert row.answer == str(trace.answer) and row.level == "instruction" and row.pruning == "span"
    # Collective pruning: one counterfactual without both spans.
    _, collective = build_counterfactuals(traces.head(1), gradients, tokenizer, LeafConfig(quantile=0.05, pruning="collective"))
    assert len(collective) == 1 and len(collective.iloc[0]["spans"]) == 2
    summary = counterfactual_summary(confounders, counterfactuals)
    assert summary["confounder_tokens"] == 2 and summary["counterfactuals"] == 2 and summary["traces_with_counterfactual"] == 1
    assert summary["confounder_token_share"] == 2 / confounders["prunable"].sum()


def test_no_gradients_no_counterfactuals(world):
    tokenizer, _, traces = world
    empty = pd.DataFrame(columns=["trace_id", "token_index", "start", "end", "text", "g_teacher", "g_student", "delta"])
    confounders, counterfactuals = build_counterfactuals(traces, empty, tokenizer, LeafConfig())
    assert confounders.empty and counterfactuals.empty and list(counterfactuals.columns) == COUNTERFACTUAL_COLUMNS
    assert counterfactual_summary(confounders, counterfactuals)["counterfactuals"] == 0
