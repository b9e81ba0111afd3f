"""The ``cpu`` preset's GLUE campaign: the learning-rate sweep, its pick, and the runs.

    python -m lorabook.glue.campaign plan sweep        # jobs, done or not, with time estimates
    python -m lorabook.glue.campaign sweep --workers 2 # the MRPC sweep (resumable)
    python -m lorabook.glue.campaign pick              # the rule applied to the sweep records
    python -m lorabook.glue.campaign runs --workers 2  # the chapter's runs (after the pick)
    python -m lorabook.glue.campaign follow-ups        # LoRA longer where it falls behind FT
    python -m lorabook.glue.campaign runs --then-follow-ups  # both, one after the other

**The sweep.** The paper sweeps LoRA's settings (Appendix D.1) and quotes its RoBERTa-base
baselines from earlier papers; we tune every method, on a budget: every method
of :data:`~lorabook.glue.presets.CPU_SWEEP` is trained on MRPC (seed 0) at each of its
learning rates for a fixed number of epochs, evaluating the dev set after every epoch.

**The rule** (:func:`pick`): the learning rate whose run reaches the highest dev score
(MRPC accuracy) at any epoch; ties go to the smaller rate. If that rate is the largest (or
smallest) tried, the best may lie beyond the grid: the sweep then tries twice (or half) that
rate too, and picks again, up to twice (:func:`sweep_lrs`). The number of epochs: the first
epoch at which that run came within half a point of its best. That epoch was reached under
a learning-rate schedule planned for the sweep's longer run, so the rule is a reading of one
curve, not a search over schedules: it says how long a run needs, given the rest fixed.
The picks are written into :data:`~lorabook.glue.presets.CPU_CHOSEN` by hand and a test
checks the two agree whenever the sweep's records are present.

**The runs** (:func:`campaign_jobs`): FT and LoRA with seeds 0, 1 and 2, BitFit, AdapterH and
AdapterP with seed 0, on the five offline tasks: 45 runs. Each is ``python -m lorabook.glue``
in its own process; ``--workers 2`` runs two at a time, each pinned to its own core with
one thread (on this 2-core machine that trains 12–16% more tokens per second than one run
on both cores: ``python -m lorabook.glue.bench --task mrpc --batching grouped --workers 2``,
record ``results/bench/glue-mrpc-minilm-cpu.json``). Finished runs are skipped
(their record exists), an interrupted one resumes from its last epoch, so the same command
picks up where the last session stopped (the workers, skipping and resuming are
:mod:`lorabook.campaign`'s, shared with the E2E campaign).

**The follow-ups** (:func:`lorabook.glue.report.follow_up_jobs`): where LoRA's median ends more
than a point below FT's, one more LoRA run with :data:`LONGER` times the epochs tests whether
it was under-trained. They are read off the records by the report, which sits above this
module: only the command line (``_main``) reaches up to it.

**The arithmetic.** Every job, sweep, runs and follow-ups alike, trains in fp32
(:data:`RECORDED_IN`, ``--mixed-precision no``): the campaign ran before issue 17 made bf16
the ``cpu`` preset's default, and its jobs keep its records' settings.
"""

from __future__ import annotations

import os  # noqa: F401  (the shared pinning reads os; tests reach it as campaign.os)
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lorabook import campaign as shared
from lorabook.campaign import PlanRow, available_cores, pin_to_cores, plan_line  # noqa: F401
from lorabook.cli import SettingsError, add_debug_flag, cli_main
from lorabook.glue import presets
from lorabook.glue.presets import CPU_SWEEP, CPU_SWEEP_TASK
from lorabook.runs import DEFAULT_RESULTS

