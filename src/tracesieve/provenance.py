"""What produced a result file: the commit, the machine, the command, the settings and the wall time.

Every JSON under ``benchmarks/results/`` carries one ``provenance`` block built here, and the results
documents (``python -m tracesieve.launch.results``) print each table under it, so that a reader can tell
which code and which machine a figure describes, and whether that code has changed since.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_IMPORTED_AT = time.perf_counter()  # a benchmark imports this first: the default wall time is its run's


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return done.stdout.strip()


def git_state(root: Path = PROJECT_ROOT) -> dict:
    """The checked-out commit and whether tracked files differ from it (``dirty``); None outside git."""
    commit = _git(root, "rev-parse", "HEAD")
    # The result files are what a benchmark writes as it goes: they do not make the measured code dirty.
    status = _git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/results")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def machine(device: str | None = None) -> dict:
    """The machine a measurement ran on: CPU model, cores, memory, Python, torch and the device used."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": gpu or device,
    }


def matmul_gflops(device: str = "cpu", dtype=None, size: int = 1024, repeats: int = 5) -> float:
    """This machine's dense matmul rate in GFLOP/s, measured now (best of ``repeats``): the unit a timing
    here is read in, since machines of one kind differ in speed by up to 2x."""
    import torch

    dtype = dtype or torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def config_hash(config) -> str:
    """A digest of the settings a result was measured under (any JSON-able value; keys sorted)."""
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _invocation(root: Path) -> list[str]:
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(root) if script.is_relative_to(root) else script
    return ["python", str(shown), *sys.argv[1:]]


def stamp(
    *,
    config,
    wall_seconds: float | None = None,
    command: Sequence[str] | None = None,
    device: str | None = None,
    root: Path = PROJECT_ROOT,
) -> dict:
    """The ``provenance`` block of a result file, taken when the measurement ends. ``wall_seconds``
    defaults to the time since this module was imported (the benchmark's whole run)."""
    if wall_seconds is None:
        wall_seconds = time.perf_counter() - _IMPORTED_AT
    return {
        **git_state(root),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(device),
        "command": " ".join(command if command is not None else _invocation(root)),
        "config_hash": config_hash(config),
        "wall_seconds": round(float(wall_seconds), 1),
        "recorded_by": "benchmark",
    }
