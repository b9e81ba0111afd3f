"""A small, explicit training loop on 🤗 Accelerate, shared by every experiment in the book.

One code path for a laptop CPU and for several GPUs: ``python -m lorabook.glue ...`` runs on
one device, ``accelerate launch -m lorabook.glue ...`` on all of them, with no code change.
Mixed precision and gradient accumulation are settings of ``TrainConfig``.

What it does, per epoch: shuffle with a seed that depends only on (seed, epoch), train with
AdamW and a linear schedule with warm-up, evaluate, write a checkpoint of what trains
(never the frozen weights) atomically. Interrupted runs resume from the last checkpoint;
a non-finite loss stops the run with a clear message and leaves that checkpoint untouched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from lorabook.energy import energy_meter
from lorabook.io import torch_save

MIXED_PRECISION = ("no", "bf16", "fp16")
CHECKPOINT = "last.pt"


@dataclass
class TrainConfig:
    """Optimisation settings (the paper's Appendix D names the same knobs)."""

    epochs: int = 3
    lr: float = 5e-4
    batch_size: int = 16
    eval_batch_size: int = 64
    warmup_ratio: float = 0.06
    warmup_steps: int | None = None  # a fixed number of warm-up steps instead of the ratio
    weight_decay: float = 0.1
    grad_accum: int = 1
    max_grad_norm: float | None = 1.0
    mixed_precision: str = "no"
    seed: int = 0
    max_steps_per_epoch: int | None = None  # cap batches per epoch (quick runs, tests)

    def __post_init__(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(
                f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}"
            )
        for name in ("epochs", "batch_size", "eval_batch_size", "grad_accum"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be at least 0, got {self.warmup_steps}")

    def warmup(self, total_steps: int) -> int:
        """Warm-up steps of a run of ``total_steps``: ``warmup_steps`` if set, else the ratio."""
        if self.warmup_steps is not None:
            return min(self.warmup_steps, total_steps)
        return math.ceil(self.warmup_ratio * total_steps)


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


@dataclass
class FitResult:
    """Per-epoch history and the best epoch by the selection metric (the paper's reporting)."""

    history: list[dict] = field(default_factory=list)
    select: str = ""
    best_epoch: int = 0
    optimizer_steps: int = 0
    seconds: float = 0.0
    resumed_from_epoch: int = 0

    @property
    def best(self) -> dict:
        """The history entry of the best epoch."""
        return self.history[self.best_epoch - 1]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices only, none on biases and norm scales (ndim < 2)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("No trainable parameters: apply a method (e.g. lorabook.apply_lora) first")
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example order of one epoch: a function of (seed, epoch) only, so resumable."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def length_grouped_order(
    lengths: list[int], batch_size: int, seed: int, epoch: int, chunk_batches: int = 50
) -> list[int]:
    """A shuffled order whose batches hold examples of similar length (less padding).

    The epoch's :func:`epoch_order` is cut into chunks of ``chunk_batches * batch_size``
    examples; each chunk is sorted by length (longest first) and cut into batches; then the
    full batches are shuffled (seeded by ``seed`` and ``epoch``, so resumable) and the one
    short batch, if any, goes last so that every batch stays whole.
    """
    order = epoch_order(len(lengths), seed, epoch)
    chunk = chunk_batches * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: -lengths[i])
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    short = [b for b in batches if len(b) < batch_size]
    g = torch.Generator().manual_seed(seed * 100_003 + epoch + 7_919)
    shuffled = [full[i] for i in torch.randperm(len(full), generator=g).tolist()] + short
    return [i for batch in shuffled for i in batch]


CURVE_POINTS = 50


def loss_curve(losses: list[float], points: int = CURVE_POINTS) -> list[float]:
    """The batch losses of an epoch averaged over ``points`` consecutive, near-equal chunks
    (all of them when there are fewer): a learning curve small enough for a JSON record."""
    n = len(losses)
    if n <= points:
        return list(losses)
    bounds = [round(i * n / points) for i in range(points + 1)]
    return [sum(losses[a:b]) / (b - a) for a, b in zip(bounds, bounds[1:], strict=False)]


