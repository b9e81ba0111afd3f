"""The ``full`` preset's GLUE campaign (issues 20 and 19): head, long, seeds, section7.

    python -m lorabook.glue.full_campaign plan                  # every stage: estimated vs spent
    python -m lorabook.glue.full_campaign head --workers 2      # [CLS] against mean pooling
    python -m lorabook.glue.full_campaign pick-pooling          # the head rule on its records
    python -m lorabook.glue.full_campaign long --workers 2      # seed 0 of all, until peaked
    python -m lorabook.glue.full_campaign budget                # the budget rule on its records
    python -m lorabook.glue.full_campaign seeds --workers 2     # seeds 1, 2; larger adapters
    python -m lorabook.glue.full_campaign section7 --workers 2  # Tables 5 and 6 on MiniLM
    python -m lorabook.glue.full_campaign all --workers 2       # all of it, in ORDER, unattended
    python -m lorabook.glue.full_campaign stash                 # small checkpoints into git

The rules below were written before any of these ran. Every choice reads the dev sets (the
GLUE test labels are not public), each run at its best epoch, as Table 2 reports.

**Runs.** FT, LoRA (r = 8 on W_q and W_v, α = 8), BitFit, AdapterH and AdapterP (Pfeiffer's)
at LoRA's size (m = 8 and 16: 78,432 and 76,128 trainable parameters on MiniLM against
LoRA's 73,728) on CoLA, SST-2, STS-B, RTE and MRPC (:data:`TASKS`), with the ``full``
preset's settings (:mod:`lorabook.glue.presets`: whole training sets but SST-2's 10,000,
nothing truncated, bf16, each method's learning rate from the ``cpu`` sweep).

**Head** (:func:`head_jobs`): [CLS] (BERT's pooler, the model's own read-out) against the
masked mean of the tokens (what all-MiniLM-L6-v2 was trained for) on SST-2 and STS-B
(:data:`HEAD_TASKS`): of the ``cpu`` campaign's five tasks, the two whose FT and LoRA dev
scores moved least over three seeds (the range, mean of FT's and LoRA's: STS-B 0.7 and SST-2
1.0 point; MRPC 2.1, RTE 3.4, CoLA 7.7), so that a difference between read-outs is the least
likely to be a seed's. Every method, seed 0, at the ``cpu`` preset's epochs
(``CPU_CHOSEN[method][1]``), which keeps it cheap: 20 runs. **The rule**
(:func:`pick_pooling`): the read-out with the higher mean best-epoch dev score over the 10
(task, method) pairs (SST-2 accuracy, STS-B Pearson); a tie goes to [CLS]. Every later run
of every method uses it.

**Long** (:func:`long_jobs`): seed 0 of every (task, method), first at
:data:`~lorabook.glue.presets.FULL_START_EPOCHS` (FT 10 epochs, the others 20). **The budget
rule** (:func:`budget`): a run has peaked when its best dev epoch lies in the first four
fifths of its epochs (``best_epoch <= 0.8 × epochs``, :data:`PEAKED`), or when the last fifth
gains less than one dev example's share over the best before it (:func:`peaked`). When it
has not, the stage adds a run of twice the epochs (seed 0; its own schedule, planned for its
length) and applies the rule to that one, at most :data:`MAX_DOUBLINGS` = 2 times; when none
has peaked then, the longest is the budget and ``budget`` says so. The budget of a (task,
method) is the epochs of the first run that peaked, and that run is the table's seed 0.

**Seeds** (:func:`seeds_jobs`): seeds 1 and 2 of every (task, method) at its budget; and the
larger adapters, AdapterH and AdapterP at m = 64 (the ``cpu`` preset's size), seed 0 at the
budget of the same adapter at LoRA's size on that task.

**Section 7** (:func:`section7_cells`, issue 19): on the head's two tasks
(:data:`SECTION7_TASKS`, for the same reason), LoRA at Section 7's epochs on the task, α = 8 at
every rank (the paper sets α to the first r it tries and does not tune it, Section 4.1: α/r
halves when r doubles). Table 5's analogue, a fixed budget of r × matrices = 8 (36,864
parameters on MiniLM): W_q, W_k, W_v, W_o at r = 8, {W_q, W_k} and {W_q, W_v} at r = 4, all
four at r = 2; three seeds each. Table 6's analogue: r ∈ {1, 2, 4, 8, 64} × {W_q}, {W_q, W_v},
{W_q, W_k, W_v, W_o}; three seeds for {W_q, W_v}, one for the other cells (the issue's
fallback: ``plan`` says what three everywhere would add). A cell with another run's settings is
that run, the same record (a run's name is the hash of its settings), run once: Table 6's W_q r
= 8, {W_q, W_v} r = 4 and all four at r = 2 are Table 5's (and its {W_q, W_v} r = 8 would be
the campaign's LoRA if Section 7's epochs were LoRA's budget). **Section 7's epochs**
(:func:`section7_epochs`; written after LoRA's three seeds at its budget had finished and
before any Section 7 run began): on each task, twice the latest epoch at which one of those
three runs came within half a point of its best (:func:`near_best_epoch`), at most LoRA's
budget. At 20 epochs, every one of the six runs on SST-2 and STS-B was within half a point of
its best by epoch 6: at LoRA's budget, more than half of Section 7's ~35 worker-hours would go
to epochs after LoRA's own runs had stopped gaining; the doubling is the margin for cells that
learn slower than LoRA's (one matrix, r = 1). What checks the margin (:func:`section7_longer`):
a cell whose seed 0 has not :func:`peaked` (the budget rule's test) runs, every seed, at twice
the epochs. So a cell's seeds 1 and 2 wait for its seed 0 (:func:`seed0_decided`): a worker
free at the tail of one step does not start a run that the seed 0 still running may make moot.

**Outcomes from records.** The campaign reads the read-out and the budgets from the records
of the stages that decide them, so that a stage starts as soon as what it needs is known
(the seeds of a (task, method) as soon as its budget is) and ``all`` runs unattended. Every
job names its epochs and its read-out, so it is the same run, the same record, whether or
not the preset knows them yet. For runs outside the campaign the preset holds the same
outcomes, written in by hand: :data:`~lorabook.glue.presets.FULL_POOLING` (``pick-pooling``
prints it) and :data:`~lorabook.glue.presets.FULL_EPOCHS` (``budget`` prints it); a test
checks them against the committed records.

**Order and workers.** ``all`` does not run the stages one after the other: it runs them in
the steps of :data:`ORDER`, so that what decides a claim comes first. Planned from measured
speeds, the whole campaign is several times the issues' aims of ~20 (GLUE) and ~15 (Section 7)
worker-hours (``plan`` prints both), so it takes many sessions, and the order is what each
issue's fallback says goes first: issue 20's "FT and LoRA × 3 seeds at per-task budgets first,
then the size-matched adapters and BitFit × 3 seeds; today's larger adapters keep their one
seed" (the larger ones last); issue 19's three seeds where they matter most (the Table 5 rows,
Table 6's {W_q, W_v}). Between the two issues, every run of issue 20's two claims (Table 2:
every method at every seed) before Section 7's: so that one issue's evidence is whole as early
as possible, instead of two issues' being partial until the campaign's last hours (an earlier
order ran Section 7's seed 0 of every cell before the baselines, so that chapter 6 would have
some record sooner; no run had reached that step when it changed). Section 7's seed 0 of every
cell (its four studies, once each) before its seeds 1 and 2. The larger adapters at per-task
budgets come last: the fallback lets them keep their one ``cpu`` seed, and they decide no
claim (they ran before Section 7 until the baselines' last seed was in, 2026-12-03, when one
of their ten had finished). ``plan`` shows the steps with their hours. Within a step, seed 0
of everything first, task by task (the cheapest epoch first), each task's cheaper runs first.
The steps are an order, not a wait: whenever a worker is free it takes the first job that can
run now (:func:`runnable`), so a worker free at the tail of a step starts the next step's job
instead of waiting for the step's last run, and a run whose end decides a budget or calls for
a doubling has its follow-ups taken at once, ahead of later steps. Each job is ``python -m
lorabook.glue ... --preset full`` in its own process, ``--workers 2`` of them pinned to a core
each with one thread (:func:`lorabook.glue.campaign.run_jobs`); finished runs are skipped and
an interrupted one resumes, so the same command picks up where the last one stopped. ``plan``
estimates from the tokens a second that finished records measured, else from the stated
defaults (:func:`default_speeds`)."""

