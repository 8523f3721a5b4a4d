"""Nodes of the ``ingestion`` pipeline."""

from __future__ import annotations

import pandas as pd

from tracesieve.config import IngestionConfig
from tracesieve.metrics import as_mlflow_metrics
from tracesieve.traces import RawRecord, ingestion_summary, parse_trace_records


def ingest_traces(raw_traces: list[RawRecord], config: IngestionConfig) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Validate raw records into (traces, rejected_traces, counts); fails if a record went missing."""
    traces, rejected = parse_trace_records(raw_traces, format=config.format, max_chars=config.max_chars, multi_turn=config.multi_turn)
    if len(traces) + len(rejected) != len(raw_traces):
        raise RuntimeError(
            f"Ingestion lost records: read {len(raw_traces)}, accepted {len(traces)}, rejected {len(rejected)}."
        )
    return traces, rejected, as_mlflow_metrics(ingestion_summary(raw_traces, traces, rejected))
