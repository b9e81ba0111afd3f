"""Chapter 3's reading of the GLUE ``full`` campaign: Table 2 over seeds and both claims,
judged by the rule written before the runs, on stand-in records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_glue_full import write_record

from lorabook.glue import full_campaign as fc
from lorabook.glue import full_report as fr
from lorabook.glue.full_campaign import Job

TASK = "mrpc"


def with_predictions(path, labels, right: int) -> None:
    """Give a written record dev predictions that get the first ``right`` labels right, and
    the matching best score."""
    record = json.loads(path.read_text())
    predictions = [y if i < right else 1 - y for i, y in enumerate(labels)]
    record["dev_predictions"] = {"predictions": predictions, "labels": labels}
    record["best"] = {record["metric"]: right / len(labels)}
    path.write_text(json.dumps(record))


@pytest.fixture
def campaign(tmp_path):
    """Head stage done ([CLS] wins ties), MRPC's LoRA, FT and BitFit at their budgets with
    three seeds, their dev predictions set by ``set_scores``."""
    for job in fc.head_jobs():
        write_record(job, tmp_path, 2)
    labels = list(np.random.default_rng(0).integers(0, 2, 400))
    labels = [int(y) for y in labels]

    def set_scores(method: str, rights: list[int]) -> None:
        epochs = fc.presets.FULL_START_EPOCHS[method]
        jobs = [Job("long", TASK, method, 0, epochs=epochs, pooling="cls")]
        jobs += [Job("seeds", TASK, method, s, epochs, "cls") for s in (1, 2)]
        for job, right in zip(jobs, rights, strict=True):
            write_record(job, tmp_path, 2, params={"trainable": 73_728})  # peaked at 2
            with_predictions(job.plan(tmp_path).paths.record, labels, right)

    return tmp_path, set_scores


def test_table2_waits_for_the_head_and_for_all_three_seeds(tmp_path, campaign):
    assert fr.seed_records(tmp_path / "none") == {}
    results, set_scores = campaign
    set_scores("lora", [300, 310, 320])
    found = fr.seed_records(results)
    assert list(found) == [(TASK, "lora")]
    assert [r["seed"] for r in found[(TASK, "lora")]] == [0, 1, 2]
    (row,) = fr.table2(found)
    assert row["median"] == pytest.approx(77.5) and (row["min"], row["max"]) == (75.0, 80.0)
    assert row["epochs"] == fc.presets.FULL_START_EPOCHS["lora"]
    assert row["last train loss"] == pytest.approx(1 / row["epochs"])  # the stand-ins' curve
    without = {
        k: [{**r, "epochs": [{"epoch": 1, r["metric"]: 0.5}]} for r in rs]
        for k, rs in found.items()
    }
    assert fr.table2(without, epoch="last")[0]["last train loss"] is None  # older records
    # the last-epoch reading: the stand-in curves peak at epoch 2, then fall 0.2 a epoch
    (last,) = fr.table2(found, epoch="last")
    n = row["epochs"]
    assert last["median"] == pytest.approx(50.2 - 0.2 * (n - 2))
    with pytest.raises(ValueError, match="'best' or 'last'"):
        fr.table2(found, epoch="final")
    Job("seeds", TASK, "ft", 2, 10, "cls").plan(results).paths.record.unlink(missing_ok=True)
    assert (TASK, "ft") not in fr.seed_records(results)


def test_the_larger_adapter_sits_beside_its_size_matched_twin_at_the_twins_budget(campaign):
    results, _ = campaign
    assert fr.larger_adapters(results / "none") == []  # no head stage: nothing is decided
    epochs = fc.presets.FULL_START_EPOCHS["adapter_h"]
    twin = Job("long", TASK, "adapter_h", 0, epochs=epochs, pooling="cls")
    write_record(twin, results, 2, params={"trainable": 78_432})  # peaked: the budget is set
    assert fr.larger_adapters(results) == []  # the larger run has not finished
    size = fc.LARGER_ADAPTER_SIZE
    larger = Job("seeds", TASK, "adapter_h", 0, epochs, "cls", adapter_size=size)
    write_record(larger, results, 3, params={"trainable": 600_000})
    orphan = Job("seeds", TASK, "adapter_p", 0, epochs, "cls", adapter_size=size)
    write_record(orphan, results, 3, params={"trainable": 600_000})  # its twin set no budget
    (row,) = fr.larger_adapters(results)
    assert (row["task"], row["method"], row["epochs"]) == (TASK, "adapter_h", epochs)
    assert row["larger"] == pytest.approx(50.3) and row["matched"] == pytest.approx(50.2)
    assert row["larger − matched"] == pytest.approx(0.1)
    assert (row["larger epoch"], row["matched epoch"]) == (3, 2)
    assert (row["larger trainable"], row["matched trainable"]) == (600_000, 78_432)
    assert larger.plan(results).paths.key != twin.plan(results).paths.key


@pytest.mark.parametrize(
    ("lora", "ft", "expected"),
    [
        ([340, 342, 344], [300, 302, 304], fr.ABOVE),  # +10 points, ranges 1: above
        ([300, 302, 304], [340, 342, 344], fr.BELOW),
        ([300, 340, 320], [310, 312, 314], fr.ON_PAR),  # +2.5, but LoRA's range is 10
        ([301, 302, 303], [300, 301, 302], fr.ON_PAR),  # within the seeds' range
        ([308, 308, 308], [306, 306, 306], fr.ON_PAR),  # beyond the range (0), but 2 examples:
        # a resample holds neither of them 13.5% of the time, so the interval reaches zero
        ([300, 340, 310], [320, 322, 324], fr.ON_PAR),  # -3 points inside LoRA's range of 10
    ],
)
def test_the_rule_needs_both_the_seed_range_and_every_bootstrap(campaign, lora, ft, expected):
    results, set_scores = campaign
    set_scores("lora", lora)
    set_scores("ft", ft)
    rows = fr.verdicts(fr.seed_records(results), samples=500)
    (row,) = rows
    assert row["versus"] == "ft" and row["verdict"] == expected
    assert row["difference"] == pytest.approx((sorted(lora)[1] - sorted(ft)[1]) / 4)
    assert [p["seed"] for p in row["pairs"]] == [0, 1, 2]
    (shown,) = fr.verdict_table(rows)
    assert shown["reading"] == fr.READINGS[expected] and shown["seeds"] == 3
    assert shown["above 0"] == sum(p["low"] > 0 for p in row["pairs"])
    assert shown["below 0"] == sum(p["high"] < 0 for p in row["pairs"])
    if expected != fr.ON_PAR:  # separated: every seed's interval on the same side
        assert shown["above 0" if expected == fr.ABOVE else "below 0"] == 3
    assert "pairs" not in shown and fr.verdict_table([]) == []  # chapter 3.10: "no verdict"
    claims = fr.claims(rows)
    within = row["difference"] >= -fr.ON_PAR_MARGIN  # not "on par" 3 points behind
    assert claims["on par with FT"] == {TASK: expected != fr.BELOW and within}
    assert fr.outcomes(fr.seed_records(results), rows) == {
        "LoRA on par with FT": claims["on par with FT"],
        "LoRA below FT by the rule": {TASK: expected == fr.BELOW},
        # the stand-ins' loss is 1 / epochs: LoRA's longer budget ends lower
        "LoRA ends with a higher training loss": {
            TASK: fc.presets.FULL_START_EPOCHS["lora"] < fc.presets.FULL_START_EPOCHS["ft"]
        },
    }


def test_the_baselines_claim_reads_every_baseline(campaign):
    results, set_scores = campaign
    set_scores("lora", [340, 342, 344])
    set_scores("ft", [340, 341, 342])
    set_scores("bitfit", [300, 301, 302])
    rows = fr.verdicts(fr.seed_records(results), samples=500)
    assert [(r["versus"], r["verdict"]) for r in rows] == [("ft", fr.ON_PAR), ("bitfit", fr.ABOVE)]
    assert fr.claims(rows)["against the baselines"] == {TASK: "above all 1 (1 of 3 so far)"}
    assert fr.baseline_outcomes(fr.seed_records(results), rows) == {
        "LoRA's median higher": {"bitfit": {TASK: True}},
        "LoRA above by the rule": {"bitfit": {TASK: True}},
        "LoRA below by the rule": {"bitfit": {TASK: False}},
    }
    set_scores("bitfit", [380, 381, 382])
    rows = fr.verdicts(fr.seed_records(results), samples=500)
    assert fr.claims(rows)["against the baselines"] == {TASK: "below 1 of 1 (1 of 3 so far)"}
    assert fr.baseline_outcomes(fr.seed_records(results), rows) == {
        "LoRA's median higher": {"bitfit": {TASK: False}},
        "LoRA above by the rule": {"bitfit": {TASK: False}},
        "LoRA below by the rule": {"bitfit": {TASK: True}},
    }
    reading = fr.baseline_reading(fr.table2(fr.seed_records(results)), rows, {"bitfit": "BitFit"})
    assert reading.startswith("- **BitFit** (73,728 trainable parameters, 1.00× LoRA's)")
    assert "higher on 0 of 1 tasks" in reading and "mrpc -9.8" in reading
    assert reading.endswith("separated by the rule: LoRA below on mrpc.")
    assert "adapter" not in reading  # baselines without seeds are left out
    set_scores("bitfit", [338, 343, 348])  # a median just above LoRA's, inside the ranges
    rows = fr.verdicts(fr.seed_records(results), samples=500)
    assert fr.baseline_outcomes(fr.seed_records(results), rows) == {
        "LoRA's median higher": {"bitfit": {TASK: False}},
        "LoRA above by the rule": {"bitfit": {TASK: False}},
        "LoRA below by the rule": {"bitfit": {TASK: False}},
    }
    reading = fr.baseline_reading(fr.table2(fr.seed_records(results)), rows)
    assert reading.startswith("- **bitfit** (")  # no names: the method's key
    assert "higher on 0 of 1 tasks (LoRA − bitfit, points: mrpc -0.2)" in reading
    assert "not separated on any task by the rule" in reading
    assert fr.baseline_reading([], [r for r in rows if r["versus"] == "ft"]).startswith("No task")


def test_long_curves_show_each_run_and_the_budget(campaign):
    results, set_scores = campaign
    set_scores("lora", [300, 310, 320])
    curves = fr.long_curves(results)
    found = curves[(TASK, "lora")]
    assert found["budget"] == fc.presets.FULL_START_EPOCHS["lora"] and not found["capped"]
    (run,) = found["runs"]
    assert run["best_epoch"] == 2 and len(run["scores"]) == run["epochs"]


def test_the_verdict_reads_the_full_campaign_once_every_task_has_its_seeds(tmp_path):
    from lorabook import verdict

    for job in fc.head_jobs():
        write_record(job, tmp_path, 2)
    labels = [int(y) for y in np.random.default_rng(1).integers(0, 2, 200)]
    before = verdict.glue_on_par(tmp_path)
    assert before.verdict == "pending"  # neither campaign has runs here
    baselines = {m: [146, 147, 148] for m in fr.BASELINES}  # 2 points below LoRA, every seed
    for task in fc.TASKS:
        for method, rights in {"lora": [150, 151, 152], "ft": [190, 191, 192], **baselines}.items():
            if task == "rte" and method == "ft":
                rights = [150, 151, 152]  # on par on RTE only
            epochs = fc.presets.FULL_START_EPOCHS[method]
            jobs = [Job("long", task, method, 0, epochs=epochs, pooling="cls")]
            jobs += [Job("seeds", task, method, s, epochs, "cls") for s in (1, 2)]
            for job, right in zip(jobs, rights, strict=True):
                write_record(job, tmp_path, 2, params={"trainable": 1})
                with_predictions(job.plan(tmp_path).paths.record, labels, right)
    found = verdict.glue_on_par(tmp_path)
    assert found.verdict == "partly" and "on 1 of 5 tasks (rte)" in found.evidence
    assert "full campaign" in found.why and not found.pending
    assert sum(int(s["file"].split("(")[1].split()[0]) for s in found.sources) == 30
    others = verdict.glue_vs_baselines(tmp_path)  # Table 2's average, the full campaign's
    assert "full campaign" in others.why and others.verdict == "reproduced", others
    assert "LoRA 75.5" in others.evidence and "BitFit 73.5 (LoRA above)" in others.evidence
    # chapter 3.9 reads its own runs: the cpu campaign's, of which there are none here
    assert verdict.glue_vs_baselines(tmp_path, cpu_only=True).verdict == "pending"


def test_the_head_stage_is_shown_as_it_lands_and_says_what_the_rule_picked(tmp_path):
    jobs = fc.head_jobs()
    assert fr.head_sentence(tmp_path).startswith(f"No read-out picked yet: 0 of {len(jobs)}")
    first = jobs[0]
    write_record(first, tmp_path, 2)
    rows = fr.head_rows(tmp_path)
    assert len(rows) == len(jobs) // 2  # one row a (task, method), a column a read-out
    row = next(r for r in rows if (r["task"], r["method"]) == (first.task, first.method))
    assert row[first.pooling] == pytest.approx(100 * (0.5 + 0.002))
    assert row["mean − cls"] is None  # the other read-out has not finished
    for job in jobs[1:]:  # mean pooling peaks later: a higher score everywhere
        write_record(job, tmp_path, 3 if job.pooling == "mean" else 2)
    rows = fr.head_rows(tmp_path)
    assert all(r["mean − cls"] == pytest.approx(0.1) for r in rows)
    assert all((r["cls epoch"], r["mean epoch"]) == (2, 3) for r in rows)
    sentence = fr.head_sentence(tmp_path)
    assert (
        sentence.startswith("The rule picks mean pooling")
        and "against 50.20 with [CLS]" in sentence
    )


def test_every_verdict_has_a_reading_and_on_par_is_not_called_on_par():
    """Chapter 3.10's table names the verdicts: the rule's "on par" (not separated) must not
    read as claim 1's "on par with FT", which also asks for the medians within a point."""
    assert set(fr.READINGS) == {fr.ABOVE, fr.BELOW, fr.ON_PAR}
    assert "on par" not in fr.READINGS[fr.ON_PAR]