def _model_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    return model(**batch).loss


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def fit(
    model: nn.Module,
    train_dataset: Dataset,
    evaluate: Callable[[nn.Module, Accelerator], dict[str, float]],
    config: TrainConfig,
    *,
    collate_fn: Callable | None = None,
    select: str,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    compute_loss: Callable[[nn.Module, dict], torch.Tensor] | None = None,
    order: Callable[[int], list[int]] | None = None,
) -> FitResult:
    """Train ``model`` (its trainable parameters) and evaluate after every epoch.

    Args:
        model: a model whose forward returns ``.loss`` when the batch holds labels.
        train_dataset: a map-style dataset of examples that ``collate_fn`` batches.
        evaluate: ``evaluate(model, accelerator) -> {metric: value}``, run after each epoch.
        config: the optimisation settings.
        select: the metric (higher is better) that picks the best epoch.
        checkpoint_dir: where ``last.pt`` is kept; an existing one is resumed from.
        progress: show tqdm progress bars.
        log: where one line per epoch goes.
        compute_loss: ``compute_loss(model, batch) -> loss``; default ``model(**batch).loss``
            (e.g. E2E's label-smoothed loss on the reference tokens).
        order: ``order(epoch) -> indices`` of ``train_dataset`` in batch order (0-based
            epoch); default :func:`epoch_order` with ``config.seed``, e.g.
            :func:`length_grouped_order` for batches of similar length. Must depend on the
            epoch only, so that a resumed run sees the same batches.
    """
    if compute_loss is None:
        compute_loss = _model_loss
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision, gradient_accumulation_steps=config.grad_accum
    )
    set_seed(config.seed)
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr)
    batches = math.ceil(len(train_dataset) / config.batch_size)
    if config.max_steps_per_epoch:
        batches = min(batches, config.max_steps_per_epoch)
    total_steps = config.epochs * math.ceil(batches / config.grad_accum)
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup(total_steps), total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    result = FitResult(select=select)
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state["config"] != asdict(config):
            changed = {
                k: (state["config"].get(k), v)
                for k, v in asdict(config).items()
                if state["config"].get(k) != v
            }
            raise ValueError(
                f"The checkpoint {ckpt} was made with other settings "
                f"(saved, now): {changed}. Use the same settings or delete it."
            )
        accelerator.unwrap_model(model).load_state_dict(state["trainable"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        result.history, result.optimizer_steps = state["history"], state["optimizer_steps"]
        result.resumed_from_epoch = len(result.history)
        log(f"Resuming from {ckpt} after epoch {result.resumed_from_epoch}")

    start = time.perf_counter()
    # Elapsed time and energy at each evaluation, counted across resumes (the energy only on
    # an NVIDIA GPU, and only if every earlier epoch measured it): time to equal accuracy.
    last = result.history[-1] if result.history else {}
    elapsed_before, energy_before = last.get("elapsed_seconds", 0.0), last.get("energy_joules")
    meter = energy_meter(accelerator.device).start()
    for epoch in range(result.resumed_from_epoch, config.epochs):
        indices = order(epoch) if order else epoch_order(len(train_dataset), config.seed, epoch)
        indices = indices[: batches * config.batch_size]
        loader = accelerator.prepare(
            DataLoader(
                Subset(train_dataset, indices), batch_size=config.batch_size, collate_fn=collate_fn
            )
        )
        model.train()
        losses: list[float] = []
        epoch_start = time.perf_counter()
        bar = tqdm(
            loader,
            desc=f"epoch {epoch + 1}/{config.epochs}",
            mininterval=2,
            disable=not progress or not accelerator.is_local_main_process,
        )
        for step, batch in enumerate(bar):
            with accelerator.accumulate(model):
                loss = compute_loss(model, batch)
                if not torch.isfinite(loss):
                    where = (
                        f"the last good checkpoint, {ckpt}, holds epoch {len(result.history)}"
                        if ckpt is not None and ckpt.exists()
                        else "no checkpoint was written yet"
                    )
                    raise TrainingDivergedError(
                        f"Loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                        f"training stopped and {where}. Try a lower learning rate "
                        f"(now {config.lr:g}), or bf16/fp32 instead of fp16."
                    )
                accelerator.backward(loss)
                if config.max_grad_norm and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                if accelerator.sync_gradients:
                    result.optimizer_steps += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
        train_seconds = time.perf_counter() - epoch_start

        model.eval()
        with torch.no_grad():
            metrics = evaluate(model, accelerator)
        if select not in metrics:
            raise KeyError(f"select={select!r} is not among the evaluated metrics {list(metrics)}")
        entry = {
            "epoch": epoch + 1,
            "train_loss": sum(losses) / len(losses),
            "loss_curve": loss_curve(losses),
            "train_seconds": train_seconds,
            "steps": len(losses),
            **metrics,
            "elapsed_seconds": elapsed_before + time.perf_counter() - start,
        }
        if meter.measurable and (energy_before is not None or not last):
            entry["energy_joules"] = (energy_before or 0.0) + meter.joules()
        result.history.append(entry)
        log(
            f"epoch {epoch + 1}: loss {entry['train_loss']:.4f} "
            + " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        )
        if ckpt is not None and accelerator.is_main_process:
            torch_save(
                ckpt,
                {
                    "config": asdict(config),
                    "trainable": _trainable_state(accelerator.unwrap_model(model)),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "history": result.history,
                    "optimizer_steps": result.optimizer_steps,
                },
            )
        accelerator.wait_for_everyone()

    meter.stop()
    result.seconds = time.perf_counter() - start
    scores = [e[select] for e in result.history]
    result.best_epoch = 1 + max(range(len(scores)), key=lambda i: scores[i])
    return result
