"""Our Table 3 over seeds and its verdicts, on stand-in records with real outputs files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorabook.e2e import campaign, verdict
from lorabook.e2e.campaign import Job
from lorabook.e2e.metrics import write_official_layout

REFS = [
    ["the eagle is a cheap pub near the river", "eagle is a pub near the river , cheap"],
    ["blue spice serves french food in the city centre", "blue spice is a french restaurant"],
    ["the mill is a family friendly coffee shop", "the mill coffee shop is family friendly"],
    ["zizzi is an expensive italian restaurant", "zizzi serves italian food , high price"],
] * 10
GOOD = [r[0] for r in REFS]
WORSE = [
    "a pub",
    "blue spice serves french food",
    "a coffee shop",
    "zizzi is an italian place",
] * 10


def record(root: Path, method: str, seed: int, outputs: list[str], bleu: float, **more) -> dict:
    """A stand-in record with its outputs in the official layout and these paper scores."""
    path = root / "e2e" / "full" / "smollm2" / f"{method}-seed{seed}-0000000{seed}.json"
    write_official_layout(outputs, REFS, path.with_suffix(""))
    scores = {"BLEU": bleu, "NIST": 8.0, "METEOR": 0.45, "ROUGE_L": 0.7, "CIDEr": 2.0, **more}
    rec = {
        "method": method,
        "seed": seed,
        "params": {"trainable": 230_400 if method == "lora" else 134_515_008},
        "scores_paper": scores,
        "_path": str(path),
    }
    path.write_text(json.dumps(rec))
    return rec


def test_the_table_gives_mean_and_spread_over_seeds_and_none_for_one_seed(tmp_path):
    found = {
        "lora": [record(tmp_path, "lora", s, GOOD, b) for s, b in enumerate([0.70, 0.71, 0.72])],
        "prefix": [record(tmp_path, "prefix", 0, WORSE, 0.60)],
    }
    lora, prefix = verdict.table_rows(found)
    assert lora["seeds"] == [0, 1, 2] and lora["trainable"] == 230_400
    assert lora["BLEU"] == pytest.approx(71.0) and lora["BLEU std"] == pytest.approx(1.0)
    assert lora["NIST"] == pytest.approx(8.0) and lora["NIST std"] == 0.0
    assert prefix["BLEU"] == pytest.approx(60.0) and prefix["BLEU std"] is None
    shown_lora, shown_prefix = verdict.shown_rows(found)
    assert shown_lora["method"] == "LoRA" and shown_lora["trainable"] == "230,400"
    assert shown_lora["BLEU"] == "71.00 ± 1.00" and shown_lora["seeds"] == "3"
    assert shown_lora["data form"] == "csv"  # the official files unless a record says otherwise
    assert shown_prefix["BLEU"] == "60.00" and shown_prefix["seeds"].startswith("1 (one seed")
    assert shown_prefix["method"] == "PreLayer"
    found["prefix"][0]["settings"] = {"data_form": "paper"}
    assert verdict.shown_rows(found)[1]["data form"] == "paper"


@pytest.mark.parametrize(
    ("ours", "theirs", "expected"),
    [
        ([70.0, 71.0, 72.0], [60.0, 61.0, 62.0], "above"),
        ([60.0, 61.0, 62.0], [70.0], "below"),
        ([70.0, 71.0, 72.0], [70.5, 71.5, 72.5], "within the spread"),
        ([70.0], [69.0], "one seed each"),
    ],
)
def test_a_difference_is_judged_against_the_larger_spread(ours, theirs, expected):
    assert verdict.judge_by_spread(ours, theirs)["verdict"] == expected


def test_each_difference_carries_welch_s_t():
    judged = verdict.judge_by_spread([70.0, 71.0, 72.0], [69.0, 70.0, 71.0])
    # difference 1, each variance 1 over 3 seeds: standard error sqrt(2/3)
    assert judged["verdict"] == "within the spread"
    assert judged["t"] == pytest.approx(1 / (2 / 3) ** 0.5)
    assert verdict.judge_by_spread([70.0, 71.0], [69.0])["t"] is None  # one seed: no t


def test_bleu_is_judged_seed_by_seed_with_the_bootstrap(tmp_path):
    lora = [record(tmp_path, "lora", s, GOOD, 0.9) for s in range(3)]
    ft = [record(tmp_path, "ft", s, WORSE, 0.5) for s in range(3)]
    same = [record(tmp_path, "adapter_l", 0, GOOD, 0.9)]
    rows = verdict.verdicts({"lora": lora, "ft": ft, "adapter_l": same}, tmp_path, samples=300)
    bleu = {r["versus"]: r for r in rows if r["metric"] == "BLEU"}
    assert [p["seeds"] for p in bleu["ft"]["pairs"]] == [(0, 0), (1, 1), (2, 2)]
    assert bleu["ft"]["verdict"] == "above" and all(p["low"] > 0 for p in bleu["ft"]["pairs"])
    assert [p["seeds"] for p in bleu["adapter_l"]["pairs"]] == [(0, 0), (1, 0), (2, 0)]
    assert bleu["adapter_l"]["verdict"] == "not separable"  # the same outputs: zero
    reversed_rows = verdict.verdicts({"lora": ft, "ft": lora}, tmp_path, samples=300)
    assert next(r for r in reversed_rows if r["metric"] == "BLEU")["verdict"] == "below"
    assert {r["metric"] for r in rows} == set(verdict.METRICS)


def test_rouge_l_and_cider_are_resampled_per_mr_seed_by_seed_as_a_supplement(tmp_path):
    lora = [record(tmp_path, "lora", s, GOOD, 0.9) for s in range(2)]
    ft = [record(tmp_path, "ft", s, WORSE, 0.5) for s in range(2)]
    same = [record(tmp_path, "adapter_l", 0, GOOD, 0.9)]
    found = {"lora": lora, "ft": ft, "adapter_l": same}
    rows = {(r["versus"], r["metric"]): r for r in verdict.resampled(found, tmp_path, samples=300)}
    assert set(rows) == {(m, k) for m in ("ft", "adapter_l") for k in ("ROUGE_L", "CIDEr")}
    assert [p["seeds"] for p in rows["ft", "CIDEr"]["pairs"]] == [(0, 0), (1, 1)]
    assert rows["ft", "ROUGE_L"]["verdict"] == rows["ft", "CIDEr"]["verdict"] == "above"
    assert 0 < rows["ft", "ROUGE_L"]["difference"] <= 100  # Table 3's units: points
    assert rows["adapter_l", "ROUGE_L"]["verdict"] == "not separable"  # the same outputs
    assert rows["adapter_l", "CIDEr"]["difference"] == 0.0
    flipped = verdict.resampled({"lora": ft, "ft": lora}, tmp_path, samples=300)
    assert {r["verdict"] for r in flipped} == {"below"}


def test_no_runs_to_read_before_the_pick_and_the_campaigns_records_after(tmp_path, monkeypatch):
    assert verdict.runs_records(tmp_path) == {}  # no sweep pick yet
    jobs = [Job("runs", "lora", 0), Job("runs", "lora", 1), Job("runs", "ft", 0)]
    monkeypatch.setattr(campaign, "runs_jobs", lambda results_dir, model: jobs)
    monkeypatch.setattr(
        campaign.presets, "FULL_CHOSEN", {"lora": 5e-4, "ft": 5e-5}
    )  # the jobs plan with a rate
    for job, scored in zip(jobs, [True, False, True], strict=True):
        path = job.plan(tmp_path).paths.record
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({"seed": job.seed, "scores_paper": {"BLEU": 0.7} if scored else None})
        )
    found = verdict.runs_records(tmp_path)
    assert {m: [r["seed"] for r in rs] for m, rs in found.items()} == {"lora": [0], "ft": [0]}
