"""Peak memory of one measurement, shared by the benchmarks: on CUDA the allocator's counters, on CPU the
process's resident set (VmRSS now, VmHWM since the last reset through /proc/self/clear_refs). Bytes."""

from __future__ import annotations

import torch


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))  # kB


def memory_now(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.memory_allocated()
    return _proc_status_bytes("VmRSS")


def reset_peak(device: str) -> None:
    """Measure the peak from here on (what was allocated before, e.g. building the model, does not count)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current resident set


def peak(device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return _proc_status_bytes("VmHWM")


def measure_in_fresh_process(script: str, job: dict) -> dict:
    """Run ``script --worker <job as JSON>`` in a new Python process, so that one measurement's peak is its
    own; returns the row it printed (``RESULT {...}``), or the job with the last line of its error."""
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, script, "--worker", json.dumps(job)], capture_output=True, text=True, check=False,
                          env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        return {**job, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(lines[-1][len("RESULT "):])


def step_clock(device: str):
    """A Trainer callback that records when each optimiser step ends (the GPU synchronised first);
    ``steady_seconds()`` is the mean step time after the first, which warms up."""
    import time

    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_end(self, args, state, control, **kwargs):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

        def steady_seconds(self) -> float:
            steady = [later - earlier for earlier, later in zip(self.times, self.times[1:])]
            return sum(steady) / len(steady) if steady else float("nan")

    return StepClock()
