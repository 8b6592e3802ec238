"""Training a classifier head (and optionally the backbone) on hard or soft labels.

The architecture follows openai/weak-to-strong: a linear head with no bias, initialised to zero,
on pooled features (see features.py), with two logits. Members of a weak ensemble start instead
from a small seeded random head (``init_std``; align.py says why). Three modes:

- ``probe``: the backbone is frozen and its features are computed once (cached by a rule); only
  the head trains. Features are standardised with the training split's mean and std.
- ``lora``: low-rank adapters (peft) on every linear layer of the backbone, plus the head.
- ``full``: every backbone weight, plus the head.

Losses on a target P(label 1) per item (``xent`` plain cross-entropy on soft labels, ``logconf``
the auxiliary confidence loss, ``product`` the product-of-experts loss) are defined below.

The loop is deterministic: the order of items in epoch e is a permutation seeded by (seed, e), so
a run resumed at step s sees exactly the batches an uninterrupted run sees. Every
``checkpoint_every`` steps the trainable weights, optimiser state, RNG state and loss history are
written (atomically) to a checkpoint folder outside the declared outputs; a killed run resumes
from the newest one whose fingerprint matches. Backbone training (lora, full) runs through
``accelerate``: CUDA with bf16 autocast when present, the CPU otherwise, and several GPUs under
``accelerate launch``/torchrun, each process taking its slice of every batch. A probe head trains
in one process.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from .errors import ConfigError
from .io import atomic_path, fingerprint

log = logging.getLogger(__name__)

MODES = ("probe", "lora", "full")
LOSSES = ("xent", "logconf", "product")
# Defaults where the config leaves lr/epochs null: what suits each mode on the embedded models.
MODE_DEFAULTS = {
    "probe": {"lr": 1e-3, "epochs": 40},
    "lora": {"lr": 2e-4, "epochs": 3},
    "full": {"lr": 2e-5, "epochs": 2},
}


@dataclass
class TrainSettings:
    mode: str = "probe"
    loss: str = "xent"
    optimizer: str = "adamw"
    lr: float | None = None
    weight_decay: float = 0.01
    epochs: int | None = None
    batch_size: int = 32
    seed: int = 0
    checkpoint_every: int = 50
    aux_coef: float = 0.5
    warmup_frac: float = 0.2
    weak_exponent: float = 1.0
    student_exponent: float = 1.0
    # Explicit conflict (Yang et al. 2024): the weight of the term pushing the student towards the
    # opposite of the gold label where it already disagrees with gold; 0 turns it off.
    reward_alpha: float = 0.0
    # L2 penalty on the head's weights (added to the mean loss), or "cv" (see fit_lbfgs).
    l2_penalty: float | str = 0.0
    lora: dict = field(default_factory=lambda: {"r": 8, "alpha": 16, "dropout": 0.0})

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"training mode '{self.mode}' is unknown; use one of {MODES}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss '{self.loss}' is unknown; use one of {LOSSES}")
        if self.optimizer == "lbfgs" and self.mode != "probe":
            raise ConfigError("optimizer 'lbfgs' fits a probe head on cached features; with mode "
                              f"'{self.mode}' use adamw, adam or sgd")
        if self.l2_penalty == "cv" and self.optimizer != "lbfgs":
            raise ConfigError("l2_penalty 'cv' chooses the penalty of an exact fit: it needs "
                              "optimizer 'lbfgs'")
        defaults = MODE_DEFAULTS[self.mode]
        self.lr = defaults["lr"] if self.lr is None else self.lr
        self.epochs = defaults["epochs"] if self.epochs is None else self.epochs

    @classmethod
    def from_config(cls, train: dict, seed: int, loss: str = "xent") -> "TrainSettings":
        """From a ``train.weak`` / ``train.strong`` config block."""
        keys = ("mode", "optimizer", "lr", "weight_decay", "epochs", "batch_size", "checkpoint_every",
                "l2_penalty")
        values = {key: train[key] for key in keys if key in train}
        values.update(train.get("logconf", {}))
        values.update(train.get("product", {}))
        if "lora" in train:
            values["lora"] = dict(train["lora"])
        return cls(seed=seed, loss=loss, **values)


# --- the head and the models it sits on ---------------------------------------------------------


# The std of a weak ensemble member's random head: on standardised features its logits start with
# a std of about 0.01 * sqrt(hidden size) (0.2 for MiniLM's 384), so P(label 1) near 1/2.
MEMBER_INIT_STD = 0.01


class LinearHead(nn.Module):
    """``outputs`` logits (two for a class, one for a pairwise reward) from features: no bias,
    zero-initialised (openai/weak-to-strong), or drawn from N(0, ``init_std``^2) with a generator
    seeded by ``seed`` when ``init_std`` > 0."""

    def __init__(self, hidden_size: int, init_std: float = 0.0, seed: int = 0, outputs: int = 2):
        super().__init__()
        self.linear = nn.Linear(hidden_size, outputs, bias=False)
        if init_std > 0:
            generator = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                self.linear.weight.normal_(0.0, init_std, generator=generator)
        else:
            nn.init.zeros_(self.linear.weight)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features.to(self.linear.weight.dtype))


def pairwise_logits(rewards_a: torch.Tensor, rewards_b: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry: the two class logits of a pair (label 1 = A preferred) are (r(B), r(A)), so
    P(label 1) = sigmoid(r(A) - r(B)) and every loss on two logits is the BT loss on the reward
    difference (Yang et al. 2024's reward models). Swapping A and B swaps the logits: the score
    r(A) - r(B) changes sign."""
    return torch.stack([rewards_b, rewards_a], dim=-1)


