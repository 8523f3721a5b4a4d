"""Parameter schemas: Kedro parameters are validated here once, at the edge, into typed config objects.

Each node annotates its ``params:<pipeline>`` input with the block's schema, so Kedro validates every block
once per run, before the first node, and hands the node the config object (Kedro's typed parameters);
the library below never sees a dictionary. An unknown or mistyped key fails the run before any work is
done, with the key's path in the message. The choices a field accepts (methods, strategies, modes) are
the library's own names, imported, never restated.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tracesieve.choices import (
    ACTION_SETS,
    ALWAYS_KEEP_CHOICES,
    BASELINES,
    CONTAMINATION_POLICIES,
    DEFAULT_MAX_STEPS,
    DEFAULT_STOPPING_RULE,
    DEFAULT_STEPS,
    DEFAULT_TOLERANCE,
    DETOUR_FORMS,
    DEVICES,
    DISTRACTOR_OWNERS,
    DTYPES,
    ENGINES,
    FINAL_REGIMES,
    FORMATS,
    LEVELS,
    LONG_TRACE_POLICIES,
    METHODS,
    MULTI_TURN_POLICIES,
    ORACLE_BUDGET_STRATEGY,
    ORACLE_STRATEGIES,
    ORACLE_STRATEGY,
    OVER_LENGTH_POLICIES,
    PRUNING_MODES,
    REFLECTION_KEYWORDS,
    SCORER_STRATEGIES,
    SCORERS,
    SEGMENTATION_METHODS,
    STOPPING_RULES,
    STRATEGIES,
    THRESHOLD_RULES,
    UNCONVERGED_POLICIES,
    WARMUP_INITS,
)


class _Config(BaseModel):
    # Unknown keys are errors (a misspelt key must not fall back to a default); configs never change.
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProblemConfig(_Config):
    """Difficulty and shape of the world's problems and traces."""

    min_steps: int = Field(2, ge=1, description="arithmetic steps of the chain, at least")
    final: Literal[FINAL_REGIMES] = Field(
        "silent", description="silent: the final segment writes no number; restates: it restates the answer (LIMO's \\boxed{N})"
    )
    max_steps: int = Field(4, ge=1, le=6, description="arithmetic steps of the chain, at most")
    max_value: int = Field(20, ge=10, le=999, description="every count stays in 1..max_value")
    distractor_rate: float = Field(0.5, ge=0, le=1, description="share of stories with another owner's action")
    check_rate: float = Field(0.4, ge=0, le=1, description="per step: a check follows")
    restatement_rate: float = Field(0.3, ge=0, le=1, description="per step: a restatement follows")
    detour_rate: float = Field(0.4, ge=0, le=1, description="per step: a detour follows")
    decoy_rate: float = Field(0.2, ge=0, le=1, description="share of traces with a detour whose result is the answer")
    after_final_rate: float = Field(0.15, ge=0, le=1, description="per filler segment: it comes after the final segment")
    detour_form: Literal[DETOUR_FORMS] = Field(
        "retracted", description="retracted: a detour is tried and dropped in line; step: written as a real step (opener, verb, "
        "count), no retraction, and the next step continues from the count before it"
    )
    action_set: Literal[ACTION_SETS] = Field(
        "common", description="common: buys, finds, gives away, loses; with_new: also earns and spends, verbs a base warmed up "
        "on the common set has never read"
    )
    distractor_skip_lines: bool = Field(
        False, description="the reference trace handles a distractor sentence where it stands (\"then Sam buys 4 more, but Sam "
        "is not Tom: skip.\"), so that a teacher trained on it sees through distractors by a local decision"
    )
    distractor_owners: Literal[DISTRACTOR_OWNERS] = Field(
        "shared", description="shared: a distractor's owner is one of the owners' names; disjoint: from a list of its own"
    )

    @model_validator(mode="after")
    def _steps_ordered(self):
        if self.min_steps > self.max_steps:
            raise ValueError(f"min_steps ({self.min_steps}) is larger than max_steps ({self.max_steps})")
        return self


