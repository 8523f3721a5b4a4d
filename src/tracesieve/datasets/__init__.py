"""Kedro datasets for what kedro-datasets does not cover: transformers folders, raw trace files, result stores,
and MLflow logging into a variant's child run."""

from tracesieve.datasets.hf import HFModelDataset, HFTokenizerDataset
from tracesieve.datasets.store_folder import ResultStoreDataset
from tracesieve.datasets.trace_files import TraceFilesDataset
from tracesieve.datasets.variant_runs import VariantArtifactDataset, VariantMetricsDataset

__all__ = [
    "ResultStoreDataset",
    "HFModelDataset",
    "HFTokenizerDataset",
    "TraceFilesDataset",
    "VariantArtifactDataset",
    "VariantMetricsDataset",
]
