"""A small, explicit training loop on 🤗 Accelerate, shared by every experiment in the book.

One code path for a laptop CPU and for several GPUs: ``python -m lorabook.glue ...`` runs on
one device, ``accelerate launch -m lorabook.glue ...`` on all of them, with no code change.
Mixed precision and gradient accumulation are settings of ``TrainConfig``.

Several processes (data parallel): ``config.batch_size`` is the batch of *one process*; each
optimizer step takes ``batch_size × processes`` examples (one contiguous slice of the
epoch's order per process, Accelerate's sharding), so the effective batch is
``batch_size × processes × grad_accum`` (:func:`effective_batch`). ``torchrun
--nproc_per_node 2`` on a machine without a GPU: Accelerate would treat each process as
alone (``DistributedType.NO``: every process trains on all the data and nothing is
averaged); :func:`process_state` asks for ``MULTI_CPU`` (gloo) instead. Checkpoints, logs and
best weights come from the main process; a checkpoint resumes only with the process count
that wrote it.

What it does, per epoch: shuffle with a seed that depends only on (seed, epoch), train with
AdamW and a linear schedule with warm-up, evaluate, write a checkpoint of what trains
(never the frozen weights) atomically. Interrupted runs resume from the last checkpoint;
a non-finite loss stops the run with a clear message and leaves that checkpoint untouched.

Inside an epoch, ``fit`` also writes the checkpoint every ``checkpoint_every`` optimizer
steps (:data:`CHECKPOINT_EVERY` by default), and at the next optimizer step after a SIGTERM,
then stops (:class:`TrainingStopped`): an E2E epoch takes hours on two CPU cores, longer than
a process can count on living. A run resumed from inside an epoch is bit-identical to an
uninterrupted one (same batches, same random state, same schedule, same epoch losses).

``mixed_precision="bf16"`` autocasts the forward pass (the training loss and ``evaluate``)
to bfloat16 matrix multiplies; weights, gradients and AdamW's state stay float32.

Three hooks serve runs that evaluate several times an epoch (E2E's ``full`` preset): an
``order`` and ``max_steps_per_epoch`` that make each of ``fit``'s epochs a *round* (a part of
one pass over the data, see :func:`round_order`), ``stop_early`` (stop
before the next round, e.g. once the dev loss is flat), and ``keep_best`` (the trainable
weights of the best evaluation kept beside the checkpoint, so that a run can use its best
weights rather than its last, and still resume exactly).

Beside each checkpoint ``fit`` writes ``progress.json``, a few numbers a campaign's plan
reads without loading the checkpoint (:func:`lorabook.runs.read_progress`): epochs done, with
the fraction of the current one, and the seconds trained so far.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from lorabook.energy import energy_meter
from lorabook.io import torch_save, write_json
from lorabook.runs import CHECKPOINT, PROGRESS

MIXED_PRECISION = ("no", "bf16", "fp16")
BEST = "best-{epoch}.pt"  # keep_best: the trainable weights of the best epoch so far
# Optimizer steps between checkpoints inside an epoch: on this project's 2-core CPU about
# 5 minutes of SmolLM2 LoRA training (bf16, ~1.4 s a step) and 1-2 of MiniLM's; a checkpoint
# of SmolLM2 FT (weights and AdamW's two moments, 1.6 GB) takes seconds to write.
CHECKPOINT_EVERY = 200
EXIT_ON_SIGTERM = 128 + signal.SIGTERM  # the exit status of a process that SIGTERM ended


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
    resumed_from_batch: int = 0  # batches of the next epoch a mid-epoch checkpoint held
    stopped_early: bool = False  # stop_early ended the run before config.epochs
    best_state: Path | None = None  # keep_best: the file holding the best epoch's weights

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


def adamw(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """``fit``'s default optimizer: ``torch.optim.AdamW`` over :func:`param_groups` at
    ``config.lr``, through PyTorch's fused kernel: one pass over each tensor where the
    for-loop implementation makes about ten, which on a CPU took a large share of a full
    fine-tuning step (MiniLM, one thread beside a campaign: 0.72 s of 1.63, fused 0.11 s).
    The same update, equal to the for-loop one to rounding (a unit in the last place), as
    runs on two processors are. A resumed run keeps the implementation it started with: the
    checkpoint's optimizer state names it."""
    return torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, fused=True)


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example order of one epoch: a function of (seed, epoch) only, so resumable."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