class ModelSpec(_Config):
    """Size of a warm-up Llama and how long to train it."""

    hidden_size: int = Field(128, ge=8, description="width of the Llama model")
    num_layers: int = Field(4, ge=1, description="decoder layers")
    num_heads: int = Field(4, ge=1, description="attention heads (they divide hidden_size)")
    intermediate_size: int = Field(384, ge=8, description="width of each MLP")
    train_steps: int = Field(600, ge=1, description="optimiser steps of its warm-up")
    batch_size: int = Field(32, ge=1, description="stories per step")
    learning_rate: float = Field(2e-3, gt=0, description="peak learning rate (cosine schedule)")
    init: Literal[WARMUP_INITS] = Field(
        "scratch", description="scratch: random weights; student (teacher only): the trained student, trained on for train_steps"
    )

    @model_validator(mode="after")
    def _heads_divide_hidden(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) is not divisible by num_heads ({self.num_heads})")
        return self


class WorldConfig(_Config):
    """The embedded world: sizes, problem shape, warm-up models and their evaluation."""

    seed: int = Field(0, description="draws the whole world: problems, traces, held-out skeletons, the models' initial weights")
    n_train: int = Field(19200, ge=1, description="problems the warm-up models train on")
    n_traces: int = Field(200, ge=1, description="traces exported as the raw trace file for the main loop")
    n_eval: int = Field(500, ge=1, description="held-out problems of seen skeletons for greedy evaluation")
    n_eval_heldout_skeleton: int = Field(0, ge=0, description="held-out problems whose skeleton no training problem has")
    heldout_skeleton_share: float = Field(
        0.15, ge=0, lt=1, description="share of the skeletons of each chain length that no training problem has"
    )
    n_sample_traces: int = Field(5, ge=0, description="traces written to the human-readable sample")
    problems: ProblemConfig = ProblemConfig()
    teacher: ModelSpec = ModelSpec()
    student: ModelSpec = ModelSpec(train_steps=300)
    # all_relevant: the base student warms up on every problem's all-relevant form (the distractor's action
    # is the owner's own), so that a distractor really misleads it (LeaF's premise); as_teacher: the teacher's data.
    student_warmup: Literal["all_relevant", "as_teacher"] = Field(
        "all_relevant", description="all_relevant: the student warms up on the all-relevant stories (a distractor misleads it); as_teacher: the teacher's"
    )
    max_new_tokens: int = Field(320, ge=1, description="tokens the warm-up models may generate on the held-out problems")
    eval_batch_size: int = Field(100, ge=1, description="held-out problems per generation batch")
    checkpoint_dir: str = Field("data/06_models/checkpoints", description="where warm-up checkpoints live, keyed by content")

    @model_validator(mode="after")
    def _teacher_continues_the_student(self):
        if self.student.init != "scratch":
            raise ValueError(f"student.init must be scratch (the student is trained first), got {self.student.init!r}")
        if self.teacher.init == "student":
            shape = ("hidden_size", "num_layers", "num_heads", "intermediate_size")
            differing = [key for key in shape if getattr(self.teacher, key) != getattr(self.student, key)]
            if differing:
                raise ValueError(
                    f"teacher.init: student trains the student's own weights on, so the teacher has its architecture; "
                    f"teacher and student differ in {differing}: make them equal, or set teacher.init: scratch"
                )
        return self


class IngestionConfig(_Config):
    """How trace files are read and what gets rejected."""

    format: Literal[FORMATS] = "auto"
    max_chars: int = Field(200_000, ge=1, description="reasoning longer than this is rejected")
    multi_turn: Literal[MULTI_TURN_POLICIES] = Field(
        "last_exchange", description="a chat of several exchanges: the last user turn and the reply to it, or reject it as ambiguous"
    )


