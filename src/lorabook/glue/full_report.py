"""The GLUE ``full`` campaign's records for chapter 3 (issue 20): Table 2 over seeds, both of
its claims judged with their uncertainty, and the long runs that set each budget.

Read with :mod:`lorabook.glue.full_campaign`, whose rules chose the read-out, the budgets and
the seeds. A (task, method) enters the table once its three seeds at its budget have
finished: seed 0 is the long run that set the budget, seeds 1 and 2 ran at it.

**How a difference is judged** (written before the runs finished). For LoRA against another
method on a task, each at its best dev epoch, as Table 2 reports:

- the medians' difference over the three seeds, against the seeds' spread: the larger of the
  two methods' ranges (max − min over seeds);
- seed by seed, LoRA's seed s against the other method's seed s, a paired bootstrap over the
  dev examples (:func:`lorabook.glue.report.bootstrap_records`: 10,000 resamples, a 95%
  interval);
- ``above``: the medians' difference exceeds the spread **and** every seed's interval lies
  above zero; ``below``: the same, below zero; else ``on par``.

Claim 1 (LoRA on par with or better than FT) holds on a task when LoRA is not ``below`` FT
**and** LoRA's median is at most :data:`ON_PAR_MARGIN` (one point, chapter 3.9's margin)
below FT's: "on par" that only means "the evidence cannot tell" would let a large gap with
wide seed ranges pass (set before any LoRA or FT run of the campaign had finished).
Claim 2 (LoRA better than BitFit and the adapters) is shown per task and baseline here:
LoRA ``above all n``, ``not below any of n`` or ``below k of n`` of the n baselines with
their seeds on the task (``(n of 3 so far)`` while some lack them). The verdict (chapter 7)
judges the paper's own form of it, Table 2's average over tasks
(:func:`lorabook.verdict.glue_vs_baselines`).
Both compare like with like: every method's median of three seeds at its own per-task budget.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from lorabook.glue import full_campaign as fc
from lorabook.glue.report import bootstrap_records, score

ABOVE, BELOW, ON_PAR = "above", "below", "on par"
# how a table names :func:`judge`'s verdict: its "on par" says only that neither method is
# separated from the other, which claim 1's "on par with FT" asks more of (ON_PAR_MARGIN)
READINGS = {ABOVE: "LoRA above", BELOW: "LoRA below", ON_PAR: "not separated"}
ON_PAR_MARGIN = 1.0  # points: how far LoRA's median may trail FT's and still be "on par"
BASELINES = ("bitfit", "adapter_h", "adapter_p")


def _picked_pooling(results_dir: str | Path, model: str) -> str | None:
    """The head stage's pick, or ``None`` while it has runs to go."""
    return fc.pick_pooling(results_dir, model).get("pooling")


def method_name(method: str) -> str:
    """How the ``full`` campaign's runs of ``method`` are named (its ``adapter_p`` is
    Pfeiffer's adapter, not the ``cpu`` runs' FFN one)."""
    from lorabook.glue import report

    return report.method_name(
        method, fc.presets.glue_preset("full", "mrpc", method).resolved(method)
    )


def doubled(curves: Mapping[tuple[str, str], dict]) -> dict[tuple[str, str], dict]:
    """The (task, method) pairs of :func:`long_curves` whose long runs needed a doubling."""
    return {pair: found for pair, found in curves.items() if len(found["runs"]) > 1}


def seed_records(
    results_dir: str | Path = fc.DEFAULT_RESULTS, model: str = fc.MODEL
) -> dict[tuple[str, str], list[dict]]:
    """(task, method) -> its records of seeds 0, 1 and 2 at its budget, for the pairs whose
    three have finished (seed 0: the long run that set the budget), each with ``_path``.
    Empty while the head stage has not picked a read-out."""
    pooling = _picked_pooling(results_dir, model)
    if pooling is None:
        return {}
    out = {}
    for (task, method), epochs in fc.budgets(pooling, results_dir, model).items():
        jobs = [fc.Job("long", task, method, 0, epochs=epochs, pooling=pooling)]
        jobs += [fc.Job("seeds", task, method, s, epochs, pooling) for s in fc.SEEDS[1:]]
        paths = [job.plan(results_dir, model).paths for job in jobs]
        found = [p.finished() for p in paths]
        if all(found):
            out[(task, method)] = [
                {**r, "_path": str(p.record)} for r, p in zip(found, paths, strict=True)
            ]
    return out


