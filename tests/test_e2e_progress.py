"""Chapter 4's view of the campaign in progress: stages, the sweep table, curves, stops."""

from __future__ import annotations

import pytest
from test_e2e_campaign import write_record

from lorabook.campaign import still_to_finish
from lorabook.e2e import presets, progress
from lorabook.e2e.campaign import FLAT, pilot_jobs, sweep_jobs


def full_record(job, results, losses, stopped="rounds", bleus=None, steps=10):
    """A finished record of ``job`` with what the curves read: per round its dev loss, dev
    BLEU, epochs seen and a two-point training loss; the selection and the stop."""
    epochs = [
        {
            "epoch": i + 1,
            "dev_loss": v,
            "dev_bleu": (bleus or [0.5] * len(losses))[i],
            "epochs_seen": (i + 1) / 4,
            "steps": steps,
            "loss_curve": [v + 1.0, v + 0.5],
            "train_loss": v + 0.75,
        }
        for i, v in enumerate(losses)
    ]
    best = min(range(len(losses)), key=lambda i: (losses[i], i))
    return write_record(
        job,
        results,
        losses,
        epochs=epochs,
        selection={"rule": "lowest dev loss", "round": best + 1, "dev_loss": losses[best]},
        data={"stopped": stopped},
        wall_seconds=3600.0,
    )


def test_the_sweep_table_lists_every_rate_and_marks_the_pick_once_a_method_is_complete(
    tmp_path,
):
    jobs = sweep_jobs()
    lora = [j for j in jobs if j.method == "lora"]
    for job, loss in zip(lora, (1.39, 1.35, 1.37), strict=True):
        full_record(job, tmp_path, [loss])
    ft = next(j for j in jobs if j.method == "ft")
    full_record(ft, tmp_path, [1.30])
    rows = progress.sweep_table(tmp_path)
    assert len(rows) == len(jobs)
    by = {(r["method"], r["lr"]): r for r in rows}
    assert [by[("lora", j.lr)]["picked"] for j in lora] == [False, True, False]
    assert by[("lora", lora[1].lr)]["dev loss"] == 1.35
    # FT's sweep is not finished: no pick yet, even for its one finished (and lowest) rate
    assert {r["picked"] for r in rows if r["method"] == "ft"} == {None}
    assert [r["finished"] for r in rows if r["method"] == "ft"] == [True, False, False]


def test_stage_progress_counts_finished_runs_and_spent_hours(tmp_path, monkeypatch):
    monkeypatch.setattr(presets, "FULL_CHOSEN", {})  # the sweep under way: nothing picked
    full_record(sweep_jobs()[0], tmp_path, [1.4])
    rows = {r["stage"]: r for r in progress.stage_progress(tmp_path)}
    assert list(rows) == ["sweep", "pilot", "runs", "ranks"]
    assert rows["ranks"]["finished"] == 0 and rows["ranks"]["note"].endswith("wait: LoRA's pick")
    assert rows["sweep"]["finished"] == 1 and rows["sweep"]["runs"] == len(sweep_jobs())
    assert rows["sweep"]["spent h"] == pytest.approx(1.0)
    assert rows["sweep"]["left h"] < rows["sweep"]["estimated h"]
    assert rows["pilot"]["finished"] == 0 and rows["pilot"]["note"].startswith("wait")
    assert still_to_finish(list(rows.values()))[0] == f"sweep (1 of {len(sweep_jobs())} finished)"


@pytest.mark.parametrize(
    ("losses", "gain", "flat"),
    [
        ([2.0], None, False),
        ([2.0, 1.5], None, False),
        ([2.0, 1.5, 1.49], (2.0 - 1.49) / 2.0, False),
        ([2.0, 1.5, 1.4, 1.395], (1.5 - 1.395) / 1.5, False),
        ([2.0, 1.5, 1.4, 1.3995, 1.399], (1.4 - 1.399) / 1.4, True),
        ([2.0, 1.5, 1.4, 1.45, 1.5], (1.4 - 1.5) / 1.4, True),  # a rising loss counts as flat
    ],
)
def test_a_curve_reports_the_pilots_quantity_and_agrees_with_its_rule(losses, gain, flat):
    record = {
        "epochs": [
            {"dev_loss": v, "epochs_seen": (i + 1) / 4, "steps": 10, "train_loss": 3.0}
            for i, v in enumerate(losses)
        ],
        "selection": {"round": losses.index(min(losses)) + 1},
        "data": {"stopped": "flat"},
    }
    found = progress.curve(record)
    assert found["last_gain"] == (None if gain is None else pytest.approx(gain))
    assert found["flat"] is flat
    assert found["flat"] is (gain is not None and gain < FLAT)
    assert found["train_steps"] == [10.0 * (i + 1) for i in range(len(losses))]
    assert found["selected"] == losses.index(min(losses)) + 1


