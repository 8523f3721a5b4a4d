"""from_traces: every stage that reads trace files, none of the embedded world."""

from tracesieve.pipelines.from_traces import create_pipeline


def test_every_stage_but_the_world_and_its_planted_labels():
    pipeline = create_pipeline()
    names = {node.name for node in pipeline.nodes}
    assert {"ingest_traces", "attribute_trace_tokens", "segment_traces", "select_loss_segments", "selective_sft.train_variant",
            "compare_models", "write_summary_report", "compare_teacher_student_gradients", "kd.distill_variant"} <= names
    assert not {"generate_world", "measure_planted_roles", "score_against_planted_distractors", "share_models_with_leaf"} & names
    # Its inputs are what a user provides: traces, models, tokenizers and held-out problems.
    assert {"raw_traces", "teacher.model", "student.model", "tokenizer", "eval_problems", "leaf_teacher.model"} <= pipeline.inputs()
    assert not any(name.startswith("world_") for name in pipeline.inputs())
