"""Kedro datasets for what kedro-datasets does not cover: transformers folders, raw trace files, result stores."""

from tracesieve.datasets.hf import HFModelDataset, HFTokenizerDataset
from tracesieve.datasets.result_store import ResultStoreDataset
from tracesieve.datasets.trace_files import TraceFilesDataset

__all__ = ["ResultStoreDataset", "HFModelDataset", "HFTokenizerDataset", "TraceFilesDataset"]
