"""The ``full`` preset's E2E campaign (issue 18): the sweep, its pick, the pilot, the runs.

    python -m lorabook.e2e.campaign plan                # every stage: estimated vs spent hours
    python -m lorabook.e2e.campaign sweep --workers 2   # the learning-rate sweep (resumable)
    python -m lorabook.e2e.campaign pick                # the sweep rule on its records
    python -m lorabook.e2e.campaign pilot --workers 2   # LoRA and FT until flat (after the pick)
    python -m lorabook.e2e.campaign runs --workers 2    # Table 3's runs at the pilot's budget
    python -m lorabook.e2e.campaign pilot --then-runs   # the last two, one unattended command
    python -m lorabook.e2e.campaign ranks --workers 2   # Table 18: LoRA's rank, one round each
    python -m lorabook.e2e.campaign stash               # small checkpoints into git (see below)

The rules below were written before any of these ran. Nothing is chosen on the test set:
every choice reads the dev set (a fixed 500-row subset for the loss, a fixed 100-MR subset
for greedy BLEU; :func:`lorabook.e2e.presets.e2e_preset` says why those sizes).

**Rounds.** The ``full`` preset trains on the whole training set (42,061 rows) and evaluates
every quarter epoch: a *round*, 1,315 optimizer steps of batch 8, the four rounds of an
epoch seeing every row once (:func:`lorabook.train.round_order`). The learning-rate schedule
(500 warm-up steps, then linear decay to zero) is planned for the cap below, and every stage
trains a prefix of that one schedule: the sweep's round is the first round of every later
run, the pilot's rounds are the runs' rounds, and a pilot that trained exactly the budget is
its method's seed-0 run (the same settings, batches and schedule). The price: a run stopped
before the cap ends at a learning rate not yet decayed to zero; selecting by dev loss softens
it, and the record says where each run stopped (``data.stopped``).

**Sweep** (:func:`sweep_jobs`): LoRA at 2e-4 (the paper's), 5e-4 and 1e-3; FT at 2e-5, 5e-5
and 1e-4 (:data:`~lorabook.e2e.presets.FULL_SWEEP`); seed 0, one round each, the test set not
decoded. **The rule** (:func:`pick`): per method, the rate with the lowest dev loss after
that round; a tie goes to the smaller rate. The grid is not extended (GLUE's sweep doubles
past an end; here each extra rate costs 2–2.5 worker-hours): ``pick`` says when the pick is at
an end of its grid, and the chapter reports it. The picks are written into
:data:`~lorabook.e2e.presets.FULL_CHOSEN` by hand; a test checks them against the committed
sweep records. FT-Top2 trains with FT's rate, AdapterL and PreLayer with LoRA's
(:data:`~lorabook.e2e.presets.FULL_LR_FROM`, stated before the sweep).

**Pilot** (:func:`pilot_jobs`): LoRA and FT, seed 0, at the picked rates, evaluating every
round, until the rule says the curve is flat: the dev loss improved by less than
:data:`FLAT` = 1% (relative) over the last two evaluations (half an epoch),
``(loss[r-2] - loss[r]) / loss[r-2] < 0.01``, asked from round 3 on
(:func:`lorabook.e2e.presets.dev_loss_flat`); or until the cap.

**The cap, from the budget.** The issue aims at about 40 worker-hours. At the bench's speeds
(SmolLM2, bf16, one thread, batch 8, on this machine under load: 4.7 s a step for LoRA, 6.7
s for FT, :data:`SECONDS_PER_STEP`; the methods that freeze the backbone assumed at LoRA's) a
round takes 1.7 worker-hours of LoRA and 2.5 of FT, an evaluation about 5 minutes, decoding
the 630 test MRs about 40. The sweep alone is about 13 worker-hours, and one epoch of the
nine runs about 70: no cap fits 40 hours. One epoch is the least at which the pilot can apply
its rule at all (at rounds 3 and 4) and every training row is seen, so the cap is
:data:`~lorabook.e2e.presets.FULL_MAX_EPOCHS` = **1 epoch (4 rounds)**; ``plan`` puts the
whole campaign at about 90 worker-hours at those speeds (about 45 hours on two workers) and
replaces the defaults by the speeds the finished records measured. The chapter says where
the runs stopped and how far from flat the pilot's curves were then.

**Budget** (:func:`budget_rounds`): the runs train as many rounds as the longer of the two
pilots, ``max(rounds of LoRA's pilot, rounds of FT's)``, so that every method gets the
same training.

**Runs** (:func:`runs_jobs`): LoRA and FT with seeds 0, 1 and 2; FT-Top2, AdapterL (m = 6,
Table 3's small size: the budget has no room for the 11M one) and PreLayer (prefix, l_p = 8)
with seed 0; each at the budget, decoding the test set with the weights of its lowest dev
loss. Seed 0 of LoRA or FT is its pilot's record when the pilot trained exactly the budget
with the same settings; otherwise a run of its own. Seed 0 of every method runs first, then
LoRA's seeds, then FT's (:func:`run_order`).

**Ranks** (:func:`ranks_jobs`, issue 19: Table 18's analogue; written before it ran): LoRA
at r ∈ :data:`RANKS` = {1, 2, 4, 8, 16, 32, 64} on W_q and W_v, seed 0, LoRA's picked rate,
α = 32 at every rank (the official GPT-2 recipe's value; the paper sets α once and does not
tune it, Section 4.1, so α/r falls as r grows), :data:`RANKS_ROUNDS` = 1 round each (the
issue's "reduced budget": seven runs of the whole epoch would cost as much as the runs
stage), decoding the test set. Each is the first round of the campaign's schedule, so r = 4
is the sweep's run at the picked rate, trained again here because that one decoded no test
set. The stage runs after the runs; chapter 6 reads it.

**Continuing.** A round is trained once: every sweep run keeps its final checkpoint, the
pilot at the picked rate starts from it (the sweep's round is the pilot's first round, and a
continued run ends bit for bit where one trained from the start ends; the record says so in
``data.continued_from``), and a pilot keeps its own, which its method's seed-0 run continues
when the budget is longer than that pilot. A run whose donor lost its checkpoint trains from
the start instead (``plan`` counts the rounds a continued run still has to train). Once
``FULL_CHOSEN`` holds the picks, ``pick --drop-unpicked`` deletes the checkpoints the other
rates kept (:func:`unpicked_checkpoints`).

**Workers.** Each job is ``python -m lorabook.e2e`` in its own process; ``--workers 2`` runs
two at a time, each pinned to its own core with one thread (:mod:`lorabook.campaign`).
Finished runs are skipped; an interrupted one resumes from its last checkpoint (every 200
optimizer steps, about 15 minutes, and on SIGTERM) and an interrupted decoding from its last
batch, so the same command picks up where it stopped, whatever stopped it. Checkpoints live on the
machine that wrote them; ``stash`` copies those of LoRA-sized runs into ``results/_resume``
for git to carry to a new machine, where the campaign puts them back before resuming
(:meth:`lorabook.runs.RunPaths.stash_scratch`). FT's (1.6 GB) cannot travel: an FT run
resumes only on the machine that wrote its checkpoint.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lorabook import campaign as shared
from lorabook.campaign import PlanRow
from lorabook.cli import SettingsError, add_debug_flag, cli_main
from lorabook.e2e import presets
from lorabook.e2e.data import EXPECTED_ROWS
from lorabook.e2e.experiment import E2ERun, plan_e2e_run
from lorabook.e2e.presets import FULL_SWEEP, e2e_preset
from lorabook.precision import require_native_bf16
from lorabook.runs import DEFAULT_RESULTS, find_records, folder_bytes
from lorabook.train import CHECKPOINT, CHECKPOINT_EVERY, round_sizes

PRESET = "full"
MODEL = "smollm2"
PILOT_METHODS = ("lora", "ft")
FLAT = 0.01  # the pilot stops once the dev loss improved < 1% over flat_window (2) rounds
SWEEP_ROUNDS = 1
RANKS = (1, 2, 4, 8, 16, 32, 64)  # Table 18's analogue: issue 19's ranks (the paper's go higher)
RANKS_ROUNDS = 1
RUN_SEEDS: dict[str, tuple[int, ...]] = {
    "lora": (0, 1, 2),
    "ft": (0, 1, 2),
    "ft_top2": (0,),
    "adapter_l": (0,),
    "prefix": (0,),
}
# Defaults of `plan` until finished records measure them (see the module docstring):
SECONDS_PER_STEP = {  # SmolLM2, bf16, 1 thread, batch 8, this machine under load (the bench)
    "lora": 4.7,
    "ft": 6.7,
    "ft_top2": 4.7,  # assumed: backbone frozen, as LoRA's
    "adapter_l": 4.7,
    "adapter_h": 4.7,
    "prefix": 4.7,
}
TOKENS_PER_EXAMPLE = 57.6  # SmolLM2 tokens of an E2E training example (cpu records: 230,309/4,000)
EVAL_SECONDS = 300.0  # one evaluation: dev loss on 500 rows (~2.4 min) + greedy on 100 MRs (<2)
DECODE_SECONDS = 2400.0  # beam-10 decoding of the 630 test MRs, bf16, one thread (~40 min)


@dataclass(frozen=True)
class Job:
    """One run of the campaign: its stage, method, seed and the settings it sets itself."""

    stage: str  # sweep, pilot, runs or ranks
    method: str
    seed: int = 0
    lr: float | None = None
    rounds: int | None = None
    stop_flat: float | None = None
    decode_test: bool | None = None
    lora_r: int | None = None
    keep_checkpoint: bool = False  # for a longer run to continue this one
    continue_from: str | None = None  # a shorter run's record, whose checkpoint this starts from

    def overrides(self) -> dict:
        """The preset settings this job sets (the sweep's lr, rounds; the pilot's rule; the
        rank of the ranks stage)."""
        fields = ("lr", "rounds", "stop_flat", "decode_test", "lora_r")
        return {k: getattr(self, k) for k in fields if getattr(self, k) is not None}

    def argv(
        self,
        results_dir: str | Path,
        model: str = MODEL,
        data_dir: str | Path | None = None,
        score: bool = True,
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> list[str]:
        """The ``python -m lorabook.e2e`` arguments of this job."""
        args = ["--method", self.method, "--seed", str(self.seed), "--preset", PRESET]
        args += ["--model", model, "--results-dir", str(results_dir)]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        args += shared.override_flags(self.overrides())
        args += ["--checkpoint-every", str(checkpoint_every)]
        args += ["--keep-checkpoint"] * self.keep_checkpoint
        args += ["--continue-from", self.continue_from] if self.continue_from else []
        return args + ["--no-progress"] + ([] if score else ["--no-score"])

    def plan(self, results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL) -> E2ERun:
        """Its :class:`~lorabook.e2e.experiment.E2ERun` (checked settings, record path)."""
        return plan_e2e_run(self.method, model, PRESET, self.seed, results_dir, self.overrides())

    def settings(self) -> presets.E2EPreset:
        """Its settings, lr possibly unset (enough to estimate its time)."""
        return e2e_preset(PRESET, self.method, self.seed).with_overrides(**self.overrides())

    def __str__(self) -> str:
        extra = "".join(
            f" {k.replace('_', '-')} {format(v, 'g') if isinstance(v, float) else v}"
            for k, v in self.overrides().items()
            if k != "decode_test"
        )
        return f"{self.stage}: {self.method}-seed{self.seed}{extra}"


# --------------------------------------------------------------------------- the stages


def sweep_jobs() -> list[Job]:
    """The sweep: each swept method at each of its rates, seed 0, one round, no test decoding;
    each keeps its final checkpoint, for the pilot at the picked rate to continue."""
    return [
        Job("sweep", method, 0, lr=lr, rounds=SWEEP_ROUNDS, decode_test=False, keep_checkpoint=True)
        for method, lrs in FULL_SWEEP.items()
        for lr in lrs
    ]


def _finished(job: Job, results_dir: str | Path, model: str = MODEL) -> dict | None:
    return job.plan(results_dir, model).paths.finished()


def _continuable(job: Job, results_dir: str | Path, model: str = MODEL) -> str | None:
    """The record path of ``job`` if it finished and kept its final checkpoint, else ``None``."""
    paths = job.plan(results_dir, model).paths
    if paths.record.exists() and (paths.scratch / "ckpt" / CHECKPOINT).exists():
        return str(paths.record)
    return None


def pick(results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL) -> dict[str, dict]:
    """The sweep rule (module docstring) on the sweep's records, per swept method.

    Returns:
        method -> ``{"lr", "dev_loss", "tried": {lr: dev loss}, "at_grid_end": bool}``, or
        ``{"missing": [job, ...]}`` for a method whose sweep runs are not all finished.
    """
    out: dict[str, dict] = {}
    for method in FULL_SWEEP:
        jobs = [j for j in sweep_jobs() if j.method == method]
        found = {j.lr: _finished(j, results_dir, model) for j in jobs}
        missing = [str(j) for j in jobs if found[j.lr] is None]
        if missing:
            out[method] = {"missing": missing}
            continue
        tried = {lr: r["epochs"][-1]["dev_loss"] for lr, r in sorted(found.items())}
        best = min(tried, key=lambda lr: (tried[lr], lr))
        out[method] = {
            "lr": best,
            "dev_loss": tried[best],
            "tried": tried,
            "at_grid_end": best in (min(tried), max(tried)),
        }
    return out


def unpicked_checkpoints(
    results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL
) -> list[Path]:
    """The scratch folders (kept checkpoints) of finished sweep runs at rates other than the
    one :data:`~lorabook.e2e.presets.FULL_CHOSEN` holds for their method: no later run
    continues them (an FT one holds about 1.6 GB). A method not picked yet keeps all of its."""
    out = []
    for job in sweep_jobs():
        chosen = presets.FULL_CHOSEN.get(job.method)
        paths = job.plan(results_dir, model).paths
        if (
            chosen is not None
            and job.lr != chosen
            and paths.record.exists()
            and paths.scratch.exists()
        ):
            out.append(paths.scratch)
    return out


def _require_picks(methods: Sequence[str]) -> None:
    wanted = sorted({presets.FULL_LR_FROM[m] for m in methods} - set(presets.FULL_CHOSEN))
    if wanted:
        raise SettingsError(
            f"no sweep pick for {wanted} in lorabook.e2e.presets.FULL_CHOSEN: run "
            "`python -m lorabook.e2e.campaign sweep`, then `pick`, and fill it in"
        )


def pilot_jobs(results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL) -> list[Job]:
    """LoRA's and FT's pilot: seed 0 at the picked rates, until flat or the cap; each
    continues the sweep's run at its picked rate (that run is the pilot's first round) when
    it kept its checkpoint, and keeps its own for a longer run to continue.

    Raises:
        SettingsError: the sweep's picks are not in ``presets.FULL_CHOSEN`` yet.
    """
    _require_picks(PILOT_METHODS)
    jobs = []
    for method in PILOT_METHODS:
        swept = Job(
            "sweep",
            method,
            0,
            lr=presets.FULL_CHOSEN[method],
            rounds=SWEEP_ROUNDS,
            decode_test=False,
        )
        start = _continuable(swept, results_dir, model)
        jobs.append(
            Job("pilot", method, 0, stop_flat=FLAT, keep_checkpoint=True, continue_from=start)
        )
    return jobs


def budget_rounds(results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL) -> int:
    """The runs' budget: the rounds of the longer pilot.

    Raises:
        SettingsError: a pilot has not finished (the message names the command).
    """
    pilots = pilot_jobs(results_dir, model)
    records = {job.method: _finished(job, results_dir, model) for job in pilots}
    waiting = sorted(m for m, r in records.items() if r is None)
    if waiting:
        raise SettingsError(
            f"the pilot of {', '.join(waiting)} has not finished, so the runs have no budget "
            "yet: run `python -m lorabook.e2e.campaign pilot`"
        )
    return max(len(r["epochs"]) for r in records.values() if r is not None)


def _training_settings(settings: dict) -> dict:
    """A record's settings without what only says how long it trained (rounds, the rule)."""
    return {k: v for k, v in settings.items() if k not in ("rounds", "stop_flat")}


