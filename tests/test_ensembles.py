"""Weak ensembles (Lang et al. 2025): members that differ, sampled transcripts, judge targets."""

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TEXTS
from w2s_eda import align
from w2s_eda.errors import DatasetError
from w2s_eda.study import validate_config
from w2s_eda.training import LinearHead, ProbeClassifier, TrainSettings, fit, predict

SPLITS = ("weak_train", "w2s_train", "test")
# The judge's P(label 1) for item i of a split, by sample: the samples disagree.
JUDGE = {0: [0.9, 0.8, 0.7, 0.6], 1: [0.2, 0.3, 0.4, 0.1]}


@pytest.fixture(scope="module")
def study(tmp_path_factory, prepared_models):
    """Balanced splits of 4 items; 2 sampled debates per item whose transcripts (and the judge's
    verdicts and P(label 1)) differ; the weak model's item+debate features for both samples."""
    folder = tmp_path_factory.mktemp("ensembles")
    paths, debates, judge = {}, [], []
    for k, split in enumerate(SPLITS):
        texts = [TEXTS[(i % 2) * 6 + 2 * k + i // 2] for i in range(4)]  # Ann (label 1), Bob, ...
        rows = [{"id": f"{split}{i}", "text": text, "label": int(text.startswith("Premise: Ann"))}
                for i, text in enumerate(texts)]
        paths[split] = str(folder / f"{split}.parquet")
        pd.DataFrame(rows).to_parquet(paths[split])
        for sample, side in enumerate(("yes", "no")):
            for i, row in enumerate(rows):
                transcript = f"Debater 1: {side}, {row['id']} follows.\nDebater 2: {side}."
                debates.append({"id": row["id"], "split": split, "sample": sample,
                                "transcript": transcript})
                p = JUDGE[sample][i]
                judge.append({"id": row["id"], "split": split, "sample": sample, "p_label1": p,
                              "verdict": f"{side} (P(yes) = {p:.2f})", "model": "toy"})
    files = {"debates": str(folder / "debates.parquet"), "judge": str(folder / "judge.parquet"),
             "features": str(folder / "features.npz")}
    pd.DataFrame(debates).to_parquet(files["debates"])
    pd.DataFrame(judge).to_parquet(files["judge"])
    model = str(prepared_models / "minilm-l6")
    train = {**validate_config({})["train"]["weak"], "epochs": 5, "batch_size": 2}
    meta = align.compute_features(paths, model, ["debate"], train, "cpu", "float32",
                                  files["features"], "weak", debates=files["debates"], n_samples=2)
    return {"paths": paths, "model": model, "train": train, "meta": meta, "folder": folder, **files}


def _train(study, name, arm, seed=0, judge=None):
    """train_weak of an item+debate arm in probe mode; its metrics and test predictions."""
    outputs = {kind: str(study["folder"] / name / f"{kind}.out")
               for kind in ("soft_labels", "test", "metrics")}
    metrics = align.train_weak(name, {"context": ["debate"], "targets": "gold", **arm},
                               study["paths"], study["model"], study["train"], seed, "cpu",
                               "float32", outputs, features=study["features"],
                               debates=study["debates"], judge=judge)
    return metrics, pd.read_parquet(outputs["test"])


def _targets_seen(monkeypatch) -> list[np.ndarray]:
    """The targets each member of the next train_weak call trains towards, in member order."""
    seen, run = [], align.run_training

    def spy(source, factory, targets, *args, **kwargs):
        seen.append(np.asarray(targets))
        return run(source, factory, targets, *args, **kwargs)

    monkeypatch.setattr(align, "run_training", spy)
    return seen


def test_member_head_init_is_seeded_and_small_and_zero_stays_the_default():
    assert torch.count_nonzero(LinearHead(8).linear.weight) == 0
    a, b, c = (LinearHead(8, init_std=0.01, seed=s).linear.weight for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert 0 < a.abs().max() < 0.05


@pytest.mark.slow
def test_seed_ensemble_members_differ_and_a_seed_reproduces_them(study):
    arm = {"ensemble": {"members": 3, "vary": "seed"}}
    metrics, test = _train(study, "finetune_ensemble", arm)
    members = test[[f"p_member{j}" for j in range(3)]].to_numpy().T
    assert np.allclose(test.p_label1, members.mean(axis=0))
    # Bootstrap resamples and random heads: members disagree, not just in rounding.
    assert not np.allclose(members[0], members[1], atol=1e-3)
    assert metrics["member_disagreement"] == pytest.approx(np.mean(np.std(members, axis=0)))
    assert metrics["member_disagreement"] > 0.01
    assert metrics["ensemble"] == {"members": 3, "vary": "seed"}
    assert [m["seed"] for m in metrics["members"]] == [0, 1, 2]
    assert [m["sample"] for m in metrics["members"]] == [0, 0, 0]
    assert all(0 <= m["test_accuracy"] <= 1 for m in metrics["members"])
    _, again = _train(study, "finetune_ensemble_again", arm)
    assert test.equals(again)


@pytest.mark.slow
def test_transcript_samples_are_read_per_member(study, monkeypatch):
    ids = pd.Series(["test0", "test1"])
    for sample, side in enumerate(("yes", "no")):
        texts = align.context_texts(ids, ["debate", "judge"],
                                    {"debate": study["debates"], "judge": study["judge"]}, sample)
        assert texts["debate"][0] == f"Debater 1: {side}, test0 follows.\nDebater 2: {side}."
        assert texts["judge"][1] == f"{side} (P(yes) = {JUDGE[sample][1]:.2f})"
    with pytest.raises(DatasetError, match=r"debates.parquet: no debate sample 2 for item 'test0'; "
                                           "debate.n_samples is too small"):
        align.context_texts(ids, ["debate"], {"debate": study["debates"]}, 2)
    # The features file holds both samples; they differ because the transcripts do.
    assert study["meta"]["n_samples"] == 2 and "test_sample1" in study["meta"]["splits"]
    test_ids = pd.read_parquet(study["paths"]["test"]).id
    x0, x1 = (align.load_features(study["features"], "test", test_ids, sample) for sample in (0, 1))
    assert x0.shape == x1.shape and not torch.allclose(x0, x1)
    with pytest.raises(DatasetError, match=r"no test features of sample 2 \(it holds 2 samples\)"):
        align.load_features(study["features"], "test", test_ids, 2)
    # Member j of a transcript ensemble loads the features of sample j, on every split.
    loaded, load = [], align.load_features

    def spy(path, split, ids, sample=0):
        loaded.append((split, sample))
        return load(path, split, ids, sample)

    monkeypatch.setattr(align, "load_features", spy)
    metrics, _ = _train(study, "debate_ensemble",
                        {"ensemble": {"members": 2, "vary": "transcript"}})
    assert sorted(loaded) == sorted((split, s) for split in SPLITS for s in (0, 1))
    assert [m["sample"] for m in metrics["members"]] == [0, 1]


@pytest.mark.slow
def test_judge_targets_are_the_judges_p_label1_for_each_members_sample(study, monkeypatch):
    seen = _targets_seen(monkeypatch)
    metrics, _ = _train(study, "debate_judge", {"targets": "judge"}, judge=study["judge"])
    assert metrics["targets"] == "judge"
    np.testing.assert_allclose(seen[0], JUDGE[0], rtol=1e-6)  # all of weak_train, in its order
    seen.clear()
    _train(study, "debate_judge_ensemble",
           {"targets": "judge", "ensemble": {"members": 2, "vary": "transcript"}}, seed=1,
           judge=study["judge"])
    assert len(seen) == 2
    for member, targets in enumerate(seen):  # member j: the judge of sample j, on its bootstrap
        rows = align.bootstrap(4, 1000 + member)
        np.testing.assert_allclose(targets, np.array(JUDGE[member])[rows], rtol=1e-6)
    with pytest.raises(DatasetError, match="no judge file"):
        _train(study, "no_judge", {"targets": "judge"})


@pytest.mark.slow
def test_a_one_member_arm_trains_as_a_single_weak_model_always_has(study):
    """Zero head, all of weak_train, seed * 1000: the predictions of the code before ensembles."""
    metrics, test = _train(study, "debate", {}, seed=2)
    assert metrics["ensemble"] == {"members": 1, "vary": "seed"}
    assert metrics["member_disagreement"] == 0
    assert list(test.columns) == ["id", "label", "p_label1"]
    train_ids, test_ids = (pd.read_parquet(study["paths"][split]).id
                           for split in ("weak_train", "test"))
    x_train = align.load_features(study["features"], "weak_train", train_ids)
    x_test = align.load_features(study["features"], "test", test_ids)
    labels = pd.read_parquet(study["paths"]["weak_train"]).label.to_numpy(dtype=np.float32)
    settings = TrainSettings.from_config(study["train"], seed=2000)
    torch.manual_seed(settings.seed)
    model = ProbeClassifier(x_train)
    fit(model, lambda idx, device: {"features": x_train[idx]}, labels, settings,
        study["folder"] / "direct", torch.device("cpu"))
    expected = predict(model, lambda idx, device: {"features": x_test[idx]}, 4, torch.device("cpu"))
    assert np.array_equal(test.p_label1.to_numpy(), expected)
