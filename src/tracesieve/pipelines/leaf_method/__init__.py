"""LeaF alone, on your traces and models (``kedro run --pipeline leaf_method``): ingestion -> teacher-versus-
student gradients -> confounders -> counterfactuals -> intervention check -> plain KD and LeaF distillation
-> evaluation -> comparison and report. It needs ``raw_traces``, ``leaf_teacher.model``,
``leaf_student.model``, ``leaf_tokenizer`` and ``eval_problems``; none of the segment method's models.
"""

from kedro.pipeline import Pipeline

from tracesieve.pipelines import ingestion, leaf


def create_pipeline(**kwargs) -> Pipeline:
    return ingestion.create_pipeline() + leaf.create_pipeline(embedded_world=False)
