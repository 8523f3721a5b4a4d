"""The pipeline registry: what it builds from the run's parameters, and that Kedro validates every block."""

from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project
from kedro.validation.type_extractor import TypeExtractor

from tests.conftest import PROJECT
from tracesieve import pipelines as project_pipelines


def test_every_parameter_block_a_node_reads_is_typed_so_kedro_validates_it_once_per_run():
    bootstrap_project(PROJECT)
    untyped = []
    for name, pipeline in pipelines.items():
        typed = TypeExtractor({name: pipeline}).extract_types_from_pipelines()
        untyped += [f"{name}: {node.name} reads {dataset}" for node in pipeline.nodes for dataset in node.inputs
                    if dataset.startswith("params:") and dataset.removeprefix("params:") not in typed]
    assert untyped == []


class _Loader(dict):
    """Stands in for the run's config loader: Kedro's loaders are mappings from config names to content."""


def test_variants_and_the_default_pipeline_come_from_the_runs_own_config_loader():
    project_pipelines.use_config_loader(_Loader(parameters={"fine_tuning": {"variants": ["full_sft", "strength_only"]}, "default_pipeline": "from_traces"}))
    try:
        assert project_pipelines.configured_variants() == ("full_sft", "strength_only")
        assert project_pipelines.default_pipeline_name() == "from_traces"
        project_pipelines.use_config_loader(_Loader(parameters={"fine_tuning": {"variants": "full_sft"}}))
        try:
            project_pipelines.configured_variants()
        except ValueError as error:
            assert "fine_tuning.variants must be a list" in str(error)
        else:
            raise AssertionError("a string of variants was accepted")
    finally:
        project_pipelines.use_config_loader(None)
    assert project_pipelines.configured_variants() == (
        "full_sft", "selective_sft", "selective_sft_authors", "random_sft", "oracle_sft", "position_sft", "random_matched_sft"
    )  # conf/base
    assert project_pipelines.default_pipeline_name() is None


def test_a_default_pipeline_that_is_no_pipeline_is_refused_and_one_not_imported_is_not_needed(monkeypatch):
    """`--pipelines ingestion,attribution` makes Kedro import only those packages: an env whose default is
    from_traces still runs them; a default that names no pipeline package at all is an error."""
    import pytest
    from kedro.pipeline import Pipeline

    from tracesieve import pipeline_registry

    monkeypatch.setattr(pipeline_registry, "find_pipelines", lambda raise_errors: {"ingestion": Pipeline([]), "attribution": Pipeline([])})
    monkeypatch.setattr(pipeline_registry, "default_pipeline_name", lambda: "from_traces")
    assert sorted(pipeline_registry.register_pipelines()) == ["attribution", "ingestion"]
    monkeypatch.setattr(pipeline_registry, "default_pipeline_name", lambda: "form_traces")
    with pytest.raises(ValueError, match="default_pipeline is 'form_traces', which is not a pipeline"):
        pipeline_registry.register_pipelines()
