"""The world pipeline end to end on a tiny world, with SequentialRunner over an in-memory catalog."""

from pathlib import Path

import pytest
import torch
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


def _pipeline_for(world_params):
    from tracesieve.pipelines.shape import PipelineShape

    return create_pipeline(PipelineShape.from_parameters({"world": world_params}))


def _run(world_params):
    pipeline = _pipeline_for(world_params)
    catalog = DataCatalog({name: _KeptDataset() for name in pipeline.datasets() if not name.startswith("params:")})
    for name, dataset in parameter_datasets(pipeline, {"world": world_params}).items():
        catalog[name] = dataset
    SequentialRunner().run(pipeline, catalog)
    return catalog


@pytest.mark.train
def test_world_pipeline_produces_tables_tokenizer_models_and_metrics(world_params):
    catalog = _run(world_params)
    problems = catalog.load("world_problems")
    assert problems["split"].value_counts().to_dict() == {"train": 64, "traces": 12, "eval": 14}
    records = catalog.load("raw_traces")
    assert len(records) == 12 and {"segments", "distractors", "reasoning"} <= set(records[0])
    tokenizer = catalog.load("tokenizer")
    assert tokenizer.unk_token_id not in tokenizer(list(problems["reasoning"]))["input_ids"][0]
    for role in ("teacher", "student"):
        metrics = catalog.load(f"{role}.metrics")
        assert 0.0 <= metrics["heldout_accuracy"]["value"] <= 1.0
        assert metrics["heldout_problems"]["value"] == 14
        assert metrics["heldout_accuracy_ci_low"]["value"] <= metrics["heldout_accuracy"]["value"] <= metrics["heldout_accuracy_ci_high"]["value"]
        curves = catalog.load(f"{role}.training_curves")
        assert [point["step"] for point in curves["train_loss"]] == list(range(1, world_params[role]["train_steps"] + 1))
        generations = catalog.load(f"{role}.heldout_generations")
        assert len(generations) == 14 and generations["n_tokens"].between(1, world_params["max_new_tokens"]).all()
    teacher, student = catalog.load("teacher.model"), catalog.load("student.model")
    assert teacher.config.hidden_size == 32 and student.config.hidden_size == 16
    world = catalog.load("world_metrics")
    assert world["problems_eval"]["value"] == 14 and world["segments_final"]["value"] == 90
    assert world["problems_eval_heldout_skeleton"]["value"] == 4
    assert 0 < world["position_role_share.first_is_step"]["value"] <= 1
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


def test_a_teacher_that_continues_the_student_starts_from_its_weights_and_leaves_it_as_it_was(world_params, tmp_path):
    from tracesieve.world import warmup

    student_spec = world_params["student"]
    params = {**world_params, "teacher": {**student_spec, "train_steps": 3, "init": "student"}}
    config = WorldConfig.model_validate(params)
    from tracesieve.pipelines.world.nodes import build_world_tokenizer
    from tracesieve.world.generate import generate_world

    tables = generate_world(config)
    tokenizer = build_world_tokenizer(tables.problems, config)
    student, _, _ = warmup.train_warmup_model(tables.problems, tokenizer, config, "student")
    before = {name: tensor.clone() for name, tensor in student.state_dict().items()}
    teacher, history, _ = warmup.train_warmup_model(tables.problems, tokenizer, config, "teacher", init_model=student)
    assert [entry["step"] for entry in history] == [1, 2, 3]
    assert all((student.state_dict()[name] == tensor).all() for name, tensor in before.items())  # the student is untouched
    assert any(not (teacher.state_dict()[name] == tensor).all() for name, tensor in before.items())  # and trained on
    # It answers with its own weights: a deep copy of a trained model kept calling the student's forward.
    probe = torch.tensor([tokenizer(tables.problems["question"].iloc[0])["input_ids"]])
    with torch.no_grad():
        assert not torch.allclose(teacher(input_ids=probe).logits, student(input_ids=probe).logits)
    # At a learning rate of almost 0 the teacher is the student: it starts from the student's weights.
    still = config.model_copy(update={"teacher": config.teacher.model_copy(update={"learning_rate": 1e-12})})
    unmoved, _, _ = warmup.train_warmup_model(tables.problems, tokenizer, still, "teacher", init_model=student)
    assert all(torch.allclose(unmoved.state_dict()[name], tensor, atol=1e-6) for name, tensor in before.items())
    with pytest.raises(ValueError, match="give it the trained student"):
        warmup.train_warmup_model(tables.problems, tokenizer, config, "teacher")

    # The pipeline wires the student into the teacher's training only when the run says init: student.
    wired = {node.name: node for node in _pipeline_for(params).nodes}["teacher.train_warmup_model"]
    assert wired.inputs[-1] == "student.model"
    assert "student.model" not in {node.name: node for node in _pipeline_for(world_params).nodes}["teacher.train_warmup_model"].inputs


def test_a_teacher_continuing_the_student_must_have_its_architecture(world_params):
    params = {**world_params, "teacher": {**world_params["teacher"], "init": "student"}}  # 32 wide; the student is 16
    with pytest.raises(ParameterValidationError, match=r"teacher and student differ in \['hidden_size', 'num_layers', 'intermediate_size'\]"):
        kedro_parameters(create_pipeline(), {"world": params})
    with pytest.raises(ParameterValidationError, match="student.init must be scratch"):
        kedro_parameters(create_pipeline(), {"world": {**world_params, "student": {**world_params["student"], "init": "student"}}})
