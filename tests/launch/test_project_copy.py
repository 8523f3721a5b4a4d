"""The copy of the project a kedro run happens in: what a user checks out, never this checkout's local files."""

from tracesieve.launch.project_copy import copy_project
from tracesieve.provenance import PROJECT_ROOT


def test_the_copy_has_code_and_base_conf_an_empty_conf_local_and_replaces_an_earlier_copy(tmp_path):
    target = tmp_path / "copy"
    (target / "src" / "stale").mkdir(parents=True)
    (target / "data").mkdir()
    (target / "data" / "kept.txt").write_text("a checkpoint")
    copy_project(PROJECT_ROOT, target)
    assert (target / "pyproject.toml").read_text() == (PROJECT_ROOT / "pyproject.toml").read_text()
    assert (target / "src" / "tracesieve" / "__init__.py").is_file() and not (target / "src" / "stale").exists()
    assert not list((target / "src").rglob("__pycache__")) and not list((target / "src").glob("*.egg-info"))
    assert (target / "conf" / "base" / "catalog.yml").is_file() and list((target / "conf" / "local").iterdir()) == []
    assert (target / "data" / "kept.txt").read_text() == "a checkpoint"  # data stays: checkpoints resume
    assert not (target / "notebooks").exists()
    copy_project(PROJECT_ROOT, target, notebooks=True)
    assert (target / "notebooks" / "explore.ipynb").is_file()