def run_order() -> list[tuple[str, int]]:
    """(method, seed) of the runs in the order they run: every method's seed 0 first, then
    the other seeds method by method, LoRA's before FT's. A LoRA run's checkpoint is a few
    megabytes, which ``stash`` carries in git to the next machine; FT's (the whole model and
    its Adam moments, 1.6 GB) stays on the machine that wrote it, so LoRA's seeds run first
    and a machine lost between sessions costs the least."""
    first = [(m, seeds[0]) for m, seeds in RUN_SEEDS.items()]
    return first + [(m, s) for m, seeds in RUN_SEEDS.items() for s in seeds[1:]]


def runs_jobs(
    results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL, budget: int | None = None
) -> list[Job]:
    """Table 3's runs at the budget (default: :func:`budget_rounds`), seed 0 of every method
    first; a pilot that trained exactly the budget with the runs' settings is its method's
    seed 0, and one that trained fewer rounds is where its method's seed 0 starts.

    Raises:
        SettingsError: a pick or a pilot is missing.
    """
    _require_picks(tuple(RUN_SEEDS))
    budget = budget_rounds(results_dir, model) if budget is None else budget
    planned = e2e_preset(PRESET, "lora").planned_rounds
    rounds = None if budget == planned else budget  # the whole schedule: the preset's default
    pilots = {job.method: job for job in pilot_jobs(results_dir, model)}
    jobs = []
    for method, seed in run_order():
        job = Job("runs", method, seed, rounds=rounds)
        pilot = pilots.get(method) if seed == 0 else None
        record = _finished(pilot, results_dir, model) if pilot is not None else None
        if record is not None and _training_settings(record["settings"]) == _training_settings(
            job.plan(results_dir, model).config["settings"]
        ):
            if len(record["epochs"]) == budget:
                job = pilot
            elif len(record["epochs"]) < budget:
                start = _continuable(pilot, results_dir, model)
                job = Job("runs", method, seed, rounds=rounds, continue_from=start)
        jobs.append(job)
    return jobs


