"""Kedro datasets: model folders in safetensors, raw trace files that are never appended or overwritten."""

import json

import pytest
import torch
from kedro.io import DatasetError

from tracesieve.datasets import HFModelDataset, HFTokenizerDataset, TraceFilesDataset
from tracesieve.modeling import build_llama
from tracesieve.world.tokenizer import build_word_tokenizer


def test_model_and_tokenizer_round_trip_as_safetensors_folders(tmp_path):
    tokenizer = build_word_tokenizer(["Tom has 3 apples."], numbers_up_to=10)
    model = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=64, seed=0)
    models, tokenizers = HFModelDataset(str(tmp_path / "model")), HFTokenizerDataset(str(tmp_path / "tok"))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "stale.bin").write_bytes(b"old shard")
    models.save(model)
    tokenizers.save(tokenizer)
    files = {path.name for path in (tmp_path / "model").iterdir()}
    assert "model.safetensors" in files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)  # no pickle, no stale shards
    reloaded = models.load()
    assert reloaded.config._attn_implementation == "sdpa"  # PyTorch's fused attention, not the eager loop
    assert HFModelDataset(str(tmp_path / "model"), attn_implementation="eager").load().config._attn_implementation == "eager"
    for (name, weight), (_, other) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(weight, other), name
    assert tokenizers.load()("Tom has 3 apples.")["input_ids"] == tokenizer("Tom has 3 apples.")["input_ids"]


def test_a_failed_save_names_the_path_and_leaves_the_previous_model_intact(tmp_path, monkeypatch):
    import errno

    tokenizer = build_word_tokenizer(["Tom has 3 apples."], numbers_up_to=10)
    model = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=64, seed=0)
    dataset = HFModelDataset(str(tmp_path / "model"))
    dataset.save(model)
    saved = {path.name: path.read_bytes() for path in (tmp_path / "model").iterdir()}
    other = build_llama(tokenizer, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, max_positions=64, seed=1)

    def full_disk(folder, **kwargs):
        (folder / "model.safetensors").write_bytes(b"half a shard")  # what a disk that fills up mid-write leaves
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(other, "save_pretrained", full_disk)
    with pytest.raises(DatasetError, match=rf"could not save {tmp_path / 'model'}: No space left on device.*previous folder is unchanged"):
        dataset.save(other)
    assert {path.name: path.read_bytes() for path in (tmp_path / "model").iterdir()} == saved
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model"]  # no half-written folder left behind
    reloaded = dataset.load()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values(), strict=True))


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"No model at .*absent"):
        HFModelDataset(str(tmp_path / "absent")).load()


def test_trace_files_are_read_only_unless_declared_writable(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"question": "Q", "solution": "S", "answer": "1"}) + "\n")
    with pytest.raises(DatasetError, match="read-only"):
        TraceFilesDataset(str(path)).save([{"question": "x"}])
    assert len(TraceFilesDataset(str(path)).load()) == 1


def test_writable_trace_file_is_replaced_not_appended(tmp_path):
    dataset = TraceFilesDataset(str(tmp_path / "world.jsonl"), writable=True)
    dataset.save([{"a": 1}, {"a": 2}])
    dataset.save([{"a": 1}, {"a": 2}])
    assert [record.record for record in dataset.load()] == [{"a": 1}, {"a": 2}]