PRESET = "cpu"
MODEL = "minilm"
RECORDED_IN = {"mixed_precision": "no"}
"""The arithmetic the campaign's records were made in. The chapter's campaign ran in fp32,
before issue 17 made bf16 the ``cpu`` preset's default (where the CPU has it natively); its
jobs pin that (:meth:`Job.overrides`), so re-running the campaign reproduces its records and
the book finds them."""
TASKS = ("mrpc", "rte", "stsb", "cola", "sst2")
SEEDS = {"ft": (0, 1, 2), "lora": (0, 1, 2), "bitfit": (0,), "adapter_h": (0,), "adapter_p": (0,)}
MARGIN = 0.005  # "within half a point" of the best dev score
MAX_EXTENSIONS = 2  # more learning rates past an end of a method's sweep grid, at most
LONGER = 4  # a follow-up trains LoRA this many times as many epochs as the pick
# Training tokens per epoch (MiniLM tokenizer, max length 128) of each task's training set in
# the cpu preset: SST-2's seeded 10,000-example part holds about 13.3 tokens an example.
EPOCH_TOKENS = {"mrpc": 195_291, "rte": 165_740, "stsb": 159_879, "cola": 96_859, "sst2": 133_000}
# Real tokens/s of one single-thread worker beside another (python -m lorabook.glue.bench on
# MRPC, batch 16, grouped, this 2-core machine; results/bench/glue-mrpc-minilm-cpu.json has
# FT 1230-1264, LoRA 1892-1925): the estimates of `plan`, not results.
WORKER_TOKENS_PER_SECOND = {
    "ft": 1200,
    "lora": 1930,
    "bitfit": 1900,
    "adapter_h": 1700,
    "adapter_p": 1800,
}


def glue_argv(
    task: str,
    method: str,
    seed: int,
    preset: str,
    model: str,
    results_dir: str | Path,
    overrides: dict,
) -> list[str]:
    """The ``python -m lorabook.glue`` arguments of one run; each override a flag
    (:func:`lorabook.campaign.override_flags`: ``lora_r`` → ``--lora-r 2``)."""
    args = ["--task", task, "--method", method, "--seed", str(seed)]
    args += ["--preset", preset, "--model", model, "--results-dir", str(results_dir)]
    return args + shared.override_flags(overrides) + ["--no-progress"]


@dataclass(frozen=True)
class Job:
    """One run of the campaign: task, method, seed and the settings it overrides."""

    task: str
    method: str
    seed: int = 0
    lr: float | None = None
    epochs: int | None = None

    def own(self) -> dict:
        """The settings this job sets itself: the sweep's lr and epochs (a follow-up's)."""
        return {k: v for k, v in (("lr", self.lr), ("epochs", self.epochs)) if v is not None}

    def overrides(self) -> dict:
        """The preset settings this job sets: the campaign's arithmetic (:data:`RECORDED_IN`)
        and its own (:meth:`own`)."""
        return {**RECORDED_IN, **self.own()}

    def argv(self, results_dir: str | Path, model: str = MODEL) -> list[str]:
        """The ``python -m lorabook.glue`` arguments of this job."""
        return glue_argv(
            self.task, self.method, self.seed, PRESET, model, results_dir, self.overrides()
        )

    def plan(self, results_dir: str | Path, model: str = MODEL):
        """Its :class:`~lorabook.glue.experiment.GlueRun` (checked settings, record path)."""
        from lorabook.glue.experiment import plan_glue_run

        return plan_glue_run(
            self.task, self.method, model, PRESET, self.seed, results_dir, self.overrides()
        )

    def key(self) -> str:
        """The hash that names this job's record (see :mod:`lorabook.runs`)."""
        return self.plan(DEFAULT_RESULTS).paths.key

    def estimate_seconds(self) -> float:
        """Rough training time of one worker, from the measured tokens/s; evaluation excluded."""
        epochs = self.epochs or self.plan(DEFAULT_RESULTS).settings.train.epochs
        return epochs * EPOCH_TOKENS[self.task] / WORKER_TOKENS_PER_SECOND[self.method]

    def __str__(self) -> str:
        extra = "".join(f" {k} {v:g}" for k, v in self.own().items())
        return f"{self.task}-{self.method}-seed{self.seed}{extra}"


def sweep_lrs(method: str, records: Sequence[dict] = ()) -> list[float]:
    """The learning rates the sweep tries for ``method``: its grid in ``CPU_SWEEP``, extended
    by one more rate (×2 or ÷2) each time the best so far is at an end of what was tried,
    at most :data:`MAX_EXTENSIONS` times; only finished runs (``records``) can extend it."""
    lrs, epochs = list(CPU_SWEEP[method][0]), CPU_SWEEP[method][1]
    by_key = {r["key"]: r for r in records}
    for _ in range(MAX_EXTENSIONS):
        found = [by_key.get(Job(CPU_SWEEP_TASK, method, 0, lr, epochs).key()) for lr in lrs]
        if any(r is None for r in found):
            break
        best = _best_lr(dict(zip(lrs, (_best_score(r) for r in found), strict=True)))
        if best == max(lrs):
            lrs.append(max(lrs) * 2)
        elif best == min(lrs):
            lrs.insert(0, min(lrs) / 2)
        else:
            break
    return lrs


