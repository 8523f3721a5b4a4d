"""What the pipeline tests share: a tiny world's traces and tokenizer, a runner over an in-memory catalog."""

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from tests.conftest import parameter_datasets, tiny_world_params
from tracesieve.config import WorldConfig
from tracesieve.world.generate import generate_world
from tracesieve.world.tokenizer import build_word_tokenizer


class KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so a test can read intermediate outputs afterwards."""

    def _release(self) -> None:
        pass


def run_pipeline(pipeline, inputs: dict, parameters: dict | None = None) -> DataCatalog:
    """Run ``pipeline`` with SequentialRunner: ``inputs`` as in-memory datasets, ``parameters`` validated by
    Kedro into their config objects; every output stays readable in the returned catalog."""
    catalog = DataCatalog({name: KeptDataset() for name in pipeline.datasets() if not name.startswith("params:")})
    for name, value in inputs.items():
        catalog[name] = KeptDataset(value)
    for name, dataset in parameter_datasets(pipeline, parameters or {}).items():
        catalog[name] = dataset
    SequentialRunner().run(pipeline, catalog)
    return catalog


@pytest.fixture(scope="package")
def tiny_world(tmp_path_factory):
    """Six traces of a tiny world, its tokenizer and its planted segments."""
    tables = generate_world(WorldConfig.model_validate(tiny_world_params(tmp_path_factory.mktemp("world"))))
    traces = pd.DataFrame(tables.trace_records)[["trace_id", "question", "reasoning", "answer"]].head(6)
    tokenizer = build_word_tokenizer([*tables.problems["question"], *tables.problems["reasoning"]], numbers_up_to=50)
    return traces, tokenizer, tables.segments
