"""What the ``full`` campaign's records say so far, for chapter 4: each stage's progress
(estimated against spent worker-hours), the sweep's table, and every run's curve of dev loss
and dev BLEU by round, with where it was selected and why it stopped.

The campaign (:mod:`lorabook.e2e.campaign`) runs for days on this machine; the chapter shows
it as it stands, from the records alone, and says what is still missing rather than leaving a
gap. Table 3 and its verdicts, once the runs exist, are :mod:`lorabook.e2e.verdict`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lorabook import campaign as shared
from lorabook.e2e import campaign
from lorabook.e2e.presets import dev_loss_flat

STOPPED = {  # lorabook.e2e.experiment.why_stopped's words, as a sentence's end
    "rounds": "trained the rounds it was given",
    "flat": "met the rule: the dev loss was flat",
    "schedule end": "reached the cap (the whole schedule)",
    None: "trained its whole schedule, with no stop rule (the runs stage's budget)",
}


def stage_progress(results_dir: str | Path, model: str = campaign.MODEL) -> list[dict]:
    """Per stage of :func:`lorabook.e2e.campaign.plan_rows`: its note, runs finished of all,
    and worker-hours estimated for all, left, and spent by the finished ones
    (:func:`lorabook.campaign.stage_progress`)."""
    return shared.stage_progress(campaign.plan_rows(results_dir, model))


def sweep_table(results_dir: str | Path, model: str = campaign.MODEL) -> list[dict]:
    """Every sweep run: method, learning rate, and, once finished, its dev loss and greedy
    dev-subset BLEU after its round and whether the sweep rule picked it (``None`` while the
    method's sweep is unfinished)."""
    picks = campaign.pick(results_dir, model)
    rows = []
    for job in campaign.sweep_jobs():
        record = job.plan(results_dir, model).paths.finished()
        last = record["epochs"][-1] if record else {}
        picked = picks[job.method].get("lr")
        rows.append(
            {
                "method": job.method,
                "lr": job.lr,
                "finished": record is not None,
                "dev loss": last.get("dev_loss"),
                "dev BLEU": last.get("dev_bleu"),
                "picked": None if picked is None else picked == job.lr,
            }
        )
    return rows


def describe_sweep(rows: Sequence[dict], names: dict[str, str] | None = None) -> str:
    """What :func:`sweep_table`'s rows say, a sentence per method whose sweep has finished:
    the pick, whether it sits at an end of its grid (which the rule does not extend), and
    whether the dev-subset BLEU ranks the rates as the dev loss does."""
    names = names or {}
    sentences = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        picked = next((r for r in mine if r["picked"]), None)
        name = names.get(method, method)
        if picked is None:
            left = sum(not r["finished"] for r in mine)
            sentences.append(f"{name}: {left} of {len(mine)} rates still to finish, no pick yet.")
            continue
        rates = sorted(r["lr"] for r in mine)
        end = {rates[0]: "the lowest", rates[-1]: "the highest"}.get(picked["lr"])
        where = (
            f"{end} rate of its grid: a rate beyond it might have done better, and the rule, "
            "written before the sweep, does not extend the grid"
            if end
            else "inside its grid"
        )
        by_bleu = max(mine, key=lambda r: r["dev BLEU"])
        if by_bleu is picked:
            bleu = "the dev-subset BLEU ranks it first too"
        else:
            bleu = (
                f"the dev-subset BLEU would have picked {by_bleu['lr']:g} "
                f"({100 * by_bleu['dev BLEU']:.2f} against {100 * picked['dev BLEU']:.2f} at the "
                "pick; greedy, 100 MRs)"
            )
        sentences.append(
            f"{name}: {picked['lr']:g} (dev loss {picked['dev loss']:.4f}), {where}; {bleu}."
        )
    return "\n\n".join(sentences)


def curve(record: dict) -> dict:
    """A run's curve by round: ``epochs_seen``, ``dev_loss``, ``dev_bleu`` (lists), the
    training loss points (``train_steps``, ``train_loss``), the ``selected`` round (1-based,
    the lowest dev loss), why it ``stopped`` (:data:`STOPPED`), and ``last_gain``: the dev
    loss's relative improvement over the last two rounds, the quantity the pilot's rule
    compares with :data:`lorabook.e2e.campaign.FLAT` (``None`` before round 3)."""
    rounds = record["epochs"]
    losses = [e["dev_loss"] for e in rounds]
    steps, train = [], []
    done = 0
    for e in rounds:
        points = e.get("loss_curve") or [e["train_loss"]]
        steps += [done + (i + 1) * e["steps"] / len(points) for i in range(len(points))]
        train += points
        done += e["steps"]
    return {
        "epochs_seen": [e["epochs_seen"] for e in rounds],
        "dev_loss": losses,
        "dev_bleu": [e.get("dev_bleu") for e in rounds],
        "train_steps": steps,
        "train_loss": train,
        "selected": record["selection"]["round"],
        "stopped": record["data"].get("stopped"),
        "last_gain": (losses[-3] - losses[-1]) / losses[-3] if len(losses) > 2 else None,
        "flat": dev_loss_flat(losses, campaign.FLAT),
    }


def pilot_records(results_dir: str | Path, model: str = campaign.MODEL) -> dict[str, dict]:
    """The finished pilots' records, per method (empty before the sweep's pick)."""
    from lorabook.cli import SettingsError

    try:
        jobs = campaign.pilot_jobs(results_dir, model)
    except SettingsError:
        return {}
    found = {job.method: job.plan(results_dir, model).paths.finished() for job in jobs}
    return {method: record for method, record in found.items() if record is not None}


def describe_stop(method: str, found: dict, flat: float = campaign.FLAT) -> str:
    """One sentence: where a run was selected, where it stopped, and how far from flat."""
    rounds = len(found["dev_loss"])
    gain = found["last_gain"]
    gain_text = (
        f"the dev loss improved {100 * gain:.2f}% over its last two rounds "
        f"(the rule's threshold: {100 * flat:.0f}%)"
        if gain is not None
        else "too few rounds for the rule to apply"
    )
    reason = STOPPED.get(found["stopped"], str(found["stopped"]))
    epochs = found["epochs_seen"][-1]
    return (
        f"{method}: {rounds} round{'s' * (rounds != 1)} ({epochs:g} epoch{'s' * (epochs != 1)}); "
        f"it stopped because it "
        f"{reason}; {gain_text}; selected round {found['selected']} "
        f"(dev loss {found['dev_loss'][found['selected'] - 1]:.4f})."
    )
