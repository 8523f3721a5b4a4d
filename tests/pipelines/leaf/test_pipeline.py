"""The leaf pipeline's wiring: LeaF's steps, the two distillation namespaces, the world-only scoring."""

from tracesieve.config import DISTILLATION_VARIANTS
from tracesieve.pipelines.leaf import create_pipeline


def test_the_embedded_world_version_includes_the_world_and_ingestion_and_scores_against_the_planted_distractors():
    names = {node.name for node in create_pipeline().nodes}
    assert {"generate_world", "ingest_traces", "share_models_with_leaf", "score_against_planted_distractors"} <= names
    assert {f"{variant}.distill_variant" for variant in DISTILLATION_VARIANTS} <= names


def test_the_real_data_version_has_no_world_and_reads_leafs_own_model_roles():
    pipeline = create_pipeline(embedded_world=False)
    names = {node.name for node in pipeline.nodes}
    assert not {"generate_world", "ingest_traces", "score_against_planted_distractors"} & names
    assert {"traces", "leaf_teacher.model", "leaf_student.model", "leaf_tokenizer", "eval_problems"} <= pipeline.inputs()
    distil = {node.name: node for node in pipeline.nodes}["leaf_distilled.distill_variant"]
    assert distil.inputs[:2] == ["leaf_student.model", "leaf_teacher.model"] and distil.outputs[0] == "leaf_distilled.model"
    report = {node.name: node for node in pipeline.nodes}["write_leaf_report"]
    assert "world_distractors" not in report.inputs


def test_the_distractor_gate_runs_on_the_embedded_world_only():
    world = {node.name: node for node in create_pipeline().nodes}
    gate = world["measure_distractor_gate"]
    assert gate.inputs[:4] == ["leaf_student.generations", "teacher.heldout_generations", "eval_problems", "world_distractors"]
    assert gate.outputs == ["distractor_gate_metrics", "distractor_gate"]  # MLflow's metrics, the report's figures
    assert "measure_distractor_gate" not in {node.name for node in create_pipeline(embedded_world=False).nodes}