def sweep_jobs(records: Sequence[dict] = ()) -> list[Job]:
    """The sweep: each method at each of its learning rates on MRPC, seed 0 (FT, LoRA first);
    with ``records``, the grids extended where the best rate was at an end (:func:`sweep_lrs`)."""
    return [
        Job(CPU_SWEEP_TASK, method, 0, lr, epochs)
        for method, (_, epochs) in CPU_SWEEP.items()
        for lr in sweep_lrs(method, records)
    ]


def _best_score(record: dict) -> float:
    """The best dev score of a record's epochs (its task's metric)."""
    return max(e[record["metric"]] for e in record["epochs"])


def _best_lr(tried: dict[float, float]) -> float:
    """The learning rate with the best score; a tie goes to the smaller rate."""
    return max(tried, key=lambda lr: (tried[lr], -lr))


def campaign_jobs(methods: Sequence[str] | None = None) -> list[Job]:
    """The chapter's runs of ``methods`` (default: those the sweep has picked for): seed 0 of
    everything first, task by task with every method, so that a partial campaign already
    compares methods on the tasks it has done.

    Raises:
        SettingsError: a method asked for has no sweep pick in ``presets.CPU_CHOSEN`` yet.
    """
    methods = [m for m in SEEDS if m in presets.CPU_CHOSEN] if methods is None else list(methods)
    missing = [m for m in methods if m not in presets.CPU_CHOSEN]
    if missing:
        raise SettingsError(
            f"no sweep pick for {missing} in lorabook.glue.presets.CPU_CHOSEN: run "
            "`python -m lorabook.glue.campaign sweep`, then `pick`, and fill it in"
        )
    rounds = max(len(seeds) for seeds in SEEDS.values())
    return [
        Job(task, method, SEEDS[method][i])
        for i in range(rounds)
        for task in TASKS
        for method in methods
        if i < len(SEEDS[method])
    ]


def pick(records: Sequence[dict], margin: float = MARGIN) -> dict[str, dict]:
    """Apply the sweep rule to sweep records (see the module docstring), per method.

    Args:
        records: GLUE records; those of the sweep's jobs are used, the rest ignored.
        margin: how close to its best a run must come to count as converged (0.005 = 0.5 point).
    Returns:
        method -> ``{"lr", "epochs", "score", "tried": {lr: best score}, "fit": {lr: last
        epoch's training loss}, "curve": [...]}``
        for each method whose sweep runs are all finished, and ``{"missing": [job, ...]}``
        for the others.
    """
    by_key = {r["key"]: r for r in records}
    out: dict[str, dict] = {}
    for method in CPU_SWEEP:
        jobs = [j for j in sweep_jobs(records) if j.method == method]
        found = {j.lr: by_key.get(j.key()) for j in jobs}
        missing = [str(j) for j in jobs if found[j.lr] is None]
        if missing:
            out[method] = {"missing": missing}
            continue
        tried = {lr: _best_score(record) for lr, record in sorted(found.items())}
        best_lr = _best_lr(tried)
        metric = found[best_lr]["metric"]
        curve = [e[metric] for e in found[best_lr]["epochs"]]
        epochs = next(i + 1 for i, v in enumerate(curve) if v >= max(curve) - margin)
        out[method] = {
            "lr": best_lr,
            "epochs": epochs,
            "score": tried[best_lr],
            "metric": metric,
            "tried": tried,
            "fit": {lr: r["epochs"][-1].get("train_loss") for lr, r in sorted(found.items())},
            "curve": curve,
        }
    return out


def run_jobs(
    jobs: Sequence[Job],
    workers: int = 1,
    results_dir: str | Path = DEFAULT_RESULTS,
    model: str = MODEL,
    command: Sequence[str] = (sys.executable, "-m", "lorabook.glue"),
    cores: int | None = None,
    more: Callable[[], Sequence[Job]] | None = None,
) -> list[tuple[Job, int]]:
    """Run the unfinished ``jobs`` in ``workers`` processes at a time; return (job, exit code).

    Every job's settings are checked first. Each worker gets ``cores // workers`` threads
    (and those cores, on Linux), ``cores`` being all this process may use unless given
    (``cores=1, workers=1`` leaves the other cores to other work). A job's output goes to
    ``<results>/_logs/<record name>.log``. A failed job is reported and the others go on.
    ``command`` runs one job given its :meth:`Job.argv`; ``more``, the jobs that can run now
    once ``jobs`` are taken (see :func:`lorabook.campaign.run_jobs`).
    """
    return shared.run_jobs(
        jobs,
        workers,
        results_dir,
        command,
        argv=lambda job: job.argv(results_dir, model),
        paths=lambda job: job.plan(results_dir, model).paths,
        cores=cores,
        pin=pin_to_cores,
        more=more,
    )