def ranks_jobs() -> list[Job]:
    """Table 18's analogue: LoRA at each rank of :data:`RANKS`, seed 0, :data:`RANKS_ROUNDS`
    round(s), decoding the test set (module docstring).

    Raises:
        SettingsError: LoRA's rate is not picked yet.
    """
    _require_picks(("lora",))
    return _rank_jobs()


def _rank_jobs() -> list[Job]:
    return [Job("ranks", "lora", 0, rounds=RANKS_ROUNDS, lora_r=r) for r in RANKS]


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Speeds:
    """What a run costs: training tokens a second per method, seconds per evaluation and per
    test decoding, tokens of one pass over the training set; each measured from the finished
    records where they have it (``measured`` names which), else the stated default."""

    tokens_per_second: dict[str, float]
    eval_seconds: float
    decode_seconds: float
    epoch_tokens: float
    measured: tuple[str, ...] = ()


def default_speeds() -> Speeds:
    """The stated defaults (:data:`SECONDS_PER_STEP`, :data:`EVAL_SECONDS`, ...)."""
    per_step = 8 * TOKENS_PER_EXAMPLE
    return Speeds(
        {m: per_step / s for m, s in SECONDS_PER_STEP.items()},
        EVAL_SECONDS,
        DECODE_SECONDS,
        EXPECTED_ROWS["train"] * TOKENS_PER_EXAMPLE,
    )