class ProbeClassifier(nn.Module):
    """The head on cached features, standardised with the training split's statistics.

    Features of shape (items, hidden) give two class logits. Features of shape (items, 2, hidden)
    are pairwise items (text A, text B): one reward head scores each text, standardised with the
    statistics of all the split's texts, and pairwise_logits compares them."""

    def __init__(self, train_features: torch.Tensor, init_std: float = 0.0, seed: int = 0):
        super().__init__()
        self.pairwise = train_features.dim() == 3
        flat = train_features.reshape(-1, train_features.shape[-1])
        self.register_buffer("mean", flat.mean(dim=0))
        self.register_buffer("std", flat.std(dim=0).clamp(min=1e-6))
        self.head = LinearHead(flat.shape[1], init_std, seed, outputs=1 if self.pairwise else 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.head((features - self.mean) / self.std)
        if self.pairwise:
            return pairwise_logits(out[:, 0, 0], out[:, 1, 0])
        return out


class TextClassifier(nn.Module):
    """The head on a (LoRA-adapted or fully trained) backbone reading token ids. With
    ``pairwise``, a batch of k pairs holds the k A texts, then the k B texts; one reward head
    scores every text and pairwise_logits compares each pair."""

    def __init__(self, backbone: nn.Module, hidden_size: int, init_std: float = 0.0, seed: int = 0,
                 pairwise: bool = False):
        super().__init__()
        self.backbone = backbone
        self.pairwise = pairwise
        self.head = LinearHead(hidden_size, init_std, seed, outputs=1 if pairwise else 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.head(self.backbone(input_ids, attention_mask))
        if self.pairwise:
            k = out.shape[0] // 2
            return pairwise_logits(out[:k, 0], out[k:, 0])
        return out


def add_lora(backbone, settings: TrainSettings):
    """Wrap the backbone's linear layers with LoRA adapters; everything else is frozen."""
    from peft import LoraConfig, get_peft_model

    lora = settings.lora
    config = LoraConfig(
        r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
        target_modules=lora.get("target_modules", "all-linear"), bias="none",
    )
    backbone.model = get_peft_model(backbone.model, config)
    return backbone


def prepare_for_mode(backbone, settings: TrainSettings):
    if settings.mode == "lora":
        return add_lora(backbone, settings)
    for parameter in backbone.parameters():
        parameter.requires_grad_(settings.mode == "full")
    return backbone


# --- losses -------------------------------------------------------------------------------------


def logconf_coef(step: int, total_steps: int, aux_coef: float, warmup_frac: float) -> float:
    """The confidence weight at ``step``: a straight line from 0 to ``aux_coef`` over the first
    ``warmup_frac`` of the steps, then flat. (openai/weak-to-strong jumps at the end of warm-up
    instead; see its PR #33.)"""
    warmup_steps = warmup_frac * total_steps
    if warmup_steps <= 0:
        return aux_coef
    return aux_coef * min(1.0, step / warmup_steps)


def confidence_threshold(p_label1: torch.Tensor, balance: float) -> torch.Tensor:
    """The P(label 1) above which a ``balance`` fraction of the batch is called label 1."""
    return torch.quantile(p_label1.float(), 1.0 - balance)


def hard_predictions(p_label1: torch.Tensor, balance: float) -> torch.Tensor:
    return (p_label1 > confidence_threshold(p_label1, balance)).float()


def conflict_term(logits: torch.Tensor, gold: torch.Tensor, reward_alpha: float) -> torch.Tensor:
    """The explicit-conflict term of Yang et al. 2024 (their ``--use_reward_mechanism
    --reward_alpha``): on the items where the student already disagrees with the gold label
    (it predicts label 1 when P(label 1) >= 0.5, i.e. a reward difference >= 0, as their code
    does), binary cross-entropy towards 1 - gold; the other items add 0. Averaged over the whole
    batch and weighted by ``reward_alpha``:

        alpha / B * sum_i m_i * -[(1 - g_i) log p_i + g_i log(1 - p_i)],
        m_i = [(p_i >= 0.5) != g_i].
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    gold = gold.float()
    disagrees = ((log_probs[:, 1].exp() >= 0.5).float() != gold).float().detach()
    towards_opposite = -((1 - gold) * log_probs[:, 1] + gold * log_probs[:, 0])
    return reward_alpha * (disagrees * towards_opposite).mean()


def loss_value(
    loss: str, logits: torch.Tensor, target_p1: torch.Tensor, step: int, total_steps: int,
    settings: TrainSettings, balance: float, gold: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss of a batch. ``target_p1`` is the (weak or gold) P(label 1) of each item.

    - xent: cross-entropy against (1 - p, p).
    - logconf: the target is (1 - c) * weak + c * hard(student), where hard(student) thresholds
      the student's own P(label 1) so that a ``balance`` fraction (the weak labels' class balance)
      is 1, and c = logconf_coef(step).
    - product: the target is proportional to weak^a * student^b per class (a, b the exponents).

    With ``settings.reward_alpha`` > 0 the explicit-conflict term on ``gold`` is added.
    """
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    target = torch.stack([1 - target_p1, target_p1], dim=-1).float()
    if loss == "logconf":
        student_p1 = log_probs[:, 1].exp().detach()
        coef = logconf_coef(step, total_steps, settings.aux_coef, settings.warmup_frac)
        hard = hard_predictions(student_p1, balance)
        target = (1 - coef) * target + coef * torch.stack([1 - hard, hard], dim=-1)
    elif loss == "product":
        student = log_probs.exp().detach()
        target = target.clamp(min=1e-12) ** settings.weak_exponent * student**settings.student_exponent
        target = target / target.sum(dim=-1, keepdim=True)
    elif loss != "xent":
        raise ConfigError(f"loss '{loss}' is unknown; use one of {LOSSES}")
    value = -(target * log_probs).sum(dim=-1).mean()
    if settings.reward_alpha > 0:
        if gold is None:
            raise ValueError("the explicit-conflict term needs the gold labels")
        value = value + conflict_term(logits, gold, settings.reward_alpha)
    return value


# --- the loop -----------------------------------------------------------------------------------


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator)


class _SingleProcess:
    """What fit uses of accelerate.Accelerator, for a head on cached features: one process,
    no DDP, and no accelerate import (a second saved in each of a study's many probe jobs)."""

    process_index, num_processes, is_main_process = 0, 1, True

    def __init__(self, device: torch.device, bf16: bool):
        self.device, self.bf16 = device, bf16

    def prepare(self, *objects):
        return objects

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def backward(self, loss):
        loss.backward()

    def unwrap_model(self, model):
        return model

    def wait_for_everyone(self):
        pass


def _accelerator(device: torch.device, bf16: bool, distributed: bool):
    if not distributed:
        return _SingleProcess(device, bf16)
    from accelerate import Accelerator

    return Accelerator(cpu=device.type == "cpu", mixed_precision="bf16" if bf16 else "no")


def _checkpoints(folder: Path) -> list[Path]:
    return sorted(folder.glob("step*.pt")) if folder.is_dir() else []


def _trainable_state(model: nn.Module) -> dict:
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items() if k in names}