def test_a_pilot_is_read_once_finished_and_its_stop_is_said(tmp_path, monkeypatch):
    assert progress.pilot_records(tmp_path) == {}  # no pick: no pilot
    monkeypatch.setattr(presets, "FULL_CHOSEN", {"lora": 5e-4, "ft": 5e-5})
    lora, _ = pilot_jobs(tmp_path)
    full_record(lora, tmp_path, [2.0, 1.5, 1.40, 1.3990, 1.3985], stopped="flat")
    found = progress.pilot_records(tmp_path)
    assert list(found) == ["lora"]
    curve = progress.curve(found["lora"])
    assert curve["train_steps"][-1] == 50 and len(curve["train_loss"]) == 10
    sentence = progress.describe_stop("LoRA", curve)
    assert "5 rounds (1.25 epochs)" in sentence
    assert "met the rule" in sentence and "0.11%" in sentence
    assert "selected round 5 (dev loss 1.3985)" in sentence
    one = progress.describe_stop("FT", progress.curve(full_record(lora, tmp_path, [2.0])))
    assert "1 round (0.25 epochs)" in one and "too few rounds" in one
    # the runs stage trains the pilot's budget with no stop rule: its records say no stop
    whole = progress.curve(full_record(lora, tmp_path, [2.0, 1.8, 1.7, 1.6], stopped=None))
    sentence = progress.describe_stop("FT-Top2", whole)
    assert "4 rounds (1 epoch)" in sentence and "with no stop rule" in sentence
    assert "None" not in sentence


def test_progress_markdown_lists_the_notes_and_what_is_left():
    from lorabook.campaign import progress_markdown

    rows = [
        {"stage": "sweep", "finished": 6, "runs": 6, "note": "done"},
        {"stage": "pilot", "finished": 1, "runs": 2, "note": "until flat"},
    ]
    text = progress_markdown(rows)
    assert text.splitlines()[:2] == ["- **sweep**: done", "- **pilot**: until flat"]
    assert text.endswith("Still to finish: pilot (1 of 2 finished).")
    rows[1]["finished"] = 2
    assert progress_markdown(rows).endswith("nothing: the campaign is complete.")


def test_describe_sweep_names_the_pick_its_place_in_the_grid_and_what_bleu_would_pick():
    def row(method, lr, loss, bleu, picked, finished=True):
        return {"method": method, "lr": lr, "finished": finished, "dev loss": loss,
                "dev BLEU": bleu, "picked": picked}  # fmt: skip

    rows = [
        row("lora", 2e-4, 1.39, 0.64, False),
        row("lora", 5e-4, 1.35, 0.65, True),
        row("lora", 1e-3, 1.36, 0.60, False),
        row("ft", 2e-5, 1.23, 0.68, False),
        row("ft", 5e-5, 1.20, 0.66, False),
        row("ft", 1e-4, 1.18, 0.67, True),
        row("prefix", 1e-3, 1.5, 0.5, None),
        row("prefix", 2e-3, None, None, None, finished=False),
    ]
    text = progress.describe_sweep(rows, {"lora": "LoRA", "ft": "FT"}).split("\n\n")
    assert text[0].startswith("LoRA: 0.0005 (dev loss 1.3500), inside its grid")
    assert "BLEU ranks it first too" in text[0]
    assert "the highest rate of its grid" in text[1] and "does not extend" in text[1]
    assert "would have picked 2e-05 (68.00 against 67.00" in text[1]
    assert text[2] == "prefix: 1 of 2 rates still to finish, no pick yet."
    rows[3]["picked"], rows[5]["picked"] = True, False  # the lowest rate picked
    assert "the lowest rate of its grid" in progress.describe_sweep(rows).split("\n\n")[1]
