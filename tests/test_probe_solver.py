"""The exact probe fit (optimizer: lbfgs): it is L2-regularised logistic regression, its penalty is
chosen on the training targets alone, and the self-referential losses run in rounds."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from w2s_eda.errors import ConfigError
from w2s_eda.training import (CV_PENALTIES, ProbeClassifier, TrainSettings, choose_penalty, fit,
                              predict)


def _data(n=200, d=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=d)
    y = (x @ w + rng.normal(scale=2.0, size=n) > 0).astype(np.float32)
    return torch.from_numpy(x), y


def _fit(x, targets, **settings):
    model = ProbeClassifier(x)
    batch = lambda idx, device: {"features": x[idx]}  # noqa: E731
    result = fit(model, batch, targets, TrainSettings(optimizer="lbfgs", **settings), "/nonexistent",
                 torch.device("cpu"))
    return model, result, predict(model, batch, len(targets), torch.device("cpu"))


def test_the_exact_fit_is_l2_logistic_regression_as_scikit_learn_solves_it():
    x, y = _data()
    l2 = 0.05
    _, result, p = _fit(x, y, l2_penalty=l2)
    # The head's two weight rows w0, w1 give P(1) = sigmoid((w1 - w0) x); at the optimum
    # w0 = -w1, so l2 (|w0|^2 + |w1|^2) = (l2 / 2) |v|^2 with v = w1 - w0, which is sklearn's
    # C sum(loss) + |v|^2 / 2 at C = 1 / (l2 n), without intercept, on standardised features.
    z = ((x - x.mean(0)) / x.std(0)).numpy()
    reference = LogisticRegression(C=1 / (l2 * len(y)), fit_intercept=False, tol=1e-10,
                                   max_iter=10_000).fit(z, y)
    assert np.abs(p - reference.predict_proba(z)[:, 1]).max() < 1e-3
    assert result.l2_penalty == l2 and result.resumed_from == 0


def test_a_larger_penalty_gives_less_confident_predictions():
    x, y = _data()
    confidence = [np.abs(_fit(x, y, l2_penalty=l2)[2] - 0.5).mean() for l2 in (0.001, 0.1, 10.0)]
    assert confidence[0] > confidence[1] > confidence[2]


def test_cv_chooses_the_penalty_from_the_training_targets_alone():
    x, y = _data(n=150)
    soft = np.clip(y * 0.7 + 0.15, 0, 1).astype(np.float32)  # weak-looking soft labels
    model = ProbeClassifier(x)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    chosen, losses = choose_penalty(model, {"features": x}, torch.from_numpy(soft),
                                    TrainSettings(optimizer="lbfgs", l2_penalty="cv"))
    assert chosen in CV_PENALTIES and len(losses) == len(CV_PENALTIES)
    assert losses[CV_PENALTIES.index(chosen)] == min(losses)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # head reset
    # the fit records what CV chose; the same data and seed choose the same penalty again
    _, result, p = _fit(x, soft, l2_penalty="cv")
    assert result.l2_penalty == chosen and result.cv_losses == pytest.approx(losses)
    assert np.array_equal(p, _fit(x, soft, l2_penalty="cv")[2])


def test_logconf_runs_in_rounds_and_moves_towards_its_own_hard_predictions():
    x, y = _data()
    soft = np.clip(y * 0.6 + 0.2, 0, 1).astype(np.float32)
    _, xent, p_xent = _fit(x, soft, l2_penalty=0.01, loss="xent")
    _, logconf, p_logconf = _fit(x, soft, l2_penalty=0.01, loss="logconf")
    assert xent.steps == 1 and logconf.steps == 11
    # the confidence term makes the student more confident than plain xent on the same labels
    assert np.abs(p_logconf - 0.5).mean() > np.abs(p_xent - 0.5).mean()


def test_lbfgs_is_for_probes_and_cv_for_the_exact_fit():
    with pytest.raises(ConfigError, match="optimizer 'lbfgs' fits a probe head"):
        TrainSettings(mode="lora", optimizer="lbfgs")
    with pytest.raises(ConfigError, match="l2_penalty 'cv'.*needs optimizer 'lbfgs'"):
        TrainSettings(l2_penalty="cv")