def measured_speeds(records: Sequence[dict]) -> Speeds:
    """:func:`default_speeds` with what the finished ``full`` records measured instead:
    per method the training tokens a second over its records, the mean evaluation and
    decoding times, and the training set's tokens; each from the records of the machine the
    campaign last ran on where it has any (:func:`lorabook.campaign.on_device`), and of those
    the latest (:func:`lorabook.campaign.recent`: the load they ran under is today's)."""
    speeds = default_speeds()
    device = shared.latest_device(records)
    trained = [r for r in records if r.get("data", {}).get("train_seconds")]
    rates, measured = dict(speeds.tokens_per_second), []
    for method in sorted({r["method"] for r in trained}):
        mine = shared.recent(
            shared.on_device([r for r in trained if r["method"] == method], device)
        )
        tokens = sum(
            r["data"]["train_tokens"] * len(r["epochs"]) / r["settings"].get("rounds_per_epoch", 1)
            for r in mine
        )
        rates[method] = tokens / sum(r["data"]["train_seconds"] for r in mine)
        measured.append(f"{method} tokens/s")
    here = shared.recent(shared.on_device(trained, device))
    evals = [e["eval_seconds"] for r in here for e in r["epochs"] if "eval_seconds" in e]
    decoded = shared.recent(shared.on_device([r for r in records if r.get("decode")], device))
    decodes = [r["decode"]["seconds"] for r in decoded]
    epoch_tokens = [r["data"]["train_tokens"] for r in trained]
    measured += ["evaluation"] * bool(evals) + ["decoding"] * bool(decodes)
    return Speeds(
        rates,
        statistics.mean(evals) if evals else speeds.eval_seconds,
        statistics.mean(decodes) if decodes else speeds.decode_seconds,
        epoch_tokens[0] if epoch_tokens else speeds.epoch_tokens,
        tuple(measured),
    )


