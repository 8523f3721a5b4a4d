"""Supervised fine-tuning of causal LMs on rendered reasoning examples, through TRL's SFTTrainer.

The loss goes where the labels say: the prompt is always masked (-100), the reasoning is supervised on the
given character spans (all of it by default), and the answer suffix and EOS are always supervised. TRL
keeps a pre-tokenised ``labels`` column as given and scores it through a fused LM head that rebuilds the
logits in the backward pass instead of keeping them: on CUDA it projects only the supervised positions (a
Triton kernel); elsewhere its torch fallback projects every position in 4,096 x 32,768 tiles, which on CPU
takes more memory than the plain Trainer did (benchmarks/results/long_trace_bench_cpu.json). TRL's own
``max_length`` (1024, keep_start) would cut late segments silently; it is off, and ``max_length`` /
``over_length`` here reject a long trace with its length or stop the run. Checkpoints are written to ``output_dir`` so that a killed run
resumes where it stopped. LoRA goes through peft and is merged back after training, so every trained model
is a plain model folder.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainerState, set_seed
from transformers.trainer_pt_utils import get_length_grouped_indices
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import SFTConfig, SFTTrainer

from tracesieve.choices import OVER_LENGTH_POLICIES
from tracesieve.content_keys import content_key
from tracesieve.rendering import render_example, tokenize_with_offsets

if TYPE_CHECKING:  # the schemas live at the edge; training reads their fields
    from tracesieve.config import FineTuningConfig, LoraSettings, TrainingConfig

IGNORE_INDEX = -100
logger = logging.getLogger(__name__)


def encode_for_sft(
    tokenizer,
    question: str,
    reasoning: str,
    answer: str,
    *,
    supervised_spans: Sequence[tuple[int, int]] | None = None,
) -> dict[str, list[int]]:
    """Token ids and labels for one example.

    ``supervised_spans`` are character spans of ``reasoning`` that carry loss (None: the whole reasoning).
    A token is supervised when its first character lies in a supervised span; token positions come from
    the tokenizer's offset mapping, never from re-tokenising prefixes. EOS is appended and supervised.
    """
    rendered = render_example(tokenizer, question, reasoning, answer)
    input_ids, offsets = tokenize_with_offsets(tokenizer, rendered.text)
    if supervised_spans is None:
        supervised_spans = [(0, len(reasoning))]
    spans = [(rendered.reasoning_start + start, rendered.reasoning_start + end) for start, end in supervised_spans]
    spans.append((rendered.reasoning_end, len(rendered.text)))  # answer suffix: always supervised

    labels = []
    for token_id, (start, _end) in zip(input_ids, offsets, strict=True):
        supervised = start >= rendered.prompt_end and any(lo <= start < hi for lo, hi in spans)
        labels.append(token_id if supervised else IGNORE_INDEX)
    input_ids.append(tokenizer.eos_token_id)
    labels.append(tokenizer.eos_token_id)
    return {"input_ids": input_ids, "labels": labels}


LENGTH_REJECT_COLUMNS = ["trace_id", "tokens", "max_length", "reason"]


def within_length(
    trace_ids: Sequence[str], lengths: Sequence[int], max_length: int | None, over_length: str, setting: str
) -> tuple[list[bool], pd.DataFrame]:
    """Which traces fit ``max_length`` tokens, and a rejects table (trace, tokens, limit, reason) of those
    that do not. Nothing is ever cut: with ``over_length`` "stop" a long trace stops the run with its length;
    with "reject" it is left out of training and lands in the table. ``setting`` names the key to change."""
    if over_length not in OVER_LENGTH_POLICIES:
        raise ValueError(f"over_length must be one of {OVER_LENGTH_POLICIES}, got {over_length!r}")
    keep = [max_length is None or length <= max_length for length in lengths]
    too_long = [(trace_id, length) for trace_id, length, fits in zip(trace_ids, lengths, keep, strict=True) if not fits]
    if too_long and over_length == "stop":
        shown = ", ".join(f"{trace_id!r} ({length} tokens)" for trace_id, length in too_long[:5])
        raise ValueError(
            f"{len(too_long)} traces are over {setting}.max_length={max_length}: {shown}. Raise the limit, or set "
            f"{setting}.over_length: reject to leave them out (they are listed in the length_rejects table)."
        )
    rejects = pd.DataFrame(
        [(trace_id, length, max_length, "over_max_length") for trace_id, length in too_long], columns=LENGTH_REJECT_COLUMNS
    )
    return keep, rejects


def supervised_token_count(examples: Sequence[dict[str, list[int]]]) -> int:
    """Tokens that carry loss (labels other than -100), EOS included."""
    return sum(sum(label != IGNORE_INDEX for label in example["labels"]) for example in examples)


def selective_sft_examples(
    tokenizer, traces: pd.DataFrame, selections: pd.DataFrame, strategy: str
) -> tuple[list[str], list[dict[str, list[int]]]]:
    """Encoded examples supervised on one selection strategy's loss-mask spans; returns (trace ids, examples).

    Every strategy covers the same traces in the same order (those with a selection), so variants differ
    only in their labels (a length limit, which reads the tokens only, leaves out the same traces of each).
    A trace whose selection is empty still supervises its answer and EOS.
    """
    chosen = selections[selections["strategy"] == strategy]
    if chosen.empty:
        present = sorted(selections["strategy"].unique())
        raise ValueError(f"selections have no rows for strategy {strategy!r} (present: {present}); add it to selection.strategies")
    if chosen["trace_id"].duplicated().any():
        raise ValueError(f"selections hold several rows per trace for strategy {strategy!r}")
    merged = chosen.merge(traces, on="trace_id", how="left", validate="one_to_one", indicator=True)
    missing = merged.loc[merged["_merge"] != "both", "trace_id"].tolist()
    if missing:
        raise ValueError(f"{len(missing)} selected traces are not in the traces table, e.g. {missing[:3]}; re-run ingestion and selection")
    merged = merged.sort_values("trace_id", kind="stable")
    examples = [
        encode_for_sft(
            tokenizer,
            row.question,
            row.reasoning,
            row.answer,
            supervised_spans=[tuple(span) for span in row.mask_char_spans],
        )
        for row in merged.itertuples(index=False)
    ]
    return merged["trace_id"].tolist(), examples


def _with_lora(model, settings: LoraSettings):
    from peft import LoraConfig, get_peft_model  # optional at import time: only LoRA runs need peft

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [name for name in settings.target_modules if name in present]
    if not targets:
        raise ValueError(f"none of the LoRA target modules {list(settings.target_modules)} exist in {type(model).__name__}")
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=targets, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def per_process_batch_size(batch_size: int) -> int:
    """``batch_size`` is the global batch: under a distributed launch (torchrun / accelerate launch set
    WORLD_SIZE) each process takes an equal share, so DDP or FSDP optimises what one process would."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} does not split evenly over {world_size} processes; make it a multiple of {world_size}")
    return batch_size // world_size