LENGTH_GROUP_BATCHES = 50  # length grouping sorts within chunks of this many batches


def length_grouped_order(
    lengths: list[int],
    batch_size: int,
    seed: int,
    epoch: int,
    chunk_batches: int = LENGTH_GROUP_BATCHES,
) -> list[int]:
    """A shuffled order whose batches hold examples of similar length (less padding): the
    epoch's :func:`epoch_order` grouped by :func:`group_by_length` (seeded by ``seed`` and
    ``epoch``, so resumable)."""
    order = epoch_order(len(lengths), seed, epoch)
    return group_by_length(
        order, lengths, batch_size, seed * 100_003 + epoch + 7_919, chunk_batches
    )


def group_by_length(
    order: list[int],
    lengths: list[int],
    batch_size: int,
    shuffle_seed: int,
    chunk_batches: int = LENGTH_GROUP_BATCHES,
) -> list[int]:
    """``order`` rearranged so that its batches hold examples of similar length.

    ``order`` is cut into chunks of ``chunk_batches * batch_size`` examples; each chunk is
    sorted by length (longest first) and cut into batches; then the full batches are shuffled
    (a generator seeded with ``shuffle_seed``) and the one short batch, if any, goes last so
    that every batch stays whole. The same examples, in as many batches as before.
    """
    chunk = chunk_batches * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: -lengths[i])
        batches += [part[k : k + batch_size] for k in range(0, len(part), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    short = [b for b in batches if len(b) < batch_size]
    g = torch.Generator().manual_seed(shuffle_seed)
    shuffled = [full[i] for i in torch.randperm(len(full), generator=g).tolist()] + short
    return [i for batch in shuffled for i in batch]


def round_sizes(n: int, rounds: int, batch_size: int) -> list[int]:
    """Sizes of ``rounds`` consecutive parts of ``n`` examples that take the same number of
    batches of ``batch_size`` each (the last batch of a part may be short), as even as that
    allows: 42,061 E2E rows in 4 rounds of batch 8 are 10,516 + 3 × 10,515, 1,315 batches each.

    Equal batch counts make ``fit``'s schedule exact: it plans ``epochs ×
    max_steps_per_epoch`` optimizer steps, and every round then takes exactly that many.

    Raises:
        ValueError: no such cut exists (``n`` just above a multiple of ``rounds ×
            batch_size``); the message names the nearest sizes that work.
    """
    if n < 1 or rounds < 1 or batch_size < 1:
        raise ValueError(f"n, rounds and batch_size must be >= 1, got {n}, {rounds}, {batch_size}")
    batches = math.ceil(n / (rounds * batch_size))
    least = (batches - 1) * batch_size + 1  # a part of `batches` batches holds at least this
    if rounds * least > n:
        raise ValueError(
            f"{n} examples cannot be cut into {rounds} rounds of {batches} batches of "
            f"{batch_size} each (that needs at least {rounds * least}); use at most "
            f"{rounds * (batches - 1) * batch_size} examples or another number of rounds"
        )
    extra = n - rounds * least
    return [least + extra // rounds + (1 if i < extra % rounds else 0) for i in range(rounds)]


def round_order(
    n: int,
    batch_size: int,
    rounds_per_epoch: int,
    seed: int,
    lengths: list[int] | None = None,
    chunk_batches: int = LENGTH_GROUP_BATCHES,
) -> tuple[Callable[[int], list[int]], int]:
    """``fit``'s ``order`` and ``max_steps_per_epoch`` for evaluating ``rounds_per_epoch`` times
    per pass over ``n`` examples.

    ``fit``'s epoch ``r`` (0-based) becomes round ``r`` of the run: part ``r %
    rounds_per_epoch`` (:func:`round_sizes`) of the pass ``r // rounds_per_epoch``, whose
    order is :func:`epoch_order` ``(n, seed, pass)``. So the rounds of one pass see every
    example exactly once, in the order an epoch of ``fit`` would, and every round takes the
    same number of batches (returned second), which ``fit``'s schedule needs. With the
    examples' ``lengths``, each round's part is grouped by length (:func:`group_by_length`,
    seeded by ``seed`` and the round): the same examples in the same number of batches.
    """
    sizes = round_sizes(n, rounds_per_epoch, batch_size)
    starts = [sum(sizes[:k]) for k in range(rounds_per_epoch + 1)]
    if lengths is not None and len(lengths) != n:
        raise ValueError(f"lengths has {len(lengths)} entries for {n} examples")

    def order(round_index: int) -> list[int]:
        epoch, part = divmod(round_index, rounds_per_epoch)
        indices = epoch_order(n, seed, epoch)[starts[part] : starts[part + 1]]
        if lengths is None:
            return indices
        salt = seed * 100_003 + round_index + 7_919
        return group_by_length(indices, lengths, batch_size, salt, chunk_batches)

    return order, math.ceil(sizes[0] / batch_size)


CURVE_POINTS = 50


def energy_of_processes(joules: float | None) -> dict[str, float | list[float]]:
    """Energy counted so far by every process of a multi-process run (a collective: every
    process calls it): ``energy_joules``, their sum, and ``energy_joules_per_process`` (rank
    order); nothing if any process could not measure it (each reads its own GPU)."""
    from accelerate.utils import gather_object

    every = gather_object([joules])
    if any(j is None for j in every):
        return {}
    return {"energy_joules": float(sum(every)), "energy_joules_per_process": every}


def loss_curve(losses: list[float], points: int = CURVE_POINTS) -> list[float]:
    """The batch losses of an epoch averaged over ``points`` consecutive, near-equal chunks
    (all of them when there are fewer): a learning curve small enough for a JSON record."""
    n = len(losses)
    if n <= points:
        return list(losses)
    bounds = [round(i * n / points) for i in range(points + 1)]
    return [sum(losses[a:b]) / (b - a) for a, b in zip(bounds, bounds[1:], strict=False)]


def _silent(message: str) -> None:
    """``fit``'s log on the processes other than the main one."""


def _model_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    return model(**batch).loss


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _rng_state() -> dict[str, object]:
    """The random state training draws from: torch's CPU generator (dropout on a CPU, and the
    seed each DataLoader iterator draws) and, where there is one, every CUDA device's."""
    state: dict[str, object] = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    """Restore what :func:`_rng_state` saved (a checkpoint holds its keys)."""
    torch.set_rng_state(state["torch_rng"])
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


class TrainingStopped(SystemExit):
    """SIGTERM arrived while ``fit`` trained with a checkpoint folder: it wrote a checkpoint at
    the next optimizer step (or after the epoch's evaluation) and stopped. Calling it again the
    same way (rerunning the same command) resumes from there, bit-identically.

    A ``SystemExit`` with status 143 (128 + SIGTERM, what the signal itself would have given),
    so that a command line ends without a traceback and no ``except Exception`` swallows it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_ON_SIGTERM)
        self.message = message

    def __str__(self) -> str:
        return self.message


class _Training:
    """What ``fit`` changes only while it runs: SIGTERM sets :attr:`stop_requested` instead of
    ending the process (if ``catch_sigterm``, from the main thread), and Accelerate's autocast
    wrapper of ``model.forward`` (bf16/fp16) is removed again on the way out, so that the model
    computes as it did before ``fit``; whoever decodes or evaluates later chooses its precision
    (:func:`lorabook.precision.autocast`)."""

    def __init__(self, accelerator: Accelerator, model: nn.Module, catch_sigterm: bool) -> None:
        self.accelerator, self.model = accelerator, model
        self.catch = catch_sigterm and threading.current_thread() is threading.main_thread()
        self.stop_requested = False
        self._previous: object = None

    def _on_sigterm(self, signum: int, frame: object) -> None:
        self.stop_requested = True

    def stop(self) -> bool:
        """Whether any process got SIGTERM (all of them then stop at the same step)."""
        if self.accelerator.num_processes == 1:
            return self.stop_requested
        vote = torch.tensor([float(self.stop_requested)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(vote, "sum").item() > 0)

    def __enter__(self) -> _Training:
        if self.catch:
            self._previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.catch:  # None: a handler not set from Python, which cannot be put back
            previous = self._previous if self._previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGTERM, previous)
        self.accelerator.unwrap_model(self.model, keep_fp32_wrapper=False)


def launched_processes() -> int:
    """How many processes the launcher started (``WORLD_SIZE``, which ``torchrun`` and
    ``accelerate launch`` set; 1 without a launcher). Reads the environment only."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def process_state() -> PartialState:
    """Accelerate's shared view of this run's processes, set up once per process.

    Without a GPU, Accelerate counts ``torchrun``'s processes as distributed only when asked
    for the CPU (``cpu=True``); otherwise each one is ``DistributedType.NO``, a run of one
    that trains on all the data. So with several processes and no CUDA device this asks for
    ``MULTI_CPU`` (the gloo backend). Call it (or ``fit``) before anything else creates an
    Accelerate state.

    Raises:
        RuntimeError: an Accelerate state made earlier sees another number of processes
            than the launcher started.
    """
    launched = launched_processes()
    state = PartialState(cpu=launched > 1 and not torch.cuda.is_available())
    if state.num_processes != launched:
        raise RuntimeError(
            f"The launcher started {launched} processes (WORLD_SIZE) but Accelerate sees "
            f"{state.num_processes} ({state.distributed_type}); something created an "
            f"Accelerate state before lorabook.train.process_state(): call it first"
        )
    return state


BATCH_SCOPES = ("global", "process")
"""What a preset's ``batch_size`` counts: ``global``, the examples of one optimizer step
whatever the number of processes (each takes its share); ``process``, one process's batch
(the step's batch grows with the processes)."""


def per_process(config: TrainConfig, scope: str, processes: int) -> TrainConfig:
    """The TrainConfig one of ``processes`` processes trains with, for a batch of ``scope``.

    ``global``: ``batch_size`` is the step's, split evenly (each process takes ``batch_size /
    processes``), so a run's arithmetic does not depend on how many processes run it.
    ``process``: each process takes ``batch_size``, as the official GLUE scripts'
    ``--per_device_train_batch_size`` does on their 8 GPUs (an effective 8 × Table 9's batch).

    Raises:
        ValueError: an unknown scope, or a global batch the processes cannot share evenly
            (the message names the fixes).
    """
    if scope not in BATCH_SCOPES:
        raise ValueError(f"batch_scope must be one of {', '.join(BATCH_SCOPES)}, got {scope!r}")
    if scope == "process" or processes == 1:
        return config
    if config.batch_size % processes:
        raise ValueError(
            f"a global batch of {config.batch_size} cannot be shared evenly by {processes} "
            f"processes: give a batch size that {processes} divides, another process count, "
            "or --batch-scope process (each process takes the whole batch)"
        )
    return replace(config, batch_size=config.batch_size // processes)


def step_examples(config: TrainConfig, processes: int) -> int:
    """The examples of one step of ``fit`` over every process, for the TrainConfig one
    process trains with (:func:`per_process`): ``fit`` deals each step's examples out to the
    processes, a process batch each, so an order grouped in steps of this size (length
    grouping, rounds) gives N processes the steps one process with the same global batch
    takes."""
    return config.batch_size * processes


def effective_batch(config: TrainConfig, processes: int) -> dict[str, int]:
    """The examples behind one optimizer step: ``per_process × processes × grad_accum``, for
    the TrainConfig one process trains with (:func:`per_process`). The experiments put the
    process count in a run's identity when it is above 1."""
    return {
        "per_process": config.batch_size,
        "processes": processes,
        "grad_accum": config.grad_accum,
        "examples": config.batch_size * processes * config.grad_accum,
    }


def _accelerator(config: TrainConfig) -> Accelerator:
    """``fit``'s Accelerator. Accelerate fixes a process's mixed precision at its first
    Accelerator and refuses another one later; a single process that trains in several
    precisions in turn (an fp32/bf16 comparison in one notebook, the tests) gets that state
    reset here. With several processes (``accelerate launch``) the launcher's precision
    stays, and must be the config's."""
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedType

    state = process_state()
    earlier = AcceleratorState._shared_state.get("_mixed_precision", config.mixed_precision)
    if earlier != config.mixed_precision and state.num_processes == 1:
        AcceleratorState._reset_state()
    return Accelerator(
        cpu=state.distributed_type == DistributedType.MULTI_CPU,
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.grad_accum,
    )


def fit(
    model: nn.Module,
    train_dataset: Dataset,
    evaluate: Callable[[nn.Module, Accelerator], dict[str, float]],
    config: TrainConfig,
    *,
    collate_fn: Callable | None = None,
    select: str,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int | None = CHECKPOINT_EVERY,
    progress: bool = True,
    log: Callable[[str], None] = print,
    compute_loss: Callable[[nn.Module, dict], torch.Tensor] | None = None,
    order: Callable[[int], list[int]] | None = None,
    on_evaluated: Callable[[int], None] | None = None,
    make_optimizer: Callable[[nn.Module, TrainConfig], torch.optim.Optimizer] | None = None,
    stop_early: Callable[[list[dict]], bool] | None = None,
    keep_best: bool = False,
) -> FitResult:
    """Train ``model`` (its trainable parameters) and evaluate after every epoch.

    Args:
        model: a model whose forward returns ``.loss`` when the batch holds labels.
        train_dataset: a map-style dataset of examples that ``collate_fn`` batches.
        evaluate: ``evaluate(model, accelerator) -> {metric: value}``, run after each epoch
            without gradients and under the training's autocast (``config.mixed_precision``).
        config: the optimisation settings.
        select: the metric (higher is better) that picks the best epoch.
        checkpoint_dir: where ``last.pt`` is kept; an existing one is resumed from. With it,
            SIGTERM makes ``fit`` write a checkpoint at the next optimizer step and raise
            :class:`TrainingStopped`.
        checkpoint_every: also write ``last.pt`` inside an epoch every this many optimizer
            steps (counted over the run; ``None`` or 0: only at the end of each epoch). Not a
            setting of the run: it changes nothing but where a resumed run starts.
        progress: show tqdm progress bars.
        log: where one line per epoch goes.
        compute_loss: ``compute_loss(model, batch) -> loss``; default ``model(**batch).loss``
            (e.g. E2E's label-smoothed loss on the reference tokens).
        order: ``order(epoch) -> indices`` of ``train_dataset`` in batch order (0-based
            epoch); default :func:`epoch_order` with ``config.seed``, e.g.
            :func:`length_grouped_order` for batches of similar length. Must depend on the
            epoch only, so that a resumed run sees the same batches.
        on_evaluated: ``on_evaluated(epoch)`` (1-based) after each epoch's evaluation and
            before its checkpoint, e.g. to keep what ``evaluate`` predicted beside it (a run
            that dies in between redoes the epoch, and calls it again).
        make_optimizer: ``make_optimizer(model, config) -> optimizer`` over the model's
            trainable parameters (e.g. :func:`lorabook.optimizers.official_adamw`); default
            :func:`adamw` (``torch.optim.AdamW`` with :func:`param_groups`). Not part of
            ``config``: a caller that offers a choice records it in its own settings.
        stop_early: ``stop_early(history) -> bool``, asked before each epoch once one has
            been evaluated (after a resume too): ``True`` ends the run there. The learning
            rate schedule stays planned for ``config.epochs``.
        keep_best: keep the trainable weights of the best epoch by ``select`` (ties: the
            earlier) in ``checkpoint_dir`` (``best-<epoch>.pt``, :attr:`FitResult.best_state`),
            written after that epoch's evaluation and before its checkpoint, so that a run
            killed in between redoes the epoch and writes it again. Needs ``checkpoint_dir``.

    A run resumed from a checkpoint written inside an epoch is bit-identical to one that was
    never interrupted: it skips the batches already trained on, continues the random state
    (dropout) where the checkpoint left it, and keeps the epoch's earlier batch losses, so
    the epoch's ``train_loss`` and ``loss_curve`` are the same too.

    With several processes, each trains on its shard of every optimizer step's
    ``batch_size × processes`` examples (the last step of an epoch is filled up with the
    epoch's first examples, Accelerate's ``even_batches``); a batch's loss in the history is
    the mean over the processes; ``max_steps_per_epoch`` counts these global steps. The
    gradient is the mean of the shards' gradients: equal to one process's with the same
    global batch for a loss averaged over examples (GLUE), close to it for one averaged over
    tokens (E2E: shards of unequal token counts weigh their tokens unlike one batch). The
    checkpoint holds the main process's random state only (exact resumes need dropout off
    or one process), and names its process count: resuming with another count is refused.
    """
    if checkpoint_every is not None and checkpoint_every < 0:
        raise ValueError(
            f"checkpoint_every must be a number of optimizer steps >= 1, or 0/None for "
            f"checkpoints at epoch ends only; got {checkpoint_every}"
        )
    if keep_best and checkpoint_dir is None:
        raise ValueError("keep_best keeps the best weights in checkpoint_dir: give one")
    if compute_loss is None:
        compute_loss = _model_loss
    accelerator = _accelerator(config)
    processes = accelerator.num_processes
    step_size = step_examples(config, processes)  # one step's examples over all processes
    if not accelerator.is_main_process:
        log = _silent  # one log line per epoch, from the main process
    set_seed(config.seed)
    if make_optimizer is None:
        make_optimizer = adamw
    optimizer = make_optimizer(model, config)
    batches = math.ceil(len(train_dataset) / step_size)
    if config.max_steps_per_epoch:
        batches = min(batches, config.max_steps_per_epoch)
    total_steps = config.epochs * math.ceil(batches / config.grad_accum)
    scheduler = get_linear_schedule_with_warmup(optimizer, config.warmup(total_steps), total_steps)
    # The scheduler is stepped here, once per optimizer step: Accelerate's wrapper would step
    # it once per process (it plans in one process's steps), and this schedule is planned in
    # steps of ``step_size`` examples.
    model, optimizer = accelerator.prepare(model, optimizer)

    result = FitResult(select=select)
    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir else None
    in_epoch: dict | None = None  # where a checkpoint written inside an epoch left off
    if ckpt is not None and ckpt.exists():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        if state.get("processes", 1) != processes:
            raise ValueError(
                f"The checkpoint {ckpt} was written by a run of {state.get('processes', 1)} "
                f"process(es); this run has {processes}, which changes the effective batch. "
                f"Launch {state.get('processes', 1)} processes to resume, or delete "
                f"{ckpt.parent} to start over."
            )
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
        result.history, result.optimizer_steps = state["history"], state["optimizer_steps"]
        result.resumed_from_epoch = len(result.history)
        in_epoch = state.get("in_epoch")
        if in_epoch is None:
            _set_rng_state(state)
            log(f"Resuming from {ckpt} after epoch {result.resumed_from_epoch}")
        else:  # the random state is restored once the epoch's loader has drawn its seed
            in_epoch = {**in_epoch, "rng": {k: state[k] for k in state if k.endswith("_rng")}}
            result.resumed_from_batch = in_epoch["batches"]
            log(
                f"Resuming from {ckpt} in epoch {result.resumed_from_epoch + 1}, "
                f"after {in_epoch['batches']} batches"
            )

    # what the checkpoint on disk holds: finished epochs, and batches of the next one
    saved = {"epochs": len(result.history), "batches": in_epoch["batches"] if in_epoch else 0}

    def save(in_epoch: dict | None = None) -> None:
        saved.update(epochs=len(result.history), batches=in_epoch["batches"] if in_epoch else 0)
        if accelerator.is_main_process:
            torch_save(
                ckpt,
                {
                    "config": asdict(config),
                    "processes": processes,
                    "trainable": _trainable_state(accelerator.unwrap_model(model)),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    **_rng_state(),
                    "history": result.history,
                    "optimizer_steps": result.optimizer_steps,
                    "in_epoch": in_epoch,
                },
            )
            part = in_epoch["batches"] / in_epoch["epoch_batches"] if in_epoch else 0.0
            write_json(
                ckpt.parent / PROGRESS,
                {
                    "epochs_done": len(result.history) + part,
                    "elapsed_seconds": (in_epoch or result.history[-1])["elapsed_seconds"],
                },
            )
        accelerator.wait_for_everyone()

    def stopped(where: str) -> TrainingStopped:
        message = f"SIGTERM: checkpoint written {where} ({ckpt}); run again to resume"
        log(message)
        return TrainingStopped(message)

    start = time.perf_counter()
    # Elapsed time and energy at each evaluation, counted across resumes (the energy only on
    # an NVIDIA GPU, and only if every earlier epoch measured it): time to equal accuracy.
    last = in_epoch or (result.history[-1] if result.history else {})
    elapsed_before, energy_before = last.get("elapsed_seconds", 0.0), last.get("energy_joules")
    if "energy_joules_per_process" in last:  # several processes: this one's own count
        energy_before = last["energy_joules_per_process"][accelerator.process_index]
    meter = energy_meter(accelerator.device).start()

    def clocks() -> dict[str, float]:
        """Elapsed seconds (and joules, if measured throughout) since the run began."""
        out = {"elapsed_seconds": elapsed_before + time.perf_counter() - start}
        if meter.measurable and (energy_before is not None or not last):
            out["energy_joules"] = (energy_before or 0.0) + meter.joules()
        return out

    def best_epoch() -> int:
        """The best evaluated epoch by ``select`` (1-based; ties: the earlier)."""
        scores = [e[select] for e in result.history]
        return 1 + max(range(len(scores)), key=lambda i: scores[i])

    def keep_only_best() -> None:
        """Remove best-weight files of any epoch but the best one the checkpoint records
        (one written by an evaluation whose checkpoint a kill prevented is stale)."""
        assert ckpt is not None
        keep = ckpt.parent / BEST.format(epoch=best_epoch())
        if accelerator.is_main_process:
            for path in ckpt.parent.glob(BEST.format(epoch="*")):
                if path != keep:
                    path.unlink(missing_ok=True)

    with _Training(accelerator, model, catch_sigterm=ckpt is not None) as training:
        for epoch in range(result.resumed_from_epoch, config.epochs):
            if stop_early is not None and result.history and stop_early(result.history):
                result.stopped_early = True
                log(f"stopped early after epoch {len(result.history)} (stop_early)")
                break
            done = in_epoch["batches"] if in_epoch else 0
            losses: list[float] = list(in_epoch["losses"]) if in_epoch else []
            seconds_before = in_epoch["train_seconds"] if in_epoch else 0.0
            rng = in_epoch["rng"] if in_epoch else None
            in_epoch = None
            indices = order(epoch) if order else epoch_order(len(train_dataset), config.seed, epoch)
            indices = indices[: batches * step_size]
            epoch_batches = math.ceil(len(indices) / step_size)
            loader = accelerator.prepare(  # several processes: each gets its shard of a step
                DataLoader(
                    Subset(train_dataset, indices[done * step_size :]),
                    batch_size=config.batch_size,
                    collate_fn=collate_fn,
                )
            )
            model.train()
            epoch_start = time.perf_counter()
            bar = tqdm(
                loader,
                desc=f"epoch {epoch + 1}/{config.epochs}",
                initial=done,
                total=epoch_batches,
                mininterval=2,
                disable=not progress or not accelerator.is_local_main_process,
            )
            for step, batch in enumerate(bar, start=done):
                if rng is not None:  # the loader drew its seed, as at the epoch's start
                    _set_rng_state(rng)
                    rng = None
                with accelerator.accumulate(model):
                    loss = compute_loss(model, batch)
                    seen = loss.detach()  # the step's loss over every process's shard
                    if processes > 1:
                        seen = accelerator.reduce(seen.float(), "mean")
                    if not torch.isfinite(seen):
                        where = "no checkpoint was written yet"
                        if ckpt is not None and ckpt.exists():
                            held = f"epoch {saved['epochs']}"
                            if saved["batches"]:
                                held = f"{saved['batches']} batches of epoch {saved['epochs'] + 1}"
                            where = f"the last good checkpoint, {ckpt}, holds {held}"
                        raise TrainingDivergedError(
                            f"Loss became {seen.item()} at epoch {epoch + 1}, step {step + 1}; "
                            f"training stopped and {where}. Try a lower learning rate "
                            f"(now {config.lr:g}), or bf16/fp32 instead of fp16."
                        )
                    accelerator.backward(loss)
                    if config.max_grad_norm and accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
                    optimizer.step()
                    if accelerator.sync_gradients and not accelerator.optimizer_step_was_skipped:
                        scheduler.step()
                    optimizer.zero_grad()
                    if accelerator.sync_gradients:
                        result.optimizer_steps += 1
                losses.append(seen.item())
                bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
                if ckpt is None or not accelerator.sync_gradients or step + 1 == epoch_batches:
                    continue  # the epoch's end writes its own checkpoint after evaluating
                stop = training.stop()
                if stop or (checkpoint_every and result.optimizer_steps % checkpoint_every == 0):
                    save(
                        {
                            "epoch": epoch,
                            "batches": step + 1,
                            "epoch_batches": epoch_batches,
                            "losses": losses,
                            "train_seconds": seconds_before + time.perf_counter() - epoch_start,
                            **clocks(),
                        }
                    )
                    if stop:
                        raise stopped(f"in epoch {epoch + 1} after {step + 1} batches")
            train_seconds = seconds_before + time.perf_counter() - epoch_start

            model.eval()
            with torch.no_grad(), accelerator.autocast():
                metrics = evaluate(model, accelerator)
            if select not in metrics:
                raise KeyError(
                    f"select={select!r} is not among the evaluated metrics {list(metrics)}"
                )
            entry = {
                "epoch": epoch + 1,
                "train_loss": sum(losses) / len(losses),
                "loss_curve": loss_curve(losses),
                "train_seconds": train_seconds,
                "steps": len(losses),
                **metrics,
                **clocks(),
            }
            if processes > 1:  # every process reaches this evaluation: gather its joules
                entry.update(energy_of_processes(entry.pop("energy_joules", None)))
            result.history.append(entry)
            log(
                f"epoch {epoch + 1}: loss {entry['train_loss']:.4f} "
                + " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            )
            if on_evaluated is not None:
                on_evaluated(epoch + 1)  # on every process: write files from the main one
            if ckpt is None:
                accelerator.wait_for_everyone()
                continue
            if keep_best and best_epoch() == epoch + 1 and accelerator.is_main_process:
                torch_save(
                    ckpt.parent / BEST.format(epoch=epoch + 1),
                    {
                        "epoch": epoch + 1,
                        "trainable": _trainable_state(accelerator.unwrap_model(model)),
                    },
                )
            save()
            if keep_best:
                keep_only_best()
            if training.stop():
                raise stopped(f"after epoch {epoch + 1}")

    meter.stop()
    result.seconds = time.perf_counter() - start
    result.best_epoch = best_epoch()
    if keep_best:
        assert ckpt is not None
        result.best_state = ckpt.parent / BEST.format(epoch=result.best_epoch)
        if not result.best_state.exists():
            raise FileNotFoundError(
                f"{result.best_state} (the weights of epoch {result.best_epoch}, the best) is "
                f"missing: was {ckpt.parent} changed by hand? Delete the folder to train again"
            )
    return result
