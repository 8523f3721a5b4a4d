"""`kedro run` as a user runs it, in a temporary copy of the project: the default run, made once for the
module, and what reads it or runs beside it (attribution sharded, DDP, a sweep, the notebook, the MLflow UI)."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tests.conftest import copy_project, needs_browser, source_over_filler, tiny_world_params
from tracesieve import tracking
from tracesieve.answers import exact_match
from tracesieve.world.problems import SOURCE
from tracesieve.world.roles import planted_role_of_segments

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with a tiny world in conf/local and its own MLflow store."""
    root = tmp_path_factory.mktemp("project")
    copy_project(root)
    params = tiny_world_params(root / "data")
    params["checkpoint_dir"] = "data/06_models/checkpoints"
    (root / "conf" / "local" / "parameters_world.yml").write_text(yaml.safe_dump({"world": params}))
    fine_tuning = {"max_steps": 4, "batch_size": 4, "save_steps": 2, "logging_steps": 1}
    (root / "conf" / "local" / "parameters_fine_tuning.yml").write_text(yaml.safe_dump({"fine_tuning": fine_tuning}))
    evaluation = {"max_new_tokens": 24, "batch_size": 5}
    (root / "conf" / "local" / "parameters_evaluation.yml").write_text(yaml.safe_dump({"evaluation": evaluation}))
    leaf = {"check_max_new_tokens": 24, "check_batch_size": 5, "distillation": {"max_steps": 4, "batch_size": 4, "save_steps": 2, "logging_steps": 1}}
    (root / "conf" / "local" / "parameters_leaf.yml").write_text(yaml.safe_dump({"leaf": leaf}))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "KEDRO_DISABLE_TELEMETRY": "1"}
    return root, env


