"""MLflow's two levels: a parent run per kedro run, a child per model variant, named and tagged by what ran."""

import signal
import subprocess

import mlflow
import pandas as pd
import pytest

from tracesieve import tracking
from tracesieve.datasets import VariantArtifactDataset, VariantMetricsDataset
from tracesieve.hooks import RunEndingHooks


@pytest.fixture
def store(tmp_path):
    """An empty SQLite store with the project's experiment, and no run left active after the test."""
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = mlflow.create_experiment("tracesieve", artifact_location=str(tmp_path / "artifacts"))
    yield experiment_id
    while mlflow.active_run() is not None:
        mlflow.end_run()


def test_overrides_are_the_flat_parameters_that_differ_and_name_the_run():
    defaults = {"selection": {"tau": 0.7, "beta": 0.8}, "fine_tuning": {"seed": 0, "variants": ["full_sft"]}, "leaf": {"distillation": {"seed": 0}}}
    run = {"selection": {"tau": 0.5, "beta": 0.8}, "fine_tuning": {"seed": 0, "variants": ["full_sft", "random_sft"]}, "leaf": {"distillation": {"seed": 3}}}
    changed = tracking.overrides(run, defaults)
    assert changed == {"fine_tuning.variants": ["full_sft", "random_sft"], "leaf.distillation.seed": 3, "selection.tau": 0.5}
    assert tracking.run_name("base", "__default__", {"selection.tau": 0.5}) == "base · __default__ · tau=0.5"
    assert tracking.run_name("real_cpu", "from_traces", {}) == "real_cpu · from_traces"
    # The command line's --params come first: a long name is cut at its end.
    assert tracking.run_name("base", "world", {"a.x": 1, "selection.tau": 0.5}, first=["selection.tau"]) == "base · world · tau=0.5, x=1"
    # Ambiguous last names keep their full path; run names stay within MLflow's limit.
    assert tracking.short_names({"fine_tuning.seed": 1, "leaf.distillation.seed": 2, "selection.tau": 0.9}) == {
        "fine_tuning.seed": 1, "leaf.distillation.seed": 2, "tau": 0.9,
    }
    assert len(tracking.run_name("base", "__default__", {f"p{i}": "x" * 20 for i in range(40)})) == tracking.MAX_RUN_NAME


def test_a_run_of_part_of_a_pipeline_says_which_part():
    assert tracking.partial_selection({"node_names": [], "tags": [], "from_nodes": None, "pipeline_names": ["world"]}) is None
    assert tracking.partial_selection({"node_names": ["a", "b"], "tags": ["x"]}) == "--nodes a,b; --tags x"
    assert tracking.partial_selection({"from_nodes": ["select_loss_segments"]}) == "--from-nodes select_loss_segments"


