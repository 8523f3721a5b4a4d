"""The results documents are generated from the stamped result files: never typed, never silently stale."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tracesieve import generated_docs, provenance
from tracesieve.provenance import PROJECT_ROOT


def test_the_committed_documents_are_what_the_result_files_give():
    # A figure typed into README.md or docs/results.md, or a result file changed without `make results`,
    # fails here; only the "changed since" marks, which move with every commit, are left out.
    assert generated_docs.differing_documents(PROJECT_ROOT) == []


def test_every_result_file_is_rendered_and_stamped():
    files = {path.name for path in (PROJECT_ROOT / generated_docs.RESULTS_DIR).glob("*.json")}
    assert files == {result.file for result in generated_docs.RESULTS}  # a new result file needs a renderer
    for result in generated_docs.RESULTS:
        stamped = generated_docs.load(PROJECT_ROOT, result)["provenance"]
        assert stamped["commit"] and stamped["date"] and stamped["command"] and stamped["machine"], result.file


def _copy_project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(PROJECT_ROOT / "benchmarks" / "results", root / "benchmarks" / "results")
    shutil.copytree(PROJECT_ROOT / "docs", root / "docs")
    shutil.copytree(PROJECT_ROOT / "conf" / "base", root / "conf" / "base")
    shutil.copytree(PROJECT_ROOT / "conf" / "real_cpu", root / "conf" / "real_cpu")  # the attribution-cost headline reads it
    shutil.copy(PROJECT_ROOT / "README.md", root / "README.md")
    return root


def test_a_hand_edited_figure_is_found(tmp_path):
    root = _copy_project(tmp_path)
    readme = (root / "README.md").read_text()
    start = readme.index("<!-- results:default-run -->")
    edited = readme[:start] + readme[start:].replace(" minutes at ", " minutes (typed by hand) at ", 1)
    (root / "README.md").write_text(edited)
    assert generated_docs.differing_documents(root) == [Path("README.md")]


def test_a_changed_result_file_makes_its_documents_differ(tmp_path):
    root = _copy_project(tmp_path)
    path = root / "benchmarks" / "results" / "default_run.json"
    result = json.loads(path.read_text())
    result["wall_seconds"] += 60
    path.write_text(json.dumps(result))
    assert set(generated_docs.differing_documents(root)) == {Path("README.md"), Path("docs/results.md")}
    generated_docs.write_documents(root)
    assert generated_docs.differing_documents(root) == []


def test_the_attribution_cost_headline_reads_the_rendered_checkouts_conf(tmp_path):
    root = _copy_project(tmp_path)
    parameters = root / "conf" / "real_cpu" / "parameters.yml"
    n_traces = yaml.safe_load(parameters.read_text())["world"]["n_traces"]
    parameters.write_text(parameters.read_text().replace(f"n_traces: {n_traces}", f"n_traces: {n_traces + 7}", 1))
    readme = generated_docs.rendered_documents(root)[Path("README.md")]
    assert f"`make real-cpu`'s {n_traces + 7} traces take about" in readme  # this checkout's conf, not the installed one's
    assert generated_docs.differing_documents(root) == [Path("README.md")]


def test_a_result_without_provenance_is_refused_by_name(tmp_path):
    root = _copy_project(tmp_path)
    path = root / "benchmarks" / "results" / "engine_bench_cpu.json"
    result = json.loads(path.read_text())
    del result["provenance"]
    path.write_text(json.dumps(result))
    with pytest.raises(ValueError, match="engine_bench_cpu.json: no provenance"):
        generated_docs.rendered_documents(root)


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_staleness_lists_the_measured_files_changed_since_the_commit(tmp_path):
    root = tmp_path / "repo"
    (root / "src").mkdir(parents=True)
    (root / "src" / "engine.py").write_text("RATE = 1\n")
    (root / "src" / "other.py").write_text("X = 1\n")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "measured")
    measured_at = provenance.git_state(root)
    assert measured_at["dirty"] is False
    assert generated_docs.changed_since(root, measured_at["commit"], ("src/engine.py",)) == []
    (root / "src" / "engine.py").write_text("RATE = 2\n")  # uncommitted changes count: content, not history
    (root / "src" / "other.py").write_text("X = 2\n")
    assert generated_docs.changed_since(root, measured_at["commit"], ("src/engine.py",)) == ["src/engine.py"]
    assert provenance.git_state(root)["dirty"] is True
    assert generated_docs.changed_since(root, "0" * 40, ("src",)) is None  # a commit this clone lacks: unknown


def test_a_stamp_records_what_a_reader_needs(tmp_path):
    stamped = provenance.stamp(config={"lr": 0.1}, wall_seconds=12.34, command=["make", "bench"])
    assert stamped["commit"] == provenance.git_state()["commit"]
    assert stamped["machine"]["cores"] >= 1 and stamped["machine"]["torch"]
    assert stamped["command"] == "make bench" and stamped["wall_seconds"] == 12.3
    assert stamped["config_hash"] == provenance.config_hash({"lr": 0.1}) != provenance.config_hash({"lr": 0.2})
