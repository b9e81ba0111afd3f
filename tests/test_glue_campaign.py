"""The cpu preset and its campaign: the sweep's jobs, the pick rule, the runs' plan."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import glue_command_plan

from lorabook.glue import campaign, presets, report
from lorabook.glue.campaign import Job, campaign_jobs, pick, run_jobs, sweep_jobs
from lorabook.glue.experiment import plan_glue_run
from lorabook.glue.presets import SettingsError, glue_preset
from lorabook.runs import find_records

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_preset_is_whole_sets_but_sst2_long_sequences_grouped():
    for task in ("mrpc", "rte", "stsb", "cola"):
        assert glue_preset("cpu", task, "lora").train_examples is None
    sst2 = glue_preset("cpu", "sst2", "ft")
    assert sst2.train_examples == presets.CPU_TRAIN_EXAMPLES["sst2"]
    assert (sst2.max_length, sst2.group_by_length, sst2.padding) == (128, True, "longest")
    assert (sst2.train.warmup_ratio, sst2.train.weight_decay) == (0.06, 0.1)


def test_cpu_preset_without_a_sweep_pick_asks_for_lr_and_epochs(monkeypatch, tmp_path):
    monkeypatch.setattr(presets, "CPU_CHOSEN", {})
    with pytest.raises(SettingsError, match="--lr and --epochs"):
        plan_glue_run("mrpc", "lora", "minilm", "cpu", 0, tmp_path)
    with pytest.raises(SettingsError, match="no epochs .*give --epochs"):
        plan_glue_run("mrpc", "lora", "minilm", "cpu", 0, tmp_path, {"lr": 1e-3})
    run = plan_glue_run("mrpc", "lora", "minilm", "cpu", 0, tmp_path, {"lr": 1e-3, "epochs": 2})
    assert (run.settings.train.lr, run.settings.train.epochs) == (1e-3, 2)


def test_cpu_preset_uses_the_pick_and_a_sweep_job_at_the_pick_is_the_same_run(
    monkeypatch, tmp_path
):
    monkeypatch.setattr(presets, "CPU_CHOSEN", {"lora": (1e-3, 4)})
    chosen = plan_glue_run("mrpc", "lora", "minilm", "cpu", 0, tmp_path, campaign.RECORDED_IN)
    assert (chosen.settings.train.lr, chosen.settings.train.epochs) == (1e-3, 4)
    same = Job("mrpc", "lora", 0, 1e-3, 4).plan(tmp_path)
    assert same.paths.record == chosen.paths.record  # identity is the settings, not the route
    other = Job("mrpc", "lora", 0, 2e-3, 4).plan(tmp_path)
    assert other.paths.record != chosen.paths.record


def test_sweep_covers_every_method_at_every_lr_on_one_task():
    jobs = sweep_jobs()
    assert {j.task for j in jobs} == {presets.CPU_SWEEP_TASK}
    for method, (lrs, epochs) in presets.CPU_SWEEP.items():
        mine = [j for j in jobs if j.method == method]
        assert sorted(j.lr for j in mine) == sorted(lrs) and {j.epochs for j in mine} == {epochs}
    assert [j.method for j in jobs[:2]] == ["ft", "ft"]  # the claim's two methods first
    assert len({j.plan("r").paths.key for j in jobs}) == len(jobs)


def test_job_command_line_plans_the_same_run_as_the_job(tmp_path):
    job = Job("rte", "adapter_h", 0, 3e-4, 8)
    assert glue_command_plan(job.argv(tmp_path)).paths.record == job.plan(tmp_path).paths.record


def test_campaign_needs_every_pick_then_has_45_runs_seed0_first(monkeypatch):
    monkeypatch.setattr(presets, "CPU_CHOSEN", {"ft": (5e-5, 3)})
    with pytest.raises(SettingsError, match="no sweep pick for .*lora"):
        campaign_jobs(["ft", "lora"])
    assert {j.method for j in campaign_jobs()} == {"ft"}  # the picked ones only
    assert len(campaign_jobs()) == 15
    monkeypatch.setattr(presets, "CPU_CHOSEN", {m: (1e-3, 3) for m in campaign.SEEDS})
    jobs = campaign_jobs()
    assert len(jobs) == len(set(jobs)) == 45
    assert {j.seed for j in jobs[:25]} == {0}  # every method and task once before any repeat
    assert [(j.task, j.method) for j in jobs[:2]] == [("mrpc", "ft"), ("mrpc", "lora")]
    for method in ("ft", "lora"):
        for task in campaign.TASKS:
            assert sorted(j.seed for j in jobs if (j.method, j.task) == (method, task)) == [0, 1, 2]


def sweep_record(job: Job, curve: list[float]) -> dict:
    """A stand-in for the record of a finished sweep job with this dev-accuracy curve (its
    training loss: ``job.lr`` over the epoch)."""
    return {
        "key": job.plan("r").paths.key,
        "metric": "accuracy",
        "epochs": [
            {"epoch": i + 1, "accuracy": v, "train_loss": job.lr / (i + 1)}
            for i, v in enumerate(curve)
        ],
    }


def test_pick_takes_the_best_lr_and_the_first_epoch_within_half_a_point():
    lora = [j for j in sweep_jobs() if j.method == "lora"]
    curves = {
        lora[0].lr: [0.70, 0.80, 0.82],
        lora[1].lr: [0.75, 0.855, 0.85, 0.86],
        lora[2].lr: [0.60, 0.86, 0.70],
    }
    records = [sweep_record(j, curves[j.lr]) for j in lora]
    result = pick(records)["lora"]
    # lora[1] and lora[2] both reach 0.86: the tie goes to the smaller learning rate
    assert result["lr"] == min(lora[1].lr, lora[2].lr)
    assert result["epochs"] == 2  # 0.855 >= 0.86 - 0.005
    assert result["tried"][lora[0].lr] == 0.82
    assert result["fit"] == {j.lr: j.lr / len(curves[j.lr]) for j in lora}  # last epoch's loss
    assert pick(records, margin=0.001)["lora"]["epochs"] == 4


def test_pick_reports_unfinished_methods():
    lora = [j for j in sweep_jobs() if j.method == "lora"]
    result = pick([sweep_record(lora[0], [0.8])])
    assert set(result["lora"]["missing"]) == {str(j) for j in lora[1:]}
    assert "missing" in result["ft"]


def test_committed_picks_follow_the_rule_on_the_committed_sweep():
    records = find_records(ROOT / "results", "glue", preset="cpu", model="minilm")
    picked = pick(records)
    for method, (lr, epochs) in presets.CPU_CHOSEN.items():
        assert "missing" not in picked[method], f"CPU_CHOSEN[{method!r}] without its sweep"
        assert (picked[method]["lr"], picked[method]["epochs"]) == (lr, epochs)


def test_run_jobs_skips_finished_runs_and_reports_failures(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(presets, "CPU_CHOSEN", {})
    jobs = [Job("mrpc", "lora", 0, 1e-3, 1), Job("rte", "lora", 0, 1e-3, 1)]
    done = jobs[0].plan(tmp_path).paths.record
    done.parent.mkdir(parents=True)
    done.write_text("{}")
    fake = tmp_path / "fake_python.py"  # stands in for the interpreter: fails, trains nothing
    fake.write_text("import sys; print('ran', sys.argv[1:]); sys.exit(3)\n")
    results = run_jobs(jobs, workers=2, results_dir=tmp_path, command=[sys.executable, fake])
    assert results == [(jobs[1], 3)]
    out = capsys.readouterr().out
    assert "1 of 2 finished; 1 to run" in out and "FAILED (exit 3" in out
    log = (tmp_path / "_logs" / f"{jobs[1].plan(tmp_path).paths.record.stem}.log").read_text()
    assert "--task', 'rte'" in log and "'--lr', '0.001'" in log


# --------------------------------------------------------------------------- report


def fake_record(
    score: float, trainable: int = 100, losses: tuple = (0.5, 0.3), best_epoch: int = 1
) -> dict:
    return {
        "metric": "accuracy",
        "best": {"accuracy": score},
        "best_epoch": best_epoch,
        "epochs": [{"train_loss": loss} for loss in losses],
        "params": {"trainable": trainable},
    }


def test_summary_is_the_median_and_range_over_seeds_and_lora_minus_ft_per_task():
    from lorabook.glue.report import lora_minus_ft, summary

    found = {
        Job("rte", "ft", 0): fake_record(0.70, 22_000_000),
        Job("rte", "ft", 1): fake_record(0.60, 22_000_000),
        Job("rte", "ft", 2): fake_record(0.66, 22_000_000),
        Job("rte", "lora", 2): fake_record(0.64, losses=(0.6, 0.4), best_epoch=2),
        Job("rte", "lora", 0): fake_record(0.655, losses=(0.6, 0.2)),
        Job("mrpc", "lora", 0): fake_record(0.80),
    }
    rows = {(r["method"], r["task"]): r for r in summary(found)}
    ft = rows["ft", "rte"]
    assert ft["median"] == pytest.approx(66.0) and (ft["min"], ft["max"]) == pytest.approx((60, 70))
    assert ft["seeds"] == 3 and ft["trainable"] == 22_000_000
    assert rows["lora", "rte"]["median"] == pytest.approx(64.75)  # even count: the mean of two
    lora = rows["lora", "rte"]  # how far training got: last-epoch loss, runs best at the end
    assert lora["epochs"] == 2 and lora["last_train_loss"] == pytest.approx(0.3)
    assert lora["peaked_last"] == 1 and ft["peaked_last"] == 0
    diffs = lora_minus_ft(list(rows.values()))
    assert [d["task"] for d in diffs] == ["rte"]  # MRPC has no FT run: no difference
    assert diffs[0]["LoRA − FT"] == pytest.approx(-1.25) and not diffs[0]["holds"]
    assert lora_minus_ft(list(rows.values()), tolerance=1.5)[0]["holds"]


def test_paper_rows_are_table_2s_roberta_base_rows():
    from lorabook import paper
    from lorabook.glue.report import paper_rows

    rows = {r["method"]: r for r in paper_rows()}
    cells = {r["model / method"]: r for r in paper.table(2)}
    assert "LoRA" in rows and "FT*" in rows
    assert rows["LoRA"]["rte"] == paper.value(cells["RoBERTa-base LoRA"]["RTE"])
    assert rows["LoRA"]["spread"]["cola"] == paper.spread(cells["RoBERTa-base LoRA"]["CoLA"])
    assert all(r["source"] == "paper, Table 2" for r in rows.values())


@pytest.mark.skipif(not hasattr(campaign.os, "sched_setaffinity"), reason="Linux only")
def test_workers_get_their_own_cores_and_threads(tmp_path, monkeypatch):
    monkeypatch.setattr(campaign.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    pinned = []
    monkeypatch.setattr(campaign.os, "sched_setaffinity", lambda pid, cores: pinned.append(cores))
    for worker in (0, 1):
        campaign.pin_to_cores(worker, 2)()
    assert pinned == [{0, 1}, {2, 3}]
    assert campaign.pin_to_cores(2, 2) is None  # no third pair of cores: not pinned

    fake = tmp_path / "show_threads.py"
    fake.write_text(
        "import os, sys; print('threads', os.environ['OMP_NUM_THREADS']); sys.exit(0)\n"
    )
    job = Job("mrpc", "lora", 0, 1e-3, 1)
    monkeypatch.setattr(campaign, "pin_to_cores", lambda worker, threads: None)
    run_jobs([job], workers=1, results_dir=tmp_path, command=[sys.executable, fake], cores=1)
    log = tmp_path / "_logs" / f"{job.plan(tmp_path).paths.record.stem}.log"
    assert "threads 1" in log.read_text()


def test_a_best_rate_at_the_end_of_the_grid_extends_the_sweep_then_is_picked_inside_it():
    from lorabook.glue.campaign import MAX_EXTENSIONS, sweep_lrs

    lrs, epochs = presets.CPU_SWEEP["lora"]
    grid = [Job("mrpc", "lora", 0, lr, epochs) for lr in lrs]
    rising = [sweep_record(j, [0.70 + 0.02 * i]) for i, j in enumerate(grid)]
    assert sweep_lrs("lora", rising[:-1]) == list(lrs)  # unfinished grid: nothing extended
    assert sweep_lrs("lora", rising) == [*lrs, 2 * max(lrs)]
    assert "missing" in pick(rising)["lora"]  # the extension must run before a pick
    above = Job("mrpc", "lora", 0, 2 * max(lrs), epochs)
    result = pick([*rising, sweep_record(above, [0.73])])["lora"]
    assert result["lr"] == max(lrs) and list(result["tried"]) == [*lrs, 2 * max(lrs)]
    falling = [sweep_record(j, [0.80 - 0.02 * i]) for i, j in enumerate(grid)]
    assert sweep_lrs("lora", falling) == [min(lrs) / 2, *lrs]
    # ever rising: extended MAX_EXTENSIONS times, then the largest rate tried is the pick
    more = [Job("mrpc", "lora", 0, max(lrs) * 2**k, epochs) for k in (1, 2, 3)]
    records = rising + [sweep_record(j, [0.8 + 0.01 * k]) for k, j in enumerate(more)]
    assert len(sweep_lrs("lora", records)) == len(lrs) + MAX_EXTENSIONS
    assert pick(records)["lora"]["lr"] == max(lrs) * 2**MAX_EXTENSIONS


def test_a_job_another_live_campaign_holds_is_skipped_and_a_stale_lock_is_taken_over(
    tmp_path, capsys
):
    import subprocess

    jobs = [Job("mrpc", "lora", 0, 1e-3, 1), Job("rte", "lora", 0, 1e-3, 1)]
    logs = tmp_path / "_logs"
    logs.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        held = logs / f"{jobs[0].plan(tmp_path).paths.record.stem}.lock"
        held.write_text(str(other.pid))
        gone = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
        ).stdout.strip()
        stale = logs / f"{jobs[1].plan(tmp_path).paths.record.stem}.lock"
        stale.write_text(gone)  # a process that has ended
        fake = tmp_path / "ok.py"
        fake.write_text("import sys; sys.exit(0)\n")
        results = run_jobs(jobs, 1, tmp_path, command=[sys.executable, fake], cores=1)
    finally:
        other.kill()
    assert results == [(jobs[1], 0)]
    assert f"running in process {other.pid}" in capsys.readouterr().out
    assert held.exists() and not stale.exists()  # the live lock kept, ours removed after


def test_bench_gains_compare_pinned_workers_with_one_worker_per_method_and_batching():
    from lorabook.glue.bench import parallel_gains, speedups

    def row(method, batching, tps, workers=1, worker=0):
        return dict(
            method=method,
            batching=batching,
            real_tokens_per_second=tps,
            workers=workers,
            worker=worker,
        )

    rows = [
        row("ft", "max_length", 100.0),
        row("ft", "grouped", 400.0),
        row("ft", "grouped", 240.0, workers=2, worker=0),
        row("ft", "grouped", 260.0, workers=2, worker=1),
    ]
    assert parallel_gains(rows) == {"ft": {"grouped": 1.25}}  # (240 + 260) / 400
    # the batching speed-ups read the one-worker rows only
    assert speedups(rows) == {"ft": {"max_length": 1.0, "grouped": 4.0}}
    assert parallel_gains(rows[:2]) == {}


def test_bench_refuses_zero_workers(capsys):
    from lorabook.glue import bench

    assert bench.main(["--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


def test_follow_ups_train_lora_longer_only_where_it_falls_more_than_a_point_behind(monkeypatch):
    SEEDS = campaign.SEEDS["lora"]
    assert SEEDS == campaign.SEEDS["ft"]
    monkeypatch.setitem(presets.CPU_CHOSEN, "lora", (1e-3, 5))
    found = {Job(task, "ft", seed): fake_record(0.60) for task in ("rte", "mrpc") for seed in SEEDS}
    found |= {Job("rte", "lora", seed): fake_record(0.54) for seed in SEEDS}  # 6 behind
    found |= {Job("mrpc", "lora", seed): fake_record(0.595) for seed in SEEDS}  # holds
    found |= {Job("stsb", "ft", seed): fake_record(0.80) for seed in SEEDS}
    found |= {Job("stsb", "lora", seed): fake_record(0.70) for seed in SEEDS[:2]}  # seed to go
    found[Job("cola", "lora", 0)] = fake_record(0.30)  # no FT run yet: no verdict
    monkeypatch.setattr(report, "campaign_records", lambda results_dir: found)
    assert report.follow_up_jobs("unused") == [Job("rte", "lora", 0, 1e-3, campaign.LONGER * 5)]
    monkeypatch.delitem(presets.CPU_CHOSEN, "lora")
    assert report.follow_up_jobs("unused") == []


def test_a_job_another_campaign_finished_meanwhile_is_not_started_again(tmp_path, capsys):
    jobs = [Job("mrpc", "lora", 0, 1e-3, 1), Job("rte", "lora", 0, 1e-3, 1)]
    second = jobs[1].plan(tmp_path).paths.record
    # the first job's command stands in for another campaign that finishes the second job
    fake = tmp_path / "finish_other.py"
    fake.write_text(
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(second)!r}); p.parent.mkdir(parents=True, exist_ok=True)\n"
        "p.write_text('{}')\n"
    )
    results = run_jobs(jobs, 1, tmp_path, command=[sys.executable, fake], cores=1)
    assert results == [(jobs[0], 0)]
    assert f"skip {jobs[1]}: finished meanwhile" in capsys.readouterr().out
    assert not list((tmp_path / "_logs").glob("*.lock"))


def test_plan_lists_jobs_with_estimates_and_the_training_time_of_finished_ones(tmp_path, capsys):
    job = sweep_jobs()[0]
    record = job.plan(tmp_path).paths.record
    record.parent.mkdir(parents=True)
    epochs = [{"train_seconds": 240.0, "accuracy": 0.7}, {"train_seconds": 240.0, "accuracy": 0.8}]
    record.write_text(json.dumps({"key": "x", "metric": "accuracy", "epochs": epochs}))
    assert campaign.main(["plan", "sweep", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"done  {job} ") and out[0].endswith("(trained 8 min)")
    assert all(line.startswith("todo ") for line in out[1:-1]) and len(out) > 3
    assert out[-1].startswith("left: ~") and "worker-hours" in out[-1]


def test_preset_records_key_paper_mode_runs_by_job_and_refuse_two_of_one_job(tmp_path):
    from lorabook.glue.report import preset_records, summary

    folder = tmp_path / "glue" / "paper" / "roberta-base"
    folder.mkdir(parents=True)

    def write(name: str, seed: int, score: float, model: str = "roberta-base") -> None:
        record = {
            **fake_record(score),
            "task": "rte",
            "method": "lora",
            "seed": seed,
            "preset": "paper",
            "model": model,
        }
        (folder / f"{name}.json").write_text(json.dumps(record))

    write("rte-lora-seed0-aaaa", 0, 0.80)
    write("rte-lora-seed1-bbbb", 1, 0.84)
    write("rte-lora-seed2-cccc", 2, 0.90, model="roberta-large")  # another model: not read
    found = preset_records(tmp_path, "paper", "roberta-base")
    assert set(found) == {Job("rte", "lora", 0), Job("rte", "lora", 1)}
    assert summary(found)[0]["median"] == pytest.approx(82.0)
    write("rte-lora-seed1-dddd", 1, 0.70)  # the same job with other settings
    with pytest.raises(ValueError, match="two paper/roberta-base records of rte-lora-seed1"):
        preset_records(tmp_path, "paper", "roberta-base")


@pytest.mark.parametrize("task", ["rte", "cola", "stsb"])
def test_majority_class_scores_what_a_constant_guess_scores_on_dev(task):
    from lorabook.glue.data import load_glue
    from lorabook.glue.report import majority_class

    score = majority_class(task)
    if task == "stsb":
        assert score is None
    elif task == "cola":
        assert score == 0.0  # a constant prediction has no correlation with the labels
    else:
        train, dev = load_glue(task, "train")["label"], load_glue(task, "validation")["label"]
        top = max(set(train), key=train.count)
        assert score == pytest.approx(100 * dev.count(top) / len(dev))
        assert 40 < score < 60  # RTE is nearly balanced: chance is about a coin toss


def test_outcomes_are_the_verdicts_and_whether_the_longer_run_closed_the_gap(monkeypatch):
    from lorabook.glue import report

    seeds = campaign.SEEDS["lora"]
    monkeypatch.setitem(presets.CPU_CHOSEN, "lora", (1e-3, 5))
    longer = {"rte": Job("rte", "lora", 0, 1e-3, 20), "cola": Job("cola", "lora", 0, 1e-3, 20)}
    found = {Job(t, "ft", s): fake_record(0.60) for t in ("rte", "cola", "mrpc") for s in seeds}
    found |= {Job(t, "lora", s): fake_record(0.50) for t in ("rte", "cola") for s in seeds}
    found |= {Job("mrpc", "lora", s): fake_record(0.595) for s in seeds}
    found |= {longer["rte"]: fake_record(0.592), longer["cola"]: fake_record(0.58)}
    found |= {Job("mrpc", m, 0): fake_record(s) for m, s in (("bitfit", 0.59), ("adapter_h", 0.6))}
    found |= {Job("mrpc", "adapter_p", 0): fake_record(0.58)}  # AdapterH is the best other

    def records(results_dir, jobs=None):
        wanted = campaign_jobs() if jobs is None else list(jobs)
        return {j: r for j, r in found.items() if j in wanted}

    monkeypatch.setattr(report, "campaign_records", records)
    assert report.outcomes("unused") == {
        "LoRA within a point of FT": {"mrpc": True, "rte": False, "cola": False},
        "LoRA at or above BitFit and the adapters": {"mrpc": False},
        "LoRA trained longer within a point of FT": {"rte": True, "cola": False},
    }


def test_lora_vs_others_names_the_best_other_method_per_complete_task():
    from lorabook.glue.report import lora_vs_others, summary

    found = {Job("rte", "lora", s): fake_record(v) for s, v in ((0, 0.60), (1, 0.64), (2, 0.62))}
    found |= {
        Job("rte", "bitfit", 0): fake_record(0.55),
        Job("rte", "adapter_h", 0): fake_record(0.63),
    }
    found |= {
        Job("rte", "adapter_p", 0): fake_record(0.50),
        Job("mrpc", "lora", 0): fake_record(0.8),
    }
    [row] = lora_vs_others(summary(found))  # MRPC has no baselines: left out
    assert row["task"] == "rte" and row["best other"] == "AdapterH"
    assert row["its score"] == pytest.approx(63.0) and not row["LoRA ahead"]  # median 62 < 63


@pytest.mark.parametrize("runs_fail", [False, True])
def test_runs_then_follow_ups_runs_the_follow_ups_only_after_runs_that_all_succeeded(
    monkeypatch, capsys, runs_fail
):
    longer = Job("rte", "lora", 0, 1e-3, 20)
    calls = []

    def fake_run_jobs(jobs, workers, results_dir, cores=None):
        calls.append(list(jobs))
        return [(jobs[0], 1 if runs_fail else 0)] if len(calls) == 1 else [(longer, 0)]

    monkeypatch.setattr(campaign, "run_jobs", fake_run_jobs)
    monkeypatch.setattr(report, "follow_up_jobs", lambda results_dir: [longer])
    code = campaign.main(["runs", "--then-follow-ups", "--results-dir", "unused"])
    assert calls[0] == campaign_jobs()
    if runs_fail:
        assert code == 1 and len(calls) == 1
    else:
        assert code == 0 and calls[1] == [longer]
        assert f"follow-ups the runs call for: {longer}" in capsys.readouterr().out


# --------------------------------------------------------------------------- issue 17: bf16


@pytest.mark.parametrize(("flags", "expected"), [(("amx_bf16",), "bf16"), ((), "no")])
def test_the_cpu_preset_trains_in_cpu_precision(monkeypatch, flags, expected):
    from lorabook import precision

    for task, method in (("mrpc", "lora"), ("sst2", "ft"), ("rte", "adapter_p")):
        preset = glue_preset("cpu", task, method)
        assert preset.train.mixed_precision == precision.cpu_precision()
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    assert precision.cpu_precision() == expected
    for task, method in (("mrpc", "lora"), ("sst2", "ft"), ("rte", "adapter_p")):
        resolved = glue_preset("cpu", task, method).resolved(method)
        assert resolved["train"]["mixed_precision"] == expected
    for other in ("quick", "paper"):  # fp32 unless asked
        assert glue_preset(other, "mrpc", "lora").train.mixed_precision == "no"


def test_every_campaign_job_pins_the_fp32_its_records_were_made_in(monkeypatch, tmp_path):
    from lorabook import precision

    assert campaign.RECORDED_IN == {"mixed_precision": "no"}
    job = Job("mrpc", "lora", 1)
    assert job.overrides() == campaign.RECORDED_IN and str(job) == "mrpc-lora-seed1"
    sweep = Job("mrpc", "lora", 0, 1e-3, 8)
    assert sweep.overrides() == {"mixed_precision": "no", "lr": 1e-3, "epochs": 8}
    assert str(sweep) == "mrpc-lora-seed0 lr 0.001 epochs 8"
    argv = sweep.argv(tmp_path)
    flags = argv[argv.index("--mixed-precision") :]
    assert flags[:6] == ["--mixed-precision", "no", "--lr", "0.001", "--epochs", "8"]
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    run = job.plan(tmp_path)
    assert run.settings.train.mixed_precision == "no"
    default = plan_glue_run("mrpc", "lora", "minilm", "cpu", 1, tmp_path)
    assert default.settings.train.mixed_precision == "bf16"
    assert default.paths.record != run.paths.record  # bf16 is another run, another record
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    fallback = plan_glue_run("mrpc", "lora", "minilm", "cpu", 1, tmp_path)
    assert fallback.paths.record == job.plan(tmp_path).paths.record  # fp32 CPU: the same run


def test_override_flags_are_the_command_line_s():
    from lorabook.campaign import override_flags
    from lorabook.glue.__main__ import build_parser, overrides_from

    overrides = {"mixed_precision": "bf16", "lr": 1 / 3, "epochs": 2, "train_examples": 64}
    args = build_parser().parse_args(["--task", "rte", *override_flags(overrides)])
    assert overrides_from(args) == overrides  # exact floats, strings unquoted
    assert override_flags({"decode_test": False, "stop_flat": 0.01}) == [
        "--decode-test",
        "False",
        "--stop-flat",
        "0.01",
    ]
