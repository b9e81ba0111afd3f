"""What the GLUE and E2E campaigns share: pinned single-thread workers, skip and resume, a plan.

A campaign is a list of *jobs*, each one run of an experiment's command line (``python -m
lorabook.glue ...``, ``python -m lorabook.e2e ...``) that names its own record. Each campaign
(:mod:`lorabook.glue.campaign`, :mod:`lorabook.e2e.campaign`) keeps only its jobs, its rules
and its estimates; this module runs the jobs and prints the plan:

* :func:`run_jobs`: the unfinished jobs, ``workers`` at a time, each in its own process pinned
  to its own cores with that many threads (on this project's 2-core machine two one-thread
  workers train 12–16% more tokens a second than one run on both cores); a finished job (its
  record exists) is skipped, one another live campaign holds (a lock file) too, and an
  interrupted one resumes when it is run again (the experiments checkpoint themselves). Given
  ``more``, a free worker asks the campaign for what can run now, so that jobs called for by
  a run's outcome (a budget, a doubling) start as soon as a worker is free.
* :func:`stash`: a copy of the small checkpoints (LoRA's) of the unfinished jobs, for git to
  carry to a new machine, where :func:`run_jobs` puts them back before it resumes the job.
* :func:`override_flags`: a job's settings as command-line flags.
* :func:`only`, :func:`check_only`: ``--only``, the jobs a session chooses to run (an FT run
  whose checkpoint cannot travel, when it fits in one session; the small ones otherwise).
* :class:`PlanRow`, :func:`plan_line`, :func:`plan_totals`, :func:`print_plan`: per job, its
  estimated time and, once finished, what it took; in all, the hours left and estimated
  against spent, stage by stage. :func:`latest_device`, :func:`on_device`: the records whose
  clocks an estimate reads (those of the machine the campaign last ran on, where it has any).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lorabook.runs import STASH_LIMIT, RunPaths, folder_bytes, read_progress

Job = TypeVar("Job")


def override_flags(overrides: dict) -> list[str]:
    """A job's settings as the experiment's command line takes them: ``{"mixed_precision":
    "no", "lr": 0.001}`` → ``["--mixed-precision", "no", "--lr", "0.001"]`` (dashes in the
    flag, strings as they are, other values by ``repr``: exact floats, ``True``/``False``; a
    tuple, such as ``lora_targets``, one word per item)."""

    def word(value: object) -> str:
        return value if isinstance(value, str) else repr(value)

    args: list[str] = []
    for name, value in overrides.items():
        words = [word(v) for v in value] if isinstance(value, tuple) else [word(value)]
        args += [f"--{name.replace('_', '-')}", *words]
    return args


def available_cores() -> int:
    """How many cores this process may use (its affinity on Linux, else the CPU count)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else (os.cpu_count() or 1)


def pin_to_cores(worker: int, threads: int):
    """A ``preexec_fn`` pinning a worker to its own cores (Linux); None where unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    mine = set(cores[worker * threads : (worker + 1) * threads])
    if len(mine) < threads:
        return None
    return lambda: os.sched_setaffinity(0, mine)


def worker_env(threads: int) -> dict[str, str]:
    """This process's environment with the math libraries held to ``threads`` threads."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def claim(path: Path) -> int | None:
    """Take the lock file ``path`` for this process; return the pid that holds it instead, if
    that process is alive (a lock left by a process that ended is taken over)."""
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text() or 0)
                os.kill(pid, 0)  # signal 0: does the process exist?
            except (ValueError, ProcessLookupError, FileNotFoundError):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except PermissionError:  # alive, another user's
                return pid
            return pid
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return None
    return None


