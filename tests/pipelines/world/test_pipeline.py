"""The world pipeline end to end on a tiny world, with SequentialRunner over an in-memory catalog."""

from pathlib import Path

import pytest
import yaml
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from kedro.validation.exceptions import ParameterValidationError

from tests.conftest import kedro_parameters, parameter_datasets
from tracesieve.config import WorldConfig
from tracesieve.pipelines.world import create_pipeline


class _KeptDataset(MemoryDataset):
    """A MemoryDataset the runner cannot release, so the test can read intermediate outputs afterwards."""

    def _release(self) -> None:
        pass


def _run(world_params):
    pipeline = create_pipeline()
    catalog = DataCatalog({name: _KeptDataset() for name in pipeline.datasets() if not name.startswith("params:")})
    for name, dataset in parameter_datasets(pipeline, {"world": world_params}).items():
        catalog[name] = dataset
    SequentialRunner().run(pipeline, catalog)
    return catalog


@pytest.mark.slow
def test_world_pipeline_produces_tables_tokenizer_models_and_metrics(world_params):
    catalog = _run(world_params)
    problems = catalog.load("world_problems")
    assert problems["split"].value_counts().to_dict() == {"train": 64, "traces": 12, "eval": 10}
    records = catalog.load("raw_traces")
    assert len(records) == 12 and {"segments", "distractors", "reasoning"} <= set(records[0])
    tokenizer = catalog.load("tokenizer")
    assert tokenizer.unk_token_id not in tokenizer(list(problems["reasoning"]))["input_ids"][0]
    for role in ("teacher", "student"):
        metrics = catalog.load(f"{role}.metrics")
        assert 0.0 <= metrics["heldout_accuracy"]["value"] <= 1.0
        assert metrics["heldout_problems"]["value"] == 10
        assert metrics["heldout_accuracy_ci_low"]["value"] <= metrics["heldout_accuracy"]["value"] <= metrics["heldout_accuracy_ci_high"]["value"]
        curves = catalog.load(f"{role}.training_curves")
        assert [point["step"] for point in curves["train_loss"]] == list(range(1, world_params[role]["train_steps"] + 1))
        generations = catalog.load(f"{role}.heldout_generations")
        assert len(generations) == 10 and generations["n_tokens"].between(1, world_params["max_new_tokens"]).all()
    teacher, student = catalog.load("teacher.model"), catalog.load("student.model")
    assert teacher.config.hidden_size == 32 and student.config.hidden_size == 16
    world = catalog.load("world_metrics")
    assert world["problems_eval"]["value"] == 10 and world["segments_final"]["value"] == 86
    assert "world-traces-00000" in catalog.load("world_sample_traces")


def test_bad_world_parameters_fail_before_any_work_naming_the_key(world_params):
    misspelt = {**world_params, "problems": {**world_params["problems"], "max_vaule": 10}}
    with pytest.raises(ParameterValidationError, match=r"(?s)Parameter 'world'.*problems\.max_vaule\s+Extra inputs are not permitted"):
        kedro_parameters(create_pipeline(), {"world": misspelt})
    uneven = {**world_params, "teacher": {**world_params["teacher"], "hidden_size": 31}}
    with pytest.raises(ParameterValidationError, match=r"(?s)teacher.*hidden_size \(31\) is not divisible by num_heads"):
        kedro_parameters(create_pipeline(), {"world": uneven})


def test_default_parameters_file_matches_the_schema():
    params = yaml.safe_load((Path(__file__).parents[3] / "conf/base/parameters_world.yml").read_text())["world"]
    config = WorldConfig.model_validate(params)
    # Every model's accuracy is measured on at least 500 held-out problems, a fifth of them of unseen skeletons.
    assert config.n_eval + config.n_eval_heldout_skeleton >= 500 and config.n_eval_heldout_skeleton >= 100
    assert config.problems.max_steps > config.problems.min_steps  # chain lengths vary: position must not tell roles
