"""The project as a user checks it out, copied elsewhere to run ``kedro`` there without touching this
checkout's data, models or MLflow runs: what the default-run benchmark, each world of the experiment and the
end-to-end tests run in."""

from __future__ import annotations

import shutil
from pathlib import Path


def copy_project(source: Path, target: Path, *, notebooks: bool = False) -> Path:
    """``pyproject.toml``, ``src/`` and ``conf/`` (without ``conf/local``, which starts empty) of ``source``
    into ``target``, replacing any earlier copy of them there (its data stays: checkpoints resume);
    ``notebooks`` copies ``notebooks/`` too."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "pyproject.toml", target)
    folders = {"src": ("__pycache__", "*.egg-info"), "conf": ("local",)}
    if notebooks:
        folders["notebooks"] = (".ipynb_checkpoints",)
    for folder, ignored in folders.items():
        shutil.rmtree(target / folder, ignore_errors=True)
        shutil.copytree(source / folder, target / folder, ignore=shutil.ignore_patterns(*ignored))
    (target / "conf" / "local").mkdir(exist_ok=True)
    return target
