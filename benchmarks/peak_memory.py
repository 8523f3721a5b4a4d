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
