"""The whole selective-SFT loop with a real pretrained model on a sample of the embedded world
(``kedro run --env real_cpu``): the world's traces and held-out problems, but none of its warm-up models;
attribution, fine-tuning and evaluation use the env's model (SmolLM2-135M-Instruct) and its BPE tokenizer,
and the planted roles still say whether that model's attributions find the source steps.

LeaF is left out: it needs a teacher and a smaller student of one tokenizer family, and only one real
pretrained model is available offline here.
"""

from kedro.pipeline import Pipeline

from tracesieve.pipelines import (
    attribution,
    evaluation,
    faithfulness,
    fine_tuning,
    ingestion,
    planted_roles,
    reporting,
    segmentation,
    selection,
    world,
)
from tracesieve.pipelines.shape import PipelineShape, shape_or_project


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    shape = shape_or_project(shape)
    world_data = world.create_pipeline(shape).only_nodes("generate_world", "export_eval_problems")
    stages = [ingestion, attribution, segmentation, selection, faithfulness, planted_roles, fine_tuning, evaluation]
    # No LeaF here, so no distractor gate for the report to show.
    return sum((stage.create_pipeline(shape) for stage in stages), world_data) + reporting.create_pipeline(shape, distractor_gate=False)