from __future__ import annotations

import functools
import statistics
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from lorabook import campaign as shared
from lorabook.campaign import PlanRow
from lorabook.cli import SettingsError, add_debug_flag, cli_main
from lorabook.glue import presets
from lorabook.glue.campaign import EPOCH_TOKENS, WORKER_TOKENS_PER_SECOND, glue_argv, run_jobs
from lorabook.heads import POOLING
from lorabook.precision import require_native_bf16
from lorabook.runs import DEFAULT_RESULTS, find_records

if TYPE_CHECKING:
    from lorabook.glue.experiment import GlueRun

PRESET = "full"
MODEL = "minilm"
TASKS = ("cola", "sst2", "stsb", "rte", "mrpc")  # the cheapest epoch first
METHODS = ("ft", "lora", "bitfit", "adapter_h", "adapter_p")
HEAD_TASKS = ("sst2", "stsb")  # the steadiest over seeds in the cpu campaign (docstring)
SECTION7_TASKS = HEAD_TASKS
SEEDS = (0, 1, 2)
STAGES = ("head", "long", "seeds", "section7")
PEAKED = Fraction(4, 5)  # a run has peaked when best_epoch <= PEAKED × epochs (exact)
MAX_DOUBLINGS = 2
NEAR_BEST = 0.005  # half a point of a score (scores are fractions): Section 7's epochs rule
LARGER_ADAPTER_SIZE = 64  # the cpu preset's adapters, beside those at LoRA's size
# Table 5's analogue: (targets, r) with r × matrices = 8; Table 6's: ranks × targets
TABLE5 = ((("q",), 8), (("k",), 8), (("v",), 8), (("o",), 8))
TABLE5 += ((("q", "k"), 4), (("q", "v"), 4), (("q", "k", "v", "o"), 2))
TABLE6_RANKS = (1, 2, 4, 8, 64)
TABLE6_TARGETS = (("q",), ("q", "v"), ("q", "k", "v", "o"))
TABLE6_SEEDED = (("q", "v"),)  # Table 6's columns with every seed; the others have seed 0
SECTION7_AIM_HOURS = 15  # issue 19: about 15 worker-hours
GLUE_AIM_HOURS = 20  # issue 20: about 20 worker-hours
CLAIM_METHODS = ("ft", "lora")  # Table 2's first claim: LoRA against FT
# Defaults of `plan` until finished records measure them: the cpu campaign's one-thread fp32
# tokens/s (glue.campaign) × the bf16 gain (results/bench/precision-cpu.json: MiniLM LoRA
# ×1.51 and FT ×1.54 a step with 2 threads, LoRA ×1.63 with one); training tokens an epoch at
# max length 512 (MiniLM's tokenizer: only RTE has pairs longer than 128); evaluation's share
BF16_SPEEDUP = 1.5
FULL_EPOCH_TOKENS = {**EPOCH_TOKENS, "rte": 174_794, "sst2": 133_591}
EVAL_SHARE = 0.05
# The settings a job may name, and how its name shows them ("rte-lora-seed0 40 ep cls r4 qv")
OVERRIDES = {
    "epochs": "{} ep",
    "pooling": "{}",
    "adapter_size": "m{}",
    "lora_r": "r{}",
    "lora_targets": "{}",
}


