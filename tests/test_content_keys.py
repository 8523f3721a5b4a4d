"""Content keys: one function names every store and checkpoint, and it gives the names the project's
stores and checkpoints had before, so finished work from earlier runs is still found."""

import hashlib
import json

from tests.conftest import byte_level_bpe
from tracesieve.content_keys import content_key, tokenizer_digest, trace_key, weights_digest
from tracesieve.modeling import build_llama


def _model(tokenizer, seed):
    return build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=64, seed=seed)


def test_keys_are_the_hashes_each_store_and_checkpoint_used_before():
    tokenizer = byte_level_bpe()
    teacher, student = _model(tokenizer, 0), _model(tokenizer, 1)
    settings = {"steps": 16, "method": "adaptive"}
    items = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}]

    def old(*parts, length):  # settings JSON, then each part in order, as every hand-written key did
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
        for part in parts:
            digest.update(part.encode())
        return digest.hexdigest()[:length]

    # attribution store, LeaF gradient store, fine-tuning and distillation checkpoints, warm-up checkpoints
    assert content_key(settings, models=[teacher], tokenizers=[tokenizer]) == old(weights_digest(teacher), tokenizer_digest(tokenizer), length=16)
    assert content_key(settings, models=[teacher, student], tokenizers=[tokenizer, tokenizer]) == old(
        weights_digest(teacher), weights_digest(student), tokenizer_digest(tokenizer), tokenizer_digest(tokenizer), length=16
    )
    assert content_key(settings, models=[student], data=items, length=12) == old(weights_digest(student), json.dumps(items), length=12)
    assert content_key(settings, models=[teacher, student], data=items, length=12) == old(
        weights_digest(teacher), weights_digest(student), json.dumps(items), length=12
    )
    assert content_key(settings, length=12) == old(length=12)


def test_any_change_to_what_went_in_changes_the_key():
    tokenizer = byte_level_bpe()
    model = _model(tokenizer, 0)
    key = content_key({"a": 1}, models=[model], tokenizers=[tokenizer], data=[1])
    assert key == content_key({"a": 1}, models=[_model(tokenizer, 0)], tokenizers=[tokenizer], data=[1])  # same content
    assert key != content_key({"a": 2}, models=[model], tokenizers=[tokenizer], data=[1])
    assert key != content_key({"a": 1}, models=[_model(tokenizer, 1)], tokenizers=[tokenizer], data=[1])
    assert key != content_key({"a": 1}, models=[model], tokenizers=[tokenizer], data=[2])
    templated = byte_level_bpe()
    templated.chat_template = "{{ messages }}"
    assert key != content_key({"a": 1}, models=[model], tokenizers=[templated], data=[1])
    assert trace_key("t", "q", "r", "a") != trace_key("t", "q", "r", "b") and len(trace_key("t", "q", "r", "a")) == 24