def larger_adapters(
    results_dir: str | Path = fc.DEFAULT_RESULTS, model: str = fc.MODEL
) -> list[dict]:
    """The adapters at the ``cpu`` preset's size (m = :data:`~fc.LARGER_ADAPTER_SIZE`), seed
    0, beside the same adapter at LoRA's size: one row per finished larger run, in task order.

    Each larger run trains at the budget its size-matched twin's long run set, with that run's
    seed, so the two differ in the bottleneck alone (the twin is the long run whose end decided
    the budget). Rows: ``task``, ``method``, ``epochs``, ``larger`` and ``matched`` (best dev
    score ×100), ``larger − matched``, ``larger epoch`` and ``matched epoch`` (the best
    epochs), ``larger trainable`` and ``matched trainable`` (parameters, the head excluded)."""
    pooling = _picked_pooling(results_dir, model)
    if pooling is None:
        return []
    decided = fc.budgets(pooling, results_dir, model)
    rows = []
    for task in fc.TASKS:
        for method in fc.presets.FULL_ADAPTER_SIZE:
            if (task, method) not in decided:
                continue
            epochs = decided[(task, method)]
            size = fc.LARGER_ADAPTER_SIZE
            larger = fc.Job("seeds", task, method, 0, epochs, pooling, adapter_size=size)
            matched = fc.Job("long", task, method, 0, epochs=epochs, pooling=pooling)
            big, twin = (job.plan(results_dir, model).paths.finished() for job in (larger, matched))
            if not big:
                continue
            rows.append(
                {
                    "task": task,
                    "method": method,
                    "epochs": epochs,
                    "larger": score(big),
                    "matched": score(twin),
                    "larger − matched": score(big) - score(twin),
                    "larger epoch": big["best_epoch"],
                    "matched epoch": twin["best_epoch"],
                    "larger trainable": big["params"]["trainable"],
                    "matched trainable": twin["params"]["trainable"],
                }
            )
    return rows


def table2(found: Mapping[tuple[str, str], Sequence[dict]], epoch: str = "best") -> list[dict]:
    """One row per (method, task): the median, min and max of the seeds' best dev scores
    (×100; ``epoch="last"``: their last epoch's, see :func:`~lorabook.glue.report.score`),
    the seeds, the budget in epochs, the trainable parameters, and the median of the seeds'
    ``last train loss`` (their last epoch's mean training loss: how far a method fits the
    training set by the end of its budget; ``None`` where a record lacks it)."""
    rows = []
    for (task, method), records in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        scores = [score(r, epoch) for r in records]
        losses = [r["epochs"][-1].get("train_loss") for r in records]
        rows.append(
            {
                "method": method,
                "task": task,
                "median": statistics.median(scores),
                "min": min(scores),
                "max": max(scores),
                "seeds": [r["seed"] for r in records],
                "epochs": records[0]["settings"]["train"]["epochs"],
                "trainable": records[0]["params"]["trainable"],
                "last train loss": None if None in losses else statistics.median(losses),
            }
        )
    return rows


def judge(ours: Sequence[dict], theirs: Sequence[dict], **bootstrap: object) -> dict:
    """The module's rule for one task: ``difference`` of the medians, ``spread`` (the larger
    seed range), the per-seed bootstrap ``pairs`` (``seed``: the runs' seed) and the
    ``verdict``."""
    mine, other = [score(r) for r in ours], [score(r) for r in theirs]
    difference = statistics.median(mine) - statistics.median(other)
    spread = max(max(mine) - min(mine), max(other) - min(other))
    by_seed = {r["seed"]: r for r in theirs}
    pairs = []
    for r in ours:
        if r["seed"] in by_seed:
            result = bootstrap_records(r, by_seed[r["seed"]], **bootstrap)
            pairs.append({**result, "seed": r["seed"], "bootstrap_seed": result["seed"]})
    verdict = ON_PAR
    if difference > spread and pairs and all(p["low"] > 0 for p in pairs):
        verdict = ABOVE
    elif difference < -spread and pairs and all(p["high"] < 0 for p in pairs):
        verdict = BELOW
    return {"difference": difference, "spread": spread, "pairs": pairs, "verdict": verdict}


