"""Attribution sharded across processes, through Hugging Face Accelerate (torchrun underneath).

    accelerate launch --multi_gpu --num_processes 8 -m tracesieve.launch.shard_attribution --env paper   # 8 GPUs
    torchrun --nproc_per_node 2 -m tracesieve.launch.shard_attribution                               # 2 CPU processes
    kedro run --env paper --pipeline from_traces      # attribution finds every trace done

Every process loads the ``attribution`` stage's inputs from the project's catalog (``traces``,
``teacher.model``, ``tokenizer``, ``params:attribution``, ``attribution_store``; the segments, which steer
the refinement, are cut from ``params:segmentation`` exactly as the segmentation stage cuts them), takes the traces at
positions rank, rank + world_size, ... and attributes them on its own device, writing each finished trace
to the attribution store as one file. The shards are disjoint, so no two processes write the same file, and
the store's folder is the union of the partitions. The Kedro stage run afterwards serves every trace from
the store (``attribution.traces_resumed``) and assembles the table that selection reads. A killed shard
run, relaunched, skips what any process had finished, exactly as a single-process run resumes.
``accelerate launch`` runs torchrun underneath for GPUs; on CPUs it starts a single process unless MPI is
configured, so CPU sharding is launched with torchrun directly (gloo).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd
import torch

from tracesieve.attribution import attribute_traces
from tracesieve.modeling import resolve_device, resolve_dtype
from tracesieve.result_store import ResultStore
from tracesieve.segmentation import segment_traces

logger = logging.getLogger(__name__)


def shard(traces: pd.DataFrame, rank: int, world_size: int) -> pd.DataFrame:
    """The traces process ``rank`` of ``world_size`` attributes: every world_size-th row from ``rank``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size} processes")
    return traces.iloc[rank::world_size]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Attribute the project's traces, one shard per process (accelerate launch).")
    parser.add_argument("--env", default=None, help="Kedro environment whose catalog and parameters to use")
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the Kedro project folder (default: the current one)")
    parser.add_argument("--store", type=Path, default=None, help="write to this store folder instead of the catalog's attribution_store")
    args = parser.parse_args(argv)

    from accelerate import PartialState  # the launcher's RANK/WORLD_SIZE; a plain `python -m` is one process
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    # On CPU, Accelerate forms a gloo group only when told the processes are CPU ones.
    state = PartialState(cpu=not torch.cuda.is_available())
    bootstrap_project(args.project)
    with KedroSession.create(project_path=args.project, env=args.env) as session:
        context = session.load_context()
        catalog = context.catalog
        config = catalog.load("params:attribution")  # validated by Kedro: an AttributionConfig
        traces = catalog.load("traces")
        model = catalog.load("teacher.model")
        tokenizer = catalog.load("tokenizer")
        segments = segment_traces(traces, tokenizer, catalog.load("params:segmentation"))
        selection = catalog.load("params:selection")
        store = ResultStore(args.store) if args.store else catalog.load("attribution_store")
    # Accelerate names this process's device: its own GPU under a multi-GPU launch, else the CPU.
    device = state.device if config.device == "auto" else resolve_device(config.device)
    model = model.to(device=device, dtype=resolve_dtype(config.dtype, device))
    mine = shard(traces, state.process_index, state.num_processes)
    logger.info("Process %d of %d: %d of %d traces on %s", state.process_index, state.num_processes, len(mine), len(traces), device)
    run = attribute_traces(mine, model, tokenizer, config, store, segments, selection)
    print(
        f"shard {state.process_index}/{state.num_processes}: {len(run.attributions)} attributed "
        f"({run.resumed} resumed, {run.computed} computed), {len(run.rejects)} rejected",
        flush=True,
    )
    state.wait_for_everyone()


if __name__ == "__main__":
    main()
