"""Project settings: the config loader, with an ``env`` resolver so that mlflow.yml can read the environment."""

import os

from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"mlflow": ["mlflow*", "mlflow*/**"]},
    # An env overrides single keys (world.student.train_steps) without restating the rest of the block.
    "merge_strategy": {"parameters": "soft"},
    # ${env:NAME,default}: kedro only enables oc.env for credentials; we need it for the tracking URI.
    "custom_resolvers": {"env": lambda name, default=None: os.environ.get(name, default)},
}

from tracesieve.logs import install_warning_logging  # noqa: E402

install_warning_logging()  # before the hooks import mlflow, whose import-time warnings are understood

from tracesieve.hooks import (  # noqa: E402
    ConfigMlflowHook,
    NodeTimingHooks,
    PreflightHooks,
    RunConfigHooks,
    RunEndingHooks,
    RunLockHooks,
)

# The run's config loader, for the pipeline registry (pipeline_registry.py says why it is kept).
RUN_CONFIG = RunConfigHooks()
HOOKS = (RUN_CONFIG, RunLockHooks(), PreflightHooks(), NodeTimingHooks(), RunEndingHooks(), ConfigMlflowHook())
# kedro-mlflow's own instance is replaced by ConfigMlflowHook, which feeds it the validated parameter blocks.
DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow",)  # the distribution name as importlib.metadata spells it
