"""Nodes of the ``ingestion`` pipeline."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tracesieve.config import IngestionConfig
from tracesieve.metrics import as_mlflow_metrics
from tracesieve.traces import RawRecord, parse_trace_records


def ingest_traces(raw_traces: list[RawRecord], ingestion_params: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Validate raw records into (traces, rejected_traces, counts); fails if a record went missing."""
    config = IngestionConfig.from_params(ingestion_params, name="ingestion")
    traces, rejected = parse_trace_records(raw_traces, format=config.format, max_chars=config.max_chars)
    if len(traces) + len(rejected) != len(raw_traces):
        raise RuntimeError(
            f"Ingestion lost records: read {len(raw_traces)}, accepted {len(traces)}, rejected {len(rejected)}."
        )
    counts: dict[str, float] = {
        "records_read": len(raw_traces),
        "traces_accepted": len(traces),
        "records_rejected": len(rejected),
        "files_read": len({record.source for record in raw_traces}),
    }
    # Counted by kind (missing_field, malformed_json, ...), so MLflow shows few, stable metric names.
    for kind, count in rejected["kind"].value_counts().items():
        counts[f"rejected_{kind}"] = count
    for record_format, count in traces["format"].value_counts().items():
        counts[f"traces_{record_format}"] = count
    return traces, rejected, as_mlflow_metrics(counts)
