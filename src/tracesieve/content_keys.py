"""Content keys: what a stored result or checkpoint was made from (weights, tokenizers, settings, data),
hashed into a short name, so resuming from it is always safe and any change starts afresh.

Every store and checkpoint folder of the project is named here and only here: attribution and LeaF's
gradient comparison (``ResultStore`` fingerprints and per-trace keys), fine-tuning, distillation and the
world's warm-up training (checkpoint folders).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import torch


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every tensor of the state dict, names included: two models hash equal iff their weights do."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """sha256 of what decides how text becomes tokens: the tokenizer's definition and its chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    digest = hashlib.sha256((backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)).encode())
    digest.update((tokenizer.chat_template or "").encode())
    return digest.hexdigest()


def content_key(
    settings: Any,
    *,
    models: Sequence[torch.nn.Module] = (),
    tokenizers: Sequence[Any] = (),
    data: Any = None,
    length: int = 16,
) -> str:
    """A ``length``-character hex key of ``settings`` (JSON, keys sorted), then each model's weights, then each
    tokenizer, then ``data`` (JSON: e.g. the encoded training examples), in that order."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for model in models:
        digest.update(weights_digest(model).encode())
    for tokenizer in tokenizers:
        digest.update(tokenizer_digest(tokenizer).encode())
    if data is not None:
        digest.update(json.dumps(data).encode())
    return digest.hexdigest()[:length]


def trace_key(trace_id: str, question: str, reasoning: str, answer: str) -> str:
    """A stored per-trace result's name: its id and content, so an edited trace is never served stale."""
    return hashlib.sha256(json.dumps([trace_id, question, reasoning, answer]).encode()).hexdigest()[:24]
