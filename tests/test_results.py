"""Committed result records agree with themselves: what a reader sees is what was measured."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from lorabook.glue.experiment import record_config
from lorabook.inject import lora_param_count
from lorabook.models import resolve_model
from lorabook.runs import config_key

ROOT = Path(__file__).resolve().parents[1]
RECORDS = sorted((ROOT / "results" / "glue").rglob("*.json"))


@functools.cache
def _config(model: str):
    """The model's config (layers, width), read from its files, no weights loaded."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(resolve_model(model))


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: str(p.relative_to(ROOT / "results")))
def test_glue_record_is_consistent(path: Path):
    record = json.loads(path.read_text())
    stem = f"{record['task']}-{record['method']}-seed{record['seed']}"
    # the name's hash is the hash of the configuration the record states
    assert path.name == f"{stem}-{config_key(record_config(record))}.json"
    assert record["key"] == config_key(record_config(record))
    metric, epochs = record["metric"], record["epochs"]
    assert len(epochs) == record["settings"]["train"]["epochs"]
    best = max(epochs, key=lambda e: e[metric])
    assert record["best_epoch"] == best["epoch"]
    assert record["best"][metric] == best[metric]
    params = record["params"]
    if record["method"] == "lora":  # the paper's 2·L̂·d·r, on the record's model's shape
        settings = record["settings"]
        targets = settings.get("lora_targets") or ("q", "v")  # absent: the paper's W_q, W_v
        config = _config(record["model"])
        adapted = len(targets) * config.num_hidden_layers
        count = lora_param_count(adapted, config.hidden_size, settings["lora_r"])
        assert params["trainable"] == count
        if settings["lora_r"] <= 8:  # the paper's ranks (Table 6 reaches 64: 1-5% here)
            assert params["trainable"] / params["total"] < 0.01  # the paper's "< 1%" regime
    assert record["environment"]["git_commit"], "a record must name the code that made it"


def test_today_s_code_plans_every_committed_glue_record_under_its_own_name():
    """A setting added later (``lora_targets``, ``pooling``) must not rename the records made
    before it; a record made with one names it, and is planned under its own name with it."""
    from lorabook.glue.experiment import plan_glue_run

    for path in RECORDS:
        record = json.loads(path.read_text())
        settings = record["settings"]
        overrides = {**settings["train"]}
        for name in ("max_length", "train_examples", "eval_examples", "padding"):
            overrides[name] = settings[name]
        overrides["group_by_length"] = settings["group_by_length"]
        for name in ("lora_r", "lora_alpha", "adapter_size", "lora_targets", "pooling"):
            if settings.get(name) is not None:
                overrides[name] = settings[name]
        overrides.setdefault("pooling", "cls")  # the only head before pooling was a setting
        run = plan_glue_run(
            record["task"],
            record["method"],
            record["model"],
            record["preset"],
            record["seed"],
            ROOT / "results",
            overrides,
        )
        assert run.paths.record == path, path.name


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "results" / "e2e").rglob("*.json")),
    ids=lambda p: str(p.relative_to(ROOT / "results")),
)
def test_e2e_record_is_found_by_todays_preset(path: Path):
    """Today's presets, with the record's decoding (records made before the decoding settings
    existed: ``LEGACY_DECODE``) and what a campaign job sets itself (lr, rounds, the pilot's
    rule, test decoding), still name every committed E2E record: new fields must not change
    the run hash of the existing settings. The ``cpu`` records' fp32 is the chapter's pin
    (``recorded_in``: issue 17 made bf16 the preset's default), read from no record."""
    from lorabook.e2e.experiment import NO_TRAINING, run_config
    from lorabook.e2e.presets import e2e_preset
    from lorabook.e2e.report import BF16_CHECK, campaign_overrides, decoding, recorded_in

    record = json.loads(path.read_text())
    method, seed, preset = record["method"], record["seed"], record["preset"]
    settings = e2e_preset(preset, "lora" if method == NO_TRAINING else method, seed)
    check = {}  # the bf16 check's short runs (chapter 5): its sizes and the precision it asks
    if all(record["settings"].get(k) == v for k, v in BF16_CHECK.items()):
        check = {**BF16_CHECK, "mixed_precision": record["settings"]["train"]["mixed_precision"]}
    settings = settings.with_overrides(
        **{**recorded_in(preset), **decoding(record), **campaign_overrides(record), **check}
    )
    config = run_config(method, record["model"], preset, settings, seed)
    assert path.name == f"{method}-seed{seed}-{config_key(config)}.json"


