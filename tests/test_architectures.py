"""Every model family of config/paper.yaml, end to end, on tiny random models built here.

config/paper.yaml studies Qwen2.5 models (Qwen2ForCausalLM) and the default strong model is
SmolLM2 (LlamaForCausalLM). Neither family's real weights can be fetched here, so each is built
from its architecture class with tiny dimensions and random weights (seeded), saved as safetensors
and used through `path:` model specs: nothing is downloaded.

Tokenizers: the Llama model reuses SmolLM2's own tokenizer and chat template (the prepared default
model's). The Qwen2 model gets a transformers `Qwen2Tokenizer` (Qwen2's pre-tokenizer regex and NFC
normaliser, no BOS, `<|endoftext|>` padding, `<|im_end|>` as EOS) built from SmolLM2's byte-level
BPE vocabulary and merges, with Qwen2.5-Instruct's ChatML template and its default system prompt.

One study runs every stage on both models, each as weak (probe) and as strong (LoRA); unit checks
cover what differs per architecture: label-word tokenisation, chat rendering, LoRA targets and
where the head reads the model.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TEXTS

pytestmark = pytest.mark.slow

# Qwen2.5-Instruct's template without its tool-calling branches.
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + QWEN_SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
SMOLLM_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

USER_TURN = "<|im_end|>\n<|im_start|>user\n"
ASSISTANT_TURN = "<|im_end|>\n<|im_start|>assistant\n"

# Per model: its architecture, blocks (so `middle` and `last` differ between them) and what its
# chat template renders before and after a user message.
ARCHS = {
    "qwen2-tiny": {"architecture": "Qwen2ForCausalLM", "n_layers": 2, "tokenizer": "Qwen2Tokenizer",
                   "chat": ("<|im_start|>system\n" + QWEN_SYSTEM + USER_TURN, ASSISTANT_TURN)},
    "llama-tiny": {"architecture": "LlamaForCausalLM", "n_layers": 4, "tokenizer": None,
                   "chat": ("<|im_start|>system\n" + SMOLLM_SYSTEM + USER_TURN, ASSISTANT_TURN)},
}
DIMS = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 512}
LORA_TARGETS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
LABEL_NAMES = ["no", "yes"]  # the default label words of a local dataset


def _smollm_tokenizer(prepared_models: Path):
    from transformers import AutoTokenizer

    folder = prepared_models / "smollm2-135m"
    manifest = json.loads((folder / "w2s_model.json").read_text())
    return AutoTokenizer.from_pretrained(manifest.get("weights_dir", folder), local_files_only=True)


def _qwen2_tokenizer(smollm):
    """A Qwen2Tokenizer over SmolLM2's byte-level BPE (both are GPT-2 style byte-level BPEs)."""
    from transformers import Qwen2Tokenizer

    model = json.loads(smollm.backend_tokenizer.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, unk_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>",
                               additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    tokenizer.chat_template = QWEN_TEMPLATE
    return tokenizer


def build_tiny_models(root: Path, prepared_models: Path) -> dict[str, Path]:
    """Both families as tiny random safetensors models with their tokenizers; {name: folder}."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    smollm = _smollm_tokenizer(prepared_models)
    qwen = _qwen2_tokenizer(smollm)
    for tokenizer in (smollm, qwen):  # every token of the templates is one special token
        for marker in ("<|im_start|>", "<|im_end|>"):
            assert tokenizer.convert_tokens_to_ids(marker) < len(tokenizer)
            marker_id = tokenizer.convert_tokens_to_ids(marker)
            assert tokenizer.encode(marker, add_special_tokens=False) == [marker_id]
    builds = {
        # Qwen2.5-0.5B ties its embeddings; Instruct's generation ends at <|im_end|>/<|endoftext|>.
        "qwen2-tiny": (qwen, Qwen2ForCausalLM, Qwen2Config(
            vocab_size=len(qwen), num_hidden_layers=ARCHS["qwen2-tiny"]["n_layers"],
            tie_word_embeddings=True, bos_token_id=None, eos_token_id=qwen.eos_token_id,
            pad_token_id=qwen.pad_token_id, **DIMS)),
        "llama-tiny": (smollm, LlamaForCausalLM, LlamaConfig(
            vocab_size=len(smollm), num_hidden_layers=ARCHS["llama-tiny"]["n_layers"],
            tie_word_embeddings=False, bos_token_id=smollm.bos_token_id,
            eos_token_id=smollm.eos_token_id, pad_token_id=smollm.pad_token_id, **DIMS)),
    }
    folders = {}
    for name, (tokenizer, architecture, config) in builds.items():
        torch.manual_seed(0)
        model = architecture(config)
        if name == "qwen2-tiny":
            model.generation_config.eos_token_id = [qwen.eos_token_id, qwen.pad_token_id]
        folders[name] = root / name
        model.save_pretrained(folders[name], safe_serialization=True)
        tokenizer.save_pretrained(folders[name])
    return folders


@pytest.fixture(scope="module")
def prepared_tiny(tiny_models, tmp_path_factory):
    """The tiny models as prepare_model leaves them (`path:` specs: referenced in place)."""
    from w2s_eda.models import prepare_model

    root = tmp_path_factory.mktemp("prepared_tiny")
    for name, folder in tiny_models.items():
        prepare_model(name, {"path": str(folder), "trust_remote_code": False}, root / name)
    return root


# --- per architecture, unit checks ---------------------------------------------------------------


@pytest.mark.parametrize("name", ARCHS)
def test_prepared_manifest_names_the_architecture(prepared_tiny, tiny_models, name):
    manifest = json.loads((prepared_tiny / name / "w2s_model.json").read_text())
    assert manifest["architecture"] == ARCHS[name]["architecture"] and manifest["kind"] == "causal"
    assert manifest["n_layers"] == ARCHS[name]["n_layers"] and manifest["hidden_size"] == 64
    assert manifest["weights_dir"] == str(tiny_models[name].resolve())


@pytest.mark.parametrize("name", ARCHS)
def test_label_words_and_chat_template_per_architecture(prepared_tiny, name):
    from w2s_eda.generation import label_word_ids, make_engine, render_chat

    engine = make_engine(prepared_tiny / name, device="cpu", dtype="float32")
    tokenizer = engine.tokenizer
    if ARCHS[name]["tokenizer"]:
        assert type(tokenizer).__name__ == ARCHS[name]["tokenizer"]
    # Each label word is scored by tokens that decode back to that word, and the words differ.
    words = label_word_ids(tokenizer, LABEL_NAMES)
    assert [tokenizer.decode(ids).strip() for ids in words] == LABEL_NAMES
    assert words[0] != words[1]
    # The prompt is this architecture's chat rendering, and encoding it adds no second BOS.
    head, tail = ARCHS[name]["chat"]
    prompt = render_chat(tokenizer, "Is it true?")
    assert prompt == head + "Is it true?" + tail
    ids = engine.encode([prompt])[0]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") and ids.count(ids[0]) == 3
    assert tokenizer.decode(ids) == prompt
    # EOS of generation: the template's end-of-turn token.
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in engine.eos
    p = engine.label_probabilities([prompt, render_chat(tokenizer, "Is it false?")], LABEL_NAMES)
    assert all(0 < value < 1 for value in p)


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("layer", ["middle", "last"])
def test_head_reads_the_configured_block(prepared_tiny, tiny_models, name, layer):
    """The pooled features are the last real token's output of block n//2 (`middle`), or
    transformers' last hidden state (`last`: after the final norm, as openai/weak-to-strong reads
    it), the blocks above it are dropped, and right padding does not move the token read."""
    from transformers import AutoModel

    from w2s_eda.align import load_backbone
    from w2s_eda.features import pad_batch, pad_id

    n = ARCHS[name]["n_layers"]
    backbone, tokenizer, _, device, bf16 = load_backbone(
        str(prepared_tiny / name), layer, "cpu", "float32", "train.strong.layer")
    block = {"middle": n // 2, "last": n}[layer]
    assert backbone.layer == block and backbone.pooling == "last" and not bf16
    assert len(backbone.model.layers) == block
    rows = [tokenizer.encode(text, add_special_tokens=False) for text in TEXTS[:3]]
    rows[1] = rows[1][:5]  # a shorter row: right padding
    ids, mask = pad_batch(rows, pad_id(tokenizer), device)
    with torch.no_grad():
        pooled = backbone(ids, mask)
        full = AutoModel.from_pretrained(tiny_models[name], dtype=torch.float32).eval()
        hidden = full(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    last = mask.sum(dim=1) - 1
    expected = hidden[block][torch.arange(len(rows)), last]
    assert torch.allclose(pooled, expected, atol=1e-5)
    if block == n:  # hidden[n] is after the final norm: not the last block's raw output
        raw = []
        hook = full.layers[-1].register_forward_hook(lambda module, inputs, output: raw.append(
            output[0] if isinstance(output, tuple) else output))
        with torch.no_grad():
            full(input_ids=ids, attention_mask=mask)
        hook.remove()
        assert not torch.allclose(raw[0][torch.arange(len(rows)), last], expected, atol=1e-3)


@pytest.mark.parametrize("name", ARCHS)
def test_lora_adapts_every_linear_layer_of_the_kept_blocks_and_the_head_trains(prepared_tiny, name):
    from w2s_eda.align import load_backbone
    from w2s_eda.training import TextClassifier, TrainSettings, prepare_for_mode

    lora = {"r": 4, "alpha": 8, "dropout": 0.0}
    settings = TrainSettings.from_config({"mode": "lora", "lora": lora}, seed=0)
    backbone = load_backbone(str(prepared_tiny / name), "middle", "cpu", "float32", "layer")[0]
    model = TextClassifier(prepare_for_mode(backbone, settings), backbone.hidden_size)
    adapted = {}
    for module_name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            *path, target = module_name.split(".")
            adapted.setdefault(target, set()).add(int(path[path.index("layers") + 1]))
    kept = set(range(ARCHS[name]["n_layers"] // 2))
    assert adapted == {target: kept for target in LORA_TARGETS}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "head.linear.weight" in trainable
    assert all("lora_" in n for n in trainable - {"head.linear.weight"})
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any("embed_tokens" in n for n in frozen)
    assert any("q_proj.base_layer" in n for n in frozen)
    # A step moves the head and, through it, the adapters.
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    for _ in range(2):
        logits = model(ids, torch.ones_like(ids))
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1]))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert torch.count_nonzero(model.head.linear.weight) > 0
    assert any(torch.count_nonzero(p) > 0 for n, p in model.named_parameters() if "lora_B" in n)


# --- the whole study -----------------------------------------------------------------------------

PAIRS = [{"weak": "qwen2-tiny", "strong": "llama-tiny"},
         {"weak": "llama-tiny", "strong": "qwen2-tiny"}]
ARMS = ["baseline", "eda", "distill"]


def arch_config(folder: Path, tiny_models: dict[str, Path]) -> dict:
    """Every stage on the tiny models, each as weak (probe) and as strong (LoRA); the data file is
    written into ``folder``."""
    data = folder / "items.jsonl"
    data.write_text("".join(
        json.dumps({"text": t, "label": int(t.startswith("Premise: Ann"))}) + "\n" for t in TEXTS))
    return {
        "splits": {"weak_train": 4, "w2s_train": 4, "test": 4},
        "datasets": {"toy": {"path": str(data)}},
        "models": {name: {"path": str(path)} for name, path in tiny_models.items()},
        "pairs": PAIRS,
        "device": "cpu",
        "dtype": "float32",
        "generation": {"dtype": "float32"},
        "explain": {"max_new_tokens": 4},
        "debate": {"max_new_tokens": 4, "n_rounds": 1, "drift_sample": 2,
                   "judge": {"enabled": True, "model": "weak"}},  # a weak judge
        "align": {"arms": ARMS},
        "train": {"weak": {"mode": "probe", "epochs": 2, "batch_size": 2},
                  "strong": {"mode": "lora", "epochs": 1, "batch_size": 2, "losses": ["xent"],
                             "lora": {"r": 4, "alpha": 8}}},
        "analysis": {"n_bootstrap": 100},
        "wandb": {"mode": "disabled"},
    }


@pytest.fixture(scope="session")
def arch_study(arch_run):
    """The study of ``arch_config``, run in the background (conftest.py's ``arch_run``): its
    folder and its finished process (return code, stdout, stderr)."""
    code, err, _ = arch_run.wait()
    out = (arch_run.folder / "snakemake.out").read_text()
    return arch_run.folder, subprocess.CompletedProcess(arch_run.process.args, code, out, err)


def test_study_runs_every_stage_on_both_architectures_as_weak_and_strong(arch_study):
    folder, result = arch_study
    assert result.returncode == 0, result.stderr[-4000:]
    log = result.stdout + result.stderr
    for rule, count in {"prepare_model": 2, "zero_shot": 2, "debate_round": 2, "train_ceiling": 2,
                        "train_student": 6, "analysis": 1}.items():
        assert log.count(f"rule {rule}:") == count, rule
    assert "rule explain" in log and "rule strong_features:" not in log  # the strong models: LoRA
    summary = pd.read_csv(folder / "results/summary.csv")
    cells = {tuple(pair.values()) for pair in PAIRS}
    assert set(zip(summary.weak, summary.strong)) == cells
    arms, controls = summary[summary.kind == "arm"], summary[summary.kind == "control"]
    assert sorted(zip(arms.weak, arms.strong, arms.arm, arms.loss)) == sorted(
        (weak, strong, arm, "xent") for weak, strong in cells for arm in ARMS)
    # the self-distillation control, LoRA on each strong architecture
    assert sorted(zip(controls.strong, controls.arm)) == sorted(
        (strong, "self_distill") for _, strong in cells)
    assert summary.n_test.eq(4).all() and summary.w2s_accuracy.between(0, 1).all()


@pytest.mark.parametrize("strong", ARCHS)
def test_strong_signals_use_each_architecture_chat_template(arch_study, strong):
    folder, result = arch_study
    assert result.returncode == 0, result.stderr[-4000:]
    root = folder / "results/toy/seed0" / strong
    head, tail = ARCHS[strong]["chat"]
    for name in ("explanations", "zero_shot"):
        frame = pd.read_parquet(root / f"{name}.parquet")
        assert len(frame) == 12 and set(frame.model) == {strong}
        assert frame.prompt.str.startswith(head).all(), name
        assert frame.prompt.str.endswith(tail).all(), name
        other = next(o for o in ARCHS if o != strong)
        assert not frame.prompt.str.contains(ARCHS[other]["chat"][0], regex=False).any()
    zero_shot = pd.read_parquet(root / "zero_shot.parquet")
    assert zero_shot.p_label1.between(0, 1, inclusive="neither").all()
    assert zero_shot.p_label1.nunique() > 1
    explanations = pd.read_parquet(root / "explanations.parquet")
    assert (explanations.n_tokens >= 1).all() and (explanations.n_tokens <= 4).all()
    debates = pd.read_parquet(root / "debates.parquet")
    assert len(debates) == 12 and set(debates["sample"]) == {0}
    assert all(len(turns) == 2 for turns in debates.turns)
    assert debates.transcript.str.contains('Debater 1 (argues "yes")', regex=False).all()
    stats = json.loads((root / "debate_stats.json").read_text())
    assert stats["rounds"]["1"]["side_drift_scored"] == 2
    # The judge is the pair's weak model (a weak judge of strong debaters), on every transcript.
    weak = next(pair["weak"] for pair in PAIRS if pair["strong"] == strong)
    judge = pd.read_parquet(root / f"judge/{weak}/debates.parquet")
    assert judge.id.tolist() == debates.id.tolist() and set(judge.model) == {weak}
    assert judge.p_label1.between(0, 1, inclusive="neither").all()
    assert json.loads((root / f"judge/{weak}/debates_stats.json").read_text())["judge"] == weak


@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: f"{pair['weak']}-to-{pair['strong']}")
def test_each_role_reads_the_block_its_layer_names(arch_study, pair):
    folder, result = arch_study
    assert result.returncode == 0, result.stderr[-4000:]
    weak, strong = pair["weak"], pair["strong"]
    seed = folder / "results/toy/seed0"
    # The weak model (probe, layer `last`): features cached per layout, read at its last block.
    for path in [seed / f"weak/{weak}/features/item.npz",
                 seed / f"{strong}/weak/{weak}/features/item+explanation+debate.npz"]:
        with np.load(path) as arrays:
            meta = json.loads(str(arrays["meta"]))
            assert arrays["x_test"].shape == (4, 64)
        assert meta["model"] == weak and meta["pooling"] == "last"
        assert meta["layer"] == ARCHS[weak]["n_layers"]
    # The strong model (LoRA, layer `middle`): the ceiling and every student trained adapters.
    cell = seed / strong
    runs = [cell / "ceiling/metrics.json"]
    runs += [cell / f"w2s/{weak}/{arm}/xent/metrics.json" for arm in ARMS]
    for path in runs:
        metrics = json.loads(path.read_text())
        assert metrics["mode"] == "lora" and metrics["model"] == strong
        assert metrics["training"]["steps"] == 2 and metrics["test"]["n"] == 4
    logs = folder / "results/logs/train_student"
    student_log = (logs / f"toy_seed0_{strong}_{weak}_eda_xent.log").read_text()
    assert f"loaded {strong}" in student_log and "loss curve" in student_log