def test_git_commit_names_head_and_marks_a_dirty_tree(tmp_path):
    assert tracking.git_commit(tmp_path) is None  # not a checkout
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "a.txt").write_text("one")
    subprocess.run([*git, "add", "a.txt"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], cwd=tmp_path, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout.strip()
    assert tracking.git_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("two")
    assert tracking.git_commit(tmp_path) == f"{head}-dirty"


def test_variant_params_share_names_per_kind_and_carry_the_variant_settings():
    parameters = {"selection": {"tau": 0.5}, "fine_tuning": {"seed": 2}, "leaf": {"distillation": {"seed": 4}}}
    sft, sft_tags = tracking.variant_description("selective_sft", parameters)
    random_sft, _ = tracking.variant_description("random_sft", parameters)
    assert sft["strategy"] == "paper" and random_sft["strategy"] == "random" and sft["tau"] == 0.5 and sft["seed"] == 2
    assert set(sft) == set(random_sft) and sft_tags == {"kind": "sft", "seed": "2"}
    kd, kd_tags = tracking.variant_description("kd", parameters)
    leaf, _ = tracking.variant_description("leaf_distilled", parameters)
    assert (kd["lambda"], kd["counterfactuals"], leaf["lambda"], leaf["counterfactuals"]) == (1.0, False, 0.5, True)
    assert kd_tags == {"kind": "distillation", "seed": "4"} and set(kd) == set(leaf)
    base, base_tags = tracking.variant_description("base", parameters)
    assert base_tags == {"kind": "base"} and base["eval_max_new_tokens"] == 320


def test_variant_datasets_write_into_one_child_run_per_variant(store, tmp_path):
    parent = mlflow.start_run(experiment_id=store, run_name="base · __default__").info.run_id
    mlflow.set_tags({"env": "base", "pipeline": "__default__"})
    for variant in ("full_sft", "selective_sft"):
        VariantMetricsDataset(variant=variant).save(
            {"accuracy": {"value": 0.25, "step": 0}, "train_loss": [{"value": 2.0, "step": 1}, {"value": 1.5, "step": 2}]}
        )
    VariantMetricsDataset(split_by_variant=True).save({"selective_sft.accuracy_diff_vs_full_sft": {"value": -0.01, "step": 0}})
    generations = VariantArtifactDataset(
        variant="selective_sft", artifact_path="evaluation", dataset={"type": "pandas.CSVDataset", "filepath": str(tmp_path / "g.csv")}
    )
    generations.save(pd.DataFrame({"problem_id": [1], "correct": [True]}))
    assert generations.load()["problem_id"].tolist() == [1]  # loads read the local file

    children = tracking.variant_runs(parent)
    assert set(children) == {"full_sft", "selective_sft"}
    assert VariantMetricsDataset(variant="full_sft").load() == {
        "accuracy": {"value": 0.25, "step": 0}, "train_loss": [{"value": 2.0, "step": 1}, {"value": 1.5, "step": 2}],
    }
    selective = children["selective_sft"]
    assert selective.data.tags["mlflow.parentRunId"] == parent and selective.data.tags["env"] == "base"
    assert selective.data.metrics == {"accuracy": 0.25, "train_loss": 1.5, "accuracy_diff_vs_full_sft": -0.01}
    assert children["full_sft"].data.metrics.keys() == {"accuracy", "train_loss"}  # the same names, no prefix
    assert [point.step for point in mlflow.MlflowClient().get_metric_history(selective.info.run_id, "train_loss")] == [1, 2]
    assert [item.path for item in mlflow.MlflowClient().list_artifacts(selective.info.run_id, "evaluation")] == ["evaluation/g.csv"]
    assert mlflow.active_run().info.run_id == parent  # the children were never made active
    assert tracking.latest_kedro_run().info.run_id == parent  # children are not kedro runs
    assert tracking.flat_metrics(tracking.latest_kedro_run())["selective_sft.accuracy"] == 0.25

    tracking.end_variant_runs(parent, "FINISHED", forget=True)
    assert {run.info.status for run in tracking.variant_runs(parent).values()} == {"FINISHED"}


def test_without_an_active_run_nothing_is_logged_and_saves_still_work(store, tmp_path):
    VariantMetricsDataset(variant="full_sft").save({"accuracy": {"value": 0.5, "step": 0}})
    dataset = VariantArtifactDataset(variant="full_sft", dataset={"type": "pandas.CSVDataset", "filepath": str(tmp_path / "g.csv")})
    dataset.save(pd.DataFrame({"a": [1]}))
    assert (tmp_path / "g.csv").is_file() and mlflow.search_runs(experiment_ids=[store], output_format="list") == []


def test_a_signal_ends_the_parent_and_the_running_variant_as_killed(store):
    parent = mlflow.start_run(experiment_id=store).info.run_id
    finished = tracking.variant_run_id("full_sft")
    tracking.end_variant_runs(parent, "FINISHED")  # its node ended
    running = tracking.variant_run_id("selective_sft")  # its node is running
    hooks = RunEndingHooks()
    hooks.before_node_run(type("Node", (), {"name": "selective_sft.train_variant"})())
    with pytest.raises(KeyboardInterrupt):
        hooks._stop(signal.SIGINT, None)
    client = mlflow.MlflowClient()
    assert client.get_run(parent).info.status == "KILLED" and client.get_run(running).info.status == "KILLED"
    assert client.get_run(finished).info.status == "FINISHED"  # a variant that had finished keeps its status
    tags = client.get_run(parent).data.tags
    assert tags["stopped_by"] == "SIGINT" and tags["stopped_at_node"] == "selective_sft.train_variant"


def test_an_exception_tags_the_run_with_the_node_it_stopped_in(store):
    parent = mlflow.start_run(experiment_id=store).info.run_id
    child = tracking.variant_run_id("kd")
    hooks = RunEndingHooks()
    hooks.before_node_run(type("Node", (), {"name": "kd.distill_variant"})())
    hooks.on_pipeline_error(ValueError("bad batch"))
    tracking.end_variant_runs(parent, "FAILED", forget=True)  # what ConfigMlflowHook.on_pipeline_error does
    client = mlflow.MlflowClient()
    assert client.get_run(parent).data.tags["stopped_by"] == "ValueError"
    assert client.get_run(parent).data.tags["stopped_at_node"] == "kd.distill_variant"
    assert client.get_run(child).info.status == "FAILED"