class AttributionConfig(_Config):
    """Integrated gradients over every trace (src/tracesieve/attribution/engine.py documents the engine)."""

    tolerance: float | None = Field(
        DEFAULT_TOLERANCE, gt=0, lt=1,
        description="adaptive: refine until the completeness gap and segment shares/consistency are within this; "
        "null: a fixed budget of steps (and, for fixed rules, the gap the converged flag is held to)",
    )
    max_steps: int = Field(DEFAULT_MAX_STEPS, ge=9, description="with tolerance: the most gradient points one trace may use")
    stopping: Literal[STOPPING_RULES] = Field(
        DEFAULT_STOPPING_RULE,
        description="with tolerance: completeness holds the share and consistency errors and the relative completeness gap "
        "to the tolerance; selection waits instead for the selections of selection.strategies to settle, the shares to hold "
        "from one round to the next and the gap to be small against the attributions' L1 mass (ig_convergence.json compares them)",
    )
    unconverged_policy: Literal[UNCONVERGED_POLICIES] = Field(
        "skip", description="a trace not converged within max_steps: use it anyway, skip it into attribution_rejects, or stop"
    )
    steps: int | None = Field(
        None, ge=2, description=f"fixed budget (tolerance null, or a fixed method): gradient points; null: {DEFAULT_STEPS}"
    )
    method: Literal[METHODS] = "adaptive"
    baseline: Literal[BASELINES] | int = "pad"
    batch_size: int | None = Field(None, ge=1, description="path points per forward/backward; None sizes it by length")
    gradient_checkpointing: bool = False
    max_tokens: int = Field(4096, ge=8, description="rendered examples longer than this follow long_trace_policy")
    long_trace_policy: Literal[LONG_TRACE_POLICIES] = Field(
        "skip", description="skip: the trace goes to attribution_rejects with its length; fail: stop the run"
    )
    device: Literal[DEVICES] = Field("auto", description="auto: the GPU when there is one")
    dtype: Literal[DTYPES] = Field("auto", description="auto: bfloat16 on a GPU, else float32")

    @property
    def refines(self) -> bool:
        """True when the adaptive rule refines to the tolerance (steps then do not apply)."""
        return self.method == "adaptive" and self.tolerance is not None

    @model_validator(mode="after")
    def _steps_or_tolerance(self):
        if self.refines and self.steps is not None:
            raise ValueError(
                f"attribution.steps={self.steps} is a fixed budget, but tolerance={self.tolerance} refines the adaptive rule "
                "until it converges (max_steps caps it): set tolerance: null to use steps, or drop steps"
            )
        return self


class SegmentationConfig(_Config):
    """How traces are cut into segments (src/tracesieve/segmentation.py)."""

    method: Literal[SEGMENTATION_METHODS] = "reflection_keywords"
    keywords: tuple[str, ...] = Field(REFLECTION_KEYWORDS, min_length=1, description="reflection_keywords only")


class SelectionConfig(_Config):
    """The paper's selection rule and its baselines (src/tracesieve/selection.py)."""

    tau: float = Field(0.7, gt=0, le=1, description="cumulative strength share the strongest segments must reach")
    beta: float = Field(0.8, ge=0, le=1, description="strong segments with consistency above this are dropped")
    always_keep: tuple[Literal[ALWAYS_KEEP_CHOICES], ...] = ()
    strategies: tuple[Literal[STRATEGIES], ...] = Field(STRATEGIES, min_length=1)
    share_floor: float = Field(
        1.0, ge=0, description="share_floor strategy (ours): keep segments whose strength share is at least this / n, and the last"
    )
    seed: int = 0


class FaithfulnessConfig(_Config):
    """Segment scorers beside IG and their deletion faithfulness (src/tracesieve/scorers.py)."""

    scorers: tuple[Literal[SCORERS], ...] = Field(SCORERS, min_length=1)
    fractions: tuple[float, ...] = Field((0.2, 0.4, 0.6, 0.8), min_length=1)
    seed: int = 0

    @model_validator(mode="after")
    def _fractions_in_range(self):
        if not all(0 < fraction <= 1 for fraction in self.fractions):
            raise ValueError(f"fractions must lie in (0, 1], got {list(self.fractions)}")
        if "occlusion" not in self.scorers:
            # The world's label-validity gate reads the occlusion scores: no gate without them.
            raise ValueError("scorers must include occlusion: the label-validity gate and every curve read it")
        return self


# Which selection strategy's loss mask each fine-tuning variant trains on.
DEFAULT_VARIANT_STRATEGIES = {
    "full_sft": "all",
    "selective_sft": "paper",
    "selective_sft_authors": "paper_authors",
    "oracle_sft": ORACLE_STRATEGY,
    "oracle_budget_sft": ORACLE_BUDGET_STRATEGY,  # the oracle's control: random segments at its token budget
    # The paper's ablation scorers as selections (faithfulness.select_by_every_scorer); not in the default
    # variants, for time: `make experiment` trains them.
    **{f"{strategy.removesuffix('_top')}_sft": strategy for strategy in SCORER_STRATEGIES},
    "random_sft": "random",
    # The authors' variant's controls: its always-kept segments only, and random ones at its token budget.
    "position_sft": "position",
    "random_matched_sft": "random_matched",
    "strength_only": "strength_only",
    "consistency_only": "consistency_only",
    "share_floor_sft": "share_floor",  # our rule (selection.select_share_floor)
}