def _save_checkpoint(folder: Path, step: int, model, optimizer, losses, key: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step{step:07d}.pt"
    state = {
        "key": key, "step": step, "model": _trainable_state(model),
        "optimizer": optimizer.state_dict(), "losses": list(losses),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for older in _checkpoints(folder):
        if older != path:
            older.unlink(missing_ok=True)
    return path


def _load_checkpoint(folder: Path, key: str, model, optimizer) -> tuple[int, list[float]]:
    for path in reversed(_checkpoints(folder)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # a torn file from an older, non-atomic writer
            log.warning("ignoring unreadable checkpoint %s (%s)", path, error)
            continue
        if state.get("key") != key:
            log.warning("ignoring checkpoint %s: it belongs to other settings or data", path)
            continue
        model.load_state_dict(state["model"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        log.info("resumed from checkpoint %s (step %d)", path.name, state["step"])
        return state["step"], state["losses"]
    return 0, []


def _optimizer(settings: TrainSettings, parameters):
    if settings.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=settings.lr, momentum=0.9, weight_decay=settings.weight_decay
        )
    raise ConfigError(f"optimizer '{settings.optimizer}' is unknown; use adamw, adam or sgd")


def sparkline(values: list[float], width: int = 40) -> str:
    """A one-line loss curve for logs."""
    if not values:
        return ""
    bins = np.array_split(np.asarray(values, dtype=float), min(width, len(values)))
    means = np.array([b.mean() for b in bins])
    low, high = means.min(), means.max()
    ticks = "▁▂▃▄▅▆▇█"
    scaled = np.zeros_like(means) if high == low else (means - low) / (high - low)
    return "".join(ticks[int(round(s * (len(ticks) - 1)))] for s in scaled)


@dataclass
class FitResult:
    losses: list[float]
    steps: int
    resumed_from: int
    seconds: float
    examples_per_second: float
    l2_penalty: float | None = None  # the exact fit's penalty (chosen by CV or given)
    cv_losses: list[float] | None = None  # mean held-out xent per CV_PENALTIES entry


def fit(
    model: nn.Module,
    make_batch: Callable[[list[int], torch.device], dict],
    targets: np.ndarray,
    settings: TrainSettings,
    checkpoint_dir: str | Path,
    device: torch.device,
    bf16: bool = False,
    data_key: str = "",
    desc: str = "train",
    gold: np.ndarray | None = None,
) -> FitResult:
    """Train ``model`` (its parameters with requires_grad) towards ``targets`` (P(label 1)).

    ``make_batch(indices, device)`` returns the model's keyword inputs for those items.
    ``data_key`` identifies the data, so a checkpoint of other data is never resumed. ``gold``
    (the items' gold labels) is read only by the explicit-conflict term.
    """
    from tqdm import tqdm

    if settings.optimizer == "lbfgs":
        return fit_lbfgs(model, make_batch, targets, settings, device, desc, gold)
    torch.manual_seed(settings.seed)
    n = len(targets)
    steps_per_epoch = math.ceil(n / settings.batch_size)
    total_steps = settings.epochs * steps_per_epoch
    balance = float(np.mean(targets))
    targets_t = torch.as_tensor(np.asarray(targets, dtype=np.float32))
    gold_t = None if gold is None else torch.as_tensor(np.asarray(gold, dtype=np.float32))
    # Backbone training goes through accelerate (multi-GPU under `accelerate launch`/torchrun).
    accelerator = _accelerator(device, bf16, distributed=settings.mode != "probe")
    model = model.to(accelerator.device)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = _optimizer(settings, parameters)
    key = fingerprint(asdict(settings), data_key, n)
    folder = Path(checkpoint_dir)
    start, losses = _load_checkpoint(folder, key, model, optimizer)
    model, optimizer = accelerator.prepare(model, optimizer)
    rank, world = accelerator.process_index, accelerator.num_processes
    model.train()
    started = time.monotonic()
    bar = tqdm(
        total=total_steps, initial=start, desc=desc, unit="step", mininterval=2.0,
        disable=not accelerator.is_main_process,
    )
    for step in range(start, total_steps):
        epoch, position = divmod(step, steps_per_epoch)
        batch = epoch_order(n, settings.seed, epoch)[
            position * settings.batch_size : (position + 1) * settings.batch_size
        ]
        mine = batch[rank::world].tolist()
        with accelerator.autocast():
            logits = model(**make_batch(mine, accelerator.device))
        loss = loss_value(
            settings.loss, logits, targets_t[mine].to(accelerator.device), step, total_steps,
            settings, balance, None if gold_t is None else gold_t[mine].to(accelerator.device),
        ) + head_penalty(accelerator.unwrap_model(model), settings.l2_penalty)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        done = step + 1
        epochs_done, end_of_epoch = divmod(done, steps_per_epoch)
        if end_of_epoch == 0 and epochs_done % max(1, settings.epochs // 10) == 0:
            log.info("%s: epoch %d/%d, mean loss %.4f", desc, epochs_done, settings.epochs,
                     float(np.mean(losses[-steps_per_epoch:])))
        if done % settings.checkpoint_every == 0 and done < total_steps:
            if accelerator.is_main_process:
                _save_checkpoint(folder, done, accelerator.unwrap_model(model), optimizer, losses, key)
            accelerator.wait_for_everyone()
    bar.close()
    seconds = time.monotonic() - started
    trained = (total_steps - start) * min(settings.batch_size, n)
    log.info(
        "%s: %d steps (%d epochs of %d), loss %.4f -> %.4f, %.1f s; loss curve %s",
        desc, total_steps, settings.epochs, steps_per_epoch, losses[0] if losses else float("nan"),
        losses[-1] if losses else float("nan"), seconds, sparkline(losses),
    )
    return FitResult(
        losses=losses, steps=total_steps, resumed_from=start, seconds=seconds,
        examples_per_second=trained / max(seconds, 1e-9),
    )


def head_penalty(model: nn.Module, l2: float) -> torch.Tensor | float:
    """``l2`` times the sum of the head's squared weights (EleutherAI/w2s's logistic probe)."""
    return l2 * model.head.linear.weight.float().square().sum() if l2 else 0.0


# Where the exact fit looks for its penalty (l2_penalty: cv): 0 and 10 values from 1e-4 to 1e4,
# 5 folds, as EleutherAI/w2s's Classifier.fit_cv.
CV_PENALTIES = (0.0, *np.logspace(-4, 4, 10).tolist())
CV_FOLDS = 5
# Rounds of the exact fit for a loss whose target reads the student's own predictions (logconf,
# product): round r fixes those predictions from round r - 1 and the logconf weight at step r of
# LBFGS_ROUNDS, so the weight warms up over the first warmup_frac of the rounds as over the steps
# of a minibatch run.
LBFGS_ROUNDS = 10
LBFGS_MAX_ITER = 500


def _lbfgs_fit(model: nn.Module, inputs: dict, targets: torch.Tensor, l2: float,
               gold: torch.Tensor | None, settings: TrainSettings) -> float:
    """Minimise mean xent towards ``targets`` (plus the explicit-conflict term on ``gold``) plus
    the head penalty over every item at once; the loss reached."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.LBFGS(parameters, max_iter=LBFGS_MAX_ITER, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-6, tolerance_change=1e-9)
    value = [float("nan")]

    def closure():
        optimizer.zero_grad()
        loss = loss_value("xent", model(**inputs), targets, 0, 1, settings, 0.5, gold)
        total = loss + head_penalty(model, l2)
        total.backward()
        value[0] = float(loss.detach())
        return total

    optimizer.step(closure)
    return value[0]


def _round_targets(settings: TrainSettings, targets: torch.Tensor, student: torch.Tensor,
                   round_: int, balance: float) -> torch.Tensor:
    """The xent target of one exact-fit round: the loss's own target with the student's
    predictions ``student`` held fixed (loss_value builds the same from the live predictions)."""
    if settings.loss == "logconf":
        coef = logconf_coef(round_, LBFGS_ROUNDS, settings.aux_coef, settings.warmup_frac)
        return (1 - coef) * targets + coef * hard_predictions(student, balance)
    weak = torch.stack([1 - targets, targets], dim=-1).clamp(min=1e-12) ** settings.weak_exponent
    own = torch.stack([1 - student, student], dim=-1) ** settings.student_exponent
    joint = weak * own
    return joint[:, 1] / joint.sum(dim=-1)


def choose_penalty(model: nn.Module, inputs: dict, targets: torch.Tensor,
                   settings: TrainSettings) -> tuple[float, list[float]]:
    """The penalty of CV_PENALTIES with the least mean held-out xent towards the training targets
    over CV_FOLDS seeded folds (a student's are its weak labels: gold is never read); each fold
    walks the penalties from the largest down, warm-started. The head is reset afterwards."""
    n = len(targets)
    if n < CV_FOLDS:
        raise ConfigError(f"l2_penalty 'cv' needs at least {CV_FOLDS} training items, got {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(settings.seed))
    features = inputs["features"]
    settings = dataclasses.replace(settings, reward_alpha=0.0)  # the conflict term reads gold
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    losses = np.zeros((CV_FOLDS, len(CV_PENALTIES)))
    for k, held in enumerate(torch.tensor_split(order, CV_FOLDS)):
        kept = order[~torch.isin(order, held)]
        model.load_state_dict(initial)
        for j in reversed(range(len(CV_PENALTIES))):
            _lbfgs_fit(model, {"features": features[kept]}, targets[kept], CV_PENALTIES[j], None,
                       settings)
            with torch.no_grad():
                losses[k, j] = float(loss_value("xent", model(features=features[held]),
                                                targets[held], 0, 1, settings, 0.5))
    model.load_state_dict(initial)
    mean = losses.mean(axis=0)
    return CV_PENALTIES[int(np.argmin(mean))], mean.tolist()


def fit_lbfgs(model: nn.Module, make_batch: Callable[[list[int], torch.device], dict],
              targets: np.ndarray, settings: TrainSettings, device: torch.device, desc: str,
              gold: np.ndarray | None = None) -> FitResult:
    """The probe head fitted exactly: full-batch L-BFGS on every training item with an L2 penalty
    (EleutherAI/w2s fits its logistic probes so: w2s/logistic.py, penalty 1e-3 or chosen by
    cross-validation). xent is one convex fit; logconf and product take LBFGS_ROUNDS rounds.
    Deterministic, and seconds long, so it keeps no checkpoints."""
    started = time.monotonic()
    torch.manual_seed(settings.seed)
    model = model.to(device)
    model.train()
    inputs = make_batch(list(range(len(targets))), device)
    targets_t = torch.as_tensor(np.asarray(targets, dtype=np.float32), device=device)
    gold_t = None if gold is None else torch.as_tensor(np.asarray(gold, dtype=np.float32), device=device)
    cv_losses = None
    l2 = settings.l2_penalty
    if l2 == "cv":
        l2, cv_losses = choose_penalty(model, inputs, targets_t, settings)
    losses = [_lbfgs_fit(model, inputs, targets_t, l2, gold_t, settings)]
    if settings.loss != "xent":
        balance = float(targets_t.mean())
        for round_ in range(1, LBFGS_ROUNDS + 1):
            with torch.no_grad():
                student = torch.softmax(model(**inputs).float(), dim=-1)[:, 1]
            round_targets = _round_targets(settings, targets_t, student, round_, balance)
            losses.append(_lbfgs_fit(model, inputs, round_targets, l2, gold_t, settings))
    seconds = time.monotonic() - started
    log.info("%s: exact fit (L-BFGS, l2 penalty %g%s), loss %.4f -> %.4f, %.1f s", desc, l2,
             " chosen by 5-fold CV on the training targets" if cv_losses else "", losses[0],
             losses[-1], seconds)
    return FitResult(losses=losses, steps=len(losses), resumed_from=0, seconds=seconds,
                     examples_per_second=len(targets) * len(losses) / max(seconds, 1e-9),
                     l2_penalty=float(l2), cv_losses=cv_losses)


@torch.no_grad()
def predict(
    model: nn.Module, make_batch: Callable[[list[int], torch.device], dict], n: int,
    device: torch.device, batch_size: int = 64, bf16: bool = False,
) -> np.ndarray:
    """P(label 1) for items 0..n-1."""
    model.eval()
    model = model.to(device)
    out = np.zeros(n, dtype=np.float64)
    for start in range(0, n, batch_size):
        indices = list(range(start, min(start + batch_size, n)))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(**make_batch(indices, device))
        out[indices] = torch.softmax(logits.float(), dim=-1)[:, 1].cpu().numpy()
    return out


def clear_checkpoints(checkpoint_dir: str | Path) -> None:
    folder = Path(checkpoint_dir)
    for path in _checkpoints(folder):
        path.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
