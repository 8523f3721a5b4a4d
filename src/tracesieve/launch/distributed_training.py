"""Fine-tuning and distillation across processes: DDP or FSDP through the transformers Trainer's own
Accelerate integration, launched by ``accelerate launch`` (or torchrun).

    accelerate launch --multi_gpu --num_processes 8 -m tracesieve.launch.distributed_training --env paper \\
        full_sft.train_variant selective_sft.train_variant random_sft.train_variant
    accelerate launch --config_file fsdp.yaml -m tracesieve.launch.distributed_training --env paper kd.distill_variant
    torchrun --nproc_per_node 2 -m tracesieve.launch.distributed_training selective_sft.train_variant   # 2 CPU processes (gloo)
    kedro run --env paper          # the training nodes find their finished checkpoints and load them

Every process loads the named node's inputs from the project's catalog and runs the node's own function,
so the data, the loss mask or distillation objective and the checkpoint key are exactly those of the Kedro
run. The Trainer sees the launcher's RANK/WORLD_SIZE and wraps the model in DDP (or FSDP, when Accelerate's
config says so); ``batch_size`` stays the global batch, split evenly across the processes, so a distributed
run optimises what the single-process run would and writes its checkpoints under the same key. The
process of rank 0 writes them; a killed launch, relaunched, resumes from the last one. The Kedro run
afterwards loads each finished run instead of training it again and saves, logs and evaluates it as usual.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

# The nodes whose functions train through the Trainer (tracesieve.training.train_causal_lm): the only ones
# a distributed launch speeds up. Anything else would just run N identical copies.
TRAINING_NODE_SUFFIXES = (".train_variant", ".distill_variant")


def training_nodes(pipelines, names: list[str]) -> list:
    """The named nodes, found in any of ``pipelines``; each must be a training node."""
    # Not one summed pipeline: composites (from_traces) hold report nodes wired differently under one name.
    by_name = {node.name: node for pipeline in pipelines for node in pipeline.nodes}
    available = sorted(name for name in by_name if name.endswith(TRAINING_NODE_SUFFIXES))
    chosen = []
    for name in names:
        if name not in by_name or not name.endswith(TRAINING_NODE_SUFFIXES):
            raise ValueError(f"{name!r} is not a training node of this project's pipelines; choose from {available}")
        chosen.append(by_name[name])
    return chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the project's training nodes under accelerate launch / torchrun (DDP or FSDP).")
    # Positional: the launchers' own parsers take any --node... prefix as their --node-rank.
    parser.add_argument("nodes", nargs="+", metavar="NODE", help="training nodes, e.g. selective_sft.train_variant kd.distill_variant")
    parser.add_argument("--env", default=None, help="Kedro environment whose catalog and parameters to use")
    parser.add_argument("--project", type=Path, default=Path.cwd(), help="the Kedro project folder (default: the current one)")
    args = parser.parse_args(argv)

    from accelerate import PartialState
    from kedro.framework.project import pipelines
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(args.project)
    with KedroSession.create(project_path=args.project, env=args.env) as session:
        context = session.load_context()  # records the env, so the registry builds this env's variants
        nodes = training_nodes(pipelines.values(), args.nodes)
        catalog = context.catalog
        for node in nodes:
            inputs = {name: catalog.load(name) for name in node.inputs}
            node.run(inputs)  # outputs are the Kedro run's to save: it loads this finished training
            # Asked only now: the Trainer's arguments set up the process group (gloo on CPU), and
            # Accelerate's state is a singleton that an earlier default construction would have fixed.
            state = PartialState()
            print(f"process {state.process_index}/{state.num_processes}: {node.name} trained", flush=True)


if __name__ == "__main__":
    main()