class LoraSettings(_Config):
    """LoRA adapters (peft), merged into the weights after training."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainingConfig(_Config):
    """How a model is trained (``training.train_causal_lm``): shared by the fine-tuning variants, the
    distillation variants and the world's warm-up models. Batches always group similar lengths."""

    max_steps: int = Field(100, ge=1, description="optimiser steps (the same for every variant)")
    batch_size: int = Field(16, ge=1, description="the global batch: split evenly over the processes of a distributed launch")
    learning_rate: float = Field(5e-4, gt=0, description="peak learning rate")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="share of max_steps spent warming the learning rate up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    lr_scheduler: str = Field("cosine", description="a transformers scheduler name")
    logging_steps: int = Field(5, ge=1, description="steps between logged losses")
    save_steps: int = Field(50, ge=1, description="steps between checkpoints (a killed run resumes from the last)")
    seed: int = Field(0, description="initialisation, data order and dropout: a pure function of it")
    max_length: int | None = Field(None, ge=8, description="tokens per trace, prompt included; None: no limit")
    over_length: Literal[OVER_LENGTH_POLICIES] = Field(
        "stop", description="a trace over max_length: stop the run naming it, or leave it out (length_rejects); never cut"
    )
    bf16: bool | Literal["auto"] = Field("auto", description="mixed precision; auto: on when a bf16-capable GPU is present")
    gradient_checkpointing: bool = Field(False, description="recompute activations in the backward pass: less memory, more time")
    lora: LoraSettings | None = Field(None, description="LoRA through peft, merged after training; null: full fine-tuning")
    checkpoint_dir: str = Field("data/06_models/checkpoints", description="where checkpoints live, keyed by the base weights, data and settings")

    @property
    def bf16_enabled(self) -> bool:
        from tracesieve.modeling import bf16_available  # torch: only when training asks

        return bf16_available() if self.bf16 == "auto" else self.bf16


class FineTuningConfig(TrainingConfig):
    """The fine-tuning variants and the optimisation they share (same base model, seed, data order, steps)."""

    variants: tuple[str, ...] = Field(
        ("full_sft", "selective_sft", "random_sft"), min_length=1,
        description="the namespaces fine-tuning, evaluation and reporting build (read when the pipelines are built)",
    )
    # oracle: the world's planted roles decide (world runs only: the oracle_selections table);
    # <scorer>_top: a scorer's strongest segments (the scorer_selections table)
    strategies: dict[str, Literal[(*STRATEGIES, *SCORER_STRATEGIES, *ORACLE_STRATEGIES)]] = Field(
        default_factory=lambda: dict(DEFAULT_VARIANT_STRATEGIES),
        description="variant -> the selection strategy whose loss-mask spans it trains on; entries given are added "
        "to (or replace) DEFAULT_VARIANT_STRATEGIES",
    )

    @field_validator("strategies", mode="before")
    @classmethod
    def _strategies_extend_the_defaults(cls, given):
        # A run names only the variants it adds or changes: the defaults are written once, above.
        return {**DEFAULT_VARIANT_STRATEGIES, **given} if isinstance(given, dict) else given

    @model_validator(mode="after")
    def _variants_have_strategies(self):
        missing = [variant for variant in self.variants if variant not in self.strategies]
        if missing:
            raise ValueError(f"variants {missing} have no entry in strategies (known: {sorted(self.strategies)})")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"variants are listed twice: {list(self.variants)}")
        return self


class DistillationConfig(TrainingConfig):
    """Teacher-to-student distillation: the optimisation plus the KL temperature."""

    temperature: float = Field(1.0, gt=0)
    kl_chunk_size: int | None = Field(
        1024, ge=1, description="response tokens whose logits exist at once in the KL (the same loss); None: all of them"
    )