def estimate_seconds(job: Job, speeds: Speeds, rounds: int | None = None) -> float:
    """Worker-seconds of ``job``: its rounds of training (at most ``rounds``, default its
    settings'; a pilot: the cap) less those of the run it continues, an evaluation after
    each, and the test decoding."""
    settings = job.settings()
    rounds = settings.trained_rounds if rounds is None else rounds
    if job.continue_from:
        rounds -= len(json.loads(Path(job.continue_from).read_text())["epochs"])
    rows = settings.train_examples or EXPECTED_ROWS["train"]
    sizes = round_sizes(rows, settings.rounds_per_epoch, settings.train.batch_size)
    examples = math.ceil(sizes[0] / settings.train.batch_size) * settings.train.batch_size
    tokens = rounds * examples * speeds.epoch_tokens / rows
    seconds = tokens / speeds.tokens_per_second[job.method] + rounds * speeds.eval_seconds
    return seconds + (speeds.decode_seconds if settings.decode_test else 0.0)


def spent_seconds(record: dict) -> float | None:
    """A finished run's worker-seconds over every session it ran in: the training and
    evaluation of its own rounds (not those of the run it continued) and its test decoding.
    (``wall_seconds`` counts the last session only.) Records without per-round clocks:
    ``wall_seconds``."""
    start = record.get("data", {}).get("continued_from", {}).get("rounds", 0)
    own = record["epochs"][start:]
    if not own or any("train_seconds" not in e for e in own):
        return record.get("wall_seconds")
    seconds = sum(e["train_seconds"] + e.get("eval_seconds", 0.0) for e in own)
    return seconds + (record.get("decode") or {}).get("seconds", 0.0)


