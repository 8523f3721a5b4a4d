"""The preflight check: a run that could not finish stops before its first node, naming every reason."""

from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Node, Pipeline

from tracesieve.datasets import HFModelDataset, HFTokenizerDataset, TraceFilesDataset
from tracesieve.hooks import preflight_problems


def _use(model, tokenizer, traces):
    return model


def _pipeline():
    return Pipeline(
        [
            Node(_use, ["student.model", "tokenizer", "raw_traces"], "trained", name="train"),
            Node(_use, ["trained", "tokenizer", "raw_traces"], "teacher.model", name="overwrite_teacher"),
        ]
    )


def test_missing_folders_and_read_only_outputs_are_all_named(tmp_path):
    (tmp_path / "tokenizer").mkdir()  # a folder without tokenizer_config.json
    catalog = DataCatalog(
        {
            "student.model": HFModelDataset(str(tmp_path / "base"), writable=False),
            "tokenizer": HFTokenizerDataset(str(tmp_path / "tokenizer")),
            "raw_traces": TraceFilesDataset(str(tmp_path / "traces" / "*.jsonl")),
            "teacher.model": HFModelDataset(str(tmp_path / "teacher"), writable=False),
            "trained": MemoryDataset(),
        }
    )
    problems = preflight_problems(_pipeline(), catalog)
    text = "\n".join(problems)
    assert f"student.model: no folder at {tmp_path / 'base'}" in text
    assert f"tokenizer: {tmp_path / 'tokenizer'} has no tokenizer_config.json" in text
    assert "raw_traces: no trace file matches" in text
    assert "teacher.model: this pipeline would overwrite it, but it is read-only" in text
    assert len(problems) == 4


def test_a_ready_run_has_no_problems(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    (tmp_path / "tokenizer").mkdir()
    (tmp_path / "tokenizer" / "tokenizer_config.json").write_text("{}")
    (tmp_path / "traces.jsonl").write_text("")
    catalog = DataCatalog(
        {
            "student.model": HFModelDataset(str(tmp_path / "base"), writable=False),
            "tokenizer": HFTokenizerDataset(str(tmp_path / "tokenizer")),
            "raw_traces": TraceFilesDataset(str(tmp_path / "traces.jsonl")),
            "teacher.model": HFModelDataset(str(tmp_path / "teacher")),
            "trained": MemoryDataset(),
        }
    )
    assert preflight_problems(_pipeline(), catalog) == []


def test_a_missing_table_the_run_reads_is_named_and_one_a_node_writes_is_not(tmp_path):
    from kedro_datasets.pandas import CSVDataset

    pipeline = Pipeline([Node(_use, ["eval_problems", "tokenizer", "scores"], "graded", name="grade"),
                         Node(lambda: 1, None, "scores", name="score")])
    catalog = DataCatalog(
        {
            "eval_problems": CSVDataset(filepath=str(tmp_path / "eval.csv")),
            "tokenizer": MemoryDataset(1),
            "scores": CSVDataset(filepath=str(tmp_path / "scores.csv")),  # written by the run before it is read
            "graded": MemoryDataset(),
        }
    )
    assert preflight_problems(pipeline, catalog) == [f"eval_problems: no file at {tmp_path / 'eval.csv'}"]
    (tmp_path / "eval.csv").write_text("a\n1\n")
    assert preflight_problems(pipeline, catalog) == []


def test_warnings_are_logged_once_under_their_own_source_and_understood_ones_are_silenced(caplog):
    import logging
    import warnings

    from tracesieve.logs import WarningSource, install_warning_logging

    install_warning_logging()
    install_warning_logging()  # idempotent: one filter
    captured = logging.getLogger("py.warnings")  # where logging.captureWarnings sends each formatted warning
    text = warnings.formatwarning("tokenizer has no pad token", UserWarning, "/venv/lib/python3.11/site-packages/transformers/tokenization.py", 42)
    with caplog.at_level(logging.WARNING, logger="py.warnings"):
        for _ in range(3):
            captured.warning("%s", text)
    records = [record for record in caplog.records if record.name == "py.warnings"]
    assert len(records) == 1  # three identical warnings, logged once
    assert (records[0].filename, records[0].lineno) == ("tokenization.py", 42)  # not warnings.py
    assert records[0].getMessage() == "UserWarning (transformers): tokenizer has no pad token"
    assert sum(isinstance(existing, WarningSource) for existing in captured.filters) == 1
    with warnings.catch_warnings(record=True) as shown:
        install_warning_logging()
        warnings.warn_explicit("register_new_resolver() is deprecated", UserWarning, "omegaconf_config.py", 644)
        warnings.warn_explicit("something new", UserWarning, "other.py", 1)
    assert [str(warning.message) for warning in shown] == ["something new"]  # the understood one is silenced
