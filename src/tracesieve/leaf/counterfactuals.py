"""LeaF's counterfactuals: for every analysed trace, its confounder tokens grouped into spans and the
analysed text with them deleted, one counterfactual per span (``span`` pruning, the paper's default) or one
without all of them (``collective``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from tracesieve.leaf.confounders import confounder_spans, counterfactual_span_sets, flag_confounders
from tracesieve.leaf.examples import leaf_examples

if TYPE_CHECKING:  # the schemas import this package's names
    from tracesieve.config import LeafConfig

COUNTERFACTUAL_COLUMNS = ["trace_id", "counterfactual_index", "level", "pruning", "spans", "removed_text", "original_text", "pruned_text", "answer"]


def build_counterfactuals(
    traces: pd.DataFrame, leaf_gradients: pd.DataFrame, tokenizer, config: LeafConfig
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The gradient table with its confounders flagged, and the counterfactuals (``COUNTERFACTUAL_COLUMNS``):
    the spans each one deletes, relative to the analysed text, with the removed, original and pruned texts."""
    confounders = flag_confounders(leaf_gradients, config.quantile, rule=config.threshold)
    analysed = traces[traces["trace_id"].isin(confounders["trace_id"])]
    examples = leaf_examples(analysed, tokenizer, level=config.level, response_prefix_share=config.response_prefix_share)
    answers = dict(zip(traces["trace_id"], traces["answer"].astype(str), strict=True))
    rows = []
    for trace_id, tokens in confounders.groupby("trace_id", sort=True):
        tokens = tokens.sort_values("token_index")
        offsets = list(zip(tokens["start"], tokens["end"], strict=True))
        spans = confounder_spans(tokens["confounder"].to_numpy(), offsets)
        text = examples[trace_id].analysed_text
        for index, span_set in enumerate(counterfactual_span_sets(spans, config.pruning)):
            rows.append(
                {
                    "trace_id": trace_id,
                    "counterfactual_index": index,
                    "level": config.level,
                    "pruning": config.pruning,
                    "spans": [[int(start), int(end)] for start, end in span_set],
                    "removed_text": " | ".join(text[start:end] for start, end in span_set),
                    "original_text": text,
                    "pruned_text": examples[trace_id].pruned(span_set).analysed_text,
                    "answer": answers[trace_id],
                }
            )
    return confounders, pd.DataFrame(rows, columns=COUNTERFACTUAL_COLUMNS)


def counterfactual_summary(confounders: pd.DataFrame, counterfactuals: pd.DataFrame) -> dict[str, float]:
    """Confounder tokens (count, share of the prunable ones), counterfactuals, traces with one."""
    return {
        "confounder_tokens": float(confounders["confounder"].sum()) if len(confounders) else 0.0,
        "confounder_token_share": float(confounders["confounder"].sum() / max(1, confounders["prunable"].sum())) if len(confounders) else 0.0,
        "counterfactuals": len(counterfactuals),
        "traces_with_counterfactual": counterfactuals["trace_id"].nunique(),
    }