def test_the_rate_reading_names_capped_and_doubled_budgets(campaign):
    results, set_scores = campaign
    assert "No budget is decided" in fr.rate_reading({})
    set_scores("lora", [300, 310, 320])  # peaked at 2 of its first run
    start = fc.presets.FULL_START_EPOCHS["bitfit"]
    for k in range(fc.MAX_DOUBLINGS + 1):  # BitFit's best always at its last epoch: capped
        job = Job("long", TASK, "bitfit", 0, epochs=start * 2**k, pooling="cls")
        write_record(job, results, start * 2**k)
    curves = fr.long_curves(results)
    rows = {r["method"]: r for r in fr.budget_rows(curves)}
    assert rows["lora"]["budget"] == fc.presets.FULL_START_EPOCHS["lora"]
    assert rows["bitfit"]["capped"] and rows["bitfit"]["budget"] == start * 4
    assert rows["bitfit"]["long runs (epochs: best at epoch)"].count(":") == 3
    first_run = f"{start}: {50 + 0.1 * start:.1f} at {start}"  # the stand-in curve's peak
    assert rows["bitfit"]["long runs (epochs: best at epoch)"].startswith(first_run)
    reading = fr.rate_reading(curves)
    assert "1 never peaked" in reading and f"bitfit on {TASK}" in reading
    assert "lower bound" in reading and "keeps the rate" not in reading
    del curves[(TASK, "bitfit")]
    assert "keeps the rate of the MRPC sweep" in fr.rate_reading(curves)


