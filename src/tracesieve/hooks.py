"""Kedro hooks: each node's wall time goes to the run's MLflow metrics (``node_seconds.<node name>``)."""

from __future__ import annotations

import time

import mlflow
from kedro.framework.hooks import hook_impl


class NodeTimingHooks:
    """Times every node, so a run's cost per stage can be read in MLflow and by ``benchmarks/``."""

    def __init__(self):
        self._started: dict[str, float] = {}

    @hook_impl
    def before_node_run(self, node) -> None:
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node) -> None:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        if mlflow.active_run() is not None:  # kedro-mlflow opens one per kedro run
            mlflow.log_metric(f"node_seconds.{node.name}", seconds)
