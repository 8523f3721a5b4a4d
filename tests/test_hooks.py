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