Cell = tuple[str, tuple[str, ...], int]  # (task, targets, r)


@dataclass(frozen=True)
class Job:
    """One run of the campaign: its stage, task, method, seed and the settings it names."""

    stage: str
    task: str
    method: str
    seed: int = 0
    epochs: int | None = None
    pooling: str | None = None
    adapter_size: int | None = None
    lora_r: int | None = None
    lora_targets: tuple[str, ...] | None = None

    def overrides(self) -> dict:
        """The preset settings this job sets itself (those of :data:`OVERRIDES` it has)."""
        return {k: getattr(self, k) for k in OVERRIDES if getattr(self, k) is not None}

    def argv(self, results_dir: str | Path, model: str = MODEL) -> list[str]:
        """The ``python -m lorabook.glue`` arguments of this job."""
        return glue_argv(
            self.task, self.method, self.seed, PRESET, model, results_dir, self.overrides()
        )

    def plan(self, results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL) -> GlueRun:
        """Its :class:`~lorabook.glue.experiment.GlueRun` (checked settings, record path)."""
        from lorabook.glue.experiment import plan_glue_run

        return plan_glue_run(
            self.task, self.method, model, PRESET, self.seed, results_dir, self.overrides()
        )

    def finished(
        self, results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL
    ) -> dict | None:
        """Its record if the run has finished, else ``None``."""
        return self.plan(results_dir, model).paths.finished()

    @property
    def cell(self) -> Cell:
        """(task, targets, r): the Section 7 cell it is a run of (every seed of a cell shares
        it); ``()`` and 0 for a job that sets neither."""
        return (self.task, self.lora_targets or (), self.lora_r or 0)

    def key(self, model: str = MODEL) -> str:
        """The hash that names its record: two jobs with one key are one run."""
        return self.plan(DEFAULT_RESULTS, model).paths.key

    def __str__(self) -> str:
        extra = "".join(
            " " + OVERRIDES[k].format("".join(v) if isinstance(v, tuple) else v)
            for k, v in self.overrides().items()
        )
        return f"{self.stage}: {self.task}-{self.method}-seed{self.seed}{extra}"


# --------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class Speeds:
    """What a run costs: training tokens a second per method, training tokens of an epoch per
    task, and evaluation's share on top of training; each measured by the finished records
    where they have it (``measured`` names which), else the stated default."""

    tokens_per_second: dict[str, float]
    epoch_tokens: dict[str, float]
    eval_share: float
    measured: tuple[str, ...] = ()


def default_speeds() -> Speeds:
    """The stated defaults (module constants), with the bf16 gain: the campaign's runs are
    bf16 (:data:`~lorabook.precision.CAMPAIGN_PRECISION`) and it runs only where that is native."""
    rates = {m: BF16_SPEEDUP * v for m, v in WORKER_TOKENS_PER_SECOND.items()}
    return Speeds(rates, dict(FULL_EPOCH_TOKENS), EVAL_SHARE)


def _trained(record: dict) -> float:
    return sum(e["train_seconds"] for e in record["epochs"])


def _spent(record: dict) -> float:
    """A finished run's seconds, evaluations included (over resumes: the last epoch's clock)."""
    return record["epochs"][-1].get("elapsed_seconds", record.get("wall_seconds", 0.0))


def measured_speeds(records: Sequence[dict]) -> Speeds:
    """:func:`default_speeds` with what finished ``full`` records measured instead: per
    method the real training tokens a second, per task the tokens of an epoch, and the share
    of evaluation (the runs' clocks against their training seconds); the clocks from the
    records of the machine the campaign last ran on where it has any
    (:func:`lorabook.campaign.on_device`)."""
    speeds = default_speeds()
    timed = [r for r in records if r.get("train_tokens") and r.get("epochs")]
    if not timed:
        return speeds
    rates, tokens = dict(speeds.tokens_per_second), dict(speeds.epoch_tokens)
    device = shared.latest_device(timed)
    for method in sorted({r["method"] for r in timed}):
        mine = shared.on_device([r for r in timed if r["method"] == method], device)
        rates[method] = sum(r["train_tokens"]["real"] for r in mine) / sum(map(_trained, mine))
    for record in timed:
        tokens[record["task"]] = record["train_tokens"]["real"] / len(record["epochs"])
    here = shared.on_device(timed, device)
    share = sum(map(_spent, here)) / sum(map(_trained, here)) - 1
    measured = [f"{m} tokens/s" for m in sorted({r["method"] for r in timed})]
    measured += [f"{t} epoch tokens" for t in sorted({r["task"] for r in timed})]
    return Speeds(rates, tokens, share, (*measured, "evaluation share"))


