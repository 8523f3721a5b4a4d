"""Kedro datasets for what kedro-datasets does not cover: transformers folders and raw trace files."""

from tracesieve.datasets.hf import HFModelDataset, HFTokenizerDataset
from tracesieve.datasets.trace_files import TraceFilesDataset

__all__ = ["HFModelDataset", "HFTokenizerDataset", "TraceFilesDataset"]