def training_order(lengths: Sequence[int], batch_size: int, max_steps: int, seed: int) -> list[int]:
    """Every example index a run of ``max_steps`` batches reads, in order: epoch after epoch, a permutation
    seeded by (seed, epoch) and grouped by length (transformers' ``get_length_grouped_indices``, what its
    ``group_by_length`` sampler draws), cut at ``max_steps * batch_size``.

    A pure function of its arguments. The Trainer's own sampler draws each epoch's permutation from the
    global torch RNG when the epoch starts, which a resumed process has in another state (the checkpoint's
    RNG is restored only after the skipped batches): resumed after the first epoch, it read other batches
    and ended with other weights. Trained on this order with a sequential sampler, a resumed run skips the
    batches it has done and reads exactly what an uninterrupted one reads.
    """
    needed = max_steps * batch_size
    order: list[int] = []
    epoch = 0
    while len(order) < needed:
        generator = torch.Generator().manual_seed(int(content_key({"seed": seed, "epoch": epoch}, length=12), 16))
        order.extend(get_length_grouped_indices(list(lengths), batch_size, generator=generator))
        epoch += 1
    return order[:needed]


def train_causal_lm(
    model,
    examples: Sequence[dict[str, list[int]]],
    config: TrainingConfig,
    *,
    output_dir: str | Path,
    tokenizer,
    callbacks: Sequence[TrainerCallback] = (),
    collator=None,
    trainer_class: type[Trainer] = SFTTrainer,
    arguments_class: type[SFTConfig] = SFTConfig,
    arguments: dict | None = None,
    trainer_kwargs: dict | None = None,
):
    """Train ``model`` on encoded ``examples``; returns (the trained model, the logged loss history).

    The default is masked SFT on ``labels`` through TRL's SFTTrainer. Another objective extends TRL at its
    seams, as TRL's own GKD does: a ``trainer_class`` subclassing SFTTrainer whose ``compute_loss`` implements
    it, an ``arguments_class`` subclassing SFTConfig that holds its settings (``arguments``), its
    ``collator``, and what its constructor takes beyond SFTTrainer's (``trainer_kwargs``: a teacher model).
    ``examples`` are used as they are: no truncation, no re-tokenisation.

    Without LoRA the model is trained in place and returned; with LoRA the adapters are merged and the
    merged plain model is returned. Resumes from the last checkpoint in ``output_dir`` if there is one, so
    a run killed mid-way redoes at most ``save_steps`` steps; a finished run found there does no steps.
    """
    output_dir = Path(output_dir)
    if config.lora is not None:
        model = _with_lora(model, config.lora)
    output_dir.mkdir(parents=True, exist_ok=True)
    order = training_order([len(example["input_ids"]) for example in examples], config.batch_size, config.max_steps, config.seed)
    ordered = [examples[index] for index in order]
    training_arguments = arguments_class(
        output_dir=str(output_dir),
        max_steps=config.max_steps,
        per_device_train_batch_size=per_process_batch_size(config.batch_size),
        learning_rate=config.learning_rate,
        # No forced warm-up step: with one, a 1-step run trains at learning rate 0 and changes nothing.
        warmup_steps=int(config.warmup_ratio * config.max_steps),
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler,
        # The examples come in training_order (batches of similar lengths, a pure function of the seed).
        train_sampling_strategy="sequential",
        logging_steps=config.logging_steps,
        save_steps=config.save_steps,
        save_total_limit=2,  # the one before the last stays until the run ends: a truncated last one has a fallback
        save_only_model=False,
        seed=config.seed,
        data_seed=config.seed,
        report_to=[],
        dataloader_num_workers=0,
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False,  # the collator decides what a batch holds
        disable_tqdm=False,
        # Set explicitly: TRL's defaults turn both on.
        bf16=config.bf16_enabled,
        activation_checkpointing=config.gradient_checkpointing,
        max_length=None,  # TRL would cut at 1024 tokens, keeping the start; the length policy ran before
        packing=False,
        shuffle_dataset=False,  # the sampler groups by length from the trainer's seed
        dataset_kwargs={"skip_prepare_dataset": True},  # the encoded examples are final
        **(arguments or {}),
    )
    trainer = trainer_class(
        model=model,
        args=training_arguments,
        train_dataset=examples_table(ordered),
        processing_class=tokenizer,
        data_collator=collator,  # None: TRL's, which pads labels with -100 and keeps them as given
        callbacks=list(callbacks),
        **(trainer_kwargs or {}),
    )
    last_checkpoint = last_good_checkpoint(output_dir, config.max_steps)
    state = TrainerState.load_from_json(str(Path(last_checkpoint) / "trainer_state.json")) if last_checkpoint else None
    if state is not None and state.global_step >= config.max_steps:
        # A finished run is loaded, not resumed: the Trainer, resumed at max_steps part-way through an
        # epoch, trains on (measured with transformers 5.23: each rerun added max_steps more steps).
        logger.info("Training already finished at step %d in %s: loading it", state.global_step, last_checkpoint)
        load_checkpoint_weights(model, Path(last_checkpoint))
        trainer.state = state
    else:
        if last_checkpoint:
            logger.info("Resuming training from %s", last_checkpoint)
        trainer.train(resume_from_checkpoint=last_checkpoint)
    _drop_resume_state(output_dir, config.max_steps)
    if config.lora is not None:
        model = model.merge_and_unload()
    if config.gradient_checkpointing and hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()  # generation after training should not pay for it
    model.eval()
    # The state's log history includes what a resumed-from checkpoint had logged before the crash.
    history = [
        {"step": entry["step"], "loss": float(entry["loss"]), "learning_rate": float(entry.get("learning_rate", math.nan))}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    return model, history


def examples_table(examples: Sequence[dict]) -> Dataset:
    """The examples as a datasets table with every key any of them has, None where one lacks it.

    ``Dataset.from_list`` takes its columns from the first example alone: a key the first lacks (LeaF's
    counterfactual, which only some items have) would be dropped from every row, silently."""
    keys = list(dict.fromkeys(key for example in examples for key in example))
    return Dataset.from_list([{key: example.get(key) for key in keys} for example in examples])


def load_checkpoint_weights(model, checkpoint: Path) -> None:
    """The weights a Trainer checkpoint holds, into ``model`` (LoRA adapters into a peft model): what a
    finished run is loaded from. Weights tied to others (an LM head tied to the embeddings) are not in the
    file; any other missing or unexpected weight is an error naming the checkpoint."""
    from safetensors.torch import load_file

    adapters = checkpoint / "adapter_model.safetensors"
    if adapters.is_file():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(str(adapters)))
        return
    missing, unexpected = model.load_state_dict(load_file(str(checkpoint / "model.safetensors")), strict=False)
    # A tied weight is a second name of a parameter: named_parameters() lists each parameter once.
    tied = {name for name, _ in model.named_parameters(remove_duplicate=False)} - {name for name, _ in model.named_parameters()}
    if unexpected or set(missing) - tied:
        raise ValueError(f"{checkpoint}: the checkpoint does not fit the model (missing {sorted(set(missing) - tied)}, unexpected {unexpected})")