def estimate_seconds(job: Job, speeds: Speeds) -> float:
    """Worker-seconds of ``job``: its epochs of training at its method's speed, and the
    evaluations' share on top."""
    epochs = job.epochs or job.plan().settings.train.epochs
    seconds = epochs * speeds.epoch_tokens[job.task] / speeds.tokens_per_second[job.method]
    return seconds * (1 + speeds.eval_share)


def in_order(jobs: Iterable[Job]) -> list[Job]:
    """Seed 0 of everything first, then task by task (:data:`TASKS`' order, the cheapest
    epoch first), each task's cheaper runs (at the default speeds) first."""
    speeds = default_speeds()
    return sorted(jobs, key=lambda j: (j.seed, TASKS.index(j.task), estimate_seconds(j, speeds)))


# --------------------------------------------------------------------------- the stages


def head_jobs() -> list[Job]:
    """[CLS] and mean pooling for every method on :data:`HEAD_TASKS`, seed 0, at the ``cpu``
    preset's epochs."""
    return in_order(
        Job("head", task, method, 0, epochs=presets.CPU_CHOSEN[method][1], pooling=pooling)
        for task in HEAD_TASKS
        for method in METHODS
        for pooling in POOLING
    )


def pick_pooling(results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL) -> dict:
    """The head rule (module docstring) on the head stage's records.

    Returns:
        ``{"pooling": "cls" or "mean", "means": {pooling: mean score}, "scores": {"task
        method": {pooling: score}}}`` (scores as fractions, each a run's best epoch), or
        ``{"missing": [job, ...]}`` while a head run has not finished.
    """
    found = {job: job.finished(results_dir, model) for job in head_jobs()}
    missing = [str(job) for job, record in found.items() if record is None]
    if missing:
        return {"missing": missing}
    scores: dict[str, dict[str, float]] = {}
    for job, record in found.items():
        pair = scores.setdefault(f"{job.task} {job.method}", {})
        pair[job.pooling] = record["best"][record["metric"]]
    means = {p: statistics.mean(s[p] for s in scores.values()) for p in POOLING}
    pooling = "mean" if means["mean"] > means["cls"] else "cls"
    return {"pooling": pooling, "means": means, "scores": scores}


def picked_pooling(results_dir: str | Path, model: str) -> str:
    """The head stage's pick; raises :class:`SettingsError` while it has runs to go."""
    picked = pick_pooling(results_dir, model)
    if "missing" in picked:
        raise SettingsError(
            f"the head stage has {len(picked['missing'])} runs to go, so no read-out is picked "
            "yet: run `python -m lorabook.glue.full_campaign head`"
        )
    return picked["pooling"]


def chain(task: str, method: str, pooling: str) -> list[Job]:
    """The long stage's possible runs of (task, method): the starting epochs, then doubled
    up to :data:`MAX_DOUBLINGS` times."""
    start = presets.FULL_START_EPOCHS[method]
    return [
        Job("long", task, method, 0, epochs=start * 2**k, pooling=pooling)
        for k in range(MAX_DOUBLINGS + 1)
    ]


def peaked(record: dict) -> bool:
    """The budget rule's test: the run's best epoch is in the first :data:`PEAKED` of its
    epochs, or the epochs after them gain less than one dev example's share of the score
    (1 / the dev examples, e.g. 0.11 accuracy points on SST-2's 872) over the best before them.

    The second part (added before any long run had finished, on review): on a flat plateau
    under a decaying learning rate the best epoch lands in the last fifth by chance about a
    third of the time, and a doubling bought that way costs hours and decides nothing. A
    record without its dev predictions (the count unknown) is read by the first part only."""
    epochs = record["settings"]["train"]["epochs"]
    if record["best_epoch"] <= PEAKED * epochs:
        return True
    predictions = (record.get("dev_predictions") or {}).get("predictions")
    if not predictions:
        return False
    scores = [e[record["metric"]] for e in record["epochs"]]
    before = int(PEAKED * epochs)
    if before < 1 or len(scores) <= before:  # too short to have a "before" and an "after"
        return False
    return max(scores[before:]) - max(scores[:before]) < 1 / len(predictions)


def budget(
    task: str,
    method: str,
    pooling: str,
    results_dir: str | Path = DEFAULT_RESULTS,
    model: str = MODEL,
) -> dict:
    """The budget rule (module docstring) on the long stage's runs of (task, method).

    Returns:
        ``{"epochs", "runs", "tried", "capped"}``: the budget in epochs (``None`` while a run
        the rule needs has not finished), the long stage's runs the rule has asked for so far
        (the last one: the budget's, or the one to run), ``{epochs: best epoch}`` of those
        finished, and whether no run peaked so that the longest is the budget.
    """
    runs, tried = [], {}
    for job in chain(task, method, pooling):
        runs.append(job)
        record = job.finished(results_dir, model)
        if record is None:
            return {"epochs": None, "runs": runs, "tried": tried, "capped": False}
        tried[job.epochs] = record["best_epoch"]
        if peaked(record):
            return {"epochs": job.epochs, "runs": runs, "tried": tried, "capped": False}
    return {"epochs": runs[-1].epochs, "runs": runs, "tried": tried, "capped": True}


def long_jobs(
    pooling: str, results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL
) -> list[Job]:
    """Every (task, method)'s long runs that the budget rule has asked for so far (a finished
    run is skipped when the stage runs; a doubled run appears once the run before it ends)."""
    return in_order(
        job
        for task in TASKS
        for method in METHODS
        for job in budget(task, method, pooling, results_dir, model)["runs"]
    )