def test_issue_17_lost_no_cpu_record_the_code_finds():
    """bf16 became the cpu presets' default where the CPU has it (issue 17); the records made
    before are fp32 and are found through the pins (``glue.campaign.RECORDED_IN``,
    ``e2e.report.CPU_RECORDED_IN``): every job of the GLUE campaign (sweep, runs,
    follow-ups) names a committed record, those are every committed fp32 cpu record, and the
    E2E chapter's records are fp32 ones. Where the CPU has native bf16 (this project's), the
    preset's default no longer names any of them: without the pins they would be lost."""
    from lorabook import precision
    from lorabook.e2e import report as e2e_report
    from lorabook.glue import campaign, report
    from lorabook.glue.experiment import plan_glue_run
    from lorabook.runs import find_records

    results = ROOT / "results"
    glue = find_records(results, "glue", preset="cpu", model="minilm")
    fp32 = {Path(r["_path"]) for r in glue if r["settings"]["train"]["mixed_precision"] == "no"}
    jobs = campaign.sweep_jobs(glue) + campaign.campaign_jobs() + report.follow_up_jobs(results)
    planned = {job: job.plan(results).paths.record for job in jobs}
    assert [str(job) for job, path in planned.items() if not path.exists()] == []
    assert set(planned.values()) == fp32 and len(fp32) >= 63  # 15 sweep, 45 runs, 3 follow-ups
    shown = e2e_report.preset_records(results, "cpu", "smollm2", ["none", "lora", "ft"])
    assert set(shown) == {"none", "lora", "ft"}
    for record in shown.values():
        assert record["settings"]["train"]["mixed_precision"] == "no"
        for other in e2e_report.decoded_other_ways(results, record):
            assert other["settings"]["train"] == record["settings"]["train"]
    if precision.cpu_precision() == "bf16":
        for job, path in planned.items():
            default = plan_glue_run(
                job.task, job.method, "minilm", "cpu", job.seed, results, job.own()
            )
            assert default.paths.record != path and default.paths.record not in fp32


def test_the_cpu_campaign_is_committed_whole_with_its_follow_ups():
    from lorabook.glue import campaign, report

    planned = campaign.campaign_jobs() + report.follow_up_jobs(ROOT / "results")
    found = report.campaign_records(ROOT / "results", planned)
    assert [str(j) for j in planned if j not in found] == []


def test_chapter_3s_reading_is_written_for_what_the_committed_records_say():
    """The GLUE chapter's prose states findings; its `written_for` names them, and the
    records must give exactly those (the notebook checks the same when the book builds)."""
    import ast

    from lorabook.glue import report

    source = (ROOT / "notebooks" / "03_glue.py").read_text()
    written_for = ast.literal_eval(source.split("written_for = ", 1)[1].split("\nfindings", 1)[0])
    assert report.outcomes(ROOT / "results") == written_for


def test_chapter_3_10s_reading_is_written_for_what_the_committed_records_say():
    """The same for 3.10's reading of LoRA against FT on the ``full`` campaign, once FT and
    LoRA have their seeds on every task (before that the chapter says it is ahead)."""
    import ast

    from lorabook.glue import full_report
    from lorabook.glue.full_campaign import TASKS

    source = (ROOT / "notebooks" / "03_glue.py").read_text()
    text = source.split("\nfull_written_for = ", 1)[1].split("\nfull_findings", 1)[0]
    written_for = ast.literal_eval(text)
    found = full_report.seed_records(ROOT / "results")
    found = {k: v for k, v in found.items() if k[1] in ("ft", "lora")}
    if len(found) < 2 * len(TASKS):
        pytest.skip("FT and LoRA have not their three seeds on every task yet")
    assert full_report.outcomes(found) == written_for


def test_chapter_3_10s_reading_of_claim_2_is_written_for_what_the_committed_records_say():
    """The same for 3.10's reading of LoRA against BitFit and the adapters at LoRA's size, once
    each of them and LoRA have their seeds on every task."""
    import ast

    from lorabook.glue import full_report
    from lorabook.glue.full_campaign import TASKS

    source = (ROOT / "notebooks" / "03_glue.py").read_text()
    text = source.split("\nbaseline_written_for = ", 1)[1].split("\nbaseline_findings", 1)[0]
    found = full_report.seed_records(ROOT / "results")
    methods = ("lora", *full_report.BASELINES)
    if any((t, m) not in found for t in TASKS for m in methods):
        pytest.skip("LoRA and the size-matched baselines have not their seeds on every task yet")
    assert full_report.baseline_outcomes(found) == ast.literal_eval(text)


def test_chapter_4_9s_reading_is_written_for_what_the_committed_records_say():
    """The same for 4.9's reading of Table 3's claim on the E2E campaign, once every planned
    seed is scored."""
    import ast

    from lorabook.e2e import verdict
    from lorabook.e2e.campaign import RUN_SEEDS

    source = (ROOT / "notebooks" / "04_e2e.py").read_text()
    text = source.split("\ne2e_written_for = ", 1)[1].split("\ne2e_findings", 1)[0]
    found = verdict.runs_records(ROOT / "results", "smollm2")
    if verdict.seeds_owed({m: len(found.get(m, [])) for m in RUN_SEEDS}):
        pytest.skip("the E2E campaign has seeds still to score")
    assert verdict.findings(verdict.verdicts(found, ROOT)) == ast.literal_eval(text)


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for p in (ROOT / "results").rglob("*.json")
        if not any(part.startswith("_") for part in p.relative_to(ROOT / "results").parts)
    ),
    ids=lambda p: str(p.relative_to(ROOT / "results")),
)
def test_every_committed_record_names_a_clean_commit(path: Path):
    record = json.loads(path.read_text())
    if not isinstance(record, dict) or "environment" not in record:
        pytest.skip("not a result record")
    commit = record["environment"]["git_commit"]
    assert commit and not commit.endswith("-dirty"), f"{path.name} names {commit!r}"
