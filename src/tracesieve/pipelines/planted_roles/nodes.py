"""Nodes of the ``planted_roles`` pipeline."""

from __future__ import annotations

import pandas as pd

from tracesieve.metrics import as_mlflow_metrics, auroc
from tracesieve.world.roles import planted_role_of_segments

NECESSARY = "necessary"
FILLER = ("restatement", "detour")  # segments a trace could lose without changing its answer


def measure_planted_roles(
    segment_metrics: pd.DataFrame, selections: pd.DataFrame, world_segments: pd.DataFrame
) -> tuple[pd.DataFrame, dict]:
    """Per planted role: mean strength share and consistency, share selected per strategy; and the AUROC of
    ``strength_share`` for necessary steps against filler (restatements and detours)."""
    segment_metrics = segment_metrics.reset_index(drop=True)
    scored = segment_metrics.assign(role=planted_role_of_segments(segment_metrics, world_segments))
    chosen = selections[["trace_id", "strategy", "selected_segments"]].explode("selected_segments").dropna()
    chosen = chosen.rename(columns={"selected_segments": "segment_index"}).astype({"segment_index": "int64"})
    table = scored.groupby("role").agg(
        segments=("segment_index", "size"),
        tokens_mean=("n_tokens", "mean"),
        strength_share_mean=("strength_share", "mean"),
        consistency_mean=("consistency", "mean"),
    )
    for strategy, picked in chosen.groupby("strategy"):
        flags = scored.merge(picked.assign(selected=True), on=["trace_id", "segment_index"], how="left")["selected"]
        table[f"selected_share_{strategy}"] = flags.fillna(False).astype(bool).groupby(scored["role"].to_numpy()).mean()
    metrics: dict[str, float] = {}
    for role, row in table.iterrows():
        for column, value in row.items():
            metrics[f"{role}.{column}"] = value
    necessary = scored.loc[scored["role"] == NECESSARY, "strength_share"]
    filler = scored.loc[scored["role"].isin(FILLER), "strength_share"]
    metrics["auroc_strength_share_necessary_vs_filler"] = auroc(necessary.tolist(), filler.tolist())
    for role in FILLER + ("check",):
        others = scored.loc[scored["role"] == role, "strength_share"]
        metrics[f"auroc_strength_share_necessary_vs_{role}"] = auroc(necessary.tolist(), others.tolist())
    return table.reset_index(), as_mlflow_metrics(metrics)
