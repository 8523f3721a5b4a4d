"""The segment-level selective-SFT method alone, on your traces and models (``kedro run --pipeline
segment_method``): ingestion -> attribution -> segmentation -> selection -> fine-tuning -> evaluation ->
reporting. It needs ``raw_traces``, ``teacher.model`` (attribution), ``tokenizer``, ``student.model`` (the
base every variant starts from) and ``eval_problems``; none of LeaF's models.

The paper's ablation scorers (``faithfulness``) join only when a configured variant trains on a scorer's
selection (``occlusion_sft``, ...): they cost a pass per segment, and the method itself does not read them.
"""

from kedro.pipeline import Pipeline

from tracesieve.pipelines import (
    attribution,
    evaluation,
    faithfulness,
    fine_tuning,
    ingestion,
    reporting,
    segmentation,
    selection,
)
from tracesieve.pipelines.shape import PipelineShape, shape_or_project


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    shape = shape_or_project(shape)
    stages = [ingestion, attribution, segmentation, selection, fine_tuning, evaluation]
    if shape.reads_scorer_selections:
        stages.append(faithfulness)
    pipelines = [stage.create_pipeline(shape) for stage in stages] + [reporting.create_pipeline(shape, embedded_world=False)]
    # Summing merges the nodes stages share; Pipeline([...]) would reject them.
    return sum(pipelines, Pipeline([]))