def verdicts(found: Mapping[tuple[str, str], Sequence[dict]], **bootstrap: object) -> list[dict]:
    """LoRA against FT and each baseline, per task where both have their seeds: the
    :func:`judge` fields with ``task`` and ``versus``."""
    rows = []
    for task in fc.TASKS:
        if (task, "lora") not in found:
            continue
        for other in ("ft", *BASELINES):
            if (task, other) in found:
                judged = judge(found[(task, "lora")], found[(task, other)], **bootstrap)
                rows.append({"task": task, "versus": other, **judged})
    return rows


def verdict_table(rows: Sequence[dict]) -> list[dict]:
    """:func:`verdicts`' rows as chapter 3.10 shows them: ``task``, ``versus``, the medians'
    ``difference`` and the seeds' ``spread`` (points), the seeds whose bootstrap interval lies
    ``above 0`` and ``below 0`` (of ``seeds`` paired), and the rule's ``reading``
    (:data:`READINGS`). No rows (no task has LoRA's seeds beside another method's): none."""
    return [
        {
            "task": row["task"],
            "versus": row["versus"],
            "difference": row["difference"],
            "spread": row["spread"],
            "above 0": sum(p["low"] > 0 for p in row["pairs"]),
            "below 0": sum(p["high"] < 0 for p in row["pairs"]),
            "seeds": len(row["pairs"]),
            "reading": READINGS[row["verdict"]],
        }
        for row in rows
    ]


def claims(rows: Sequence[dict]) -> dict[str, dict[str, bool | str]]:
    """The two claims per task from :func:`verdicts`' rows: ``"on par with FT"`` (task ->
    whether LoRA is not below FT and trails its median by at most :data:`ON_PAR_MARGIN`) and
    ``"against the baselines"`` (task -> "above all n", "not below any of n" or "below k of
    n", of the n baselines with seeds there, and "(n of 3 so far)" while some have none)."""
    by_task: dict[str, dict[str, str]] = {}
    for row in rows:
        by_task.setdefault(row["task"], {})[row["versus"]] = row["verdict"]
    gaps = {row["task"]: row["difference"] for row in rows if row["versus"] == "ft"}
    on_par = {
        t: v["ft"] != BELOW and gaps[t] >= -ON_PAR_MARGIN for t, v in by_task.items() if "ft" in v
    }
    against = {}
    for task, versus in by_task.items():
        found = [versus[b] for b in BASELINES if b in versus]
        if not found:
            continue
        n, below = len(found), found.count(BELOW)
        said = (
            f"below {below} of {n}"
            if below
            else f"above all {n}"
            if all(v == ABOVE for v in found)
            else f"not below any of {n}"
        )
        against[task] = said + (f" ({n} of {len(BASELINES)} so far)" if n < len(BASELINES) else "")
    return {"on par with FT": on_par, "against the baselines": against}


def outcomes(
    found: Mapping[tuple[str, str], Sequence[dict]], judged: Sequence[dict] | None = None
) -> dict[str, dict[str, bool]]:
    """The yes/no findings chapter 3.10's reading of LoRA against FT is written for, per task
    with both methods' seeds: ``"LoRA on par with FT"`` (claim 1, :func:`claims`), ``"LoRA
    below FT by the rule"`` (:func:`judge`'s verdict) and ``"LoRA ends with a higher training
    loss"`` (the medians of :func:`table2`'s ``last train loss``). ``judged``: :func:`verdicts`'
    rows, if already computed (they draw the bootstrap)."""
    judged = verdicts(found) if judged is None else judged
    versus_ft = {row["task"]: row for row in judged if row["versus"] == "ft"}
    loss = {(r["task"], r["method"]): r["last train loss"] for r in table2(found)}
    return {
        "LoRA on par with FT": claims(judged)["on par with FT"],
        "LoRA below FT by the rule": {t: r["verdict"] == BELOW for t, r in versus_ft.items()},
        "LoRA ends with a higher training loss": {
            t: loss[(t, "lora")] > loss[(t, "ft")] for t in versus_ft
        },
    }