def _row(
    job: Job, results_dir: str | Path, model: str, estimate: float, records: Sequence[dict]
) -> PlanRow:
    """Its plan row from its files; a ``part`` one says how much of its rounds (from those
    of the run it continues to its last) its checkpoint holds. A finished one is estimated
    at the speeds of the ``records`` that finished before it
    (:func:`lorabook.campaign.finished_before`)."""
    start = (
        len(json.loads(Path(job.continue_from).read_text())["epochs"]) if job.continue_from else 0
    )

    def estimate_done(record: dict) -> float:
        return estimate_seconds(job, measured_speeds(shared.finished_before(record, records)))

    return shared.plan_row(
        str(job),
        job.plan(results_dir, model).paths,
        estimate,
        spent_seconds,
        start,
        job.settings().trained_rounds,
        estimate_done,
    )


def plan_rows(
    results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL
) -> dict[str, tuple[list[PlanRow], str]]:
    """Per stage, its jobs as plan rows and a note; stages that wait for an earlier one are
    estimated as the rules say they will run (the pilot: to the cap; the runs: at the cap,
    the pilots serving as seed 0)."""
    records = find_records(results_dir, "e2e", preset=PRESET, model=model)
    speeds = measured_speeds(records)
    stages: dict[str, tuple[list[PlanRow], str]] = {}
    rows = []
    for job in sweep_jobs():
        rows.append(_row(job, results_dir, model, estimate_seconds(job, speeds), records))
    stages["sweep"] = (rows, f"{len(rows)} runs of one round; rule: lowest dev loss")
    try:
        pilots, waiting = pilot_jobs(results_dir, model), False
        note = "until the dev loss is flat (< 1% over two rounds), estimated to the cap"
    except SettingsError:
        pilots = [Job("pilot", m, 0, stop_flat=FLAT) for m in PILOT_METHODS]
        waiting = True
        note = "wait: the sweep's pick; estimated to the cap, continuing the sweep's round"
    rows = []
    for job in pilots:
        left = job.settings().trained_rounds - SWEEP_ROUNDS if waiting else None
        estimate = estimate_seconds(job, speeds, left)
        rows.append(
            PlanRow(str(job), "wait", estimate)
            if waiting
            else _row(job, results_dir, model, estimate, records)
        )
    stages["pilot"] = (rows, note)
    try:
        jobs, waiting = runs_jobs(results_dir, model), False
        note = f"at the pilot's budget, {budget_rounds(results_dir, model)} rounds"
    except SettingsError as err:
        cap = e2e_preset(PRESET, "lora").planned_rounds
        jobs = [Job("runs", m, s) for m, s in run_order() if not (s == 0 and m in PILOT_METHODS)]
        waiting = True
        note = f"wait: {str(err).split(':')[0]}; estimated at the cap ({cap} rounds), the "
        note += "pilots serving as seed 0"
    rows = []
    for job in jobs:
        if job.stage == "pilot":
            continue  # a pilot serving as seed 0 is counted above
        estimate = estimate_seconds(job, speeds)
        rows.append(
            PlanRow(str(job), "wait", estimate)
            if waiting
            else _row(job, results_dir, model, estimate, records)
        )
    stages["runs"] = (rows, note)
    waiting = "lora" not in presets.FULL_CHOSEN
    jobs = _rank_jobs()  # named before the pick too, to be estimated
    rows = [
        PlanRow(str(job), "wait", estimate_seconds(job, speeds))
        if waiting
        else _row(job, results_dir, model, estimate_seconds(job, speeds), records)
        for job in jobs
    ]
    note = f"Table 18's analogue (chapter 6): LoRA at r = {', '.join(map(str, RANKS))}, "
    note += f"{RANKS_ROUNDS} round each" + ("; wait: LoRA's pick" if waiting else "")
    stages["ranks"] = (rows, note)
    basis = ", ".join(speeds.measured) or "none"
    stages["_speeds"] = ([], f"measured by finished records: {basis}; the rest: stated defaults")
    return stages


