"""The E2E campaign: its stages' jobs and rules, the plan, and resuming after a kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lorabook import campaign as shared
from lorabook.cli import SettingsError
from lorabook.e2e import campaign, experiment, presets
from lorabook.e2e.campaign import (
    FLAT,
    Job,
    budget_rounds,
    pick,
    pilot_jobs,
    ranks_jobs,
    run_jobs,
    runs_jobs,
    sweep_jobs,
)
from lorabook.runs import find_records

ROOT = Path(__file__).resolve().parents[1]
CAP = presets.e2e_preset("full", "lora").planned_rounds


@pytest.fixture
def picked(monkeypatch):
    monkeypatch.setattr(presets, "FULL_CHOSEN", {"lora": 5e-4, "ft": 5e-5})


def write_record(job: Job, results: Path, losses: list[float], **extra) -> dict:
    """A stand-in for the finished record of ``job`` with these dev losses (one a round)."""
    run = job.plan(results)
    record = {
        "method": job.method,
        "seed": job.seed,
        "preset": "full",
        "model": "smollm2",
        "settings": run.config["settings"],
        "epochs": [{"epoch": i + 1, "dev_loss": v} for i, v in enumerate(losses)],
        **extra,
    }
    run.paths.record.parent.mkdir(parents=True, exist_ok=True)
    run.paths.record.write_text(json.dumps(record))
    return record


def test_the_sweep_is_three_rates_each_for_lora_and_ft_one_round_no_test_decoding():
    jobs = sweep_jobs()
    assert [(j.method, j.lr) for j in jobs] == [
        ("lora", 2e-4),
        ("lora", 5e-4),
        ("lora", 1e-3),
        ("ft", 2e-5),
        ("ft", 5e-5),
        ("ft", 1e-4),
    ]
    for job in jobs:
        settings = job.plan("r").settings
        assert (settings.trained_rounds, settings.decode_test, job.seed) == (1, False, 0)
        assert settings.planned_rounds == CAP  # the first round of the campaign's schedule
    assert len({j.plan("r").paths.key for j in jobs}) == 6


def test_a_job_command_line_plans_the_same_run_as_the_job(monkeypatch, tmp_path):
    from lorabook.e2e.__main__ import main

    planned = []

    def run(method, model, preset, seed, data_dir, results_dir, overrides, **kw):
        planned.append(experiment.plan_e2e_run(method, model, preset, seed, results_dir, overrides))
        return {"params": {"trainable": 1}, "scores": None}

    monkeypatch.setattr(experiment, "run_e2e", run)
    jobs = [*sweep_jobs(), Job("pilot", "lora", 0, lr=1e-3, stop_flat=FLAT)]
    for job in [*jobs, Job("ranks", "lora", 0, lr=1e-3, rounds=1, lora_r=16)]:
        assert main(job.argv(tmp_path, score=False)) == 0
        assert planned[-1].paths.record == job.plan(tmp_path).paths.record


def test_pick_takes_the_lowest_dev_loss_ties_to_the_smaller_rate(tmp_path, capsys):
    lora = [j for j in sweep_jobs() if j.method == "lora"]
    for job, loss in zip(lora, [1.30, 1.20, 1.20], strict=True):
        write_record(job, tmp_path, [loss])
    result = pick(tmp_path)
    assert result["lora"]["lr"] == 5e-4 and not result["lora"]["at_grid_end"]
    assert result["lora"]["tried"] == {2e-4: 1.30, 5e-4: 1.20, 1e-3: 1.20}
    assert set(result["ft"]["missing"]) == {str(j) for j in sweep_jobs() if j.method == "ft"}
    ft = [j for j in sweep_jobs() if j.method == "ft"]
    for job, loss in zip(ft, [1.1, 1.2, 1.3], strict=True):
        write_record(job, tmp_path, [loss])
    assert pick(tmp_path)["ft"] == {
        "lr": 2e-5,
        "dev_loss": 1.1,
        "tried": {2e-5: 1.1, 5e-5: 1.2, 1e-4: 1.3},
        "at_grid_end": True,
    }
    assert campaign.main(["pick", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "lora   lr 0.0005; dev loss after one round" in out
    assert "ft     lr 2e-05 (at an end of the grid)" in out


def test_only_the_picked_rates_checkpoints_are_kept_when_asked(tmp_path, capsys, picked):
    for job in sweep_jobs():
        write_record(job, tmp_path, [1.0])
        keep_checkpoint(job, tmp_path)
    unpicked = campaign.unpicked_checkpoints(tmp_path)
    chosen = {(j.method, j.lr) for j in sweep_jobs() if presets.FULL_CHOSEN[j.method] == j.lr}
    assert len(unpicked) == 4 and len(chosen) == 2
    assert campaign.main(["pick", "--results-dir", str(tmp_path)]) == 0
    assert "4 unpicked runs keep checkpoints" in capsys.readouterr().out
    assert all(folder.exists() for folder in unpicked)  # nothing deleted unasked
    assert campaign.main(["pick", "--results-dir", str(tmp_path), "--drop-unpicked"]) == 0
    assert "dropped the kept checkpoints of 4 unpicked runs" in capsys.readouterr().out
    assert not any(folder.exists() for folder in unpicked)
    assert [j.continue_from is not None for j in pilot_jobs(tmp_path)] == [True, True]


def test_committed_picks_follow_the_rule_on_the_committed_sweep():
    picked = pick(ROOT / "results")
    for method, lr in presets.FULL_CHOSEN.items():
        assert "missing" not in picked[method], f"FULL_CHOSEN[{method!r}] without its sweep"
        assert picked[method]["lr"] == lr


def test_the_pilot_waits_for_the_pick_then_trains_lora_and_ft_until_flat(monkeypatch, picked):
    jobs = pilot_jobs()
    assert [(j.method, j.seed, j.stop_flat, j.rounds) for j in jobs] == [
        ("lora", 0, 0.01, None),
        ("ft", 0, 0.01, None),
    ]
    settings = jobs[0].plan("r").settings
    assert settings.train.lr == 5e-4 and settings.trained_rounds == CAP
    monkeypatch.setattr(presets, "FULL_CHOSEN", {"lora": 5e-4})
    with pytest.raises(SettingsError, match=r"no sweep pick for \['ft'\].*campaign sweep"):
        pilot_jobs()


def test_the_budget_is_the_longer_pilot_and_a_pilot_at_the_budget_is_seed_0(tmp_path, picked):
    lora, ft = pilot_jobs()
    with pytest.raises(SettingsError, match="pilot of ft, lora has not finished"):
        budget_rounds(tmp_path)
    write_record(lora, tmp_path, [2.0, 1.5, 1.49])  # flat after 3 rounds
    write_record(ft, tmp_path, [2.0, 1.5, 1.4, 1.39])  # to the cap
    assert budget_rounds(tmp_path) == 4 == CAP
    jobs = runs_jobs(tmp_path)
    assert [(j.method, j.seed) for j in jobs] == [
        ("lora", 0),
        ("ft", 0),
        ("ft_top2", 0),
        ("adapter_l", 0),
        ("prefix", 0),
        ("lora", 1),
        ("lora", 2),
        ("ft", 1),
        ("ft", 2),
    ]
    assert jobs[1] == ft  # FT's pilot trained the budget: it is FT's seed 0
    assert jobs[0] == Job("runs", "lora", 0)  # LoRA's stopped short: a run of its own
    assert all(j.rounds is None for j in jobs)  # the budget is the whole schedule
    three = runs_jobs(tmp_path, budget=3)
    assert three[0] == lora and three[1] == Job("runs", "ft", 0, rounds=3)
    assert three[3].plan(tmp_path).settings.adapter_size == 6


def test_only_runs_the_named_jobs_and_refuses_a_name_that_matches_none(
    tmp_path, picked, monkeypatch, capsys, native_bf16
):
    """``--only ft-seed1``: a session that can finish one FT run (its checkpoint cannot be
    stashed) runs that one and no other; ``ft`` does not pick up FT-Top2's ``ft_top2``."""
    lora, ft = pilot_jobs()
    write_record(lora, tmp_path, [2.0, 1.5, 1.4, 1.39])
    write_record(ft, tmp_path, [2.0, 1.5, 1.4, 1.39])
    ran: list[Job] = []
    monkeypatch.setattr(campaign, "run_jobs", lambda jobs, workers, **kw: ran.extend(jobs) or [])
    common = ["--results-dir", str(tmp_path), "--workers", "1"]
    assert campaign.main(["runs", *common, "--only", "ft-seed1"]) == 0
    assert ran == [Job("runs", "ft", 1)]
    ran.clear()
    assert campaign.main(["pilot", "--then-runs", *common, "--only", "seed2", "ft_*-seed0"]) == 0
    assert [(j.method, j.seed) for j in ran] == [("ft_top2", 0), ("lora", 2), ("ft", 2)]
    ran.clear()
    assert campaign.main(["runs", *common, "--only", "ft-seed9"]) == 2
    error = capsys.readouterr().err
    assert "--only ft-seed9 names no job" in error and "runs: ft-seed1" in error and not ran


