"""Project pipelines, one folder each. Every ``create_pipeline`` takes the run's ``PipelineShape``
(``pipelines/shape.py``: the variants, their selection tables, the teacher's init, the default pipeline);
``pipeline_registry.register_pipelines`` builds them all from one shape. Without a shape, a pipeline is
built as ``kedro run`` would build it in this project for ``$KEDRO_ENV`` (``PipelineShape.of_project``).
"""