def print_plan(results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL, workers: int = 2):
    """``plan``: every stage's jobs with estimated hours, spent hours of finished ones, totals."""
    counted = "training, evaluations, test decoding"
    return shared.print_plan(plan_rows(results_dir, model), workers, counted)


# --------------------------------------------------------------------------- running


def run_jobs(
    jobs: Sequence[Job],
    workers: int = 1,
    results_dir: str | Path = DEFAULT_RESULTS,
    model: str = MODEL,
    data_dir: str | Path | None = None,
    command: Sequence[str] = shared.python_module("lorabook.e2e"),
    cores: int | None = None,
    score: bool = True,
    checkpoint_every: int = CHECKPOINT_EVERY,
) -> list[tuple[Job, int]]:
    """Run the unfinished ``jobs`` in ``workers`` pinned one-thread processes (see
    :func:`lorabook.campaign.run_jobs`); return (job, exit code) of those that ran."""
    return shared.run_jobs(
        jobs,
        workers,
        results_dir,
        command,
        argv=lambda job: job.argv(results_dir, model, data_dir, score, checkpoint_every),
        paths=lambda job: job.plan(results_dir, model).paths,
        cores=cores,
    )


def _stage_jobs(stage: str, results_dir: str | Path, model: str) -> list[Job]:
    if stage == "sweep":
        return sweep_jobs()
    if stage == "pilot":
        return pilot_jobs(results_dir, model)
    if stage == "ranks":
        return ranks_jobs()
    return runs_jobs(results_dir, model)