def test_rank_rows_read_the_scored_ranks_in_table_18s_units_bleu_times_100(tmp_path, picked):
    from lorabook.e2e.report import rank_rows

    assert rank_rows(tmp_path) == []
    scores = {"BLEU": 0.68, "NIST": 8.7, "METEOR": 0.46, "ROUGE_L": 0.71, "CIDEr": 2.4}
    one, _, four, *_ = ranks_jobs()
    write_record(one, tmp_path, [1.4], params={"trainable": 57_600}, scores_paper=scores)
    write_record(four, tmp_path, [1.3])  # decoded but not scored: left out
    assert rank_rows(tmp_path) == [
        {
            "r": 1,
            "trainable": 57_600,
            "dev loss": 1.4,
            "BLEU": pytest.approx(68.0),
            "NIST": 8.7,
            "METEOR": 0.46,
            "ROUGE_L": 0.71,
            "CIDEr": 2.4,
        }
    ]


def test_first_round_losses_are_loras_seeds_first_round_the_scale_of_a_ranks_difference(
    tmp_path, picked
):
    from lorabook.e2e.report import first_round_losses

    assert first_round_losses(tmp_path) == {}  # no pilots: no runs to read
    lora, ft = pilot_jobs()
    write_record(lora, tmp_path, [1.33, 1.26, 1.23, 1.22])  # the budget: LoRA's seed 0
    write_record(ft, tmp_path, [1.2, 1.1, 1.0, 0.99])
    runs = {(j.method, j.seed): j for j in runs_jobs(tmp_path)}
    write_record(runs["lora", 2], tmp_path, [1.32, 1.27, 1.24, 1.21])
    write_record(runs["ft", 1], tmp_path, [1.0, 0.9, 0.8, 0.7])  # FT's: not LoRA's
    assert first_round_losses(tmp_path) == {0: 1.33, 2: 1.32}  # seed 1 still to run


