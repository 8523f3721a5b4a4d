"""Shared fixtures. MLflow tracking is redirected to a temporary store: tests never touch the user's mlflow.db."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

PROJECT = Path(__file__).parents[1]

os.environ["KEDRO_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


def _share_the_cores_between_workers() -> None:
    """Each pytest-xdist worker, and every `kedro run` it starts, gets its share of the cores.

    torch starts one OpenMP thread per core in every process, so two workers running a model each ask for
    twice the cores there are, and OpenMP's spinning threads then fight: on 2 cores one SmolLM2 forward and
    backward of 150 tokens took 8.3 s with two such processes side by side, against 2.1 s when each had one
    thread (1.5 s alone with two). A thread count the user set is kept."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
        import torch  # already imported by a plugin or not: its pool takes the count either way

        torch.set_num_threads(threads)


_share_the_cores_between_workers()


@pytest.fixture(autouse=True, scope="session")
def isolated_mlflow(tmp_path_factory):
    """Point MLflow at a throwaway SQLite store for the whole session."""
    store = tmp_path_factory.mktemp("mlflow")
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    yield store
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# `.ci/run` installs Debian's chromium and chromium-driver and sets TRACESIEVE_REQUIRE_BROWSER: there the
# browser tests fail, never skip, when the browser is missing.
needs_browser = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("TRACESIEVE_REQUIRE_BROWSER"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by selenium through the system's chromedriver (no driver download)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER or "chromedriver"), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """SmolLM2-135M-Instruct converted from its GGUF (~30 s the first time, a hash check afterwards)."""
    from tracesieve.launch.smollm2 import DEFAULT_OUTPUT, prepare_smollm2

    return prepare_smollm2(PROJECT / DEFAULT_OUTPUT)


@pytest.fixture(scope="session")
def smollm2_two_blocks(smollm2, tmp_path_factory) -> Path:
    """SmolLM2-135M-Instruct cut to its first two of 30 transformer blocks: its tokenizer, chat template,
    embeddings and first blocks' weights, saved as a model folder like any other. For tests of the commands and
    formats around a real checkpoint (the walkthrough), where the full model's compute would be most of the
    time and nothing is read off its quality; tests/test_real_model.py runs the full model."""
    from tracesieve.modeling import load_causal_lm, load_tokenizer

    folder = tmp_path_factory.mktemp("smollm2-two-blocks")
    model = load_causal_lm(smollm2)
    model.model.layers = model.model.layers[:2]
    model.config.num_hidden_layers = 2
    model.save_pretrained(folder, safe_serialization=True)
    load_tokenizer(smollm2).save_pretrained(folder)
    return folder


def tiny_world_params(tmp_path) -> dict:
    """World parameters small enough to train and evaluate in seconds."""
    return {
        "seed": 3,
        "n_train": 64,
        "n_traces": 12,
        "n_eval": 10,
        "n_eval_heldout_skeleton": 4,
        "n_sample_traces": 2,
        "problems": {"min_steps": 2, "max_steps": 2, "max_value": 20},
        # A teacher of its own (conf/base continues the student), so that the two differ in size here.
        "teacher": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "train_steps": 4, "batch_size": 8, "init": "scratch"},
        "student": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "train_steps": 2, "batch_size": 8},
        "max_new_tokens": 24,
        "eval_batch_size": 5,
        "checkpoint_dir": str(tmp_path / "checkpoints"),
    }


@pytest.fixture
def world_params(tmp_path) -> dict:
    return tiny_world_params(tmp_path)


def byte_level_bpe(extra_corpus=()):
    """A byte-level BPE tokenizer trained here (GPT-2 style): subwords, multi-byte characters, byte offsets."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tracesieve.world.tokenizer import CHAT_TEMPLATE

    corpus = [
        "Wait, 3 × 4 is 12, so the café has 12 crêpes.",
        "Alternatively, 12 ÷ 4 = 3. Sometimes abcdefgh appears, abcdefgh again.",
        "Please reason step by step, and put your final answer within \\boxed{}.",
        "</think> So, the final answer is \\boxed{12}",
    ] * 50 + list(extra_corpus)
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<eos>", "<think>", "</think>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>")
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def copy_project(root: Path) -> None:
    """The project as a user checks it out (pyproject, src, conf without conf/local, notebooks) under ``root``,
    with an empty conf/local: a place to run `kedro` without touching the working copy's data or runs."""
    from tracesieve.launch.project_copy import copy_project as copy

    copy(PROJECT, root, notebooks=True)


def source_over_filler(scores, roles) -> float | None:
    """The share of (source, filler) segment pairs whose score ranks the source higher, ties counted half:
    the AUROC the world's role figures report, counted pair by pair (None without both kinds)."""
    from tracesieve.world.problems import FILLER, SOURCE

    sources = scores[roles.eq(SOURCE).to_numpy()].to_numpy()
    filler = scores[roles.isin(FILLER).to_numpy()].to_numpy()
    pairs = [(a > b) + 0.5 * (a == b) for a in sources for b in filler]
    return sum(pairs) / len(pairs) if pairs else None


def kedro_parameters(pipeline, parameters: dict) -> dict:
    """``parameters`` as Kedro hands them to ``pipeline``'s nodes: every block a node annotates with a schema
    validated into its config object (Kedro's typed parameters; ParameterValidationError names bad keys)."""
    from kedro.validation.parameter_validator import ParameterValidator

    return ParameterValidator({"pipeline": pipeline}).validate_raw_params(parameters)


def parameter_datasets(pipeline, parameters: dict) -> dict:
    """In-memory ``params:<block>`` datasets for a runner, holding what Kedro would validate them into."""
    from kedro.io import MemoryDataset

    validated = kedro_parameters(pipeline, parameters)
    return {f"params:{name}": MemoryDataset(value) for name, value in validated.items()}


# The test files that start `kedro run`s of real size, longest first (their --durations on a fresh clone).
# Under `--dist loadfile` a worker takes files in collection order, so these go first: a long file started
# last would run alone on one core while the other worker sits idle.
LONGEST_FIRST = ("test_project_run.py", "test_real_model.py", "test_walkthrough.py", "test_experiment_run.py",
                 "test_killed_run.py", "test_project_envs.py", "test_resume_identity.py")


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: every other file keeps its order
