"""Parameter schemas: Kedro parameters are validated here once, at the edge, into typed config objects.

A node receives the raw ``params:<pipeline>`` dictionary and calls ``<Config>.from_params`` first; the
library below never sees a dictionary. An unknown or mistyped key fails the run before any work is done,
with the key's path in the message.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tracesieve.modeling import bf16_available
from tracesieve.segmentation import REFLECTION_KEYWORDS
from tracesieve.training import LoraSettings, TrainingConfig


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
    student: ModelSpec = ModelSpec(train_steps=300)
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
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: the GPU when there is one")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto: bfloat16 on a GPU, else float32")


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


# Which selection strategy's loss mask each fine-tuning variant trains on.
DEFAULT_VARIANT_STRATEGIES = {
    "full_sft": "all",
    "selective_sft": "paper",
    "random_sft": "random",
    "strength_only": "strength_only",
    "consistency_only": "consistency_only",
}


class LoraParams(_Config):
    """LoRA adapters (peft), merged into the weights after training."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class OptimisationParams(_Config):
    """How a model is trained: shared by the fine-tuning variants and the distillation variants."""

    max_steps: int = Field(100, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-4, gt=0)
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    lr_scheduler: str = "cosine"
    logging_steps: int = Field(5, ge=1)
    save_steps: int = Field(50, ge=1)
    seed: int = 0
    max_length: int | None = Field(None, ge=8, description="longer examples stop the run; None: no limit")
    bf16: bool | Literal["auto"] = Field("auto", description="mixed precision; auto: on when a bf16-capable GPU is present")
    gradient_checkpointing: bool = False
    lora: LoraParams | None = None
    checkpoint_dir: str = "data/06_models/checkpoints"

    def training_config(self) -> TrainingConfig:
        """The library's settings object for one training run."""
        lora = None if self.lora is None else LoraSettings(**self.lora.model_dump())
        return TrainingConfig(
            max_steps=self.max_steps,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            warmup_ratio=self.warmup_ratio,
            weight_decay=self.weight_decay,
            lr_scheduler=self.lr_scheduler,
            logging_steps=self.logging_steps,
            save_steps=self.save_steps,
            seed=self.seed,
            bf16=bf16_available() if self.bf16 == "auto" else self.bf16,
            gradient_checkpointing=self.gradient_checkpointing,
            lora=lora,
        )


class FineTuningConfig(OptimisationParams):
    """The fine-tuning variants and the optimisation they share (same base model, seed, data order, steps)."""

    variants: tuple[str, ...] = Field(("full_sft", "selective_sft", "random_sft"), min_length=1)
    strategies: dict[str, Literal["paper", "all", "strength_only", "consistency_only", "random"]] = Field(
        default_factory=lambda: dict(DEFAULT_VARIANT_STRATEGIES),
        description="variant -> the selection strategy whose loss-mask spans it trains on",
    )

    @model_validator(mode="after")
    def _variants_have_strategies(self):
        missing = [variant for variant in self.variants if variant not in self.strategies]
        if missing:
            raise ValueError(f"variants {missing} have no entry in strategies (known: {sorted(self.strategies)})")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants are listed twice: {list(self.variants)}")
        return self


class DistillationParams(OptimisationParams):
    """Teacher-to-student distillation: the optimisation plus the KL temperature."""

    temperature: float = Field(1.0, gt=0)


class DistillationVariant(_Config):
    """One distillation variant: lambda, the weight of the original term, and whether counterfactuals are used."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    original_weight: float = Field(0.5, ge=0, le=1, alias="lambda")
    counterfactuals: bool = True


# The two namespaces of the leaf pipeline: the baseline (plain KD) and LeaF.
DISTILLATION_VARIANTS = ("kd", "leaf")


class LeafConfig(_Config):
    """LeaF: gradient comparison, confounders, counterfactuals, intervention check and distillation."""

    level: Literal["instruction", "response"] = Field("instruction", description="analyse the question, or a reasoning prefix")
    response_prefix_share: float = Field(0.5, gt=0, lt=1, description="response level: where the prefix is cut")
    quantile: float = Field(0.05, gt=0, le=0.5, description="confounders: delta at or below this per-example quantile")
    pruning: Literal["span", "collective"] = "span"
    intervention_check: bool = Field(True, description="keep a counterfactual only if teacher and student both solve it")
    gradient_batch_size: int = Field(8, ge=1)
    max_tokens: int = Field(4096, ge=8, description="longer examples go to leaf_gradient_rejects")
    check_max_new_tokens: int = Field(320, ge=1)
    check_batch_size: int = Field(100, ge=1)
    distillation: DistillationParams = DistillationParams()
    variants: dict[str, DistillationVariant] = Field(
        default_factory=lambda: {
            "kd": DistillationVariant(original_weight=1.0, counterfactuals=False),
            "leaf": DistillationVariant(original_weight=0.5, counterfactuals=True),
        }
    )
    reference: str = Field("kd", description="the variant LeaF is compared with, problem by problem")

    @model_validator(mode="after")
    def _known_variants(self):
        if set(self.variants) != set(DISTILLATION_VARIANTS):
            raise ValueError(f"variants must be exactly {list(DISTILLATION_VARIANTS)} (the pipeline's namespaces), got {sorted(self.variants)}")
        if self.reference not in self.variants:
            raise ValueError(f"reference {self.reference!r} is not one of the variants {sorted(self.variants)}")
        return self


class EvaluationConfig(_Config):
    """Generation and grading on held-out problems."""

    max_new_tokens: int = Field(320, ge=1)
    batch_size: int = Field(100, ge=1)
    num_samples: int = Field(1, ge=1, description="1: greedy decoding; more: sampling, accuracy over all samples")
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    pass_at_k: tuple[int, ...] = (1,)
    seed: int = 0
    max_problems: int | None = Field(None, ge=1, description="evaluate the first N held-out problems only")
    reference: str = Field("full_sft", description="the variant every other one is compared with, problem by problem")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: the GPU when there is one")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto: bfloat16 on a GPU, else float32")


class ReportingConfig(_Config):
    """What the report and the attribution viewer show."""

    viewer_traces: int = Field(8, ge=1, description="traces rendered in the HTML attribution viewer")
    viewer_strategy: str = Field("paper", description="the selection whose flags the viewer shows")
