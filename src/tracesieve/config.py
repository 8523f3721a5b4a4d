"""Parameter schemas: Kedro parameters are validated here once, at the edge, into typed config objects.

A node receives the raw ``params:<pipeline>`` dictionary and calls ``<Config>.from_params`` first; the
library below never sees a dictionary. An unknown or mistyped key fails the run before any work is done,
with the key's path in the message.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tracesieve.segmentation import REFLECTION_KEYWORDS


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def from_params(cls, params: dict[str, Any], *, name: str):
        """Validate ``params`` (the ``parameters_<name>.yml`` block) or raise a message naming the bad keys."""
        try:
            return cls.model_validate(params)
        except ValidationError as error:
            problems = "; ".join(
                f"{name}.{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
            )
            raise ValueError(f"Invalid parameters in parameters_{name}.yml: {problems}") from None


class ProblemConfig(_Config):
    """Difficulty and shape of the world's problems and traces."""

    min_steps: int = Field(2, ge=1)
    max_steps: int = Field(2, ge=1, le=4)
    max_value: int = Field(20, ge=10, le=999)
    distractor_rate: float = Field(0.5, ge=0, le=1)
    check_rate: float = Field(0.4, ge=0, le=1)
    restatement_rate: float = Field(0.3, ge=0, le=1)
    detour_rate: float = Field(0.3, ge=0, le=1)

    @model_validator(mode="after")
    def _steps_ordered(self):
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) is larger than max_steps ({self.max_steps})")
        return self


class ModelSpec(_Config):
    """Size of a warm-up Llama and how long to train it."""

    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(384, ge=8)
    train_steps: int = Field(600, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(2e-3, gt=0)

    @model_validator(mode="after")
    def _heads_divide_hidden(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) is not divisible by num_heads ({self.num_heads})")
        return self


class WorldConfig(_Config):
    """The embedded world: sizes, problem shape, warm-up models and their evaluation."""

    seed: int = 0
    n_train: int = Field(19200, ge=1, description="problems the warm-up models train on")
    n_traces: int = Field(200, ge=1, description="traces exported as the raw trace file for the main loop")
    n_eval: int = Field(500, ge=1, description="held-out problems for greedy evaluation")
    n_sample_traces: int = Field(5, ge=0, description="traces written to the human-readable sample")
    problems: ProblemConfig = ProblemConfig()
    teacher: ModelSpec = ModelSpec()
    student: ModelSpec = ModelSpec(hidden_size=64, num_layers=2, intermediate_size=192, train_steps=150)
    max_new_tokens: int = Field(320, ge=1)
    eval_batch_size: int = Field(100, ge=1)
    checkpoint_dir: str = "data/06_models/checkpoints"


class IngestionConfig(_Config):
    """How trace files are read and what gets rejected."""

    format: Literal["auto", "limo", "messages", "r1", "world"] = "auto"
    max_chars: int = Field(200_000, ge=1, description="reasoning longer than this is rejected")


class AttributionConfig(_Config):
    """Integrated gradients over every trace (src/tracesieve/attribution.py documents the engine)."""

    steps: int = Field(16, ge=2, description="path points of the quadrature rule (gradient evaluations)")
    method: Literal[
        "adaptive", "gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "authors_linspace"
    ] = "adaptive"
    baseline: Literal["pad", "zero"] | int = "pad"
    batch_size: int | None = Field(None, ge=1, description="path points per forward/backward; None sizes it by length")
    gradient_checkpointing: bool = False
    max_tokens: int = Field(4096, ge=8, description="rendered examples longer than this follow long_trace_policy")
    long_trace_policy: Literal["skip", "fail"] = Field(
        "skip", description="skip: the trace goes to attribution_rejects with its length; fail: stop the run"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"


class SegmentationConfig(_Config):
    """How traces are cut into segments (src/tracesieve/segmentation.py)."""

    method: Literal["reflection_keywords", "paragraph", "sentence"] = "reflection_keywords"
    keywords: tuple[str, ...] = Field(REFLECTION_KEYWORDS, min_length=1, description="reflection_keywords only")


class SelectionConfig(_Config):
    """The paper's selection rule and its baselines (src/tracesieve/selection.py)."""

    tau: float = Field(0.7, gt=0, le=1, description="cumulative strength share the strongest segments must reach")
    beta: float = Field(0.8, ge=0, le=1, description="strong segments with consistency above this are dropped")
    always_keep: tuple[Literal["first", "penultimate", "last"], ...] = ()
    strategies: tuple[Literal["paper", "all", "strength_only", "consistency_only", "random"], ...] = Field(
        ("paper", "all", "strength_only", "consistency_only", "random"), min_length=1
    )
    seed: int = 0
