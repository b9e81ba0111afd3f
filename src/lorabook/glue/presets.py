"""Hyperparameter presets for the GLUE experiments: the paper's, and a CPU-sized one.

``paper`` (RoBERTa-base, LoRA): the paper's Appendix D, Table 9: AdamW, linear schedule,
warm-up ratio 0.06, max sequence length 512, r = 8 on W_q and W_v, α = 8, and per task
(``tests/test_paper.py`` holds these to the transcription of Table 9):

    task   batch  epochs  lr        task   batch  epochs  lr
    mnli   16     30      5e-4      qqp    16     25      5e-4
    sst2   16     60      5e-4      rte    32     80      5e-4
    mrpc   16     30      4e-4      stsb   16     40      4e-4
    cola   32     80      4e-4      qnli   32     25      4e-4

The official scripts (microsoft/LoRA at c4593f0, ``examples/NLU/roberta_base_<task>.sh``)
pass Table 9's batch as ``--per_device_train_batch_size``, with its lr, epochs and max
length; they differ from Table 9 in three ways, kept visible here:
- they launch 8 processes (``torch.distributed.launch``, ``num_gpus=8``; CoLA: 2), so their
  effective batch is 8× (CoLA: 2×) Table 9's, unless Table 9 means a per-device batch, which
  the paper does not say. We take Table 9's batch as the whole batch.
- they pass ``--lora_alpha 16`` where Table 9 says α = 8. We default to the paper (8);
  ``--lora-alpha 16`` reproduces the scripts.
- they pass ``--weight_decay 0.1``, which Table 9 does not list; this preset takes it from them.
One more difference is between the paper and this package, not within the paper: for MRPC,
RTE and STS-B both the paper (Appendix D.1) and its scripts (``--lora_path
roberta_base_mnli_lora.bin``) start LoRA from the LoRA weights trained on MNLI, and the paper
says its FT baseline also started from a model adapted to MNLI (Section 5.2). MNLI is not in
the offline data, so that initialisation is not reproduced; our paper-preset runs start from
the pretrained model.

Full fine-tuning follows the RoBERTa paper's GLUE recipe (Liu et al. 2019, Table 10, stated
there for RoBERTa-large: lr from {1e-5, 2e-5, 3e-5}, batch {16, 32}, at most 10 epochs,
warm-up 0.06, weight decay 0.1); we take one point of that grid, lr 2e-5 and batch 16.
The LoRA paper takes its baselines' numbers from their own papers and lists no
hyperparameters for them on RoBERTa-base (Table 9 has none for FT either), so for BitFit
and the adapters the ``paper`` preset uses LoRA's schedule per task with lr 1e-3 for BitFit
and 1e-4 for adapters: **our choice, not the paper's**.

``quick``: for a 2-core CPU and MiniLM: a seeded subset of the training set, short
sequences, 3 epochs; every number here is ours, chosen so that a run takes one to two
minutes on two CPU cores (the ten FT and LoRA runs of the five offline tasks took 16 minutes
in total on this project's 2-core CI machine).

``cpu``: MiniLM on this project's 2-core CPU, sized to *converge* rather than to be quick:
the whole training sets of MRPC, RTE, STS-B and CoLA and a seeded 10,000-example part of
SST-2's 67,349 (the budget: see :mod:`lorabook.glue.campaign`), max length 128, batch 16,
length-grouped batches, the paper's warm-up ratio (Table 9) and the official scripts' weight
decay (0.1). The learning rate and the number of epochs of each method are not guessed: a
small sweep on MRPC's dev set picks them
(:data:`CPU_SWEEP`, the rule in :func:`lorabook.glue.campaign.pick`), and :data:`CPU_CHOSEN`
holds what it picked. Until a method's pick is filled in, the preset asks for ``--lr`` and
``--epochs`` (which is how the sweep runs it).

``full`` (issue 20): MiniLM on the same CPU, sized so that every method has *peaked*: the
``cpu`` preset's data (whole training sets, SST-2's seeded 10,000), batch, warm-up, weight
decay and length-grouped batches, with
- ``max_length`` 512: nothing truncated (RTE's longest pair is 289 MiniLM tokens; at 128,
  304 of its 2,490 training pairs and 33 of its 277 dev pairs were cut); batches still pad
  only to their longest, so the limit costs only RTE's long pairs (174,794 training tokens an
  epoch against 165,740 at 128; the other tasks' pairs all fit in 128);
- bf16 autocast (``results/bench/precision-cpu.json``: MiniLM LoRA ×1.51 and FT ×1.54 a
  step where the CPU has it natively), on every machine
  (:data:`~lorabook.precision.CAMPAIGN_PRECISION`: see "bf16" below);
- each method's learning rate from the MRPC sweep (``CPU_CHOSEN[method][0]``); the sweep ran
  the adapters at m = 64 and ``adapter_p`` as Houlsby's FFN adapter (the ``cpu`` preset's), so
  the adapters at LoRA's size and Pfeiffer's adapter take those rates unswept;
- epochs per task and method from :data:`FULL_EPOCHS`, which the campaign's budget rule fills
  (:mod:`lorabook.glue.full_campaign`); until then :data:`FULL_START_EPOCHS`;
- Pfeiffer's AdapterP, and both adapters at LoRA's size (:data:`FULL_ADAPTER_SIZE`: on
  MiniLM, AdapterH m = 8 trains 78,432 parameters, AdapterP m = 16 76,128, LoRA r = 8 on W_q,
  W_v 73,728); ``adapter_size=64`` (the ``cpu`` preset's) is the same method, larger;
- the read-out :data:`FULL_POOLING`, which the campaign's head stage picks.

LoRA's targets (Section 7's ablations): ``lora_targets`` names the attention weights to adapt
by their short names ``q``, ``k``, ``v``, ``o`` (W_q, W_k, W_v, W_o; mapped to the model's
modules by :data:`lorabook.inject.ATTENTION_WEIGHTS`), as a set: ``v q`` is ``q v``. The
default is the paper's W_q and W_v. The setting came after the first records, so it enters a
run's identity only when it differs from the default: every earlier record keeps its name
(the E2E presets' ``ADDED_LATER`` rule), and ``--lora-targets q v`` finds them.

AdapterP's variant (issue 20): ``adapter_p`` is Pfeiffer's adapter (``lorabook.methods``,
``PfeifferAdapter``); until issue 20 it was Houlsby's FFN adapter alone (now the method
``adapter_h_ffn``), and the GLUE records made then say ``adapter_p``. The setting
``adapter_p_variant`` (:data:`ADAPTER_P_VARIANTS`) says which an ``adapter_p`` run trains. The
old meaning, ``houlsby_ffn``, is left out of a run's identity (those records keep their names,
and a record of ``adapter_p`` without the setting is Houlsby's FFN adapter); ``pfeiffer`` is
in it. The ``cpu`` preset keeps ``houlsby_ffn``, so its meaning stays what its records are;
``paper``, ``quick`` and a new preset get ``pfeiffer``, the paper's AdapterP.

The batch (issue 22): every preset's ``batch_size`` is the *global* batch, the examples of
one optimizer step (``batch_scope = "global"``): with N processes each takes batch / N, so a
run's arithmetic does not depend on how many processes run it. That is how this book reads
Table 9, whose text does not say "per device". The official scripts pass Table 9's batch as
``--per_device_train_batch_size`` on 8 GPUs (CoLA: 2): ``--batch-scope process`` makes each
process take the whole batch (on 8 processes, the scripts' effective batch).

bf16 (issue 17): the ``cpu`` preset trains and evaluates with ``mixed_precision =``
:func:`~lorabook.precision.cpu_precision`: bf16 autocast over fp32 weights and optimizer
state where the CPU computes bf16 natively (this project's machine does), fp32 elsewhere, and
a run that falls back says so in one line (:data:`CPU_PRECISION_PRESETS`); the record's
``precision`` says which it ran in. Until issue 17 the preset trained in fp32, and every
``cpu`` record committed then says ``mixed_precision: "no"``: ``mixed_precision`` is part of a
run's identity, so those records are now "the ``cpu`` preset in fp32". The campaign's jobs pin
that (:data:`lorabook.glue.campaign.RECORDED_IN`), so re-running the campaign reproduces its
records and the book finds them; ``--mixed-precision no`` finds them from the command line.
The ``full`` preset's bf16 is pinned (:data:`~lorabook.precision.CAMPAIGN_PRECISION`), not
asked of the machine: its campaign's records are bf16 runs, and on a CPU without native bf16 a
preset that asked would name fp32 runs, none of which the campaign made. A ``full`` run there
says that bf16 is emulated (many times slower) and that ``--mixed-precision no`` is a run of
its own.

The read-out (``pooling``, :mod:`lorabook.heads`): ``cls``, the models' own (BERT's pooler on
[CLS]; RoBERTa's head on ``<s>``), or ``mean``, the masked mean of the tokens, which
all-MiniLM-L6-v2 was trained for (its pooler is untrained). ``cls`` is left out of a run's
identity (every earlier record used it); ``mean`` is in it.

Batches are padded to their longest example (``padding="longest"``), not to ``max_length``:
most GLUE sentences are far shorter. ``group_by_length=True`` also forms batches of similar
length (seeded; see :func:`lorabook.train.length_grouped_order`), which pads even less.

Every setting is checked by :meth:`GluePreset.check` before any data or model is loaded; a
bad one raises :class:`SettingsError` naming the setting and what would work.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from lorabook.cli import SettingsError
from lorabook.heads import POOLING
from lorabook.precision import CAMPAIGN_PRECISION, cpu_precision
from lorabook.train import BATCH_SCOPES, LENGTH_GROUP_BATCHES, TrainConfig

PRESETS = ("paper", "quick", "cpu", "full")
CPU_PRECISION_PRESETS = ("cpu",)  # mixed_precision: cpu_precision(), see issue 17 above
PADDING = ("longest", "max_length")  # pad each batch to its longest example, or to max_length
MIN_MAX_LENGTH = 8

# Table 9 of the LoRA paper (RoBERTa-base, LoRA): task -> (batch size, epochs, learning rate)
PAPER_LORA_ROBERTA_BASE: dict[str, tuple[int, int, float]] = {
    "mnli": (16, 30, 5e-4),
    "sst2": (16, 60, 5e-4),
    "mrpc": (16, 30, 4e-4),
    "cola": (32, 80, 4e-4),
    "qnli": (32, 25, 4e-4),
    "qqp": (16, 25, 5e-4),
    "rte": (32, 80, 5e-4),
    "stsb": (16, 40, 4e-4),
}
PAPER_LORA_R, PAPER_LORA_ALPHA, OFFICIAL_SCRIPTS_LORA_ALPHA = 8, 8, 16
LORA_TARGETS = ("q", "k", "v", "o")  # W_q, W_k, W_v, W_o, in this order in every record
PAPER_LORA_TARGETS = ("q", "v")
PAPER_MAX_LENGTH, PAPER_WARMUP_RATIO, PAPER_WEIGHT_DECAY = 512, 0.06, 0.1
ROBERTA_FT = {"lr": 2e-5, "batch_size": 16, "epochs": 10}  # one point of RoBERTa's grid
BASELINE_LR = {"bitfit": 1e-3, "adapter_h": 1e-4, "adapter_p": 1e-4}  # ours, see above
# What an adapter_p run trains, by adapter_p_variant: the lorabook.methods method
ADAPTER_P_VARIANTS: dict[str, str] = {"pfeiffer": "adapter_p", "houlsby_ffn": "adapter_h_ffn"}
ADAPTER_P_LEGACY = "houlsby_ffn"  # adapter_p before issue 20: left out of a run's identity

# quick preset (ours): learning rate per method; a subset of the training set
QUICK_LR = {"ft": 5e-5, "lora": 1e-3, "bitfit": 1e-3, "adapter_h": 5e-4, "adapter_p": 5e-4}
QUICK_TRAIN_EXAMPLES, QUICK_MAX_LENGTH, QUICK_EPOCHS, QUICK_BATCH = 800, 64, 3, 16

# cpu preset (ours): whole training sets but SST-2's; lr and epochs per method from a sweep
CPU_MAX_LENGTH, CPU_BATCH = 128, 16
CPU_TRAIN_EXAMPLES: dict[str, int] = {"sst2": 10_000}  # other tasks: the whole training set
CPU_SWEEP_TASK = "mrpc"
CPU_SWEEP: dict[str, tuple[tuple[float, ...], int]] = {  # method -> (lrs tried, epochs each)
    "ft": ((2e-5, 5e-5, 1e-4), 5),
    "lora": ((5e-4, 1e-3, 2e-3), 8),
    "bitfit": ((1e-3, 3e-3), 8),
    "adapter_h": ((3e-4, 1e-3), 8),
    "adapter_p": ((3e-4, 1e-3), 8),
}
# method -> (lr, epochs) that the sweep picked (python -m lorabook.glue.campaign pick)
CPU_CHOSEN: dict[str, tuple[float, int]] = {
    "ft": (5e-5, 4),  # MRPC: 2e-5 79.2, 5e-5 82.4 (82.4 at epoch 4), 1e-4 80.1
    "lora": (1e-3, 5),  # MRPC: 5e-4 79.4, 1e-3 80.6 (80.4 at epoch 5), 2e-3 79.7
    "bitfit": (3e-3, 5),  # MRPC: 1e-3 81.6, 3e-3 83.6 (83.6 at epoch 5), 6e-3 80.9
    "adapter_h": (1e-3, 5),  # MRPC: 3e-4 81.6, 1e-3 82.4 (81.9 at epoch 5), 2e-3 80.1
    "adapter_p": (1e-3, 4),  # MRPC: 3e-4 80.9, 1e-3 81.4 (81.4 at epoch 4), 2e-3 80.4
}


# full preset (ours, issue 20): the cpu preset's data and schedule shape, until every method
# has peaked; the campaign (python -m lorabook.glue.full_campaign) fills in what it decides
FULL_MAX_LENGTH = PAPER_MAX_LENGTH  # 512: nothing truncated (RTE's longest pair: 289 tokens)
# method -> epochs of the budget rule's first run: the cpu campaign's 20-epoch LoRA follow-ups
# peaked at epochs 12, 15 and 19 (CoLA, SST-2, RTE); its 4-epoch FT at its last epoch on MRPC,
# SST-2 and STS-B (seed 0)
FULL_START_EPOCHS = {"ft": 10, "lora": 20, "bitfit": 20, "adapter_h": 20, "adapter_p": 20}
# (task, method) -> epochs the budget rule gave (python -m lorabook.glue.full_campaign budget)
FULL_EPOCHS: dict[tuple[str, str], int] = {}
FULL_ADAPTER_SIZE = {"adapter_h": 8, "adapter_p": 16}  # LoRA's size on MiniLM (docstring)
FULL_POOLING = "mean"  # the head stage's pick (python -m lorabook.glue.full_campaign pick-pooling)


@dataclass(frozen=True)
class GluePreset:
    """Everything that decides one GLUE run besides task, method, model and seed."""

    train: TrainConfig
    max_length: int
    train_examples: int | None = None  # None: the whole training set
    eval_examples: int | None = None  # None: the whole dev set
    lora_r: int = PAPER_LORA_R
    lora_alpha: float = PAPER_LORA_ALPHA
    lora_targets: tuple[str, ...] = PAPER_LORA_TARGETS  # short names, see LORA_TARGETS
    adapter_size: int = 64
    adapter_p_variant: str = "pfeiffer"  # see ADAPTER_P_VARIANTS
    pooling: str = "cls"  # what the classifier reads: [CLS] (the models' own) or the mean
    padding: str = "longest"
    group_by_length: bool = False
    batch_scope: str = "global"  # train.batch_size counts a step's examples (BATCH_SCOPES)
    notes: list[str] = field(default_factory=list)
    unset: tuple[str, ...] = ()  # settings the preset has no value for yet: give them

    def with_overrides(self, **overrides: object) -> GluePreset:
        """A copy with fields replaced; TrainConfig fields (lr, epochs, ...) are accepted too.

        Raises:
            SettingsError: an unknown setting, or a TrainConfig value out of range.
        """
        train_fields = set(TrainConfig.__dataclass_fields__)
        unknown = set(overrides) - train_fields - set(self.__dataclass_fields__)
        if unknown:
            raise SettingsError(
                f"Unknown settings {sorted(unknown)}; preset fields: "
                f"{sorted(self.__dataclass_fields__)}, train: {sorted(train_fields)}"
            )
        train = {k: v for k, v in overrides.items() if k in train_fields}
        own = {k: v for k, v in overrides.items() if k not in train_fields}
        own["unset"] = tuple(name for name in self.unset if name not in overrides)
        try:
            return replace(self, train=replace(self.train, **train), **own)
        except ValueError as err:  # TrainConfig.__post_init__
            raise SettingsError(str(err)) from None

    def check(self) -> GluePreset:
        """Raise :class:`SettingsError` for a value that cannot work; return ``self``.

        TrainConfig checks its own fields (epochs, lr, batch size, ...) when it is made.
        """
        problems = []
        if self.unset:
            flags = " and ".join("--" + name.replace("_", "-") for name in self.unset)
            problems.append(
                f"this preset has no {', '.join(self.unset)} for this method yet (a sweep picks "
                f"them: python -m lorabook.glue.campaign sweep); give {flags}"
            )
        if not isinstance(self.lora_r, int) or self.lora_r < 1:
            problems.append(f"lora_r must be a whole number >= 1, got {self.lora_r!r}")
        if not (isinstance(self.lora_alpha, int | float) and 0 < self.lora_alpha < math.inf):
            problems.append(f"lora_alpha must be a positive number, got {self.lora_alpha!r}")
        targets = self.lora_targets
        if (
            isinstance(targets, str)
            or not isinstance(targets, tuple | list)
            or not targets
            or any(t not in LORA_TARGETS for t in targets)
        ):
            problems.append(
                f"lora_targets must be one or more of {', '.join(LORA_TARGETS)} (W_q, W_k, "
                f"W_v, W_o), got {targets!r}"
            )
        if not isinstance(self.adapter_size, int) or self.adapter_size < 1:
            problems.append(f"adapter_size must be a whole number >= 1, got {self.adapter_size!r}")
        if self.adapter_p_variant not in ADAPTER_P_VARIANTS:
            problems.append(
                f"adapter_p_variant must be one of {', '.join(ADAPTER_P_VARIANTS)} (Pfeiffer's "
                f"adapter; Houlsby's FFN adapter alone), got {self.adapter_p_variant!r}"
            )
        if self.pooling not in POOLING:
            problems.append(
                f"pooling must be one of {', '.join(POOLING)} ([CLS] through the model's own "
                f"head; the masked mean of the tokens), got {self.pooling!r}"
            )
        if self.max_length < MIN_MAX_LENGTH:
            problems.append(f"max_length must be at least {MIN_MAX_LENGTH}, got {self.max_length}")
        for name in ("train_examples", "eval_examples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(
                    f"{name} must be at least 1 (leave it unset, or 'all' on the command "
                    f"line, for the whole split), got {value}"
                )
        steps = self.train.max_steps_per_epoch
        if steps is not None and steps < 1:
            problems.append(f"max_steps_per_epoch must be at least 1 (or unset), got {steps}")
        if self.padding not in PADDING:
            problems.append(f"padding must be one of {PADDING}, got {self.padding!r}")
        if self.batch_scope not in BATCH_SCOPES:
            problems.append(
                f"batch_scope must be one of {', '.join(BATCH_SCOPES)} (the step's batch; each "
                f"process's), got {self.batch_scope!r}"
            )
        if problems:
            raise SettingsError("; ".join(problems))
        return self

    def lora_target_names(self) -> tuple[str, ...]:
        """``lora_targets`` as a set in canonical order (q, k, v, o): ``v q`` is ``q v``."""
        return tuple(t for t in LORA_TARGETS if t in self.lora_targets)

    def model_method(self, method: str) -> str:
        """The ``lorabook.methods`` method a run of ``method`` trains: ``adapter_p`` by its
        variant (``adapter_p`` or ``adapter_h_ffn``), every other method as named."""
        return ADAPTER_P_VARIANTS[self.adapter_p_variant] if method == "adapter_p" else method

    def resolved(self, method: str) -> dict:
        """Every setting that decides a run of ``method``, JSON-ready, in canonical types.

        Floats are floats (``lora_alpha`` 8 and 8.0 are the same run); settings the method
        does not use are ``None``. This dict, minus ``notes``, is part of a run's identity.
        ``lora_targets`` is in it only for LoRA away from the paper's (q, v), and
        ``adapter_p_variant`` only for ``adapter_p`` away from ``houlsby_ffn``, ``pooling``
        only away from ``cls``, ``batch_scope`` only away from ``global``: a setting added after
        records were written must not rename them.
        """
        train = asdict(self.train)
        for name in ("lr", "warmup_ratio", "weight_decay", "max_grad_norm"):
            if train[name] is not None:
                train[name] = float(train[name])
        lora = method == "lora"
        targets = self.lora_target_names()
        variant = self.adapter_p_variant if method == "adapter_p" else ADAPTER_P_LEGACY
        return {
            "train": train,
            "max_length": self.max_length,
            "train_examples": self.train_examples,
            "eval_examples": self.eval_examples,
            "lora_r": self.lora_r if lora else None,
            "lora_alpha": float(self.lora_alpha) if lora else None,
            **({"lora_targets": list(targets)} if lora and targets != PAPER_LORA_TARGETS else {}),
            "adapter_size": self.adapter_size if method.startswith("adapter") else None,
            **({"adapter_p_variant": variant} if variant != ADAPTER_P_LEGACY else {}),
            **({"pooling": self.pooling} if self.pooling != POOLING[0] else {}),
            **({"batch_scope": self.batch_scope} if self.batch_scope != BATCH_SCOPES[0] else {}),
            "padding": self.padding,
            "group_by_length": self.group_by_length,
            "length_group_batches": LENGTH_GROUP_BATCHES if self.group_by_length else None,
            "notes": list(self.notes),
        }


def glue_preset(preset: str, task: str, method: str, seed: int = 0) -> GluePreset:
    """The settings of ``preset`` for one task and method."""
    if preset not in PRESETS:
        raise SettingsError(f"Unknown preset {preset!r}; choose one of {PRESETS}")
    if task not in PAPER_LORA_ROBERTA_BASE:
        raise SettingsError(
            f"Unknown task {task!r}; choose one of {sorted(PAPER_LORA_ROBERTA_BASE)}"
        )
    if method not in QUICK_LR:
        raise SettingsError(f"Unknown method {method!r}; choose one of {sorted(QUICK_LR)}")
    if preset == "cpu":
        return _cpu_preset(task, method, seed)
    if preset == "full":
        return _full_preset(task, method, seed)
    if preset == "quick":
        train = TrainConfig(
            epochs=QUICK_EPOCHS,
            lr=QUICK_LR[method],
            batch_size=QUICK_BATCH,
            warmup_ratio=PAPER_WARMUP_RATIO,
            weight_decay=PAPER_WEIGHT_DECAY,
            seed=seed,
        )
        return GluePreset(
            train=train,
            max_length=QUICK_MAX_LENGTH,
            train_examples=QUICK_TRAIN_EXAMPLES,
            notes=["quick preset: CPU-sized subset and schedule, not the paper's"],
        )
    batch, epochs, lr = PAPER_LORA_ROBERTA_BASE[task]
    notes = []
    if method == "ft":
        batch, epochs, lr = ROBERTA_FT["batch_size"], ROBERTA_FT["epochs"], ROBERTA_FT["lr"]
        notes.append("full fine-tuning: one point of RoBERTa's GLUE grid (lr 2e-5, batch 16)")
    elif method in BASELINE_LR:
        lr = BASELINE_LR[method]
        notes.append(f"{method}: LoRA's schedule with lr {lr:g}, lorabook's choice")
    if task in ("mrpc", "rte", "stsb") and method == "lora":
        notes.append(
            "the paper (App. D.1) and its scripts start from MNLI-trained LoRA weights; we do not"
        )
    train = TrainConfig(
        epochs=epochs,
        lr=lr,
        batch_size=batch,
        warmup_ratio=PAPER_WARMUP_RATIO,
        weight_decay=PAPER_WEIGHT_DECAY,
        seed=seed,
    )
    return GluePreset(train=train, max_length=PAPER_MAX_LENGTH, notes=notes)


def _cpu_preset(task: str, method: str, seed: int) -> GluePreset:
    """The ``cpu`` preset; a method the sweep has not picked for yet must be given lr, epochs.

    It trains and evaluates in bf16 where the CPU has it natively, else in fp32
    (:func:`~lorabook.precision.cpu_precision`; the records committed before issue 17 are
    fp32 runs, :data:`lorabook.glue.campaign.RECORDED_IN`)."""
    lr, epochs = CPU_CHOSEN.get(method, (None, None))
    notes = ["cpu preset: MiniLM-sized schedule chosen by a sweep on MRPC, not the paper's"]
    train = TrainConfig(
        epochs=epochs or 1,
        lr=lr or 1.0,  # placeholders: check() refuses them until they are given
        batch_size=CPU_BATCH,
        warmup_ratio=PAPER_WARMUP_RATIO,
        weight_decay=PAPER_WEIGHT_DECAY,
        mixed_precision=cpu_precision(),  # bf16 where native, else fp32 (issue 17)
        seed=seed,
    )
    return GluePreset(
        train=train,
        max_length=CPU_MAX_LENGTH,
        train_examples=CPU_TRAIN_EXAMPLES.get(task),
        group_by_length=True,
        adapter_p_variant=ADAPTER_P_LEGACY,  # what the cpu preset's adapter_p records are
        notes=notes,
        unset=() if lr is not None else ("lr", "epochs"),
    )


def _full_preset(task: str, method: str, seed: int) -> GluePreset:
    """The ``full`` preset: the ``cpu`` preset's, changed where the module docstring says.

    Built on :func:`_cpu_preset` so that what the two share (data, batch, warm-up, weight
    decay, grouping, the sweep's learning rate) is stated once.
    """
    return _cpu_preset(task, method, seed).with_overrides(
        max_length=FULL_MAX_LENGTH,
        epochs=FULL_EPOCHS.get((task, method), FULL_START_EPOCHS[method]),
        mixed_precision=CAMPAIGN_PRECISION,  # pinned: what its records are, on any machine
        adapter_p_variant="pfeiffer",
        pooling=FULL_POOLING,
        **({"adapter_size": FULL_ADAPTER_SIZE[method]} if method in FULL_ADAPTER_SIZE else {}),
        notes=["full preset: MiniLM trained until it peaks (budget rule), not the paper's"],
    )