def budgets(
    pooling: str, results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL
) -> dict[tuple[str, str], int]:
    """(task, method) -> its budget in epochs, for the pairs the rule has decided."""
    found = {(t, m): budget(t, m, pooling, results_dir, model) for t in TASKS for m in METHODS}
    return {pair: b["epochs"] for pair, b in found.items() if b["epochs"] is not None}


def seeds_jobs(decided: Mapping[tuple[str, str], int], pooling: str) -> list[Job]:
    """Seeds 1 and 2 of every (task, method) in ``decided`` at its budget; AdapterH and
    AdapterP at m = :data:`LARGER_ADAPTER_SIZE`, seed 0, at their budget."""
    jobs = [
        Job("seeds", task, method, seed, epochs=epochs, pooling=pooling)
        for (task, method), epochs in decided.items()
        for seed in SEEDS[1:]
    ]
    jobs += [
        Job("seeds", task, method, 0, epochs, pooling, adapter_size=LARGER_ADAPTER_SIZE)
        for (task, method), epochs in decided.items()
        if method in presets.FULL_ADAPTER_SIZE
    ]
    return in_order(jobs)


def near_best_epoch(record: dict) -> int:
    """The first epoch (from 1) whose dev score is within :data:`NEAR_BEST` (half a point) of
    the run's best."""
    scores = [e[record["metric"]] for e in record["epochs"]]
    return next(i for i, s in enumerate(scores, 1) if s >= max(scores) - NEAR_BEST - 1e-12)


def section7_epochs(
    decided: Mapping[tuple[str, str], int],
    pooling: str,
    results_dir: str | Path = DEFAULT_RESULTS,
    model: str = MODEL,
) -> dict[tuple[str, str], int]:
    """(task, "lora") -> Section 7's epochs on each of the :data:`SECTION7_TASKS` whose LoRA
    runs at the budget have finished, all three seeds: twice the latest of their
    :func:`near_best_epoch`, at most LoRA's budget (module docstring)."""
    out = {}
    for task in SECTION7_TASKS:
        epochs = decided.get((task, "lora"))
        if epochs is None:
            continue
        jobs = (Job("seeds", task, "lora", s, epochs=epochs, pooling=pooling) for s in SEEDS)
        records = [job.finished(results_dir, model) for job in jobs]
        if all(records):
            out[task, "lora"] = min(epochs, 2 * max(map(near_best_epoch, records)))
    return out


def section7_cells(
    epochs: Mapping[tuple[str, str], int],
    pooling: str,
    every_seed: bool = False,
    longer: Collection[Cell] = (),
) -> list[tuple[str, Job]]:
    """("Table 5" or "Table 6", job) of every cell and seed on the :data:`SECTION7_TASKS`
    whose Section 7 epochs are in ``epochs`` (:func:`section7_epochs`), at twice those for
    the cells in ``longer`` (:func:`section7_longer`); ``every_seed``: all three seeds in
    every Table 6 cell (what the plan compares with the one-seed fallback)."""
    cells = [("Table 5", t, r, s) for t, r in TABLE5 for s in SEEDS]
    cells += [
        ("Table 6", t, r, s)
        for t in TABLE6_TARGETS
        for r in TABLE6_RANKS
        for s in (SEEDS if every_seed or t in TABLE6_SEEDED else SEEDS[:1])
    ]
    return [
        (table, Job("section7", task, "lora", s, n, pooling, lora_r=r, lora_targets=t))
        for task in SECTION7_TASKS
        if (base := epochs.get((task, "lora"))) is not None
        for table, t, r, s in cells
        for n in [2 * base if (task, t, r) in longer else base]
    ]


def section7_longer(
    epochs: Mapping[tuple[str, str], int],
    pooling: str,
    results_dir: str | Path = DEFAULT_RESULTS,
    model: str = MODEL,
) -> frozenset[Cell]:
    """The cells (task, targets, r) whose seed 0 at Section 7's epochs finished without
    having :func:`peaked`: every seed of theirs runs at twice the epochs (once)."""
    return frozenset(
        job.cell
        for _, job in section7_cells(epochs, pooling)
        if job.seed == 0
        and (record := job.finished(results_dir, model)) is not None
        and not peaked(record)
    )


def section7_setup(
    decided: Mapping[tuple[str, str], int],
    pooling: str,
    results_dir: str | Path = DEFAULT_RESULTS,
    model: str = MODEL,
) -> tuple[dict[tuple[str, str], int], frozenset[Cell]]:
    """What the records have decided for Section 7: its epochs per task and the cells that
    run longer (the arguments of :func:`section7_cells` and :func:`section7_jobs`)."""
    epochs = section7_epochs(decided, pooling, results_dir, model)
    return epochs, section7_longer(epochs, pooling, results_dir, model)


def seed0_decided(job: Job, longer: Collection[Cell], results_dir: str | Path, model: str) -> bool:
    """Whether ``job``'s epochs are settled: it is a seed 0 run, or its cell runs longer, or
    its cell's seed 0 at the same epochs has finished (and so peaked, else it would be in
    ``longer``)."""
    if job.seed == 0 or job.cell in longer:
        return True
    return replace(job, seed=0).finished(results_dir, model) is not None