def keep_checkpoint(job: Job, results: Path) -> None:
    """A stand-in for the final checkpoint ``job`` kept (``--keep-checkpoint``)."""
    ckpt = job.plan(results).paths.scratch / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "last.pt").write_bytes(b"")


def test_the_pilot_continues_the_swept_round_and_seed_0_continues_a_shorter_pilot(tmp_path, picked):
    assert all(j.keep_checkpoint and "--keep-checkpoint" in j.argv(tmp_path) for j in sweep_jobs())
    speeds = campaign.default_speeds()
    fresh = pilot_jobs(tmp_path)
    assert [j.continue_from for j in fresh] == [None, None] and all(
        j.keep_checkpoint for j in fresh
    )
    swept = next(j for j in sweep_jobs() if j.method == "lora" and j.lr == 5e-4)
    write_record(swept, tmp_path, [1.2])
    assert pilot_jobs(tmp_path)[0].continue_from is None  # its checkpoint was not kept
    keep_checkpoint(swept, tmp_path)
    lora, ft = pilot_jobs(tmp_path)
    assert lora.continue_from == str(swept.plan(tmp_path).paths.record) and ft.continue_from is None
    assert lora.argv(tmp_path)[-3:-1] == ["--continue-from", lora.continue_from]
    assert lora.plan(tmp_path).paths.key == fresh[0].plan(tmp_path).paths.key  # the same run
    assert campaign.estimate_seconds(lora, speeds) == campaign.estimate_seconds(
        fresh[0], speeds, rounds=CAP - 1
    )  # the swept round is not trained again

    write_record(lora, tmp_path, [2.0, 1.5, 1.49])  # flat after 3 rounds
    write_record(ft, tmp_path, [2.0, 1.5, 1.4, 1.39])  # to the cap
    assert runs_jobs(tmp_path)[0] == Job("runs", "lora", 0)  # no checkpoint: from the start
    keep_checkpoint(lora, tmp_path)
    first = runs_jobs(tmp_path)[0]
    assert first == Job("runs", "lora", 0, continue_from=str(lora.plan(tmp_path).paths.record))


