"""The pipeline registry: what it builds from the run's parameters, and that Kedro validates every block."""

import pytest
from kedro.framework.project import pipelines, settings
from kedro.framework.startup import bootstrap_project
from kedro.validation.type_extractor import TypeExtractor

from tests.conftest import PROJECT
from tracesieve import pipeline_registry
from tracesieve.pipelines.shape import PipelineShape


def test_every_parameter_block_a_node_reads_is_typed_so_kedro_validates_it_once_per_run():
    bootstrap_project(PROJECT)
    untyped = []
    for name, pipeline in pipelines.items():
        typed = TypeExtractor({name: pipeline}).extract_types_from_pipelines()
        untyped += [f"{name}: {node.name} reads {dataset}" for node in pipeline.nodes for dataset in node.inputs
                    if dataset.startswith("params:") and dataset.removeprefix("params:") not in typed]
    assert untyped == []


def test_the_shape_comes_from_the_parameters_validated_once_and_defaults_stay_written_once():
    shape = PipelineShape.from_parameters({"fine_tuning": {"variants": ["full_sft", "strength_only"], "strategies": {"mine": "share_floor"}},
                                           "default_pipeline": "from_traces", "world": {"teacher": {"init": "scratch"}}})
    assert shape.variants == ("full_sft", "strength_only") and shape.default_pipeline == "from_traces" and shape.teacher_init == "scratch"
    # A run names only the strategies it adds: the defaults stay (config.DEFAULT_VARIANT_STRATEGIES).
    assert shape.strategies["mine"] == "share_floor" and shape.strategies["full_sft"] == "all"
    with pytest.raises(ValueError, match="variants"):
        PipelineShape.from_parameters({"fine_tuning": {"variants": ["full_sft", "no_such_variant"]}})
    with pytest.raises(ValueError, match="world.teacher.init"):
        PipelineShape.from_parameters({"world": {"teacher": {"init": "pretrained"}}})
    base = PipelineShape.of_project(PROJECT, env="base")
    assert base.variants == (
        "full_sft", "selective_sft", "selective_sft_authors", "random_sft", "oracle_sft", "oracle_budget_sft", "position_sft",
        "random_matched_sft",
    ) and base.default_pipeline is None  # conf/base
    assert PipelineShape.of_project(PROJECT, env="real_cpu").default_pipeline == "real_model"


def test_every_pipeline_package_is_registered_and_the_default_is_the_shapes():
    packages = sorted(path.name for path in (PROJECT / "src/tracesieve/pipelines").iterdir() if (path / "__init__.py").exists())
    assert sorted((*pipeline_registry.STAGES, *pipeline_registry.COMPOSITES)) == packages  # a new folder cannot be forgotten
    shape = PipelineShape.from_parameters({"fine_tuning": {"variants": ["full_sft", "occlusion_sft"]}})
    built = pipeline_registry.build_pipelines(shape)
    stage_nodes = set().union(*({node.name for node in built[name].nodes} for name in pipeline_registry.STAGES))
    assert {node.name for node in built["__default__"].nodes} == stage_nodes
    assert {"full_sft.train_variant", "occlusion_sft.evaluate_model"} <= stage_nodes and "selective_sft.train_variant" not in stage_nodes
    # A scorer's variant brings the ablation scorers into the segment method; the default variants do not.
    assert "score_segments_by_every_scorer" in {node.name for node in built["segment_method"].nodes}
    assert "score_segments_by_every_scorer" not in {node.name for node in pipeline_registry.build_pipelines(PipelineShape())["segment_method"].nodes}
    real = pipeline_registry.build_pipelines(PipelineShape(default_pipeline="from_traces"))
    assert real["__default__"] is real["from_traces"]
    with pytest.raises(ValueError, match="default_pipeline is 'form_traces', which is not a pipeline"):
        pipeline_registry.build_pipelines(PipelineShape(default_pipeline="form_traces"))


def test_the_registry_builds_from_the_loader_kedro_hands_the_hook(monkeypatch):
    """What `kedro run --env real_cpu --params fine_tuning.variants=...` builds: Kedro hands each new context
    to RunConfigHooks, and register_pipelines reads that context's loader (env, soft merge, --params)."""
    from types import SimpleNamespace

    from tracesieve import settings as project_settings
    from tracesieve.hooks import RunConfigHooks

    hook = RunConfigHooks()
    monkeypatch.setattr(project_settings, "RUN_CONFIG", hook)
    assert hook.parameters() is None  # no session yet: register_pipelines falls back to the project's conf
    loader = settings.CONFIG_LOADER_CLASS(conf_source=str(PROJECT / "conf"), env="real_cpu", runtime_params={"fine_tuning": {"variants": ["full_sft", "random_sft"]}},
                                          **settings.CONFIG_LOADER_ARGS)
    hook.after_context_created(SimpleNamespace(config_loader=loader))
    names = {node.name for node in pipeline_registry.register_pipelines()["__default__"].nodes}
    assert {"full_sft.train_variant", "random_sft.train_variant", "generate_world"} <= names
    assert "selective_sft.train_variant" not in names and "teacher.train_warmup_model" not in names  # real_model: no warm-ups