def section7_jobs(
    decided: Mapping[tuple[str, str], int],
    epochs: Mapping[tuple[str, str], int],
    pooling: str,
    every_seed: bool = False,
    longer: Collection[Cell] = (),
) -> list[Job]:
    """The runs of :func:`section7_cells` (``epochs``, ``longer``), each once, and the seed 0
    runs that sent a cell to ``longer``, less those that are a run of the long or the seeds
    stage at the budgets ``decided`` (the same settings: the same record)."""
    elsewhere = {j.key() for j in seeds_jobs(decided, pooling)}
    elsewhere |= {
        Job("long", task, method, 0, epochs=n, pooling=pooling).key()
        for (task, method), n in decided.items()
    }
    jobs = [job for _, job in section7_cells(epochs, pooling, every_seed, longer)]
    jobs += [j for _, j in section7_cells(epochs, pooling) if j.seed == 0 and j.cell in longer]
    unique: dict[str, Job] = {}
    for job in jobs:
        unique.setdefault(job.key(), job)
    return in_order(job for key, job in unique.items() if key not in elsewhere)


def stage_jobs(
    stage: str, results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL, quiet: bool = False
) -> list[Job]:
    """The jobs of ``stage`` that can run now (seeds, section7: those whose budget is known;
    the pairs still waiting for theirs are printed unless ``quiet``).

    Raises:
        SettingsError: ``stage`` waits for the head stage's pick.
    """
    if stage == "head":
        return head_jobs()
    pooling = picked_pooling(results_dir, model)
    if stage == "long":
        return long_jobs(pooling, results_dir, model)
    decided = budgets(pooling, results_dir, model)
    needs = [(t, m) for t in TASKS for m in METHODS]
    if stage == "section7":
        needs = [(t, "lora") for t in SECTION7_TASKS]
    waiting = [f"{t} {m}" for t, m in needs if (t, m) not in decided]
    if waiting and not quiet:
        print(f"waiting for the budget (the long stage) of: {', '.join(waiting)}", flush=True)
    if stage == "seeds":
        return seeds_jobs(decided, pooling)
    epochs, longer = section7_setup(decided, pooling, results_dir, model)
    waiting = [t for t, _ in needs if (t, "lora") in decided and (t, "lora") not in epochs]
    if waiting and not quiet:
        print(f"waiting for LoRA's seeds (Section 7's epochs) on: {', '.join(waiting)}", flush=True)
    jobs = section7_jobs(decided, epochs, pooling, longer=longer)
    return [job for job in jobs if seed0_decided(job, longer, results_dir, model)]


def _every(job: Job) -> bool:
    return True


def _claim_methods(job: Job) -> bool:
    return job.method in CLAIM_METHODS


def _baselines(job: Job) -> bool:
    return job.method not in CLAIM_METHODS and job.adapter_size is None


def _seed0(job: Job) -> bool:
    return job.seed == 0


def _later_seeds(job: Job) -> bool:
    return job.seed > 0


def _larger_adapters(job: Job) -> bool:
    return job.adapter_size is not None


ORDER: tuple[tuple[str, str, Callable[[Job], bool]], ...] = (
    ("head", "every run", _every),
    ("long", "FT and LoRA", _claim_methods),
    ("seeds", "FT and LoRA", _claim_methods),
    ("long", "BitFit and the adapters at LoRA's size", _baselines),
    ("seeds", "BitFit and the adapters at LoRA's size", _baselines),
    ("section7", "seed 0 of every cell", _seed0),
    ("section7", "seeds 1 and 2", _later_seeds),
    ("seeds", f"the larger adapters (m = {LARGER_ADAPTER_SIZE}, seed 0)", _larger_adapters),
)
"""The steps of ``all``, first things first: (stage, which of its jobs, the test a job
passes). Each stage's steps split its jobs: every job is in one step (module docstring: why
this order, and how a free worker takes the next job)."""


# --------------------------------------------------------------------------- the plan


def _row(
    job: Job, results_dir: str | Path, model: str, estimate: float, records: Sequence[dict]
) -> PlanRow:
    """Its plan row from its files; a ``part`` one says how much of its epochs its
    checkpoint holds. A finished one is estimated as the plan estimated it before it finished
    (:func:`lorabook.campaign.finished_before`)."""
    run = job.plan(results_dir, model)
    epochs = job.epochs or run.settings.train.epochs

    def estimate_done(record: dict) -> float:
        return estimate_seconds(job, measured_speeds(shared.finished_before(record, records)))

    return shared.plan_row(str(job), run.paths, estimate, _spent, 0, epochs, estimate_done)


def _hours(jobs: Iterable[Job], speeds: Speeds) -> float:
    return sum(estimate_seconds(j, speeds) for j in jobs) / 3600


def plan_rows(
    results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL
) -> dict[str, tuple[list[PlanRow], str]]:
    """Per stage, its jobs as plan rows and a note. What waits for an earlier stage's
    outcome is estimated as if it were known: [CLS] for the read-out, the starting epochs for
    an undecided budget (shown as ``wait``); doublings not asked for yet are not counted (the
    long stage's note says what they could add). The note ``_order``: ``all``'s steps
    (:func:`order_rows`)."""
    return _plan(results_dir, model)[0]


def order_rows(results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL) -> list[dict]:
    """``all``'s steps (:data:`ORDER`) as the plan sees them: ``step``, ``stage``, ``runs``
    (which of the stage's), ``jobs``, ``finished``, ``hours left`` and ``total left`` (the
    hours left of this step and every step before it), estimated as :func:`plan_rows` does."""
    stages, jobs = _plan(results_dir, model)
    return _order_rows(jobs, stages)


def plan_and_order(
    results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL
) -> tuple[dict[str, tuple[list[PlanRow], str]], list[dict]]:
    """:func:`plan_rows` and :func:`order_rows` from one reading of the records (each reads
    them all: a chapter that shows both reads them once)."""
    stages, jobs = _plan(results_dir, model)
    return stages, _order_rows(jobs, stages)


