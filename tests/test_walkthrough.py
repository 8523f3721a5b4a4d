"""The README's walkthrough "your traces and your model", run as written on a fresh copy of the project:
SmolLM2 as attribution model, tokenizer and SFT base, the segment method alone, on a trace file holding
every format (limo, messages, r1).

The folder at data/06_models/smollm2-135m-instruct holds SmolLM2 cut to its first two blocks (the
``smollm2_two_blocks`` fixture): the same tokenizer, chat template and loading path, about a quarter of the
compute per token. This test is about the commands, the formats and what the run writes, not the model's
quality; tests/test_real_model.py runs the full model through the loop."""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import PROJECT, copy_project
from tracesieve import tracking

BIN = Path(sys.executable).parent
# One trace per format: attribution on SmolLM2 is most of this test's time, and one of each says that every
# format is detected per record in one file.
PROBLEMS = [
    ("Tom has 3 apples and buys 4 more. How many apples does he have?", "Tom starts with 3 apples.\n\nHe buys 4 more, so 3 + 4 = 7.\n\nWait, let me check: 7 - 4 = 3. Yes.", "7"),
    ("A box holds 5 pens. How many pens are in 2 boxes?", "Each box holds 5 pens.\n\nTwo boxes hold 2 * 5 = 10 pens.", "10"),
    ("Sara had 9 stickers and gave away 2. How many are left?", "She starts with 9.\n\nGiving away 2 leaves 9 - 2 = 7.\n\nSo 7 stickers.", "7"),
]
FORMS = ("limo", "messages", "r1")


def _record(form: str, question: str, reasoning: str, answer: str) -> dict:
    if form == "limo":
        return {"question": question, "solution": reasoning, "answer": answer}
    if form == "messages":
        reply = f"<think>\n{reasoning}\n</think>\n\nThe answer is \\boxed{{{answer}}}."
        return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]}
    return {"problem": question, "generation": f"{reasoning}\n</think>\n\n\\boxed{{{answer}}}"}  # r1: answer from the box


def _readme_block(marker: str) -> str:
    """The fenced block right after ``<!-- walkthrough: marker -->`` in the README."""
    readme = (PROJECT / "README.md").read_text()
    found = re.search(rf"<!-- walkthrough: {re.escape(marker)} -->\n```[a-z]*\n(.*?)```", readme, re.DOTALL)
    assert found, f"README has no walkthrough block {marker!r}"
    return found.group(1)


@pytest.fixture
def fresh_copy(tmp_path, smollm2_two_blocks):
    """A fresh copy of the project with (two blocks of) SmolLM2 where `make real-cpu` converts it, and the
    user's two files."""
    copy_project(tmp_path)
    (tmp_path / "data/06_models").mkdir(parents=True)
    (tmp_path / "data/06_models/smollm2-135m-instruct").symlink_to(smollm2_two_blocks)
    # Problems the traces do not hold: every run checks (evaluation.contamination), and copies would be dropped.
    held_out = [("Ben has 6 cards and finds 3 more. How many cards does he have?", "9"), ("What is 7 minus 2?", "5")]
    problems = [{"problem_id": f"p{i}", "question": q, "answer": a} for i, (q, a) in enumerate(held_out)]
    (tmp_path / "my_eval_problems.jsonl").write_text("".join(json.dumps(problem) + "\n" for problem in problems))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "1", "COLUMNS": "400"}
    return tmp_path, env


def _run_readme_commands(root: Path, env: dict) -> subprocess.CompletedProcess:
    script = _readme_block("commands").replace(".venv/bin/kedro", shlex.quote(str(BIN / "kedro")))
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=root, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.e2e
def test_the_walkthrough_runs_the_segment_method_on_your_traces_and_model(fresh_copy):
    root, env = fresh_copy
    # Every format in one file (detected per record).
    records = [_record(FORMS[index % 3], *problem) for index, problem in enumerate(PROBLEMS)]
    (root / "my_traces.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    (root / "conf/real/parameters_quick.yml").write_text(_readme_block("conf/real/parameters_quick.yml"))
    for folder in ("traces", "eval"):
        (root / "data/01_raw/real" / folder).mkdir(parents=True)
    (root / "data/01_raw/real/traces/my_traces.jsonl").write_text((root / "my_traces.jsonl").read_text())
    (root / "data/01_raw/real/eval/eval_problems.jsonl").write_text((root / "my_eval_problems.jsonl").read_text())
    # First contact: the env's default runs both methods; with only SmolLM2 configured it stops at once,
    # naming what each method needs and the command that runs the segment method.
    command = _readme_block("commands").splitlines()[-1].replace(" --pipeline segment_method", "").replace(".venv/bin/kedro", str(BIN / "kedro"))
    first = subprocess.run(shlex.split(command), cwd=root, env=env, capture_output=True, text=True, timeout=300, check=False)
    said = " ".join((first.stdout + first.stderr).split())
    assert first.returncode != 0 and "This run (env real) cannot start" in said, said[-3000:]
    assert "leaf_method needs" in said and "missing leaf_student.model" in said, said[-3000:]
    assert "segment_method needs" in said and "Run it alone: kedro run --env real --pipeline segment_method" in said, said[-3000:]
    shutil.rmtree(root / "data/01_raw/real")  # the walkthrough starts from the user's two files

    result = _run_readme_commands(root, env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "warnings.py:" not in output  # third-party warnings are named by their source, or silenced where understood

    outputs = root / "data/real"
    traces = pd.read_parquet(outputs / "02_intermediate/traces.parquet")
    assert len(traces) == len(PROBLEMS) and sorted(traces["format"].value_counts().items()) == [(form, 1) for form in sorted(FORMS)]
    report = (outputs / "08_reporting/summary_report.md").read_text()
    assert "## Attribution quality" in report and "converged" in report
    variants = yaml.safe_load((PROJECT / "conf/real/parameters.yml").read_text())["fine_tuning"]["variants"]  # conf/real's
    for variant in variants:
        generations = pd.read_parquet(outputs / f"07_model_output/{variant}_generations.parquet")
        assert len(generations) == 2 and generations["completion"].str.len().gt(0).all()
    assert not (outputs / "03_primary/leaf_gradients.parquet").exists()  # LeaF did not run
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    run = tracking.latest_kedro_run()
    assert run.info.status == "FINISHED" and run.info.run_name.startswith("real · segment_method · ")
    assert "attribution=data/06_models/smollm2-135m-instruct" in run.info.run_name
    assert set(tracking.variant_runs(run.info.run_id)) == {"base", *variants}
    # Each file read once, as what it is: every trace record accepted, the evaluation problems never read as traces.
    metrics = run.data.metrics
    assert metrics["ingestion.records_read"] == metrics["ingestion.traces_accepted"] == len(PROBLEMS)
    assert metrics.get("ingestion.records_rejected", 0) == 0
