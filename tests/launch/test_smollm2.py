"""Converting SmolLM2's GGUF once: concurrent callers wait for one conversion, never read a half-written one."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest

from tracesieve.launch import smollm2

WEIGHTS = b"converted weights"


@pytest.fixture
def fake_conversion(tmp_path, monkeypatch):
    """A GGUF file and a converter that takes a while and counts its calls; the expected hashes are theirs."""
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"gguf")
    calls = []

    def convert(_gguf, output_dir):
        calls.append(output_dir)
        output_dir.mkdir(parents=True)
        time.sleep(0.3)  # long enough for a second caller to arrive mid-conversion
        (output_dir / "model.safetensors").write_bytes(WEIGHTS)

    monkeypatch.setattr(smollm2, "convert_gguf_checkpoint", convert)
    monkeypatch.setattr(smollm2, "GGUF_SHA256", hashlib.sha256(b"gguf").hexdigest())
    monkeypatch.setattr(smollm2, "WEIGHTS_SHA256", hashlib.sha256(WEIGHTS).hexdigest())
    return gguf, calls


def test_two_callers_at_once_get_one_conversion(tmp_path, fake_conversion):
    gguf, calls = fake_conversion
    output = tmp_path / "models" / "smollm2"
    results, errors = [], []

    def prepare():
        try:
            folder = smollm2.prepare_smollm2(output, gguf_path=gguf)
            results.append((folder / "model.safetensors").read_bytes())  # complete the moment it is returned
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)

    threads = [threading.Thread(target=prepare) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [WEIGHTS, WEIGHTS]
    assert len(calls) == 1 and calls[0].name.endswith(".partial")  # written aside, then renamed into place
    assert not (tmp_path / "models" / "smollm2.partial").exists()


def test_a_folder_with_other_files_is_never_overwritten(tmp_path, fake_conversion):
    gguf, calls = fake_conversion
    output = tmp_path / "smollm2"
    output.mkdir()
    (output / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds files but no model.safetensors"):
        smollm2.prepare_smollm2(output, gguf_path=gguf)
    assert (output / "notes.txt").read_text() == "mine" and not calls