def _plan(
    results_dir: str | Path, model: str
) -> tuple[dict[str, tuple[list[PlanRow], str]], dict[str, list[Job]]]:
    """:func:`plan_rows`, and each stage's jobs in the order of its rows."""
    records = find_records(results_dir, "glue", preset=PRESET, model=model)
    speeds = measured_speeds(records)
    picked = pick_pooling(results_dir, model).get("pooling")
    pooling = picked or POOLING[0]
    decided = budgets(pooling, results_dir, model) if picked else {}
    start = {(t, m): presets.FULL_START_EPOCHS[m] for t in TASKS for m in METHODS}
    assumed = {**start, **decided}

    def rows(
        jobs: Sequence[Job], waits: bool | None = None, known: Mapping = decided
    ) -> list[PlanRow]:
        out = []
        for job in jobs:
            wait = waits if waits is not None else (job.task, job.method) not in known
            estimate = estimate_seconds(job, speeds)
            out.append(
                PlanRow(str(job), "wait", estimate)
                if wait
                else _row(job, results_dir, model, estimate, records)
            )
        return out

    stages: dict[str, tuple[list[PlanRow], str]] = {}
    head = head_jobs()
    note = f"{len(head)} runs, ~{_hours(head, speeds):.1f} worker-hours, [CLS] vs mean pooling; "
    note += f"rule: the higher mean dev score, a tie → cls; picked: {picked or 'not yet'}"
    stages["head"] = (rows(head, waits=False), note)
    long = long_jobs(pooling, results_dir, model)
    undecided = [(t, m) for t, m in start if (t, m) not in decided]
    more = _hours((j for t, m in undecided for j in chain(t, m, pooling) if j not in long), speeds)
    note = f"{len(long)} runs, ~{_hours(long, speeds):.1f} worker-hours: seed 0 of {len(start)} "
    note += f"(task, method) pairs until peaked, {len(decided)} budgets decided"
    if undecided:
        note += f"; doublings not asked for yet not counted (all of them: +{more:.0f} h)"
    stages["long"] = (rows(long, waits=picked is None), note)
    seeds = seeds_jobs(assumed, pooling)
    note = f"{len(seeds)} runs, ~{_hours(seeds, speeds):.1f} worker-hours: seeds 1 and 2 at the "
    note += f"budget; AdapterH, AdapterP at m = {LARGER_ADAPTER_SIZE} seed 0"
    if undecided:
        note += " (undecided budgets: the starting epochs)"
    stages["seeds"] = (rows(seeds), note)
    known, longer = section7_setup(decided, pooling, results_dir, model) if picked else ({}, ())
    epochs7 = {**{(t, "lora"): assumed[t, "lora"] for t in SECTION7_TASKS}, **known}
    section7 = section7_jobs(assumed, epochs7, pooling, longer=longer)
    every = section7_jobs(assumed, epochs7, pooling, every_seed=True, longer=longer)
    extra = [j for j in every if j not in section7]
    said = ", ".join(f"{t} {n}" for (t, _), n in known.items()) or "none decided yet"
    note = f"{len(section7)} runs, ~{_hours(section7, speeds):.1f} worker-hours (the budget "
    note += f"set for them: ~{SECTION7_AIM_HOURS}; cells that are another stage's runs counted "
    note += "there) at "
    undecided = "; undecided: LoRA's budget" * any((t, "lora") not in known for t in SECTION7_TASKS)
    note += f"Section 7's epochs ({said}{undecided}), {len(longer)} cells "
    note += f"doubled; three seeds in every Table 6 cell (not planned) would be {len(extra)} "
    note += f"runs more, +{_hours(extra, speeds):.1f} h"
    stages["section7"] = (rows(section7, known=known), note)
    jobs = {"head": head, "long": long, "seeds": seeds, "section7": section7}
    lines = [
        f"`all` takes its jobs in these steps' order (the budgets set: ~{GLUE_AIM_HOURS} "
        f"worker-hours for Table 2's runs + ~{SECTION7_AIM_HOURS} for Section 7's; waiting "
        "runs at the starting epochs)"
    ]
    lines += [
        f"  {r['step']}. {r['stage'] + ':':<9} {r['runs']:<42} {r['jobs']:>3} runs, "
        f"~{r['hours left']:4.1f} h left (total ~{r['total left']:.1f})"
        for r in _order_rows(jobs, stages)
    ]
    stages["_order"] = ([], "\n".join(lines))
    basis = ", ".join(speeds.measured) or "none"
    stages["_speeds"] = ([], f"measured by finished records: {basis}; the rest: stated defaults")
    return stages, jobs


def _order_rows(
    jobs: Mapping[str, Sequence[Job]], stages: Mapping[str, tuple[Sequence[PlanRow], str]]
) -> list[dict]:
    """:func:`order_rows` from each stage's jobs and their plan rows (in the same order)."""
    out, total = [], 0.0
    for i, (stage, label, keep) in enumerate(ORDER, 1):
        rows = [row for job, row in zip(jobs[stage], stages[stage][0], strict=True) if keep(job)]
        left = shared.plan_totals(rows)["left"]
        total += left
        finished = sum(row.spent is not None for row in rows)
        out.append(
            {"step": i, "stage": stage, "runs": label, "jobs": len(rows), "finished": finished}
            | {"hours left": left, "total left": total}
        )
    return out


# --------------------------------------------------------------------------- running