# What only resuming an unfinished run reads: a finished checkpoint keeps its weights and state (the
# "already finished" load) and drops these, which are twice the weights' size with Adam.
RESUME_ONLY_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt")


def _drop_resume_state(output_dir: Path, max_steps: int) -> None:
    """Bound the disk a finished run keeps: its last checkpoint, if it is the finished one, loses the
    optimizer and scheduler state, and the checkpoints before it go (a run that could still resume keeps all)."""
    checkpoints = _checkpoints(output_dir)
    if not checkpoints or int(os.environ.get("RANK", "0")) != 0:
        return
    last, *older = checkpoints
    if TrainerState.load_from_json(str(last / "trainer_state.json")).global_step < max_steps:
        return
    for name in RESUME_ONLY_FILES:
        (last / name).unlink(missing_ok=True)
    for checkpoint in older:
        shutil.rmtree(checkpoint, ignore_errors=True)


def _checkpoints(output_dir: Path) -> list[Path]:
    """``checkpoint-<step>`` folders, the latest first."""
    found = [path for path in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*") if path.is_dir() and path.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda path: int(path.name.split("-")[-1]), reverse=True)


def checkpoint_fault(checkpoint: Path, max_steps: int) -> str | None:
    """Why a checkpoint cannot be resumed from (a crash or a full disk while it was written), or None: its
    state must parse, its weights' safetensors header must fit the file, and, unless the run it holds is
    finished, its optimizer state must be a whole archive."""
    try:
        state = TrainerState.load_from_json(str(checkpoint / "trainer_state.json"))
    except (OSError, ValueError) as error:
        return f"trainer_state.json unreadable ({error})"
    weights = sorted(checkpoint.glob("*.safetensors"))
    if not weights:
        return "no safetensors weights"
    for path in weights:
        try:
            complete = _safetensors_complete(path)
        except (OSError, ValueError) as error:  # a header cut short is not JSON
            return f"{path.name} unreadable ({error})"
        if not complete:
            return f"{path.name} is cut short"
    if state.global_step < max_steps and (checkpoint / "optimizer.pt").exists():
        try:
            with zipfile.ZipFile(checkpoint / "optimizer.pt"):
                pass
        except zipfile.BadZipFile:
            return "optimizer.pt is cut short"
    elif state.global_step < max_steps:
        return "no optimizer.pt"
    return None


def _safetensors_complete(path: Path) -> bool:
    """Whether the file holds every byte its header declares (a cut file ends before its last tensor)."""
    with path.open("rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(header_size))
    data_end = max((entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0)
    return path.stat().st_size >= 8 + header_size + data_end


def last_good_checkpoint(output_dir: Path, max_steps: int) -> str | None:
    """The latest checkpoint a run can resume from. A damaged one (``checkpoint_fault``) is removed with a
    warning that names it and why, and the run goes back to the one before it, or starts afresh."""
    for checkpoint in _checkpoints(output_dir):
        fault = checkpoint_fault(checkpoint, max_steps)
        if fault is None:
            return str(checkpoint)
        logger.warning("Checkpoint %s is damaged (%s): removed; resuming from the one before it, if any", checkpoint, fault)
        shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def sft_checkpoint_dir(config: FineTuningConfig, strategy: str, base_model, examples: list[dict]) -> Path:
    """A folder keyed by the base weights, the training data with its labels and the settings: resuming
    from it is always safe, and a change to any of them starts afresh."""
    settings = config.model_dump(exclude={"variants", "strategies", "checkpoint_dir"})
    key = content_key(settings, models=[base_model], data=examples, length=12)
    return Path(config.checkpoint_dir) / f"sft-{strategy}-{key}"


def fine_tune_variant(base_model, tokenizer, traces: pd.DataFrame, selections: pd.DataFrame, strategy: str, config: FineTuningConfig):
    """Masked SFT of ``base_model`` on every selected trace with the loss on one selection ``strategy`` only;
    returns (the model, its loss history, a summary: supervised tokens and share, steps, seconds, final loss,
    and the length rejects: traces over ``max_length`` left out under ``over_length: reject``).

    Every variant starts from the same base with the same seed, traces, order and steps; they differ only
    in their labels.
    """
    trace_ids, examples = selective_sft_examples(tokenizer, traces, selections, strategy)
    keep, rejects = within_length(
        trace_ids, [len(example["input_ids"]) for example in examples], config.max_length, config.over_length, "fine_tuning"
    )
    trace_ids = [trace_id for trace_id, fits in zip(trace_ids, keep, strict=True) if fits]
    examples = [example for example, fits in zip(examples, keep, strict=True) if fits]
    if not examples:
        raise ValueError(f"every trace is over fine_tuning.max_length={config.max_length}: nothing is left to train on")
    if len(rejects):
        logger.warning("%d traces over fine_tuning.max_length=%d left out of SFT (length_rejects)", len(rejects), config.max_length)
    output_dir = sft_checkpoint_dir(config, strategy, base_model, examples)
    set_seed(config.seed)
    started = time.perf_counter()
    model, history = train_causal_lm(base_model, examples, config, output_dir=output_dir, tokenizer=tokenizer)
    seconds = time.perf_counter() - started
    supervised = supervised_token_count(examples)
    total = sum(len(example["input_ids"]) for example in examples)
    logger.info(
        "SFT on the %s mask: %d traces, %d supervised tokens of %d, %d steps in %.0f s",
        strategy, len(examples), supervised, total, config.max_steps, seconds,
    )
    summary = {
        "strategy": strategy,
        "train_traces": len(trace_ids),
        "length_rejects": len(rejects),
        "supervised_tokens": supervised,
        "supervised_token_share": supervised / max(1, total),
        "train_steps": config.max_steps,
        "train_seconds": seconds,
        "final_train_loss": history[-1]["loss"] if history else float("nan"),
    }
    return model, history, summary, rejects
