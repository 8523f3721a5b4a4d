"""The evaluation pipeline: the base model and every variant graded by one namespaced pipeline, then compared."""

from tracesieve.pipelines.evaluation import create_pipeline
from tracesieve.pipelines.evaluation.pipeline import create_evaluation_pipelines


def test_the_base_model_and_each_variant_are_graded_alike_and_compared():
    pipeline = create_pipeline()
    evaluations = sorted(node.name for node in pipeline.nodes if node.name.endswith("evaluate_model"))
    variants = ["full_sft", "oracle_budget_sft", "oracle_sft", "position_sft", "random_matched_sft", "random_sft", "selective_sft", "selective_sft_authors"]
    assert evaluations == ["base.evaluate_model", *(f"{variant}.evaluate_model" for variant in variants)]
    by_name = {node.name: node for node in pipeline.nodes}
    assert by_name["base.evaluate_model"].inputs == ["student.model", "tokenizer", "checked_eval_problems", "params:evaluation"]
    assert by_name["check_contamination"].inputs == ["eval_problems", "traces", "params:evaluation"]
    assert by_name["selective_sft.evaluate_model"].inputs[0] == "selective_sft.model"
    compare = by_name["compare_models"]
    assert {"base.generations", "full_sft.training_log", "params:evaluation"} <= set(compare.inputs)
    assert compare.outputs == ["model_comparison", "comparison_metrics"]


def test_other_models_reuse_the_same_grading_under_their_own_names():
    checked, base, kd = create_evaluation_pipelines(("kd",), base_name="leaf_student", base_model="leaf_student.model", tokenizer="leaf_tokenizer")
    assert [node.name for node in checked.nodes] == ["check_contamination"]  # the same check: it merges with the main loop's
    (node,) = base.nodes
    assert node.name == "leaf_student.evaluate_model" and node.inputs[:2] == ["leaf_student.model", "leaf_tokenizer"]
    assert kd.nodes[0].outputs == ["kd.generations", "kd.evaluation_metrics"]