class DistillationVariant(_Config):
    """One distillation variant: lambda, the weight of the original term, and whether counterfactuals are used."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    original_weight: float = Field(0.5, ge=0, le=1, alias="lambda")
    counterfactuals: bool = True


# The two namespaces of the leaf pipeline: the baseline (plain KD) and the LeaF-distilled student. Not
# "leaf": that is the method's package and pipeline, and leaf_student is LeaF's base student.
DISTILLATION_VARIANTS = ("kd", "leaf_distilled")


class LeafConfig(_Config):
    """LeaF: gradient comparison, confounders, counterfactuals, intervention check and distillation."""

    level: Literal[LEVELS] = Field("instruction", description="analyse the question, or a reasoning prefix")
    response_prefix_share: float = Field(0.5, gt=0, lt=1, description="response level: where the prefix is cut")
    quantile: float = Field(0.05, gt=0, le=0.5, description="confounders: delta at or below this per-example quantile")
    threshold: Literal[THRESHOLD_RULES] = Field(
        "quantile", description="quantile: numpy's q-quantile; authors: sorted(delta)[int(q n)], capped at 0.5, backslash tokens kept"
    )
    pruning: Literal[PRUNING_MODES] = "span"
    intervention_check: bool = Field(True, description="keep a counterfactual only if teacher and student both solve it")
    gradient_batch_size: int = Field(8, ge=1)
    max_tokens: int = Field(4096, ge=8, description="longer examples go to leaf_gradient_rejects")
    check_max_new_tokens: int = Field(320, ge=1)
    check_batch_size: int = Field(100, ge=1)
    distillation: DistillationConfig = DistillationConfig()
    variants: dict[str, DistillationVariant] = Field(
        default_factory=lambda: {
            "kd": DistillationVariant(original_weight=1.0, counterfactuals=False),
            "leaf_distilled": DistillationVariant(original_weight=0.5, counterfactuals=True),
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

    max_new_tokens: int = Field(320, ge=1, description="the most tokens a response may have (longer ones are truncated)")
    batch_size: int = Field(100, ge=1, description="prompts per generation batch")
    num_samples: int = Field(1, ge=1, description="1: greedy decoding; more: sampling, accuracy over all samples")
    temperature: float = Field(0.7, gt=0, description="sampling temperature (num_samples > 1)")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling mass (num_samples > 1)")
    pass_at_k: tuple[int, ...] = Field((1,), description="the k of each pass@k reported (unbiased estimator)")
    seed: int = Field(0, description="seeds the samples")
    max_problems: int | None = Field(None, ge=1, description="evaluate the first N held-out problems only")
    reference: str = Field("full_sft", description="the variant every other one is compared with, problem by problem")
    contamination: Literal[CONTAMINATION_POLICIES] = Field(
        "drop", description="held-out problems found in the training traces: drop them (named), flag them, or stop the run"
    )
    contamination_ngram: int = Field(13, ge=1, description="word n-grams compared (13, as in decontamination practice)")
    contamination_overlap: float = Field(0.5, gt=0, le=1, description="share of a problem's n-grams in the traces that makes it contaminated")
    device: Literal[DEVICES] = Field("auto", description="auto: the GPU when there is one")
    dtype: Literal[DTYPES] = Field("auto", description="auto: bfloat16 on a GPU, else float32")
    engine: Literal[ENGINES] = Field("hf", description="hf: transformers generate; vllm: the optional vLLM extra")
    vllm: dict[str, Any] = Field(
        default_factory=lambda: {"gpu_memory_utilization": 0.3},
        description="vllm.LLM options (engine vllm); gpu_memory_utilization is the share of CPU memory on the CPU backend",
    )

    @field_validator("vllm")
    @classmethod
    def _no_remote_code(cls, options: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted({"model", "tokenizer", "dtype", "seed", "trust_remote_code"} & set(options))
        if reserved:
            raise ValueError(f"evaluation.vllm cannot set {reserved}: the model, its dtype and the seed come from the run, and remote code stays off")
        return options


class ReportingConfig(_Config):
    """What the report and the attribution viewer show."""

    viewer_traces: int = Field(8, ge=1, description="traces rendered in the HTML attribution viewer")
    viewer_strategy: str = Field("paper", description="the selection whose flags the viewer shows")