def test_the_doubling_reading_names_a_longer_run_that_scored_lower(campaign):
    results, set_scores = campaign
    assert "No long run needed a doubling" in fr.doubling_reading({})
    set_scores("lora", [300, 310, 320])  # peaked in its first run
    start = fc.presets.FULL_START_EPOCHS["bitfit"]
    for k in range(2):  # best at the last epoch, then higher when doubled: no loss
        job = Job("long", TASK, "bitfit", 0, epochs=start * 2**k, pooling="cls")
        write_record(job, results, start * 2**k - (k * start // 2))
    reading = fr.doubling_reading(fr.long_curves(results), {"bitfit": "BitFit"})
    assert "1 budget needed a doubling (BitFit)" in reading and "lora" in reading
    assert "at least as high" in reading
    start = fc.presets.FULL_START_EPOCHS["adapter_h"]  # best at its end, then early: lower
    write_record(Job("long", TASK, "adapter_h", 0, epochs=start, pooling="cls"), results, start)
    write_record(Job("long", TASK, "adapter_h", 0, epochs=2 * start, pooling="cls"), results, 2)
    reading = fr.doubling_reading(fr.long_curves(results))
    assert "On 1 of them seed 0's run at the budget scored below a shorter one" in reading
    shorter, longer = f"{start} epochs {50 + 0.1 * start:.1f}", f"{2 * start} epochs 50.2"
    assert f"adapter_h on {TASK} ({shorter}, then {longer})" in reading
    assert "bitfit on" not in reading.split("scored below")[1]


def test_a_dip_in_the_middle_run_is_not_a_loss_when_the_budgets_run_scores_higher(campaign):
    """MRPC's BitFit: 20 epochs 82.1, 40 epochs 81.4 (still rising at its end), 80 epochs 82.4
    (peaked): the budget's run scored above every shorter one, so nothing is lost."""
    results, _ = campaign
    start = fc.presets.FULL_START_EPOCHS["bitfit"]
    jobs = [Job("long", TASK, "bitfit", 0, epochs=start * 2**k, pooling="cls") for k in range(3)]
    for job, best in zip(jobs, (start, 2 * start, 2 * start), strict=True):
        write_record(job, results, best)  # last epoch, last epoch, then peaked at half
    middle = jobs[1].plan(results).paths.record
    record = json.loads(middle.read_text())
    for epoch in record["epochs"]:
        epoch[record["metric"]] -= 0.05  # the doubled run scores lower than the first
    middle.write_text(json.dumps(record))
    (found,) = fr.long_curves(results).values()
    assert [run["epochs"] for run in found["runs"]] == [start, 2 * start, 4 * start]
    assert "at least as high" in fr.doubling_reading(fr.long_curves(results))


def test_the_fit_reading_asks_whether_a_higher_swept_rate_fit_faster():
    """Planted: BitFit's higher rate fit worse than its pick, AdapterP's fit better but
    scored lower; LoRA peaked in its first run, so it is not read."""
    twice, once = {"runs": [{}, {}]}, {"runs": [{}]}
    curves = {("rte", "bitfit"): twice, ("mrpc", "bitfit"): twice, ("cola", "adapter_p"): twice}
    curves[("rte", "lora")] = once
    picks = {
        "bitfit": {"lr": 3e-3, "tried": {1e-3: 0.81, 3e-3: 0.83, 6e-3: 0.80}},
        "adapter_p": {"lr": 1e-3, "tried": {3e-4: 0.80, 1e-3: 0.814, 2e-3: 0.804}},
        "lora": {"lr": 1e-3, "tried": {1e-3: 0.8, 2e-3: 0.7}, "fit": {1e-3: 0.3, 2e-3: 0.1}},
    }
    picks["bitfit"]["fit"] = {1e-3: 0.388, 3e-3: 0.370, 6e-3: 0.427}
    picks["adapter_p"]["fit"] = {3e-4: 0.342, 1e-3: 0.121, 2e-3: 0.083}
    reading = fr.fit_reading(picks, curves, {"bitfit": "BitFit"})
    adapter_p, bitfit = (line for line in reading.splitlines() if line.startswith("- "))
    assert adapter_p.startswith("- adapter_p (") and bitfit.startswith("- BitFit (")
    assert "6e-3: 0.427" not in bitfit and "0.006: 0.427" in bitfit
    assert "no higher rate fit" in bitfit and "no sign that a higher rate" in bitfit
    assert (
        "0.002 fit faster than the picked 0.001" in adapter_p
        and "80.4 on dev against 81.4" in adapter_p
    )
    assert "lora" not in reading
    picks["bitfit"]["lr"] = 6e-3  # the highest rate tried: nothing higher to ask about
    assert "the highest rate it tried, so it cannot say" in fr.fit_reading(picks, curves)
    del picks["adapter_p"]["fit"]  # a method without its sweep's losses is left out
    assert "adapter_p" not in fr.fit_reading(picks, curves)
    assert "No method needed a doubling" in fr.fit_reading(picks, {("rte", "lora"): once})
