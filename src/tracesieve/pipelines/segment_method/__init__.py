"""The segment-level selective-SFT method alone, on your traces and models (``kedro run --pipeline
segment_method``): ingestion -> attribution -> segmentation -> selection -> fine-tuning -> evaluation ->
reporting. It needs ``raw_traces``, ``teacher.model`` (attribution), ``tokenizer``, ``student.model`` (the
base every variant starts from) and ``eval_problems``; none of LeaF's models.

The paper's ablation scorers (``faithfulness``) join only when a configured variant trains on a scorer's
selection (``occlusion_sft``, ...): they cost a pass per segment, and the method itself does not read them.
A package of its own because ``kedro run --pipeline NAME`` imports just ``tracesieve.pipelines.NAME``.
"""

from kedro.pipeline import Pipeline

from tracesieve.pipelines import (
    attribution,
    configured_variants,
    evaluation,
    faithfulness,
    fine_tuning,
    ingestion,
    reporting,
    segmentation,
    selection,
)
from tracesieve.pipelines.fine_tuning.pipeline import selection_table


def create_pipeline(**kwargs) -> Pipeline:
    stages = [ingestion, attribution, segmentation, selection, fine_tuning, evaluation]
    if any(selection_table(variant) == "scorer_selections" for variant in configured_variants()):
        stages.append(faithfulness)
    pipelines = [stage.create_pipeline() for stage in stages] + [reporting.create_pipeline(embedded_world=False)]
    # Summing merges the nodes stages share; Pipeline([...]) would reject them.
    return sum(pipelines, Pipeline([]))