def baseline_outcomes(
    found: Mapping[tuple[str, str], Sequence[dict]], judged: Sequence[dict] | None = None
) -> dict[str, dict[str, dict[str, bool]]]:
    """The yes/no findings a reading of claim 2 is written for, per baseline and task where
    LoRA and the baseline have their seeds: ``"LoRA's median higher"``, ``"LoRA above by the
    rule"`` and ``"LoRA below by the rule"`` (:func:`judge`). Plain nested dicts (baseline ->
    task -> bool), so that a chapter can keep what its prose was written for as a literal.
    ``judged``: :func:`verdicts`' rows, if already computed."""
    judged = verdicts(found) if judged is None else judged
    findings = {
        "LoRA's median higher": lambda row: row["difference"] > 0,
        "LoRA above by the rule": lambda row: row["verdict"] == ABOVE,
        "LoRA below by the rule": lambda row: row["verdict"] == BELOW,
    }
    out: dict[str, dict[str, dict[str, bool]]] = {name: {} for name in findings}
    for row in judged:
        if row["versus"] in BASELINES:
            for name, holds in findings.items():
                out[name].setdefault(row["versus"], {})[row["task"]] = holds(row)
    return out


def baseline_reading(
    rows: Sequence[dict], judged: Sequence[dict], names: Mapping[str, str] | None = None
) -> str:
    """Claim 2 task by task, one line per baseline, computed: its trainable parameters against
    LoRA's, LoRA's median minus the baseline's on each task where both have their seeds, and
    the tasks where the rule (:func:`judge`) separates them. ``rows``: :func:`table2`'s;
    ``judged``: :func:`verdicts`' rows; ``names`` maps a method to the name the text gives it.
    The paper's claim is the average over tasks, which chapter 7 judges; this is the per-task
    view behind it."""
    name = dict(names or {})
    trainable = {r["method"]: r["trainable"] for r in rows}
    lines = []
    for baseline in BASELINES:
        mine = [row for row in judged if row["versus"] == baseline]
        if not mine:
            continue
        gaps = ", ".join(f"{row['task']} {row['difference']:+.1f}" for row in mine)
        above = [row["task"] for row in mine if row["verdict"] == ABOVE]
        below = [row["task"] for row in mine if row["verdict"] == BELOW]
        if above or below:
            rule = "; ".join(
                f"LoRA {side} on {', '.join(tasks)}"
                for side, tasks in (("above", above), ("below", below))
                if tasks
            )
            rest = len(mine) - len(above) - len(below)
            rule = f"separated by the rule: {rule}" + ("; the rest not separated" if rest else "")
        else:
            rule = "not separated on any task by the rule"
        higher = sum(row["difference"] > 0 for row in mine)
        size = ""
        if baseline in trainable and "lora" in trainable:
            size = (
                f" ({trainable[baseline]:,} trainable parameters, "
                f"{trainable[baseline] / trainable['lora']:.2f}× LoRA's)"
            )
        lines.append(
            f"**{name.get(baseline, baseline)}**{size}: LoRA's median is higher on {higher} of "
            f"{len(mine)} tasks (LoRA − {name.get(baseline, baseline)}, points: {gaps}); {rule}."
        )
    if not lines:
        return "No task has LoRA's three seeds beside a baseline's yet."
    return "\n".join(f"- {line}" for line in lines)


def head_rows(results_dir: str | Path = fc.DEFAULT_RESULTS, model: str = fc.MODEL) -> list[dict]:
    """The head stage as it stands: per (task, method) the best dev score (×100) with each
    read-out (``None`` until its run has finished), mean minus [CLS], and the epoch each
    read-out scored best at (``cls epoch``, ``mean epoch``, of ``epochs``)."""
    rows = []
    for job in fc.head_jobs():
        record = job.finished(results_dir, model)
        row = next((r for r in rows if (r["task"], r["method"]) == (job.task, job.method)), None)
        if row is None:
            row = {"task": job.task, "method": job.method, "cls": None, "mean": None}
            row |= {"cls epoch": None, "mean epoch": None, "epochs": job.epochs}
            rows.append(row)
        if record is not None:
            row[job.pooling] = 100 * record["best"][record["metric"]]
            row[f"{job.pooling} epoch"] = record["best_epoch"]
    for row in rows:
        both = row["cls"] is not None and row["mean"] is not None
        row["mean − cls"] = row["mean"] - row["cls"] if both else None
    return rows