def runnable(
    steps: Sequence[tuple[str, str, Callable[[Job], bool]]],
    results_dir: str | Path = DEFAULT_RESULTS,
    model: str = MODEL,
    patterns: Sequence[str] | None = None,
) -> list[Job]:
    """The jobs that can run now, step by step (``steps`` as :data:`ORDER`'s), each once,
    those ``--only`` ``patterns`` name if given; finished ones are in it (the runner skips
    them). Nothing but the head stage's while its pick waits (a later stage needs it)."""
    found: dict[str, list[Job]] = {}
    jobs: list[Job] = []
    for stage, _, keep in steps:
        if stage not in found:
            try:
                found[stage] = stage_jobs(stage, results_dir, model, quiet=True)
            except SettingsError:
                found[stage] = []
        jobs += [j for j in found[stage] if _kept_and_chosen(keep, patterns, j) and j not in jobs]
    return jobs


def _kept_and_chosen(keep: Callable[[Job], bool], patterns: Sequence[str] | None, job: Job) -> bool:
    return keep(job) and bool(shared.only([job], patterns))


def _print_pick(results_dir: str | Path, model: str) -> None:
    picked = pick_pooling(results_dir, model)
    if "missing" in picked:
        print(f"not finished: {', '.join(picked['missing'])}")
        return
    for pair, scores in picked["scores"].items():
        print(f"{pair:<16} " + "  ".join(f"{p} {100 * s:.1f}" for p, s in scores.items()))
    means = ", ".join(f"{p} {100 * s:.2f}" for p, s in picked["means"].items())
    print(f"mean over {len(picked['scores'])} pairs: {means} → {picked['pooling']}")
    print(f"presets.FULL_POOLING = {picked['pooling']!r}")


def _print_budgets(results_dir: str | Path, model: str) -> None:
    pooling = picked_pooling(results_dir, model)
    decided = {}
    for task in TASKS:
        for method in METHODS:
            found = budget(task, method, pooling, results_dir, model)
            tried = ", ".join(f"{e} epochs: best {b}" for e, b in found["tried"].items())
            if found["epochs"] is None:
                print(f"{task:<5} {method:<10} to run: {found['runs'][-1]} ({tried or 'none yet'})")
                continue
            capped = ", none peaked: the longest" if found["capped"] else ""
            print(f"{task:<5} {method:<10} {found['epochs']} epochs ({tried}{capped})")
            decided[task, method] = found["epochs"]
    print(f"presets.FULL_EPOCHS = {decided}")
    epochs, longer = section7_setup(decided, pooling, results_dir, model)
    for (task, _), n in epochs.items():
        print(f"section7 {task}: {n} epochs (twice the latest near-best epoch of LoRA's seeds)")
    for task, targets, r in sorted(longer):
        print(f"section7 {task} {''.join(targets)} r{r}: not peaked, its seeds at twice the epochs")


def known_jobs(results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL) -> list[Job]:
    """Every job the stages can name now (a stage that waits for the head's pick names none)."""
    return runnable([(stage, "every run", _every) for stage in STAGES], results_dir, model)


def _main(argv: Sequence[str] | None) -> int:
    parser, sub = shared.campaign_parser("python -m lorabook.glue.full_campaign", __doc__)
    shared.add_plan_command(sub)
    shared.add_stash_command(sub)
    sub.add_parser("pick-pooling", help="apply the head rule to the head stage's records")
    sub.add_parser("budget", help="apply the budget rule to the long stage's records")
    for name in STAGES:
        shared.add_run_command(sub, name, f"run the {name} stage (resumable)")
    shared.add_run_command(sub, "all", "run every stage's jobs in ORDER's steps (resumable)")
    shared.add_location_options(sub, DEFAULT_RESULTS, MODEL)
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    if args.command == "plan":
        stages = plan_rows(args.results_dir, args.model)
        shared.print_plan(stages, args.workers, "training and evaluations")
        return 0
    if args.command == "stash":
        jobs = known_jobs(args.results_dir, args.model)
        shared.stash([(job, job.plan(args.results_dir, args.model).paths) for job in jobs])
        return 0
    if args.command == "pick-pooling":
        _print_pick(args.results_dir, args.model)
        return 0
    if args.command == "budget":
        _print_budgets(args.results_dir, args.model)
        return 0
    if args.workers < 1:
        raise SettingsError(f"--workers must be at least 1, got {args.workers}")
    require_native_bf16("The full GLUE campaign")
    known = known_jobs(args.results_dir, args.model)
    shared.check_only(args.only, known)
    for job in known:  # every job's settings checked before any starts
        job.plan(args.results_dir, args.model)
    steps = ORDER if args.command == "all" else ((args.command, "every run", _every),)
    named = (f"{i}. {stage}: {label}" for i, (stage, label, _) in enumerate(steps, 1))
    print("== first things first: " + "; ".join(named), flush=True)
    for stage in dict.fromkeys(stage for stage, _, _ in steps):  # say once what waits (the
        try:  # runner asks for the jobs again, quietly, whenever a worker is free)
            stage_jobs(stage, args.results_dir, args.model)
        except SettingsError as waits:  # a stage that needs the head's pick
            if args.command != "all":
                raise
            print(waits, flush=True)
            break
    more = functools.partial(runnable, steps, args.results_dir, args.model, args.only)
    ran = run_jobs([], args.workers, args.results_dir, args.model, cores=args.cores, more=more)
    return shared.exit_status(ran)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lorabook.glue.full_campaign``: plan, the stages, and their rules."""
    return cli_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
