"""Align: head, losses, truncation policy, feature caching, checkpoint resume, determinism, arms."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TEXTS, TINY_ARMS, run_snakemake, study_args
from w2s_eda import align
from w2s_eda.arms import encode_with_context, fit_to_budget, share_budget, special_affixes
from w2s_eda.study import validate_config
from w2s_eda.errors import ConfigError
from w2s_eda.training import (
    LinearHead,
    ProbeClassifier,
    TrainSettings,
    confidence_threshold,
    fit,
    hard_predictions,
    logconf_coef,
    loss_value,
    predict,
)

# --- the head -----------------------------------------------------------------------------------


def test_head_is_zero_initialised_without_bias_so_it_starts_at_one_half():
    head = LinearHead(7)
    assert head.linear.bias is None
    assert torch.count_nonzero(head.linear.weight) == 0 and head.linear.weight.shape == (2, 7)
    probe = ProbeClassifier(torch.randn(10, 7))
    probs = torch.softmax(probe(torch.randn(5, 7) * 100), dim=-1)
    assert torch.equal(probs, torch.full((5, 2), 0.5))


# --- losses -------------------------------------------------------------------------------------


def test_logconf_weight_ramps_linearly_with_no_jump():
    total, aux, warmup = 100, 0.5, 0.2
    coefs = np.array([logconf_coef(step, total, aux, warmup) for step in range(total + 1)])
    assert coefs[0] == 0 and coefs[20] == pytest.approx(0.5) and np.all(coefs[20:] == 0.5)
    assert np.allclose(np.diff(coefs[:21]), 0.5 / 20)  # a straight line: equal steps...
    assert np.max(np.diff(coefs)) <= 0.5 / 20 + 1e-12  # ...and never a bigger one
    # openai/weak-to-strong would hold the weight at step_frac (0.19 here) until warm-up ends,
    # then jump to aux_coef; ours is already 95% of the way.
    assert coefs[19] == pytest.approx(0.475)
    assert logconf_coef(3, total, aux, 0.0) == aux


@pytest.mark.parametrize("balance", [0.3, 0.5, 0.8])
def test_threshold_is_the_quantile_that_matches_the_weak_class_balance(balance):
    p = torch.linspace(0.01, 0.99, 100)[torch.randperm(100, generator=torch.Generator().manual_seed(1))]
    hard = hard_predictions(p, balance)
    assert hard.sum().item() == pytest.approx(100 * balance, abs=1)
    assert torch.all(p[hard == 1] > confidence_threshold(p, balance))
    assert torch.all(p[hard == 0] <= confidence_threshold(p, balance))


def test_losses_on_a_hand_computed_batch():
    settings = TrainSettings(aux_coef=0.5, warmup_frac=0.5)
    logits = torch.log(torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.9, 0.1]]))
    weak = torch.tensor([0.1, 0.9, 0.4, 0.6])
    xent = loss_value("xent", logits, weak, 0, 10, settings, 0.5)
    expected = -np.mean([0.9 * np.log(0.8) + 0.1 * np.log(0.2), 0.1 * np.log(0.3) + 0.9 * np.log(0.7),
                         0.6 * np.log(0.4) + 0.4 * np.log(0.6), 0.4 * np.log(0.9) + 0.6 * np.log(0.1)])
    assert xent.item() == pytest.approx(expected, rel=1e-5)
    # logconf at step 0 has weight 0: plain xent. After warm-up (weight 0.5), balance 0.5: the
    # student's two most confident label-1 items (P 0.7, 0.6) become hard 1s.
    assert loss_value("logconf", logits, weak, 0, 10, settings, 0.5).item() == pytest.approx(xent.item())
    target = 0.5 * weak + 0.5 * torch.tensor([0.0, 1.0, 1.0, 0.0])
    got = loss_value("logconf", logits, weak, 5, 10, settings, 0.5)
    assert got.item() == pytest.approx(loss_value("xent", logits, target, 0, 10, settings, 0.5).item())
    # product: target proportional to weak * student per class.
    student1 = torch.tensor([0.2, 0.7, 0.6, 0.1])
    unnorm1, unnorm0 = weak * student1, (1 - weak) * (1 - student1)
    product_target = unnorm1 / (unnorm0 + unnorm1)
    got = loss_value("product", logits, weak, 0, 10, settings, 0.5)
    assert got.item() == pytest.approx(loss_value("xent", logits, product_target, 0, 10, settings, 0.5).item())


def test_unknown_loss_and_mode_are_config_errors():
    with pytest.raises(ConfigError, match="loss 'hinge'"):
        TrainSettings(loss="hinge")
    with pytest.raises(ConfigError, match="'train.strong.losses.0': 'hinge'"):
        validate_config({"train": {"strong": {"losses": ["hinge"]}}})
    with pytest.raises(ConfigError, match="'train.weak.mode': 'adapter'"):
        validate_config({"train": {"weak": {"mode": "adapter"}}})
    with pytest.raises(ConfigError, match="'train.strong.layer': 'top' is not 'middle', 'last'"):
        validate_config({"train": {"strong": {"layer": "top"}}})


# --- arms and the truncation policy ------------------------------------------------------------


def test_budget_is_shared_equally_and_short_parts_pass_on_their_share():
    assert share_budget(10, [3, 20]) == [3, 7]
    assert share_budget(10, [20, 20]) == [5, 5]
    assert share_budget(11, [20, 20]) == [6, 5]  # the remainder goes to the first cut part
    assert share_budget(9, [2, 2, 20]) == [2, 2, 5]
    assert share_budget(0, [4, 4]) == [0, 0] and share_budget(-3, [4]) == [0]


def test_item_is_never_cut_for_context():
    item, explanation, debate = list(range(5)), list(range(100, 120)), list(range(200, 230))
    ids, cut = fit_to_budget(item, [explanation, debate], 15)
    assert ids == item + explanation[:5] + debate[:5] and cut == 40
    ids, cut = fit_to_budget(item, [explanation], 4)  # the item alone is too long: cut at its end
    assert ids == item[:4] and cut == 20


def test_truncation_with_the_weak_tokenizer(prepared_models):
    from transformers import AutoTokenizer

    weights = json.loads((prepared_models / "minilm-l6/w2s_model.json").read_text())["weights_dir"]
    tokenizer = AutoTokenizer.from_pretrained(weights)
    prefix, suffix = special_affixes(tokenizer)
    assert tokenizer.convert_ids_to_tokens(prefix + suffix) == ["[CLS]", "[SEP]"]
    item = "Premise: Ann knows that the cat sleeps. Hypothesis: The cat sleeps."
    parts = {"explanation": "knowing implies truth " * 40, "debate": "Debater 1: yes. " * 40}
    ids, cut = encode_with_context(tokenizer, item, parts, ["explanation", "debate"], 64)
    item_ids = tokenizer.encode(item, add_special_tokens=False)
    assert len(ids) == 64 and cut > 0
    assert ids[: 1 + len(item_ids)] == prefix + item_ids and ids[-1:] == suffix
    text = tokenizer.decode(ids[1:-1])
    assert "explanation :" in text and "debate :" in text  # both parts kept a share
    again, _ = encode_with_context(tokenizer, item, parts, ["explanation", "debate"], 64)
    assert again == ids
    short, cut = encode_with_context(tokenizer, item, {"explanation": "yes."}, ["explanation"], 64)
    assert cut == 0 and len(short) < 64


def test_arms_come_from_the_config():
    config = validate_config({"align": {
        "arms": ["baseline", "debate_distill"],
        "custom_arms": {"debate_distill": {"context": ["debate"], "targets": "strong_zero_shot"}}}})
    from w2s_eda.arms import all_arms

    assert all_arms(config)["debate_distill"] == {"context": ["debate"], "targets": "strong_zero_shot",
                                                  "ensemble": {"members": 1, "vary": "seed"}}
    with pytest.raises(ConfigError, match=r"'align.arms\[1\]': unknown arm 'nope'"):
        validate_config({"align": {"arms": ["baseline", "nope"]}})
    with pytest.raises(ConfigError, match="'baseline' must be listed"):
        validate_config({"align": {"arms": ["eda"]}})


# --- training: resume, determinism, modes -------------------------------------------------------


def _toy_problem(n=40, d=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).float().numpy()
    return x, y


def _probe_run(x, y, folder, settings, make_batch=None):
    model = ProbeClassifier(x)
    make_batch = make_batch or (lambda idx, device: {"features": x[idx]})
    result = fit(model, make_batch, y, settings, folder, torch.device("cpu"), data_key="toy")
    return result, predict(model, lambda idx, device: {"features": x[idx]}, len(x), torch.device("cpu"))


def test_probe_learns_and_same_seed_gives_identical_predictions(tmp_path):
    x, y = _toy_problem()
    settings = TrainSettings(epochs=30, batch_size=8, lr=0.05, seed=3, checkpoint_every=1000)
    result, p = _probe_run(x, y, tmp_path / "a", settings)
    assert ((p > 0.5) == y).mean() >= 0.9 and result.losses[-1] < result.losses[0]
    _, again = _probe_run(x, y, tmp_path / "b", settings)
    assert np.array_equal(p, again)
    _, other_seed = _probe_run(x, y, tmp_path / "c", dataclasses.replace(settings, seed=4))
    assert not np.array_equal(p, other_seed)  # another batch order


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    x, y = _toy_problem()
    settings = TrainSettings(epochs=5, batch_size=8, lr=0.05, seed=1, checkpoint_every=7)
    calls = {"n": 0}

    def crashing(idx, device):
        calls["n"] += 1
        if calls["n"] == 17:  # during step 17: checkpoints at 7 and 14 exist
            raise KeyboardInterrupt
        return {"features": x[idx]}

    with pytest.raises(KeyboardInterrupt):
        _probe_run(x, y, tmp_path / "ckpt", settings, crashing)
    assert [p.name for p in (tmp_path / "ckpt").glob("step*.pt")] == ["step0000014.pt"]
    resumed, p_resumed = _probe_run(x, y, tmp_path / "ckpt", settings)
    fresh, p_fresh = _probe_run(x, y, tmp_path / "fresh", settings)
    assert resumed.resumed_from == 14 and fresh.resumed_from == 0
    assert resumed.losses == fresh.losses and np.array_equal(p_resumed, p_fresh)
    # A checkpoint of other settings is never resumed.
    other = TrainSettings(epochs=5, batch_size=8, lr=0.01, seed=1, checkpoint_every=7)
    with pytest.raises(KeyboardInterrupt):
        calls["n"] = 0
        _probe_run(x, y, tmp_path / "mixed", settings, crashing)
    result, _ = _probe_run(x, y, tmp_path / "mixed", other)
    assert result.resumed_from == 0


KILLABLE = textwrap.dedent("""
    import sys, time, json, torch, numpy as np
    from w2s_eda.align import load_backbone
    from w2s_eda.features import pad_batch
    from w2s_eda.training import TextClassifier, TrainSettings, fit, predict, prepare_for_mode
    torch.set_num_threads(1)
    model_dir, folder, out, slow = sys.argv[1:5]
    texts = [f"item {i} is {'good' if i % 2 else 'bad'}" for i in range(16)]
    y = np.array([i % 2 for i in range(16)], dtype=np.float32)
    settings = TrainSettings(mode="lora", epochs=2, batch_size=4, lr=1e-3, seed=0,
                             checkpoint_every=2, lora={"r": 4, "alpha": 8, "dropout": 0.1})
    torch.manual_seed(0)
    backbone, tokenizer, *_ = load_backbone(model_dir, "last", "cpu", "float32", "layer")
    model = TextClassifier(prepare_for_mode(backbone, settings), backbone.hidden_size)
    rows = [tokenizer.encode(t) for t in texts]
    def batch(idx, device):
        time.sleep(float(slow))
        ids, mask = pad_batch([rows[i] for i in idx], 0, device)
        return {"input_ids": ids, "attention_mask": mask}
    result = fit(model, batch, y, settings, folder, torch.device("cpu"), data_key="toy")
    p = predict(model, lambda idx, d: batch(idx, d), 16, torch.device("cpu"))
    json.dump({"p": p.tolist(), "losses": result.losses, "resumed": result.resumed_from,
               "trainable": sum(x.numel() for x in model.parameters() if x.requires_grad),
               "total": sum(x.numel() for x in model.parameters())}, open(out, "w"))