def head_sentence(results_dir: str | Path = fc.DEFAULT_RESULTS, model: str = fc.MODEL) -> str:
    """What the head rule says on the records: the read-out picked and why, or how many head
    runs are still to finish."""
    picked = fc.pick_pooling(results_dir, model)
    if "missing" in picked:
        total = len(fc.head_jobs())
        return (
            f"No read-out picked yet: {total - len(picked['missing'])} of {total} head runs "
            "have finished (the rule reads all of them)."
        )
    means = {p: 100 * v for p, v in picked["means"].items()}
    name = {"cls": "[CLS] through the pooler", "mean": "mean pooling"}
    return (
        f"The rule picks {name[picked['pooling']]}: the mean dev score over the "
        f"{len(picked['scores'])} (task, method) pairs is {means['mean']:.2f} with mean pooling "
        f"against {means['cls']:.2f} with [CLS] (a tie would keep [CLS]). Every method of the "
        "campaign reads out this way."
    )


def long_curves(
    results_dir: str | Path = fc.DEFAULT_RESULTS, model: str = fc.MODEL
) -> dict[tuple[str, str], dict]:
    """(task, method) -> the long stage's finished runs: per run its epochs, the dev score
    by epoch (×100), its best score and best epoch, and the budget the rule set (``None``
    while open)."""
    pooling = _picked_pooling(results_dir, model)
    if pooling is None:
        return {}
    out = {}
    for task in fc.TASKS:
        for method in fc.METHODS:
            decided = fc.budget(task, method, pooling, results_dir, model)
            runs = []
            for job in decided["runs"]:
                record = job.plan(results_dir, model).paths.finished()
                if record is not None:
                    scores = [100 * e[record["metric"]] for e in record["epochs"]]
                    runs.append(
                        {
                            "epochs": job.epochs,
                            "scores": scores,
                            "best": max(scores),
                            "best_epoch": record["best_epoch"],
                        }
                    )
            if runs:
                out[(task, method)] = {
                    "runs": runs,
                    "budget": decided["epochs"],
                    "capped": decided["capped"],
                }
    return out


def budget_rows(curves: Mapping[tuple[str, str], dict]) -> list[dict]:
    """Per (task, method) of :func:`long_curves`: the long runs' lengths with their best dev
    scores and best epochs (``"20: 80.6 at 20, 40: 79.2 at 7"``), the budget the rule set and
    whether it was capped."""
    return [
        {
            "task": task,
            "method": method,
            "long runs (epochs: best at epoch)": ", ".join(
                f"{run['epochs']}: {run['best']:.1f} at {run['best_epoch']}"
                for run in found["runs"]
            ),
            "budget": found["budget"],
            "capped": found["capped"],
        }
        for (task, method), found in curves.items()
    ]


def doubling_reading(
    curves: Mapping[tuple[str, str], dict], names: Mapping[str, str] | None = None
) -> str:
    """What the doublings did to seed 0's score: for each (task, method) whose long runs
    needed one, whether the longer run's best dev score is below the shorter one's. The rule
    sets the budget where a run has peaked, not where it scored best, and a doubled budget
    stretches the learning-rate schedule rather than continuing the shorter run; where the
    budget's run (the last) scored below an earlier, shorter one, that method's seeds (all
    run at the budget) are read below what the shorter budget gave seed 0. ``names``: as
    :func:`rate_reading`'s."""
    name = dict(names or {})
    twice = doubled(curves)
    if not twice:
        return "No long run needed a doubling: every budget is a method's first run."
    lower = []
    for (task, method), found in twice.items():
        best = [run["best"] for run in found["runs"]]
        if best[-1] < max(best[:-1]):  # the budget's run (the last) below an earlier one
            steps = ", then ".join(
                f"{run['epochs']} epochs {run['best']:.1f}" for run in found["runs"]
            )
            lower.append(f"{name.get(method, method)} on {task} ({steps})")
    methods = sorted({name.get(m, m) for _, m in twice})
    first = sorted({name.get(m, m) for (_, m) in curves} - set(methods))
    said = (
        f"{len(twice)} budget{'s' if len(twice) != 1 else ''} needed a doubling "
        f"({', '.join(methods)}); "
        + (f"{', '.join(first)} peaked in their first runs everywhere. " if first else "")
    )
    if not lower:
        return said + "Every doubled run scored at least as high as the run it doubled."
    return (
        said
        + f"On {len(lower)} of them seed 0's run at the budget scored below a shorter one: "
        + "; ".join(lower)
        + ". The rule keeps the budget where a run peaked, not where it scored best, so these "
        "methods' seeds are read at the longer budget; had the shorter one been kept, seed 0 "
        "would score higher there by the difference shown."
    )