def run_jobs(
    jobs: Sequence[Job],
    workers: int,
    results_dir: str | Path,
    command: Sequence[str],
    argv: Callable[[Job], list[str]],
    paths: Callable[[Job], RunPaths],
    cores: int | None = None,
    pin: Callable[[int, int], Callable[[], None] | None] = pin_to_cores,
    more: Callable[[], Sequence[Job]] | None = None,
) -> list[tuple[Job, int]]:
    """Run the unfinished ``jobs`` in ``workers`` processes at a time; return (job, exit code).

    Every job's record path is found first (``paths(job)``, which checks its settings). Each
    worker gets ``cores // workers`` threads (and those cores, on Linux, through ``pin``),
    ``cores`` being all this process may use unless given (``cores=1, workers=1`` leaves the
    other cores to other work). A job runs as ``[*command, *argv(job)]``; its output goes to
    ``<results>/_logs/<record name>.log``. A failed job is reported and the others go on.
    A job whose checkpoint is not on this machine but in git (``stash``) resumes from that.

    ``more``: the jobs that can run now, first things first (a campaign whose next jobs
    depend on the outcome of those running: a budget, a doubling). When ``jobs`` are all
    taken, a free worker asks it again and takes the first job it has not taken yet that is
    unfinished; while nothing is left it waits for a running job to end (whose outcome may
    call for more) and stops once none runs. So no worker sits idle at the tail of one step
    while the next step has work. After a failed job nothing more is asked for.
    """
    plans = [(job, paths(job)) for job in jobs]
    todo = [(job, run) for job, run in plans if run.finished() is None]
    if plans or more is None:
        print(f"{len(plans) - len(todo)} of {len(plans)} finished; {len(todo)} to run", flush=True)
    if not todo and more is None:
        return []
    if cores is None:
        cores = available_cores()
    threads = max(1, cores // workers)
    env = worker_env(threads)
    logs = Path(results_dir) / "_logs"
    logs.mkdir(parents=True, exist_ok=True)
    queue, results = list(todo), []
    taken = {run.record for _, run in todo}
    ended = threading.Condition()
    running = 0
    started = time.monotonic()

    def asked() -> tuple[Job, RunPaths] | None:
        """The first job ``more`` names that is neither taken nor finished (under the lock)."""
        if more is None or any(code for _, code in results):
            return None
        for job in more():
            run = paths(job)
            if run.record not in taken and run.finished() is None:
                taken.add(run.record)
                return job, run
        return None

    def take() -> tuple[Job, RunPaths] | None:
        nonlocal running
        with ended:
            while True:
                found = queue.pop(0) if queue else asked()
                if found is not None:
                    running += 1
                    return found
                if running == 0 or more is None:
                    return None
                ended.wait()  # a job under way may call for more when it ends

    def work(worker: int) -> None:
        nonlocal running
        while (found := take()) is not None:
            job, run = found
            code = run_one(worker, job, run)
            with ended:
                running -= 1
                ended.notify_all()
                if code is None:  # skipped: not run by this campaign
                    continue
                results.append((job, code))
                minutes = (time.monotonic() - started) / 60
                log = logs / f"{run.record.stem}.log"
                state = "done" if code == 0 else f"FAILED (exit {code}; see {log})"
                print(
                    f"[worker {worker}] {state}: {job} | {len(results)}/{len(taken)} "
                    f"after {minutes:.0f} min",
                    flush=True,
                )

    def run_one(worker: int, job: Job, run: RunPaths) -> int | None:
        """The job's exit code; None when it was skipped (another process has it, or done)."""
        log = logs / f"{run.record.stem}.log"
        lock_file = logs / f"{run.record.stem}.lock"
        owner = claim(lock_file)
        if owner is not None:
            print(f"[worker {worker}] skip {job}: running in process {owner}", flush=True)
            return None
        if run.finished() is not None:  # another campaign finished it meanwhile
            lock_file.unlink(missing_ok=True)
            print(f"[worker {worker}] skip {job}: finished meanwhile", flush=True)
            return None
        if run.restore_scratch():
            print(f"[worker {worker}] {job}: checkpoint restored from {run.stash}", flush=True)
        print(f"[worker {worker}] start {job} → {log}", flush=True)
        try:
            with open(log, "a", encoding="utf-8") as out:
                return subprocess.call(
                    [*command, *argv(job)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    preexec_fn=pin(worker, threads),
                )
        finally:
            lock_file.unlink(missing_ok=True)

    pool = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return results


@dataclass(frozen=True)
class PlanRow:
    """One job in a plan: its state (``done``, ``todo``, or a campaign's own word such as
    ``part`` or ``wait``), its estimated seconds, the seconds it took once done, and for a
    ``part`` job the fraction of it its checkpoint holds (:func:`part_done`), if known."""

    job: str
    state: str
    estimate: float
    spent: float | None = None
    done: float | None = None


UNITS = {"min": (60, "5.0f"), "h": (3600, "5.1f")}


def latest_device(records: Sequence[dict]) -> str | None:
    """The device (as records name it) of the record that finished last; ``None`` if none
    names one."""
    named = [r for r in records if r.get("environment", {}).get("device")]
    if not named:
        return None
    return max(named, key=lambda r: r.get("finished_at", ""))["environment"]["device"]


def on_device(records: Sequence[dict], device: str | None) -> list[dict]:
    """The records made on ``device``, if any are; else all of them.

    A plan estimates from the speeds its records measured, and this project's machines
    differ twice over (:func:`lorabook.records.cpu_model`). The campaigns read their clocks
    on :func:`latest_device`, the machine they last ran on, where it has run a kind of job:
    the best guess of the next session's machine that the records alone give, so the plan
    (and the book's page of it) is the same on every machine that reads them."""
    mine = [r for r in records if r.get("environment", {}).get("device") == device]
    return mine or list(records)


RECENT = 2
"""How many of the latest records a plan's clock reads (:func:`recent`)."""


def recent(records: Sequence[dict], n: int = RECENT) -> list[dict]:
    """The ``n`` records that finished last. A worker's speed depends on what runs beside it
    (two E2E workers, one beside GLUE's, one alone: 1.6 to 3.3 s a batch for SmolLM2 LoRA on
    the same machine), which the campaigns change between sessions; the newest records
    measured the arrangement that runs now."""
    return sorted(records, key=lambda r: r.get("finished_at", ""))[-n:]


def finished_before(record: dict, records: Sequence[dict]) -> list[dict]:
    """The ``records`` that finished before ``record`` did: what a plan had measured while
    its run was still to finish. A campaign estimates a finished run from them, so that its
    estimate against its spent time says how far off the plan was (estimated from speeds
    that its own record measured, the two would agree by construction)."""
    finished = record.get("finished_at", "")
    return [r for r in records if r.get("finished_at", "") < finished]


def plan_line(row: PlanRow, unit: str = "min", spent_label: str = "trained") -> str:
    """``todo  <job>   ~  12 min`` or ``done  <job>   ~  12 min (trained 10 min)``."""
    scale, form = UNITS[unit]
    line = f"{row.state:<5} {row.job:<42} ~{row.estimate / scale:{form}} {unit}"
    if row.spent is not None:
        line += f" ({spent_label} {row.spent / scale:.{0 if unit == 'min' else 1}f} {unit})"
    elif row.done is not None:
        line += f" ({100 * row.done:.0f}% done)"
    return line


def part_done(scratch: Path, start: float, end: float) -> float | None:
    """How much of a job that trains from epoch (or round) ``start`` to ``end`` the checkpoint
    in ``scratch/ckpt`` holds, from 0 to 1 (:func:`lorabook.runs.read_progress`); ``None``
    when it has not written one that says."""
    progress = read_progress(scratch / "ckpt")
    if progress is None or end <= start:
        return None
    return min(max((progress["epochs_done"] - start) / (end - start), 0.0), 1.0)


def plan_row(
    job: str,
    paths: RunPaths,
    estimate: float,
    spent: Callable[[dict], float | None],
    start: float = 0.0,
    end: float = 1.0,
    estimate_done: Callable[[dict], float] | None = None,
) -> PlanRow:
    """A job's :class:`PlanRow` from its files: ``done`` with ``spent(record)`` seconds once
    its record exists (estimated by ``estimate_done(record)`` where given: see
    :func:`finished_before`), ``part`` while its scratch folder does (with :func:`part_done`
    of its epochs or rounds ``start`` to ``end``), else ``todo``."""
    if (record := paths.finished()) is not None:
        if estimate_done is not None:
            estimate = estimate_done(record)
        return PlanRow(job, "done", estimate, spent(record))
    for folder in (paths.scratch, paths.stash):
        if folder.exists():
            return PlanRow(job, "part", estimate, done=part_done(folder, start, end))
    return PlanRow(job, "todo", estimate)


def stash(runs: Sequence[tuple[object, RunPaths]], limit: int = STASH_LIMIT) -> dict[str, list]:
    """``stash``: copy the checkpoints of every unfinished run of ``runs`` ((job, paths)
    pairs) that are at most ``limit`` bytes into ``<results>/_resume`` for git to carry to
    the next machine, and drop the copies of finished runs (:meth:`RunPaths.stash_scratch`).
    Prints and returns the jobs by outcome (``stashed``, ``dropped``, ``too big``)."""
    outcomes: dict[str, list] = {"stashed": [], "dropped": [], "too big": []}
    for job, paths in runs:
        outcome = paths.stash_scratch(limit)
        if outcome in outcomes:
            outcomes[outcome].append(job)
            folder = {"stashed": paths.stash, "too big": paths.scratch}.get(outcome)
            mib = f" ({folder_bytes(folder) / 2**20:.1f} MiB)" if folder else ""
            print(f"{outcome:<8} {job}{mib}")
    if outcomes["too big"]:
        print(
            f"over {limit / 2**20:.0f} MiB, left on this machine only: "
            + ", ".join(map(str, outcomes["too big"]))
        )
    if outcomes["stashed"] or outcomes["dropped"]:
        print(f"commit {runs[0][1].stash.parent}/: git carries it to the next machine")
    return outcomes


def plan_totals(rows: Sequence[PlanRow]) -> dict[str, float]:
    """Worker-hours: ``left`` (estimates of the jobs not done, less the part a checkpoint
    holds), ``estimated`` (all jobs), ``done_estimated`` and ``done_spent`` (the finished
    jobs' estimates and actual times: how far off the estimates were), and ``done`` (how many
    finished)."""
    done = [r for r in rows if r.spent is not None]
    return {
        "left": sum(r.estimate * (1 - (r.done or 0.0)) for r in rows if r.spent is None) / 3600,
        "estimated": sum(r.estimate for r in rows) / 3600,
        "done_estimated": sum(r.estimate for r in done) / 3600,
        "done_spent": sum(r.spent or 0.0 for r in done) / 3600,
        "done": float(len(done)),
    }


def stage_progress(stages: Mapping[str, tuple[Sequence[PlanRow], str]]) -> list[dict]:
    """Per stage of a campaign's plan (``stage -> (rows, note)``, as :func:`print_plan`
    takes it; names starting with ``_`` are notes and skipped): runs finished of all, and
    worker-hours estimated for all, left, and spent by the finished ones, with the note."""
    out = []
    for stage, (rows, note) in stages.items():
        if stage.startswith("_"):
            continue
        totals = plan_totals(rows)
        out.append(
            {
                "stage": stage,
                "finished": int(totals["done"]),
                "runs": len(rows),
                "estimated h": totals["estimated"],
                "left h": totals["left"],
                "spent h": totals["done_spent"],
                "note": note,
            }
        )
    return out


def still_to_finish(rows: Sequence[dict]) -> list[str]:
    """The stages of :func:`stage_progress` with runs still to finish: ``stage (k of n
    finished)``."""
    return [
        f"{r['stage']} ({r['finished']} of {r['runs']} finished)"
        for r in rows
        if r["finished"] < r["runs"]
    ]


def progress_markdown(rows: Sequence[dict]) -> str:
    """:func:`stage_progress`'s notes as a Markdown list, then the stages still to finish."""
    still = still_to_finish(rows)
    notes = "\n".join(f"- **{r['stage']}**: {r['note']}" for r in rows)
    left = ", ".join(still) if still else "nothing: the campaign is complete"
    return f"{notes}\n\nStill to finish: {left}."


def print_plan(
    stages: Mapping[str, tuple[Sequence[PlanRow], str]], workers: int, counted: str
) -> dict[str, float]:
    """Print a campaign's plan and return its :func:`plan_totals`.

    ``stages``: stage name -> (its rows, a note), printed as ``== stage: note`` and a line a
    row in hours; a name starting with ``_`` is a note alone, printed after the stages as
    ``name: note``. Then the worker-hours left and of the whole campaign (``counted`` says
    what an estimate counts), the wall-clock hours on ``workers`` workers, and the finished
    runs' estimated against spent hours.
    """
    everything: list[PlanRow] = []
    for stage, (rows, note) in stages.items():
        if stage.startswith("_"):
            continue
        print(f"== {stage}: {note}")
        for row in rows:
            print(plan_line(row, unit="h", spent_label="spent"))
        everything += rows
    for name, (_, note) in stages.items():
        if name.startswith("_"):
            print(f"{name[1:]}: {note}")
    totals = plan_totals(everything)
    wall = totals["estimated"] / workers
    print(
        f"left: ~{totals['left']:.1f} worker-hours ({counted}); "
        f"whole campaign ~{totals['estimated']:.1f} worker-hours, ~{wall:.0f} hours on "
        f"{workers} workers"
    )
    if totals["done"]:
        print(
            f"finished: {totals['done']:.0f} runs, estimated ~{totals['done_estimated']:.1f} "
            f"worker-hours, spent {totals['done_spent']:.1f}"
        )
    return totals


def campaign_parser(prog: str, description: str | None) -> tuple[argparse.ArgumentParser, Any]:
    """A campaign's command line (``prog``, its module docstring as ``description``) and its
    subcommands (``args.command``)."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    return parser, parser.add_subparsers(dest="command", required=True)


def add_plan_command(subcommands: Any) -> argparse.ArgumentParser:
    """The ``plan`` subcommand: every stage's jobs, estimated against spent hours."""
    p = subcommands.add_parser("plan", help="every stage's jobs, estimated vs spent hours")
    p.add_argument("--workers", type=int, default=2, help="for the wall-clock estimate")
    return p


def add_location_options(subcommands: Any, results_dir: Path | str, model: str) -> None:
    """``--results-dir`` and ``--model`` on every subcommand added so far (``model`` names
    the default offline model; tests pass a folder)."""
    for p in subcommands.choices.values():
        p.add_argument("--results-dir", default=str(results_dir))
        p.add_argument("--model", default=model, help=f"{model}, or a folder (tests)")


def add_stash_command(subcommands: Any) -> argparse.ArgumentParser:
    """The ``stash`` subcommand: carry small checkpoints to the next machine in git."""
    return subcommands.add_parser(
        "stash",
        help="copy the small checkpoints of unfinished runs into <results>/_resume (commit "
        "it: a run resumes from it on a new machine); drop those of finished runs",
    )


def add_run_command(subcommands: Any, name: str, purpose: str) -> argparse.ArgumentParser:
    """A subcommand that runs jobs, with ``--workers`` (runs at a time), ``--cores`` and
    ``--only`` (:func:`only`)."""
    p = subcommands.add_parser(name, help=purpose)
    p.add_argument("--workers", type=int, default=2, help="runs at a time")
    p.add_argument("--cores", type=int, default=None, help="cores to use (default: all)")
    p.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help="run only the jobs whose name (as `plan` prints it) contains one of these "
        "(shell wildcards allowed), e.g. --only ft-seed1",
    )
    return p


def only(jobs: Sequence[Job], patterns: Sequence[str] | None) -> list[Job]:
    """The ``jobs`` whose name (``str(job)``, as ``plan`` prints it) contains one of
    ``patterns`` (shell wildcards allowed: ``ft-seed1``, ``sst2-*-seed0``); every job when
    ``patterns`` is empty or ``None``."""
    if not patterns:
        return list(jobs)
    return [j for j in jobs if any(fnmatch.fnmatchcase(str(j), f"*{p}*") for p in patterns)]


def check_only(patterns: Sequence[str] | None, known: Sequence[object]) -> None:
    """Refuse an ``--only`` pattern that names none of the ``known`` jobs (a typo would else
    run nothing, silently), listing the names it could take."""
    from lorabook.cli import SettingsError

    missing = [p for p in patterns or () if not only(known, [p])]
    if missing:
        names = "; ".join(map(str, known)) or "none yet (an earlier stage decides them)"
        raise SettingsError(
            f"--only {' '.join(missing)} names no job; the jobs are: {names} (a job whose "
            "settings wait for another run, a budget or its cell's seed 0, is named once that "
            "run has finished)"
        )


def python_module(module: str) -> tuple[str, ...]:
    """The command that runs ``python -m <module>`` with this interpreter."""
    return (sys.executable, "-m", module)


def exit_status(ran: Sequence[tuple[object, int]]) -> int:
    """Print each job of ``ran`` (``(job, exit code)`` pairs) that failed; 1 if any did, else 0:
    the exit status of a campaign command."""
    failed = [job for job, code in ran if code]
    for job in failed:
        print(f"failed: {job}")
    return 1 if failed else 0
