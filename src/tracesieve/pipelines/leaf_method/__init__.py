"""LeaF alone, on your traces and models (``kedro run --pipeline leaf_method``): ingestion -> teacher-versus-
student gradients -> confounders -> counterfactuals -> intervention check -> plain KD and LeaF distillation
-> evaluation -> comparison and report. It needs ``raw_traces``, ``leaf_teacher.model``,
``leaf_student.model``, ``leaf_tokenizer`` and ``eval_problems``; none of the segment method's models.
"""

from kedro.pipeline import Pipeline

from tracesieve.pipelines import ingestion, leaf
from tracesieve.pipelines.shape import PipelineShape


def create_pipeline(shape: PipelineShape | None = None, **kwargs) -> Pipeline:
    # LeaF's wiring does not depend on the shape off the world: it is passed on for uniformity.
    return ingestion.create_pipeline(shape) + leaf.create_pipeline(shape, embedded_world=False)
