"""real_model: the selective-SFT loop on the world's traces with a model the env provides."""

from tracesieve.pipelines.real_model import create_pipeline


def test_the_world_gives_traces_and_problems_but_no_models():
    pipeline = create_pipeline()
    names = {node.name for node in pipeline.nodes}
    assert {"generate_world", "export_eval_problems", "attribute_trace_tokens", "measure_planted_roles", "selective_sft.train_variant"} <= names
    assert not any("warmup" in name or name == "build_world_tokenizer" for name in names)
    assert not any("distill" in name or name.startswith("leaf") for name in names)
    assert {"teacher.model", "student.model", "tokenizer"} <= pipeline.inputs()