""")


@pytest.mark.slow
def test_killed_lora_training_resumes_from_its_checkpoint_to_the_same_result(tmp_path, prepared_models):
    model = prepared_models / "minilm-l6"

    def start(folder, out, slow):
        return subprocess.Popen([sys.executable, "-c", KILLABLE, str(model), str(folder), str(out), slow],
                                stderr=subprocess.DEVNULL)

    folder = tmp_path / "ckpt"
    victim = start(folder, tmp_path / "never.json", "0.3")
    deadline = time.monotonic() + 120
    while not list(folder.glob("step*.pt")):
        assert victim.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    (checkpoint,) = folder.glob("step*.pt")
    assert not (tmp_path / "never.json").exists()
    assert start(folder, tmp_path / "resumed.json", "0").wait(timeout=120) == 0
    assert start(tmp_path / "fresh", tmp_path / "fresh.json", "0").wait(timeout=120) == 0
    resumed = json.loads((tmp_path / "resumed.json").read_text())
    fresh = json.loads((tmp_path / "fresh.json").read_text())
    assert resumed["resumed"] == int(checkpoint.name[4:11]) > 0 and fresh["resumed"] == 0
    assert resumed["p"] == fresh["p"] and resumed["losses"] == fresh["losses"]
    # LoRA trains adapters and the head only.
    assert 0 < resumed["trainable"] < 0.05 * resumed["total"]


# --- stages on real models ----------------------------------------------------------------------

def _splits(folder):
    folder.mkdir(parents=True, exist_ok=True)
    paths, signals = {}, []
    for k, split in enumerate(("weak_train", "w2s_train", "test")):
        rows = [{"id": f"{split}{i}", "text": TEXTS[(4 * k + i) % 12], "label": int(TEXTS[(4 * k + i) % 12].startswith("Premise: Ann"))}
                for i in range(4)]
        paths[split] = str(folder / f"{split}.parquet")
        pd.DataFrame(rows).to_parquet(paths[split])
        signals += [{"id": r["id"], "split": split, "sample": 0, "explanation": f"Because {r['id']}.",
                     "p_label1": 0.25 + 0.5 * (i % 2),
                     "transcript": f"Debater 1: yes about {r['id']}.\nDebater 2: no."} for i, r in enumerate(rows)]
    frame = pd.DataFrame(signals)
    frame[["id", "explanation"]].to_parquet(folder / "explanations.parquet")
    frame[["id", "p_label1"]].to_parquet(folder / "zero_shot.parquet")
    frame[["id", "split", "sample", "transcript"]].to_parquet(folder / "debates.parquet")
    return paths


def _train_config(**overrides):
    return {**validate_config({})["train"]["weak"], "epochs": 3, "batch_size": 2, **overrides}


@pytest.mark.slow
def test_probe_training_reuses_cached_features_and_never_loads_the_model(tmp_path, prepared_models, monkeypatch):
    paths = _splits(tmp_path / "data")
    train = _train_config()
    features = str(tmp_path / "features.npz")
    align.compute_features(paths, str(prepared_models / "minilm-l6"), ["explanation"], train, "cpu",
                           "float32", features, "weak", explanations=str(tmp_path / "data/explanations.parquet"))

    def no_model(*args, **kwargs):
        raise AssertionError("probe training must read cached features, not run the model")

    monkeypatch.setattr(align, "load_backbone", no_model)
    monkeypatch.setattr(align, "load_prepared", no_model)
    outputs = {name: str(tmp_path / "weak" / f"{name}.out") for name in ("soft_labels", "test", "metrics")}
    arm = {"context": ["explanation"], "targets": "strong_zero_shot",
           "ensemble": {"members": 2, "vary": "seed"}}
    metrics = align.train_weak("distill", arm, paths, str(prepared_models / "minilm-l6"), train, 0,
                               "cpu", "float32", outputs, features=features,
                               zero_shot=str(tmp_path / "data/zero_shot.parquet"))
    soft = pd.read_parquet(outputs["soft_labels"])
    assert list(soft.columns) == ["id", "p_label1", "p_member0", "p_member1"]
    assert np.allclose(soft.p_label1, (soft.p_member0 + soft.p_member1) / 2)
    assert metrics["targets"] == "strong_zero_shot" and metrics["test"]["n"] == 4
    assert not (tmp_path / "weak" / "checkpoints").exists() or not list((tmp_path / "weak").rglob("*.pt"))
    # A features file whose items differ from the split is refused, naming the file.
    pd.read_parquet(paths["test"]).assign(id=lambda f: f.id + "x").to_parquet(tmp_path / "other.parquet")
    with pytest.raises(Exception, match="features.npz: its test items differ"):
        align.train_weak("baseline", {"context": [], "targets": "gold"},
                         {**paths, "test": str(tmp_path / "other.parquet")},
                         str(prepared_models / "minilm-l6"), train, 0, "cpu",
                         "float32", outputs, features=features)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["lora", "full"])
def test_text_modes_train_the_strong_model_end_to_end(tmp_path, prepared_models, mode):
    paths = _splits(tmp_path / "data")
    train = {**_train_config(mode=mode, layer=2, epochs=1, lr=1e-4), "losses": ["xent"]}
    outputs = {"test": str(tmp_path / "test.parquet"), "metrics": str(tmp_path / "metrics.json")}
    metrics = align.train_strong("ceiling", paths, str(prepared_models / "smollm2-135m"), train,
                                 "xent", 0, "cpu", "float32", outputs)
    assert metrics["mode"] == mode and metrics["training"]["steps"] == 2
    predictions = pd.read_parquet(outputs["test"])
    assert predictions.p_label1.between(0, 1).all() and predictions.p_label1.nunique() > 1


# --- the workflow -------------------------------------------------------------------------------




def test_an_arm_added_in_the_config_appears_in_the_dag(tmp_path):
    config = {"align": {"arms": ["baseline", "eda", "debate_distill"],
                        "custom_arms": {"debate_distill": {"context": ["debate"], "targets": "strong_zero_shot"}}},
              "train": {"strong": {"losses": ["logconf"]}}}
    result = run_snakemake("-n", *study_args(tmp_path, config))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    cell = "results/epistemic_reasoning/seed0/smollm2-135m"
    assert f"{cell}/weak/minilm-l6/debate_distill/soft_labels.parquet" in out
    assert f"{cell}/w2s/minilm-l6/debate_distill/logconf/metrics.json" in out
    assert f"{cell}/weak/minilm-l6/features/item+debate.npz" in out
    # baseline reads nothing from the strong model (train_weak); eda and debate_distill do
    assert out.count("rule train_weak:") == 1 and out.count("rule train_weak_strong:") == 2
    assert out.count("rule train_student:") == 3
    assert "results/epistemic_reasoning/seed0/weak/minilm-l6/baseline/soft_labels.parquet" in out
    assert out.count("rule strong_features:") == 1 and out.count("rule train_ceiling:") == 1


@pytest.mark.slow
def test_tiny_study_runs_every_align_stage_and_computes_features_once(tiny_study):
    tmp_path, result, config = tiny_study
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    # the item alone (shared by strong models), then item+explanation+debate, item+debate (read
    # by four arms, the ensembles included) and item+consultancy
    assert log.count("rule weak_features:") == 1 and log.count("rule weak_features_strong:") == 3
    assert log.count("rule strong_features:") == 1 and log.count("rule train_ceiling:") == 1
    assert log.count("rule train_student:") == len(TINY_ARMS) * 2
    cell = tmp_path / "results/toy/seed0/smollm2-135m"
    summary = json.loads((cell / "w2s/minilm-l6/align.json").read_text())
    assert {(r["arm"], r["loss"]) for r in summary["rows"]} == {
        (arm, loss) for arm in TINY_ARMS for loss in ("xent", "logconf")}
    for row in summary["rows"]:
        assert 0 <= row["w2s_accuracy"] <= 1 and 0 <= row["weak_auroc"] <= 1
    assert summary["floor"]["n"] == 4 and "accuracy" in summary["ceiling"]
    student = json.loads((cell / "w2s/minilm-l6/eda/logconf/metrics.json").read_text())
    assert student["mode"] == "probe" and student["training"]["steps"] == 6
    assert not list(tmp_path.glob("results/**/checkpoints/*.pt"))  # removed after success
    student_log = (tmp_path / "results/logs/train_student/toy_seed0_smollm2-135m_minilm-l6_eda_logconf.log").read_text()
    assert "loss curve" in student_log and "loaded smollm2-135m" not in student_log
    table = (cell / "w2s/minilm-l6/align.md").read_text()
    assert "| debate_distill | logconf |" in table and "strong ceiling: accuracy" in table
    again = run_snakemake("-n", *study_args(tmp_path, config))
    assert "Nothing to be done" in again.stdout + again.stderr
