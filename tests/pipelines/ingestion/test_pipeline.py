"""The ingestion node and pipeline on mixed good and bad records."""

import json

import pytest
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from kedro.validation.exceptions import ParameterValidationError

from tests.conftest import kedro_parameters, parameter_datasets
from tracesieve.datasets import TraceFilesDataset
from tracesieve.pipelines.ingestion import create_pipeline


def test_pipeline_reconciles_counts_and_names_rejection_kinds(tmp_path):
    path = tmp_path / "traces.jsonl"
    good = {"question": "Q", "solution": "S", "answer": "1"}
    path.write_text("\n".join([json.dumps(good), "{oops", json.dumps({"question": "Q2", "solution": "S"}), json.dumps(good)]) + "\n")
    parameters = parameter_datasets(create_pipeline(), {"ingestion": {"format": "auto", "max_chars": 1000}})
    catalog = DataCatalog({"raw_traces": TraceFilesDataset(str(path)), **parameters})
    SequentialRunner().run(create_pipeline(), catalog)
    traces, rejected, metrics = (catalog.load(name) for name in ("traces", "rejected_traces", "ingestion_metrics"))
    assert len(traces) == 1 and len(rejected) == 3
    values = {name: entry["value"] for name, entry in metrics.items()}
    assert values["records_read"] == values["traces_accepted"] + values["records_rejected"] == 4
    assert values["rejected_malformed_json"] == 1
    assert values["rejected_missing_field"] == 1
    assert values["rejected_duplicate"] == 1
    assert values["traces_limo"] == 1


def test_invalid_ingestion_parameters_are_rejected_naming_the_key():
    with pytest.raises(ParameterValidationError, match=r"(?s)Parameter 'ingestion'.*format.*'auto', 'limo', 'messages', 'r1' or 'world'"):
        kedro_parameters(create_pipeline(), {"ingestion": {"format": "csv"}})