def known_jobs(results_dir: str | Path = DEFAULT_RESULTS, model: str = MODEL) -> list[Job]:
    """Every job the stages can name now (a stage that waits for an earlier one names none)."""
    jobs: list[Job] = []
    for stage in ("sweep", "pilot", "runs", "ranks"):
        try:
            jobs += [j for j in _stage_jobs(stage, results_dir, model) if j not in jobs]
        except SettingsError:
            continue  # the ranks wait for the pick only, not for the pilots
    return jobs


def _main(argv: Sequence[str] | None) -> int:
    parser, sub = shared.campaign_parser("python -m lorabook.e2e.campaign", __doc__)
    shared.add_plan_command(sub)
    shared.add_stash_command(sub)
    pick_command = sub.add_parser("pick", help="apply the sweep rule to the sweep's records")
    pick_command.add_argument(
        "--drop-unpicked",
        action="store_true",
        help="delete the kept checkpoints of the rates FULL_CHOSEN did not pick",
    )
    for name in ("sweep", "pilot", "runs", "ranks"):
        p = shared.add_run_command(sub, name, f"run the {name} (resumable)")
        p.add_argument("--data-dir", default=None, help="default: $LORABOOK_DATA")
        p.add_argument("--no-score", action="store_true", help="decode only, no metrics")
        p.add_argument(
            "--checkpoint-every",
            type=int,
            default=CHECKPOINT_EVERY,
            help="optimizer steps between checkpoints inside a round",
        )
    sub.choices["pilot"].add_argument(
        "--then-runs",
        action="store_true",
        help="when both pilots have finished, run the runs at their budget",
    )
    shared.add_location_options(sub, DEFAULT_RESULTS, MODEL)
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    if args.command == "plan":
        print_plan(args.results_dir, args.model, args.workers)
        return 0
    if args.command == "stash":
        jobs = known_jobs(args.results_dir, args.model)
        shared.stash([(job, job.plan(args.results_dir, args.model).paths) for job in jobs])
        return 0
    if args.command == "pick":
        for method, result in pick(args.results_dir, args.model).items():
            if "missing" in result:
                print(f"{method:<6} not finished: {', '.join(result['missing'])}")
                continue
            tried = ", ".join(f"{lr:g}: {loss:.4f}" for lr, loss in result["tried"].items())
            end = " (at an end of the grid)" if result["at_grid_end"] else ""
            print(f"{method:<6} lr {result['lr']:g}{end}; dev loss after one round: {tried}")
        unpicked = unpicked_checkpoints(args.results_dir, args.model)
        size = sum(folder_bytes(folder) for folder in unpicked)
        if unpicked and args.drop_unpicked:
            for folder in unpicked:
                shutil.rmtree(folder)
            print(
                f"dropped the kept checkpoints of {len(unpicked)} unpicked runs "
                f"({size / 1e9:.1f} GB)"
            )
        elif unpicked:
            print(
                f"{len(unpicked)} unpicked runs keep checkpoints ({size / 1e9:.1f} GB): "
                "pick --drop-unpicked deletes them"
            )
        return 0
    if args.workers < 1:
        raise SettingsError(f"--workers must be at least 1, got {args.workers}")
    require_native_bf16("The E2E campaign")
    shared.check_only(args.only, known_jobs(args.results_dir, args.model))
    kw = dict(
        results_dir=args.results_dir,
        model=args.model,
        data_dir=args.data_dir,
        cores=args.cores,
        score=not args.no_score,
        checkpoint_every=args.checkpoint_every,
    )
    jobs = shared.only(_stage_jobs(args.command, args.results_dir, args.model), args.only)
    ran = run_jobs(jobs, args.workers, **kw)
    if getattr(args, "then_runs", False) and not any(code for _, code in ran):
        more = shared.only(runs_jobs(args.results_dir, args.model), args.only)
        print(f"the runs, at {budget_rounds(args.results_dir, args.model)} rounds", flush=True)
        ran += run_jobs(more, args.workers, **kw)
    return shared.exit_status(ran)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lorabook.e2e.campaign``: plan, sweep, pick, pilot, runs, ranks, stash."""
    return cli_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
