"""Device and dtype resolution (``auto`` in the parameters) and the global batch split over processes."""

import pytest
import torch

from tracesieve.modeling import resolve_device, resolve_dtype
from tracesieve.training import per_process_batch_size


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_auto_picks_the_cpu_and_float32_without_a_gpu_and_cuda_is_refused_not_faked():
    device = resolve_device("auto")
    assert device.type == "cpu"
    assert resolve_dtype("auto", device) is torch.float32
    assert resolve_dtype("bfloat16", device) is torch.bfloat16  # an explicit dtype is honoured
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_the_global_batch_is_split_evenly_over_the_launched_processes(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert per_process_batch_size(16) == 16
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert per_process_batch_size(16) == 4
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="batch_size 16 does not split evenly over 3 processes"):
        per_process_batch_size(16)
