"""Every choice a setting accepts, and the defaults written once, with no dependencies.

The library's modules act on these names and the parameter schemas (``config.py``) accept exactly them,
so both import them from here: validating a parameter file loads neither torch nor TRL.
"""

# Attribution (attribution/): captum's four Riemann rules and Gauss-Legendre, and the authors' scheme.
QUADRATURE_RULES = (
    "gausslegendre",
    "riemann_left",
    "riemann_right",
    "riemann_middle",
    "riemann_trapezoid",
    "authors_linspace",
)
METHODS = ("adaptive", *QUADRATURE_RULES)
# Where the path starts: the pad token's embedding at every position (the paper's), the zero vector, or
# (passed as an int) any token's embedding.
BASELINES = ("pad", "zero")
DEFAULT_STEPS = 16  # gradient points of a fixed budget
DEFAULT_TOLERANCE = 0.02  # completeness gap, share and consistency errors the refinement stops at
DEFAULT_MAX_STEPS = 512  # the most gradient points one trace may use when refining
# What the refinement waits for (attribution/engine.py): ``selection``, the segment shares, consistencies and
# the selected set; ``completeness``, those and the completeness gap too.
STOPPING_RULES = ("selection", "completeness")
DEFAULT_STOPPING_RULE = "completeness"  # ig_convergence.json: selection needed more points on SmolLM2's traces
UNCONVERGED_POLICIES = ("use", "skip", "fail")
LONG_TRACE_POLICIES = ("skip", "fail")

# Models (modeling.py).
DEVICES = ("auto", "cpu", "cuda")  # auto: the GPU when there is one
DTYPES = ("auto", "float32", "bfloat16", "float16")  # auto: bfloat16 on a GPU that supports it

# Ingestion (traces.py).
FORMATS = ("auto", "limo", "messages", "r1", "world")
MULTI_TURN_POLICIES = ("last_exchange", "reject")

# Segmentation (segmentation.py): the paper's reflection keywords a segment starts at.
REFLECTION_KEYWORDS = (
    "Wait",
    "Alternatively",
    "But wait",
    "But alternatively",
    "But just to",
    "However",
    "Not sure",
    "Going back",
    "Backtrack",
    "Trace back",
    "Another",
)
SEGMENTATION_METHODS = ("reflection_keywords", "paragraph", "sentence")

# Selection (selection.py).
ALWAYS_KEEP_CHOICES = ("first", "penultimate", "last")
STRATEGIES = ("paper", "paper_authors", "all", "strength_only", "consistency_only", "random", "position", "random_matched", "share_floor")

# The paper's ablation scorers (scorers.py) and their selections as training variants.
SCORERS = ("ig", "occlusion", "gradient_x_input", "perplexity", "entropy", "random")
SCORER_STRATEGIES = tuple(f"{scorer}_top" for scorer in SCORERS if scorer not in ("ig", "random"))

# Training (training.py) and evaluation (generation.py, contamination.py).
OVER_LENGTH_POLICIES = ("stop", "reject")
ENGINES = ("hf", "vllm")
CONTAMINATION_POLICIES = ("drop", "flag", "fail")

# LeaF (leaf/).
LEVELS = ("instruction", "response")
PRUNING_MODES = ("span", "collective")
THRESHOLD_RULES = ("quantile", "authors")

# The embedded world (world/).
FINAL_REGIMES = ("silent", "restates")
DISTRACTOR_OWNERS = ("shared", "disjoint")
# retracted: a detour is dropped in line ("No, drop that."); step: written as a real step, never retracted.
DETOUR_FORMS = ("retracted", "step")
# common: the four verbs every world has; with_new: two more ("earns", "spends") that a base student warmed up on
# the common ones has never read, so that SFT on the traces has a skill to teach (issue 41).
ACTION_SETS = ("common", "with_new")
ORACLE_STRATEGY = "oracle"  # the world's planted-role masks as a selection strategy
# random segments at the oracle's own token budget, trace by trace: the control that removes the loss's reweighting
ORACLE_BUDGET_STRATEGY = "oracle_budget"
ORACLE_STRATEGIES = (ORACLE_STRATEGY, ORACLE_BUDGET_STRATEGY)
# Where a warm-up model's weights start (``world.<role>.init``). scratch: random weights from the model's
# seed. student (the teacher only): the trained student, trained on the teacher's stories for the teacher's
# train_steps; the two then share everything the student learnt (copying amounts, arithmetic, when to stop),
# and the teacher adds what only its stories teach (skipping another owner's action), for the compute of
# one model and a few hundred steps.
WARMUP_INITS = ("scratch", "student")