def _jobs(which: str, results_dir: str | Path = DEFAULT_RESULTS) -> list[Job]:
    if which == "sweep":
        from lorabook.runs import find_records

        return sweep_jobs(find_records(results_dir, "glue", preset=PRESET, model=MODEL))
    waiting = [m for m in SEEDS if m not in presets.CPU_CHOSEN]
    if waiting:
        print(f"waiting for their sweep pick (presets.CPU_CHOSEN): {', '.join(waiting)}")
    return campaign_jobs()


def _main(argv: Sequence[str] | None) -> int:
    from lorabook.glue import report  # the command line sits above the report it reads
    from lorabook.runs import find_records

    parser, sub = shared.campaign_parser("python -m lorabook.glue.campaign", __doc__)
    plan = sub.add_parser("plan", help="list the jobs, done or not, with estimated hours")
    plan.add_argument("which", choices=("sweep", "runs", "follow-ups"))
    for name in ("sweep", "runs", "follow-ups"):
        shared.add_run_command(sub, name, f"run the {name} (resumable)")
    sub.choices["runs"].add_argument(
        "--then-follow-ups",
        action="store_true",
        help="when the runs are done, run the follow-ups they call for (one unattended command)",
    )
    sub.add_parser("pick", help="apply the sweep rule to the sweep's records")
    for p in sub.choices.values():
        p.add_argument("--results-dir", default=str(DEFAULT_RESULTS))
    add_debug_flag(parser)
    args = parser.parse_args(argv)

    if args.command == "pick":
        records = find_records(args.results_dir, "glue", preset=PRESET, model=MODEL)
        for method, result in pick(records).items():
            if "missing" in result:
                print(f"{method:<10} not finished: {', '.join(result['missing'])}")
                continue
            tried = ", ".join(f"{lr:g}: {100 * s:.1f}" for lr, s in result["tried"].items())
            print(
                f"{method:<10} lr {result['lr']:g}, {result['epochs']} epochs "
                f"(best {100 * result['score']:.1f} {result['metric']}; tried {tried})"
            )
        return 0
    which = args.command if args.command != "plan" else args.which
    if which == "follow-ups":
        jobs = report.follow_up_jobs(args.results_dir)
    else:
        jobs = _jobs(which, args.results_dir)
    if args.command == "plan":
        rows = []
        for job in jobs:
            record = job.plan(args.results_dir).paths.finished()
            took = sum(e["train_seconds"] for e in record["epochs"]) if record else None
            rows.append(
                PlanRow(str(job), "done" if record else "todo", job.estimate_seconds(), took)
            )
            print(plan_line(rows[-1]))
        left = shared.plan_totals(rows)["left"]
        print(f"left: ~{left:.1f} worker-hours (training only; evaluation adds ~5%)")
        return 0
    if args.workers < 1:
        raise SettingsError(f"--workers must be at least 1, got {args.workers}")
    shared.check_only(args.only, jobs)
    jobs = shared.only(jobs, args.only)
    ran = run_jobs(jobs, args.workers, args.results_dir, cores=args.cores)
    while which == "sweep" and not any(code for _, code in ran):
        more = [j for j in shared.only(_jobs(which, args.results_dir), args.only) if j not in jobs]
        if not more:  # no grid was extended by the runs just finished
            break
        print(f"the best rate was at an end of the grid: {', '.join(map(str, more))}")
        jobs += more
        ran += run_jobs(more, args.workers, args.results_dir, cores=args.cores)
    if getattr(args, "then_follow_ups", False) and not any(code for _, code in ran):
        more = shared.only(report.follow_up_jobs(args.results_dir), args.only)
        print(f"follow-ups the runs call for: {', '.join(map(str, more)) or 'none'}", flush=True)
        ran += run_jobs(more, args.workers, args.results_dir, cores=args.cores)
    return shared.exit_status(ran)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lorabook.glue.campaign``: plan, sweep, pick, runs, follow-ups."""
    return cli_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
