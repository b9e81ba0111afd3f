"""Committed result records agree with themselves: what a reader sees is what was measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lorabook.glue.experiment import record_config
from lorabook.runs import config_key, find_records

ROOT = Path(__file__).resolve().parents[1]
RECORDS = sorted((ROOT / "results" / "glue").rglob("*.json"))


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
    if record["method"] == "lora":
        assert params["trainable"] / params["total"] < 0.01  # the paper's "< 1%" regime
    assert record["environment"]["git_commit"], "a record must name the code that made it"


def test_the_cpu_campaign_has_ft_and_lora_records_on_every_task():
    found = find_records(ROOT / "results", "glue", preset="cpu", model="minilm", seed=0)
    have = {(r["task"], r["method"]) for r in found}
    for task in ("sst2", "mrpc", "cola", "rte", "stsb"):
        for method in ("ft", "lora"):
            assert (task, method) in have


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