def rate_reading(
    curves: Mapping[tuple[str, str], dict], names: Mapping[str, str] | None = None
) -> str:
    """Issue 20's question, whether a long run shows a method held back by its learning rate,
    read the one way the long runs can show it: a run that still has not peaked after the
    budget rule's last doubling (``capped``), i.e. a rate too low to converge in that budget.

    A rate that converges but to a lower peak than another rate would reach is invisible to
    runs at one rate; the sentence says so rather than calling the rates right. ``names``
    maps a method to the name the sentence gives it (default: the method's key)."""
    decided = {pair: found for pair, found in curves.items() if found["budget"] is not None}
    if not decided:
        return "No budget is decided yet: nothing to say of the learning rates."
    name = dict(names or {})
    capped = [f"{name.get(m, m)} on {t}" for (t, m), found in decided.items() if found["capped"]]
    longer = [f"{name.get(m, m)} on {t}" for t, m in doubled(decided)]
    open_pairs = len(fc.TASKS) * len(fc.METHODS) - len(decided)
    head = (
        f"Of {len(decided)} decided budgets"
        + (f" ({open_pairs} still open)" if open_pairs else "")
        + ", "
    )
    if capped:
        held = (
            f"{len(capped)} never peaked within {fc.MAX_DOUBLINGS} doublings "
            f"({', '.join(capped)}): those methods look held back by their learning rate. "
            "The campaign keeps the MRPC sweep's rate for them too (it has no budget for a "
            "second sweep), so their numbers there are read as a lower bound."
        )
    else:
        held = (
            "every one peaked within the rule's doublings, so no method shows a rate too low "
            "to converge, and every method keeps the rate of the MRPC sweep."
        )
    if longer:
        held += f" The runs that needed a doubling: {', '.join(longer)}."
    return (
        head
        + held
        + " What runs at one rate cannot show is a rate that converges to a lower peak than "
        "another would; that needs a sweep in the full configuration, which the budget did not "
        "hold."
    )


def fit_reading(
    picks: Mapping[str, dict],
    curves: Mapping[tuple[str, str], dict],
    names: Mapping[str, str] | None = None,
) -> str:
    """The other sign the records hold of a rate too low, for each method whose long runs
    needed a doubling (slow to peak): did the MRPC sweep's higher rates fit the training set
    faster than the rate it picked? ``picks``: :func:`lorabook.glue.campaign.pick` (each
    rate's best dev score and last training loss). If none did, the sweep gives no sign that
    a higher rate would have peaked sooner (it ran on MRPC only, at few epochs: a sign, not a
    proof); if one did, it scored lower on dev there, which is why the sweep did not pick
    it."""
    name = dict(names or {})
    slow = sorted({m for _, m in doubled(curves)})
    lines = []
    for method in slow:
        pick = picks.get(method, {})
        if None in pick.get("fit", {None: None}).values():  # not swept, or no training loss
            continue
        chosen, fit, tried = pick["lr"], pick["fit"], pick["tried"]
        higher = {lr: loss for lr, loss in fit.items() if lr > chosen}
        said = ", ".join(f"{lr:g}: {loss:.3f}" for lr, loss in fit.items())
        head = f"{name.get(method, method)} (training loss after the sweep's last epoch, {said})"
        if not higher:
            lines.append(
                f"{head}: the sweep picked the highest rate it tried, so it cannot say whether "
                "a higher one would fit faster."
            )
        elif all(loss >= fit[chosen] for loss in higher.values()):
            lines.append(
                f"{head}: no higher rate fit MRPC's training set faster than the picked "
                f"{chosen:g}, so the sweep gives no sign that a higher rate would have peaked "
                "sooner."
            )
        else:
            faster = min(higher, key=higher.get)
            lines.append(
                f"{head}: {faster:g} fit faster than the picked {chosen:g} but scored "
                f"{100 * tried[faster]:.1f} on dev against {100 * tried[chosen]:.1f}."
            )
    if not lines:
        return "No method needed a doubling, or the sweep has no record of it."
    return (
        "Did a higher rate in the MRPC sweep fit faster? For each method that needed a "
        "doubling:\n\n" + "\n".join(f"- {line}" for line in lines) + "\n\nThe sweep ran the "
        "`cpu` preset (at most 8 epochs, [CLS] read-out, the adapters at m = 64 and AdapterP "
        "as Houlsby's FFN adapter), so for the adapters it speaks of a larger, other variant."
    )