def test_plan_shows_every_stage_estimated_and_spent(tmp_path, capsys, picked):
    job = sweep_jobs()[0]
    record = write_record(job, tmp_path, [1.3], wall_seconds=7200.0)
    rows = campaign.plan_rows(tmp_path)
    sweep = rows["sweep"][0]
    assert sweep[0].state == "done" and sweep[0].spent == 7200.0
    assert sweep[0].estimate == pytest.approx(1315 * 4.7 + 300, rel=0.01)  # a round, an eval
    assert {r.state for r in sweep[1:]} == {"todo"}
    assert [r.state for r in rows["pilot"][0]] == ["todo", "todo"]
    assert {r.state for r in rows["runs"][0]} == {"wait"} and len(rows["runs"][0]) == 7
    assert {r.state for r in rows["ranks"][0]} == {"todo"} and len(rows["ranks"][0]) == 7
    assert campaign.main(["plan", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "done  sweep: lora-seed0 lr 0.0002 rounds 1" in out and "(spent 2.0 h)" in out
    assert "whole campaign ~" in out and "finished: 1 runs" in out
    # a finished record's own speed replaces the default
    record["data"] = {"train_tokens": 2_400_000, "train_seconds": 3000.0}
    record["settings"]["rounds_per_epoch"] = 4
    speeds = campaign.measured_speeds([record])
    assert speeds.tokens_per_second["lora"] == pytest.approx(200.0)
    assert speeds.measured == ("lora tokens/s",) and speeds.epoch_tokens == 2_400_000
    # where the machine of the latest record has run the method, its clock alone says what
    # the next run costs
    latest = {**record, "environment": {"device": "cpu: B, 2 cores"}, "finished_at": "2026-12"}
    latest["data"] = {"train_tokens": 2_400_000, "train_seconds": 1000.0}
    earlier = {**record, "environment": {"device": "cpu: A, 2 cores"}, "finished_at": "2026-11"}
    assert campaign.measured_speeds([earlier, latest]).tokens_per_second["lora"] == 600.0
    assert campaign.measured_speeds([earlier]).tokens_per_second["lora"] == 200.0

    # and of that machine's records the latest two: the load they ran under is today's
    def on_b(when: str, seconds: float, decode: float) -> dict:
        data = {"train_tokens": 2_400_000, "train_seconds": seconds}
        b = {"environment": {"device": "cpu: B, 2 cores"}, "decode": {"seconds": decode}}
        return {**record, **b, "finished_at": when, "data": data}

    runs = [on_b("2026-12-03", 3000.0, 900.0), on_b("2026-12-02", 3000.0, 700.0)]
    speeds = campaign.measured_speeds([on_b("2026-12-01", 1000.0, 100.0), *runs])
    assert speeds.tokens_per_second["lora"] == pytest.approx(200.0)
    assert speeds.decode_seconds == 800.0


def test_plans_read_the_clocks_of_the_machine_the_campaign_last_ran_on():
    def made(device: str | None, when: str) -> dict:
        return {"environment": {"device": device} if device else {}, "finished_at": when}

    a, b, unnamed = made("cpu: A", "2026-11-30"), made("cpu: B", "2026-12-01"), made(None, "2027")
    assert shared.latest_device([a, b, unnamed]) == "cpu: B"
    assert shared.latest_device([unnamed]) is None and shared.latest_device([]) is None
    assert shared.on_device([a, b, unnamed], "cpu: B") == [b]
    assert shared.on_device([a, unnamed], "cpu: B") == [a, unnamed]  # none there: all
    assert shared.on_device([a, b], None) == [a, b]
    # what a plan had measured while a run was still to finish: the records before it
    assert shared.finished_before(b, [a, b, unnamed]) == [a]
    assert shared.finished_before(a, [a, b]) == [] and shared.finished_before({}, [a]) == []
    # a plan's clock: the latest records (their load is today's)
    assert shared.recent([b, a, unnamed]) == [b, unnamed] and shared.recent([a], 2) == [a]


def test_spent_counts_every_session_of_a_run_and_not_the_run_it_continued():
    clocks = [{"train_seconds": 1000.0, "eval_seconds": 100.0}] * 4
    record = {
        "epochs": clocks,
        "data": {"continued_from": {"record": "sweep.json", "rounds": 1}},
        "decode": {"seconds": 500.0},
        "wall_seconds": 900.0,  # the last session's only, after a resume
    }
    assert campaign.spent_seconds(record) == 3 * 1100.0 + 500.0
    assert campaign.spent_seconds({**record, "data": {}}) == 4 * 1100.0 + 500.0
    assert campaign.spent_seconds({"epochs": [{}], "wall_seconds": 60.0}) == 60.0


def untimed(record: dict) -> dict:
    """What a run decides, without clocks, machine and resume bookkeeping."""
    timing = ("seconds", "elapsed", "energy", "finished_at", "environment", "peak_memory")
    drop = ("resumed_from_epoch", "resumed_from_batch", "seconds_per_step", "decode")

    def clean(value):
        if isinstance(value, dict):
            return {
                k: clean(v)
                for k, v in value.items()
                if k not in drop and not any(t in k for t in timing)
            }
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return clean(record)


def tensors(results: Path, record: dict) -> dict[str, torch.Tensor]:
    folder = next(results.rglob(f"*-{record['config_key']}.json")).with_suffix("")
    return load_file(str(folder / record["trainable_tensors"]))


@pytest.mark.parametrize("machine", ["same", "new"])
def test_a_worker_killed_mid_run_resumes_to_the_record_of_an_uninterrupted_run(
    model_folder, small_data, tmp_path, machine, capsys
):
    """The pilot's job on a tiny model, the worker killed (SIGKILL) once its first checkpoint
    exists; the campaign run again finishes it: the same record, outputs and weights as the
    same run never interrupted. On a ``new`` machine the scratch folder is gone and the
    checkpoint comes from the stash (what git carried); once finished, stash drops it."""
    from lorabook import campaign as shared

    job = Job("pilot", "lora", 0, lr=1e-3, stop_flat=FLAT)
    model = str(model_folder)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers run: a sum split over 2 threads rounds otherwise
    try:
        straight = experiment.run_e2e(
            "lora",
            model,
            "full",
            0,
            small_data,
            tmp_path / "straight",
            job.overrides(),
            progress=False,
            score=False,
            log=lambda s: None,
            checkpoint_every=1,
        )
    finally:
        torch.set_num_threads(threads)
    results = tmp_path / "killed"
    run = job.plan(results, model)
    argv = job.argv(results, model, small_data, score=False, checkpoint_every=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "lorabook.e2e", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (run.paths.scratch / "ckpt" / "last.pt").exists():
            assert worker.poll() is None, "the worker ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after two minutes"
            time.sleep(0.05)
        worker.send_signal(signal.SIGKILL)
    finally:
        worker.wait()
    assert run.paths.finished() is None
    if machine == "new":
        assert shared.stash([(job, run.paths)])["stashed"] == [job]
        shutil.rmtree(run.paths.scratch)
    assert run_jobs([job], 1, results, model, small_data, score=False, cores=1) == [(job, 0)]
    assert ("checkpoint restored from" in capsys.readouterr().out) == (machine == "new")
    resumed = run.paths.finished()
    assert resumed["data"]["resumed_from_epoch"] + resumed["data"]["resumed_from_batch"] > 0
    assert untimed(resumed) == untimed(straight)
    for name, value in tensors(tmp_path / "straight", straight).items():
        assert torch.equal(tensors(results, resumed)[name], value), name
    outputs = [next(r.rglob("outputs.txt")).read_text() for r in (tmp_path / "straight", results)]
    assert outputs[0] == outputs[1]
    assert run_jobs([job], 1, results, model, small_data, score=False, cores=1) == []  # done
    assert shared.stash([(job, run.paths)])["dropped"] == [job] * (machine == "new")
    assert not run.paths.stash.exists()


def test_stash_copies_only_small_unfinished_checkpoints_and_plan_reads_the_copy(tmp_path, picked):
    from lorabook import campaign as shared

    lora = Job("runs", "lora", 1)
    paths = lora.plan(tmp_path).paths
    assert paths.stash == tmp_path / "_resume" / paths.scratch.name
    assert shared.stash([(lora, paths)]) == {"stashed": [], "dropped": [], "too big": []}
    ckpt = paths.scratch / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "last.pt").write_bytes(b"x" * 1000)
    (ckpt / "progress.json").write_text(json.dumps({"epochs_done": 1.0, "elapsed_seconds": 9.0}))
    assert shared.stash([(lora, paths)], limit=999)["too big"] == [lora]
    assert not paths.stash.exists()
    assert shared.stash([(lora, paths)], limit=2000)["stashed"] == [lora]
    assert (paths.stash / "ckpt" / "last.pt").read_bytes() == b"x" * 1000
    shutil.rmtree(paths.scratch)  # a new machine: the plan reads the stashed progress
    row = shared.plan_row(str(lora), paths, 3600.0, lambda record: None, start=0, end=4)
    assert (row.state, row.done) == ("part", 0.25)
    assert paths.restore_scratch() and (ckpt / "last.pt").read_bytes() == b"x" * 1000
    (ckpt / "last.pt").write_bytes(b"newer")
    assert not paths.restore_scratch()  # a checkpoint here is never overwritten
    assert (ckpt / "last.pt").read_bytes() == b"newer"


def test_a_run_stopped_after_training_decodes_the_selected_weights_when_rerun(
    model_folder, small_data, tmp_path, monkeypatch
):
    """Stopped between training and the test decoding (after all its rounds), a rerun trains
    nothing and decodes with the kept best weights: the record of an uninterrupted run."""
    kw = dict(model=str(model_folder), preset="full", data_dir=small_data, progress=False)
    kw |= dict(score=False, log=lambda s: None, overrides={"lr": 1e-3, "max_new_tokens": 8})
    straight = experiment.run_e2e("lora", results_dir=tmp_path / "a", **kw)
    real = experiment.generate_outputs

    def stopped(model, tokenizer, mrs, config, partial=None, progress=True):
        if partial is not None:  # the test decoding (the dev evaluation passes no file)
            raise KeyboardInterrupt
        return real(model, tokenizer, mrs, config, partial, progress)

    monkeypatch.setattr(experiment, "generate_outputs", stopped)
    with pytest.raises(KeyboardInterrupt):
        experiment.run_e2e("lora", results_dir=tmp_path / "b", **kw)
    monkeypatch.setattr(experiment, "generate_outputs", real)
    again = experiment.run_e2e("lora", results_dir=tmp_path / "b", **kw)
    assert again["data"]["resumed_from_epoch"] == CAP  # every round was done: none trained again
    assert untimed(again) == untimed(straight)
    for name, value in tensors(tmp_path / "a", straight).items():
        assert torch.equal(tensors(tmp_path / "b", again)[name], value), name


def test_a_decode_resumed_in_another_session_counts_the_earlier_seconds(
    model_folder, small_data, tmp_path, monkeypatch
):
    """Stopped after two MRs of the test decoding, the rerun decodes the rest: the record's
    clock is the whole decode's (the earlier lines' seconds and this session's), not the last
    session's alone, and it says how many MRs were decoded before."""
    kw = dict(model=str(model_folder), preset="full", data_dir=small_data, progress=False)
    kw |= dict(score=False, log=lambda s: None, overrides={"lr": 1e-3, "max_new_tokens": 8})
    real = experiment.generate_outputs
    earlier = []

    def stopped(model, tokenizer, mrs, config, partial=None, progress=True):
        if partial is not None:  # the test decoding: two MRs, then the session ends
            real(model, tokenizer, mrs[:2], config, partial, progress)
            earlier.extend(json.loads(line)["seconds"] for line in open(partial))
            raise KeyboardInterrupt
        return real(model, tokenizer, mrs, config, partial, progress)

    monkeypatch.setattr(experiment, "generate_outputs", stopped)
    with pytest.raises(KeyboardInterrupt):
        experiment.run_e2e("lora", results_dir=tmp_path, **kw)
    monkeypatch.setattr(experiment, "generate_outputs", real)
    started = time.perf_counter()
    record = experiment.run_e2e("lora", results_dir=tmp_path, **kw)
    this_session = time.perf_counter() - started
    assert len(earlier) == 2 and all(s > 0 for s in earlier)
    assert record["decode"]["resumed_mrs"] == 2
    assert "seconds_this_session_only" not in record["decode"]
    assert sum(earlier) < record["decode"]["seconds"] <= sum(earlier) + this_session


@pytest.mark.parametrize("flags", [(), ("amx_bf16",)], ids=["no-bf16", "native-bf16"])
def test_the_committed_full_records_are_the_campaigns_jobs(monkeypatch, flags):
    """Every committed ``full`` record is one of the campaign's jobs (found by its name), on a
    CPU with native bf16 and on one without: a run's name hashes its precision, which the
    preset pins (CAMPAIGN_PRECISION). When it asked the machine, a CPU without native bf16
    found none of them."""
    from lorabook import precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    records = find_records(ROOT / "results", "e2e", preset="full")
    if not records:
        pytest.skip("no full records committed yet")
    names = {Path(r["_path"]).name for r in records}
    planned = {j.plan(ROOT / "results").paths.record.name for j in sweep_jobs()}
    if all(m in presets.FULL_CHOSEN for m in campaign.PILOT_METHODS):
        planned |= {j.plan(ROOT / "results").paths.record.name for j in pilot_jobs()}
        try:
            planned |= {
                j.plan(ROOT / "results").paths.record.name for j in runs_jobs(ROOT / "results")
            }
        except SettingsError:
            pass
        planned |= {j.plan(ROOT / "results").paths.record.name for j in ranks_jobs()}
    assert names <= planned, sorted(names - planned)


def test_the_ranks_are_lora_at_seven_ranks_for_one_round_each_decoding_the_test_set(
    tmp_path, picked, monkeypatch
):
    """Table 18's analogue: LoRA's pick, α = 32 at every rank, the first round of the
    campaign's schedule; r = 4 is the sweep's run at the picked rate but for decoding."""
    jobs = ranks_jobs()
    settings = [j.plan(tmp_path).settings for j in jobs]
    assert [s.lora_r for s in settings] == [1, 2, 4, 8, 16, 32, 64]
    for s in settings:
        assert (s.train.lr, s.lora_alpha, s.trained_rounds, s.decode_test) == (5e-4, 32, 1, True)
        assert s.planned_rounds == CAP
    assert len({j.plan(tmp_path).paths.key for j in jobs}) == 7
    assert str(jobs[-1]) == "ranks: lora-seed0 rounds 1 lora-r 64"
    swept = next(j for j in sweep_jobs() if j.method == "lora" and j.lr == 5e-4)
    r4 = settings[2].to_dict()
    assert {k: v for k, v in swept.plan(tmp_path).settings.to_dict().items() if r4.get(k) != v} == {
        "decode_test": False
    }
    monkeypatch.setattr(presets, "FULL_CHOSEN", {"ft": 5e-5})
    with pytest.raises(SettingsError, match=r"no sweep pick for \['lora'\]"):
        ranks_jobs()
    assert {r.state for r in campaign.plan_rows(tmp_path)["ranks"][0]} == {"wait"}


def test_the_report_reads_full_records_and_names_them_from_todays_preset(tmp_path, picked):
    from lorabook.e2e.experiment import run_config
    from lorabook.e2e.report import campaign_overrides, decoding, preset_records
    from lorabook.runs import config_key

    sweep, pilot, run = sweep_jobs()[0], pilot_jobs()[0], Job("runs", "lora", 0, rounds=3)
    write_record(sweep, tmp_path, [1.3], scores=None, finished_at="2026-01-01T00:00:00")
    scored = {"scores": {"BLEU": 0.6}}
    write_record(pilot, tmp_path, [1.3, 1.2], finished_at="2026-01-02T00:00:00", **scored)
    write_record(run, tmp_path, [1.3, 1.2, 1.1], finished_at="2026-01-03T00:00:00", **scored)
    found = preset_records(tmp_path, "full", "smollm2", ["lora", "ft"])
    assert list(found) == ["lora"] and len(found["lora"]["epochs"]) == 3  # the run, not the pilot
    for job in (sweep, pilot, run):
        record = json.loads(job.plan(tmp_path).paths.record.read_text())
        settings = presets.e2e_preset("full", "lora").with_overrides(
            **decoding(record), **campaign_overrides(record)
        )
        config = run_config("lora", "smollm2", "full", settings, 0)
        assert job.plan(tmp_path).paths.record.name == f"lora-seed0-{config_key(config)}.json"


def test_a_part_run_says_how_much_its_checkpoint_holds_and_only_the_rest_is_left(tmp_path, picked):
    from lorabook import campaign as shared

    swept = next(j for j in sweep_jobs() if j.method == "lora" and j.lr == 5e-4)
    write_record(swept, tmp_path, [1.2])
    keep_checkpoint(swept, tmp_path)
    lora = pilot_jobs(tmp_path)[0]  # continues the swept round: rounds 2 to the cap are its own
    ckpt = lora.plan(tmp_path).paths.scratch / "ckpt"
    ckpt.mkdir(parents=True)
    row = campaign.plan_rows(tmp_path)["pilot"][0][0]
    assert (row.state, row.done) == ("part", None)  # no progress file (an older checkpoint)
    assert shared.plan_totals([row])["left"] == pytest.approx(row.estimate / 3600)
    (ckpt / "progress.json").write_text(json.dumps({"epochs_done": 2.5, "elapsed_seconds": 9.0}))
    row = campaign.plan_rows(tmp_path)["pilot"][0][0]
    assert row.done == pytest.approx((2.5 - 1) / (CAP - 1))
    assert shared.plan_totals([row])["left"] == pytest.approx(row.estimate * (1 - row.done) / 3600)
    assert shared.plan_line(row, "h").endswith(f"({100 * row.done:.0f}% done)")
    (ckpt / "progress.json").write_text(json.dumps({"epochs_done": 0.5, "elapsed_seconds": 1.0}))
    assert campaign.plan_rows(tmp_path)["pilot"][0][0].done == 0.0  # clipped, never negative