@pytest.fixture(scope="module")
def ran(project):
    """The copy after its default `kedro run`, made once for the module: the tests below read what it wrote."""
    root, env = project
    result = subprocess.run([str(BIN / "kedro"), "run"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root, env


@pytest.mark.e2e
def test_kedro_run_logs_one_mlflow_run_with_every_stage(ran):
    root, env = ran
    assert (root / "data/01_raw/world_traces.jsonl").is_file()
    assert (root / "data/06_models/teacher/model.safetensors").is_file()

    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["tracesieve"], output_format="list")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1  # one parent run per kedro run, one child run per model variant
    run = parents[0]
    assert run.info.status == "FINISHED" and run.data.tags["env"] == "base" and run.data.tags["pipeline"] == "__default__"
    assert run.info.run_name.startswith("base · __default__ · ") and "max_steps=4" in run.info.run_name  # conf/local's edits
    assert run.data.tags["seed"] == "0" and "fine_tuning.max_steps=4" in run.data.tags["overrides"] and run.data.tags["partial"] == "false"
    children = tracking.variant_runs(run.info.run_id)
    variants = ("full_sft", "selective_sft", "selective_sft_authors", "random_sft", "oracle_sft", "oracle_budget_sft", "position_sft",
                "random_matched_sft")
    assert set(children) == {"teacher", "student", "base", "leaf_student", "kd", "leaf_distilled", *variants}
    assert len(runs) == 1 + len(children) and all(child.info.status == "FINISHED" for child in children.values())
    experiment = mlflow.get_experiment_by_name("tracesieve")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # opens on runs, not GenAI
    # The same metric and param names in every child, so that MLflow's compare view lines them up.
    for name in ("base", *variants, "kd", "leaf_distilled"):
        child = children[name].data
        assert {"accuracy", "accuracy_ci_low", "accuracy_ci_high", "mean_response_tokens", "problems"} <= set(child.metrics), name
        assert child.params["variant"] == name and child.params["eval_max_new_tokens"] == "24"
    for name in variants:
        child = children[name].data
        assert {"supervised_tokens", "train_loss", "train_steps"} <= set(child.metrics)
        assert child.params["tau"] == "0.7" and child.params["seed"] == "0" and child.tags["kind"] == "sft"
    assert children["selective_sft"].data.params["strategy"] == "paper" and children["random_sft"].data.params["strategy"] == "random"
    assert children["kd"].data.params["lambda"] == "1.0" and children["leaf_distilled"].data.params["lambda"] == "0.5"
    assert not any(name.startswith(f"{variant}.") for name in run.data.metrics for variant in children)  # no prefixes left
    metrics, params = tracking.flat_metrics(run), run.data.params
    assert metrics["world.problems_eval"] == 14 and metrics["world.problems_eval_heldout_skeleton"] == 4
    # Every run checks the held-out problems against the training traces (none of the world's is a copy).
    assert metrics["contamination.problems"] == 14 and metrics["contamination.exact_matches"] == 0
    # The warm-up models' held-out accuracy is the share of their written generations that grade correct.
    for model in ("teacher", "student"):
        generations = pd.read_parquet(root / f"data/07_model_output/{model}_heldout_generations.parquet")
        regraded = [exact_match(completion, answer) for completion, answer in zip(generations["completion"], generations["answer"], strict=True)]
        assert regraded == generations["correct"].tolist() and metrics[f"{model}.heldout_accuracy"] == pytest.approx(sum(regraded) / len(regraded))
    assert metrics["ingestion.records_read"] == metrics["ingestion.traces_accepted"] == 12
    assert params["world.teacher.hidden_size"] == "32"
    assert metrics["attribution.traces_attributed"] + metrics.get("attribution.traces_rejected", 0) == 12
    assert metrics["segmentation.segments"] >= 12
    assert 0 < metrics["selection.paper.token_share_mean"] <= metrics["selection.all.token_share_mean"] == 1
    # IG's separation of the planted roles, recomputed from the written tables: the share of (source, filler)
    # segment pairs whose strength share ranks the source higher (ties half), and the share of source
    # segments the paper's rule selected.
    segment_metrics = pd.read_parquet(root / "data/04_feature/segment_metrics.parquet")
    roles = planted_role_of_segments(segment_metrics, pd.read_parquet(root / "data/02_intermediate/world_segments.parquet"))
    assert metrics["planted_roles.ig.pooled_auroc"] == pytest.approx(source_over_filler(segment_metrics["strength_share"], roles))
    paper = pd.read_parquet(root / "data/05_model_input/selections.parquet").query("strategy == 'paper'")
    chosen = {(trace, int(index)) for trace, picked in zip(paper["trace_id"], paper["selected_segments"], strict=True) for index in picked}
    source_segments = segment_metrics.loc[roles.eq(SOURCE), ["trace_id", "segment_index"]].itertuples(index=False)
    flags = [(trace, int(index)) in chosen for trace, index in source_segments]
    assert metrics["planted_roles.source.selected_share_paper"] == pytest.approx(sum(flags) / len(flags))
    # The world's gates are measured on every run of the world, before any verdict, and each verdict is its
    # own rule applied to its own figure (a tiny world's figures are arbitrary; the rule must hold anyway).
    from tracesieve.world.distractors import (
        DISTRACTOR_EFFECT_LOW_MIN, DISTRACTOR_EFFECT_THRESHOLD, TEACHER_ACCURACY_MIN, TEACHER_DISTRACTOR_EFFECT_HIGH_MAX,
        TEACHER_DISTRACTOR_EFFECT_MAX,
    )
    from tracesieve.world.roles import LABEL_VALIDITY_THRESHOLD, ORACLE_HEADROOM_MIN, SFT_EFFECT_LOW_MIN, SFT_EFFECT_MIN

    assert metrics["gate.label_validity_passed"] == (metrics["gate.label_validity_auroc"] >= LABEL_VALIDITY_THRESHOLD)
    assert metrics["gate.distractor_effect_passed"] == (
        metrics["gate.distractor_effect"] >= DISTRACTOR_EFFECT_THRESHOLD and metrics["gate.distractor_effect_ci_low"] >= DISTRACTOR_EFFECT_LOW_MIN
    )
    assert metrics["gate.distractor_teacher_passed"] == (
        metrics["gate.distractor_effect_teacher"] <= TEACHER_DISTRACTOR_EFFECT_MAX
        and metrics["gate.distractor_effect_teacher_ci_high"] <= TEACHER_DISTRACTOR_EFFECT_HIGH_MAX
        and metrics["gate.teacher_accuracy_without_distractor"] >= TEACHER_ACCURACY_MIN
    )
    assert metrics["gate.oracle_headroom_passed"] == (
        metrics["gate.oracle_headroom_accuracy"] >= ORACLE_HEADROOM_MIN and metrics["gate.oracle_headroom_accuracy_ci_low"] > 0
        and metrics["gate.oracle_headroom_tokens"] < 0
    )
    assert metrics["gate.sft_effect_passed"] == (
        metrics["gate.sft_effect_accuracy"] >= SFT_EFFECT_MIN and metrics["gate.sft_effect_accuracy_ci_low"] >= SFT_EFFECT_LOW_MIN
    )
    # Every gate logged, passing or failing: the fine-tuning ones, upstream validity, the teacher's distractor effect.
    for gate in ("sft_effect", "position_only", "label_validity_upstream", "distractor_teacher"):
        assert metrics[f"gate.{gate}_passed"] in (0, 1), gate
    assert metrics["gate.sft_effect_accuracy_ci_low"] <= metrics["gate.sft_effect_accuracy"] <= metrics["gate.sft_effect_accuracy_ci_high"]
    # Every scorer: its AUROC against the planted roles and its deletion faithfulness on the model.
    # The within-trace figure is the mean over traces of that pair share, recomputed here from each scorer's table.
    labelled = segment_metrics[["trace_id", "segment_index"]].assign(role=roles.to_numpy())
    scores = pd.read_parquet(root / "data/04_feature/segment_scores.parquet").merge(labelled, on=["trace_id", "segment_index"])
    scores = pd.concat([scores[scores["scorer"] != "ig"], segment_metrics.assign(scorer="ig", score=segment_metrics["strength_share"], role=roles)])
    for scorer in ("ig", "occlusion", "gradient_x_input", "perplexity", "entropy", "random"):
        per_trace = [source_over_filler(trace["score"], trace["role"]) for _, trace in scores[scores["scorer"] == scorer].groupby("trace_id")]
        per_trace = [value for value in per_trace if value is not None]
        assert per_trace and metrics[f"planted_roles.{scorer}.within_trace_auroc"] == pytest.approx(sum(per_trace) / len(per_trace)), scorer
        assert f"faithfulness.{scorer}.aopc_comprehensiveness" in metrics and f"faithfulness.{scorer}.aopc_sufficiency" in metrics
    # Fine-tuning: every default variant from the same base, same steps; budgets logged per variant.
    supervised = {
        variant: metrics[f"{variant}.supervised_tokens"]
        for variant in ("full_sft", "selective_sft", "selective_sft_authors", "random_sft", "oracle_sft", "oracle_budget_sft", "position_sft",
                        "random_matched_sft")
    }
    assert all(supervised[variant] < supervised["full_sft"] for variant in ("selective_sft", "random_sft", "oracle_sft", "position_sft"))
    assert supervised["selective_sft"] <= supervised["selective_sft_authors"]
    # The authors' controls: its always-kept segments alone, and random ones beside them at its budget.
    assert supervised["position_sft"] <= supervised["selective_sft_authors"]
    assert children["position_sft"].data.params["strategy"] == "position" and children["random_matched_sft"].data.params["strategy"] == "random_matched"
    assert children["oracle_budget_sft"].data.params["strategy"] == "oracle_budget"
    assert all(metrics[f"{variant}.train_steps"] == 4 for variant in supervised)
    history = mlflow.MlflowClient().get_metric_history(children["selective_sft"].info.run_id, "train_loss")
    assert [point.step for point in history] == [1, 2, 3, 4]  # a point per logged step
    # Evaluation of the base model and every variant, and their problem-by-problem comparison.
    for model in ("base", *supervised):
        assert metrics[f"{model}.problems"] == 14 - metrics["contamination.dropped"]
        assert metrics[f"{model}.accuracy_ci_low"] <= metrics[f"{model}.accuracy"] <= metrics[f"{model}.accuracy_ci_high"]
    assert "accuracy_diff_vs_full_sft" in children["selective_sft"].data.metrics  # the comparison, in each child
    client = mlflow.MlflowClient()
    folders = ("world", "ingestion", "attribution", "segmentation", "selection", "planted_roles", "reporting")
    artifacts = {item.path for folder in folders for item in client.list_artifacts(run.info.run_id, folder)}
    # Each variant's model, generations and training log in its own run.
    selective = children["selective_sft"].info.run_id
    child_artifacts = {item.path for folder in ("model", "evaluation", "training") for item in client.list_artifacts(selective, folder)}
    assert {
        "model/model.safetensors", "evaluation/selective_sft_generations.parquet", "training/selective_sft_training_log.json"
    } <= child_artifacts
    assert {"world/world_sample_traces.md", "world/world_problems.parquet", "ingestion/traces.parquet"} <= artifacts
    assert {
        "attribution/token_attributions.parquet",
        "attribution/attribution_diagnostics.csv",
        "attribution/attribution_rejects.csv",
        "segmentation/segments.parquet",
        "selection/segment_metrics.parquet",
        "selection/selections.parquet",
        "planted_roles/planted_roles.csv",
        "planted_roles/label_validity.csv",
        "reporting/model_comparison.csv",
        "reporting/summary_report.md",
        "reporting/attribution_viewer.html",
        "reporting/accuracy_vs_length.png",
        "reporting/selection_boundaries.png",
        "reporting/training_loss.png",
    } <= artifacts
    # LeaF: gradient comparison -> counterfactuals -> check -> KD and LeaF from the same student -> comparison.
    assert metrics["leaf_gradient.traces_analysed"] + metrics.get("leaf_gradient.traces_rejected", 0) == 12
    made = metrics["leaf_counterfactual.counterfactuals"]
    assert made >= metrics["leaf_counterfactual.traces_with_counterfactual"] >= 1
    assert metrics["leaf_check.counterfactuals"] == made
    assert metrics.get("leaf_check.kept", 0) <= min(metrics.get("leaf_check.teacher_correct", 0), metrics.get("leaf_check.student_correct", 0))
    # Precision against the planted distractors is a count of hits over the flagged tokens of the written table.
    confounders = pd.read_parquet(root / "data/04_feature/leaf_confounders.parquet")
    flagged = int((confounders["prunable"] & confounders["confounder"]).sum())
    hits = metrics["leaf_distractor.precision"] * flagged
    assert metrics["leaf_distractor.confounder_tokens"] == flagged and hits == pytest.approx(round(hits)) and 0 <= round(hits) <= flagged
    assert 0 < metrics["leaf_distractor.chance_precision"] < 1  # the world plants distractors, and questions hold other tokens too
    assert metrics["kd.train_steps"] == metrics["leaf_distilled.train_steps"] == 4
    assert metrics["kd.lambda"] == 1 and metrics["leaf_distilled.lambda"] == 0.5 and metrics["kd.items_with_counterfactual"] == 0
    assert metrics["leaf_distilled.train_items"] == 12 - metrics.get("leaf_check.traces_with_kept_counterfactual", 0) + metrics.get("leaf_check.kept", 0)
    for model in ("base", "kd", "leaf_distilled"):
        for subset in ("all", "with_distractor", "without_distractor"):
            assert metrics[f"leaf_comparison.{model}.{subset}.accuracy_ci_low"] <= metrics[f"leaf_comparison.{model}.{subset}.accuracy"]
    assert "leaf_comparison.leaf_distilled.all.accuracy_diff_vs_kd_ci_high" in metrics
    leaf_artifacts = {item.path for item in client.list_artifacts(run.info.run_id, "leaf")}
    assert {
        "leaf/leaf_gradients.parquet", "leaf/leaf_confounders.parquet", "leaf/leaf_counterfactuals.parquet", "leaf/leaf_checked_counterfactuals.parquet",
    } <= leaf_artifacts
    for name in ("kd", "leaf_distilled", "teacher"):
        assert "model/model.safetensors" in {item.path for item in client.list_artifacts(children[name].info.run_id, "model")}
    assert {"reporting/leaf_comparison.csv", "reporting/leaf_report.md"} <= artifacts
    assert "leaf_distilled versus kd: accuracy difference" in (root / "data/08_reporting/leaf_report.md").read_text()
    report = (root / "data/08_reporting/summary_report.md").read_text()
    assert "selective_sft versus full_sft: accuracy difference" in report
    assert report.index("## The world's gates") < report.index("## Models on the held-out problems")
    assert "| label_validity |" in report and "| oracle_headroom |" in report and "| distractor_effect |" in report
    assert "| sft_effect |" in report and "| position_only |" in report and "| distractor_teacher |" in report
    assert "## Contamination" in report and "of 14 held-out problems are in the training traces (0 exact copies)" in report
    assert (root / "mlflow.db").is_file()  # the run went to the store named by MLFLOW_TRACKING_URI

    # A rerun with unchanged settings resumes from the finished checkpoints instead of retraining.
    rerun = subprocess.run([str(BIN / "kedro"), "run", "--pipeline", "world"], cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Training already finished" in rerun.stdout + rerun.stderr

    # Any stage runs on its own from the catalog's saved inputs, including the composite from_traces.
    alone = subprocess.run([str(BIN / "kedro"), "run", "--pipeline", "from_traces"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stdout[-3000:] + alone.stderr[-3000:]
    latest = tracking.flat_metrics(tracking.latest_kedro_run())
    assert latest["attribution.traces_resumed"] == 12  # the store served every finished trace
    assert latest.get("attribution.traces_computed", 0) == 0
    assert latest["selective_sft.supervised_tokens"] == supervised["selective_sft"]
    # leaf on its own (world, ingestion and LeaF): the gradient store and the checkpoints serve what is done.
    alone = subprocess.run([str(BIN / "kedro"), "run", "--pipeline", "leaf"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert alone.returncode == 0, alone.stdout[-3000:] + alone.stderr[-3000:]
    latest = tracking.latest_kedro_run().data.metrics
    assert latest["leaf_gradient.traces_resumed"] == 12
    assert latest["leaf_check.counterfactuals"] == made
    for stage in ("evaluation", "reporting"):  # later stages alone, from what the catalog saved
        alone = subprocess.run([str(BIN / "kedro"), "run", "--pipeline", stage], cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert alone.returncode == 0, stage + alone.stdout[-2000:] + alone.stderr[-2000:]
    assert tracking.latest_kedro_run().data.tags["partial"] == "false"  # a whole pipeline, if not the default one
    # Part of a pipeline is named and tagged as such, never taken for a whole run.
    part = subprocess.run([str(BIN / "kedro"), "run", "--nodes", "write_summary_report"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert part.returncode == 0, part.stdout[-2000:] + part.stderr[-2000:]
    partial = tracking.latest_kedro_run()
    assert partial.data.tags["partial"] == "true" and partial.data.tags["partial_selection"] == "--nodes write_summary_report"
    assert partial.info.run_name.startswith("base · __default__ (partial: --nodes write_summary_report)")


@pytest.mark.e2e
def test_exploration_notebook_runs_headless_on_the_last_run(ran, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    root, env = ran
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env["MLFLOW_TRACKING_URI"])
    notebook = nbformat.read(root / "notebooks" / "explore.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(root / "notebooks")}}).execute()
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    html = "".join(output.get("data", {}).get("text/html", "") for output in outputs)
    assert "Attribution viewer" in html and "class='segment" in html and "planted role" in html
    # The viewer outlines the paper's selection of the three traces it shows (the tiny world's untrained
    # teacher leaves many selections empty: the outline is checked where there is one to draw).
    paper = pd.read_parquet(root / "data/05_model_input/selections.parquet").query("strategy == 'paper'")
    shown_selected = paper.head(3)["selected_tokens"].sum() > 0
    assert ("class='segment selected'" in html) == shown_selected
    assert "selective_sft" in html  # the variants' table from MLflow


@pytest.mark.e2e
def test_attribution_sharded_over_two_processes_equals_the_single_process_run(ran):
    """2 CPU processes (torchrun, gloo, through Accelerate's PartialState): disjoint shards whose union the
    Kedro stage reads back. (On CPU, `accelerate launch` starts one process unless MPI is set up; on GPUs,
    `accelerate launch --multi_gpu` runs this same torchrun launch.)"""
    import pandas as pd

    root, env = ran
    single_path = root / "data/03_primary/token_attributions.parquet"
    single = pd.read_parquet(single_path).set_index("trace_id")
    # An environment whose only change is a fresh attribution store, so the shards compute every trace.
    (root / "conf" / "sharded").mkdir(exist_ok=True)
    store = "data/03_primary/sharded_attribution_store"
    entry = {"type": "tracesieve.datasets.ResultStoreDataset", "path": store}
    (root / "conf" / "sharded" / "catalog.yml").write_text(yaml.safe_dump({"attribution_store": entry}))
    launch = [str(BIN / "torchrun"), "--nproc_per_node", "2", "-m", "tracesieve.launch.shard_attribution", "--env", "sharded"]
    result = subprocess.run(launch, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "shard 0/2: 6 attributed (0 resumed, 6 computed)" in result.stdout
    assert "shard 1/2: 6 attributed (0 resumed, 6 computed)" in result.stdout
    assert len(list((root / store).glob("*/*.parquet"))) == 12  # every trace once, no half-written file

    # Relaunched, the shards resume instead of recomputing.
    again = subprocess.run(launch, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "shard 1/2: 6 attributed (6 resumed, 0 computed)" in again.stdout

    # The Kedro stage reads the union from the store and builds the same table as the single-process run.
    stage = subprocess.run(
        [str(BIN / "kedro"), "run", "--env", "sharded", "--pipeline", "attribution"], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert stage.returncode == 0, stage.stdout[-3000:] + stage.stderr[-3000:]
    latest = tracking.latest_kedro_run()
    assert latest.data.metrics["attribution.traces_resumed"] == 12 and latest.data.metrics.get("attribution.traces_computed", 0) == 0
    union = pd.read_parquet(single_path).set_index("trace_id")
    assert sorted(union.index) == sorted(single.index)
    for trace_id, row in single.iterrows():
        assert list(union.loc[trace_id, "input_ids"]) == list(row["input_ids"])
        assert union.loc[trace_id, "attributions"] == pytest.approx(row["attributions"], rel=1e-4, abs=1e-6)


@pytest.mark.e2e
def test_fine_tuning_trains_with_ddp_over_two_processes_and_kedro_loads_the_result(ran):
    """torchrun with 2 CPU processes (gloo): the Trainer's Accelerate integration wraps the model in DDP, each
    process takes half of the global batch, rank 0 checkpoints; `kedro run` then loads that finished run.
    LeaF's distillation (its own Trainer subclass, teacher on every rank) launches the same way."""
    root, env = ran
    (root / "conf" / "ddp").mkdir(exist_ok=True)
    checkpoints = root / "data/06_models/ddp_checkpoints"  # fresh: nothing finished yet under any key
    fine_tuning = {"max_steps": 6, "batch_size": 4, "save_steps": 3, "logging_steps": 1, "checkpoint_dir": str(checkpoints)}
    distillation = {"max_steps": 4, "batch_size": 4, "save_steps": 2, "logging_steps": 1, "checkpoint_dir": str(checkpoints)}
    (root / "conf" / "ddp" / "parameters.yml").write_text(yaml.safe_dump({"fine_tuning": fine_tuning, "leaf": {"distillation": distillation}}))
    launch = [
        str(BIN / "torchrun"), "--nproc_per_node", "2", "-m", "tracesieve.launch.distributed_training", "--env", "ddp",
        "selective_sft.train_variant", "kd.distill_variant",
    ]
    result = subprocess.run(launch, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "process 0/2: selective_sft.train_variant trained" in result.stdout
    assert "process 1/2: selective_sft.train_variant trained" in result.stdout
    assert "process 1/2: kd.distill_variant trained" in result.stdout
    (sft_run,) = checkpoints.glob("sft-paper-*")  # the selective_sft mask's run, under its key
    state = json.loads((sft_run / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["train_batch_size"] == 2  # 4 per step = 2 processes x 2
    (distill_run,) = checkpoints.glob("distill-*")
    state = json.loads((distill_run / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and state["train_batch_size"] == 2

    stage = subprocess.run(
        [str(BIN / "kedro"), "run", "--env", "ddp", "--pipeline", "fine_tuning"], cwd=root, env={**env, "COLUMNS": "400"},
        capture_output=True, text=True, timeout=600,
    )
    output = stage.stdout + stage.stderr
    assert stage.returncode == 0, output[-3000:]
    assert output.count("Training already finished at step 6") == 1  # selective_sft only; the others trained here
    selective = tracking.variant_runs(tracking.latest_kedro_run().info.run_id)["selective_sft"]
    assert selective.data.metrics["train_steps"] == 6
    history = mlflow.MlflowClient().get_metric_history(selective.info.run_id, "train_loss")
    assert [point.step for point in history] == [1, 2, 3, 4, 5, 6]  # the DDP run's loss curve, read from its state


@pytest.mark.e2e
def test_a_sweep_runs_once_per_value_lines_its_runs_up_and_continues_where_it_stopped(ran):
    """`make sweep`'s launcher over tau, downstream of selection: one tagged parent run per value, each with
    its variants' children, a table and a figure; the same command again finds every point finished."""
    root, env = ran
    command = [sys.executable, "-m", "tracesieve.launch.sweep", "selection.tau=0.5,0.9", "--", "--from-nodes", "select_loss_segments"]
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    swept = mlflow.search_runs(experiment_names=["tracesieve"], filter_string="tags.sweep != ''", output_format="list")
    parents = [run for run in swept if "mlflow.parentRunId" not in run.data.tags]
    assert sorted(run.data.tags["sweep.selection.tau"] for run in parents) == ["0.5", "0.9"]
    assert sorted(run.info.run_name.split(" · ")[2].split(", ")[0] for run in parents) == ["tau=0.5", "tau=0.9"]  # first
    for parent in parents:
        children = tracking.variant_runs(parent.info.run_id)
        assert children["selective_sft"].data.params["tau"] == parent.data.tags["sweep.selection.tau"]
        assert children["selective_sft"].data.tags["sweep"] == parent.data.tags["sweep"]  # children are found by the tag too
    identifier = parents[0].data.tags["sweep"]
    table = pd.read_csv(root / "data/08_reporting/sweeps" / f"{identifier}.csv")
    selective = table[table["variant"] == "selective_sft"].set_index("selection.tau")
    assert sorted(selective.index) == [0.5, 0.9] and selective.loc[0.5, "supervised_tokens"] <= selective.loc[0.9, "supervised_tokens"]
    assert (root / "data/08_reporting/sweeps" / f"{identifier}.png").stat().st_size > 10_000

    again = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and again.stderr.count("finished before") == 2, again.stderr[-2000:]
    assert len(mlflow.search_runs(experiment_names=["tracesieve"], filter_string="tags.sweep != ''", output_format="list")) == len(swept)


@pytest.mark.e2e
@pytest.mark.browser
@needs_browser
def test_the_mlflow_ui_shows_the_run_with_its_variants_comparable(ran, browser):
    """The MLflow UI in headless Chromium, on the project's store: the Model training view lists the kedro
    run with its children to expand, and the compare view lines the variants up by metric and param."""
    from selenium.webdriver.common.by import By

    root, env = ran
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    default_runs = mlflow.search_runs(experiment_names=["tracesieve"], filter_string="tags.pipeline = '__default__'", output_format="list")
    parents = [run for run in default_runs if "mlflow.parentRunId" not in run.data.tags and "sweep" not in run.data.tags]
    parent = parents[-1]  # the first default run: every variant trained and graded
    children = tracking.variant_runs(parent.info.run_id)
    port = 5157
    server = subprocess.Popen(
        [str(BIN / "mlflow"), "ui", "--backend-store-uri", env["MLFLOW_TRACKING_URI"], "--host", "127.0.0.1", "--port", str(port)],
        cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(lambda: urllib.request.urlopen(f"{base}/health", timeout=2).status == 200, seconds=90)
        experiment = parent.info.experiment_id
        browser.get(f"{base}/#/experiments/{experiment}/runs?workflowType=machine_learning")  # the URL make mlflow-ui prints
        _wait_for(lambda: parent.info.run_name[:20] in browser.find_element(By.TAG_NAME, "body").text, seconds=60)
        page = browser.find_element(By.TAG_NAME, "body").text
        assert "Model training" in page and "No data available for the selected time range" not in page  # not the GenAI overview
        ids = json.dumps([child.info.run_id for name, child in children.items() if name in ("full_sft", "selective_sft", "random_sft")])
        browser.get(f"{base}/#/compare-runs?runs={ids}&experiments={json.dumps([experiment])}&workflowType=machine_learning")
        _wait_for(lambda: "Comparing 3 Runs" in browser.find_element(By.TAG_NAME, "body").text, seconds=60)
        page = browser.find_element(By.TAG_NAME, "body").text
        # The same param and metric names side by side (the metrics table renders its first rows only).
        for expected in ("full_sft", "selective_sft", "random_sft", "strategy", "tau", "accuracy", "accuracy_ci_low", "accuracy_diff_vs_full_sft"):
            assert expected in page, expected
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for(condition, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the page")
        time.sleep(1)
