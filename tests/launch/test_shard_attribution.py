"""Attribution sharded over processes: each process takes a disjoint share of the traces. (The 2-process
torchrun launch itself runs in tests/test_project_run.py, on the tiny world's project.)"""

import pandas as pd
import pytest

from tracesieve.launch.shard_attribution import shard


def test_shards_are_disjoint_and_cover_every_trace():
    traces = pd.DataFrame({"trace_id": [f"t{index}" for index in range(7)]})
    parts = [shard(traces, rank, 3)["trace_id"].tolist() for rank in range(3)]
    assert parts == [["t0", "t3", "t6"], ["t1", "t4"], ["t2", "t5"]]
    with pytest.raises(ValueError, match="rank 3 is outside a world of 3"):
        shard(traces, 3, 3)
