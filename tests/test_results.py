"""Committed result records agree with themselves: what a reader sees is what was measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECORDS = sorted((ROOT / "results" / "glue").rglob("*.json"))


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: str(p.relative_to(ROOT / "results")))
def test_glue_record_is_consistent(path: Path):
    record = json.loads(path.read_text())
    assert path.name == f"{record['task']}-{record['method']}-seed{record['seed']}.json"
    metric, epochs = record["metric"], record["epochs"]
    assert len(epochs) == record["settings"]["train"]["epochs"]
    best = max(epochs, key=lambda e: e[metric])
    assert record["best_epoch"] == best["epoch"]
    assert record["best"][metric] == best[metric]
    params = record["params"]
    if record["method"] == "lora":
        assert params["trainable"] / params["total"] < 0.01  # the paper's "< 1%" regime
    assert record["environment"]["git_commit"], "a record must name the code that made it"


def test_records_exist_for_the_quick_preset():
    found = {(p.parent.name, p.stem) for p in RECORDS if p.parent.parent.name == "quick"}
    for task in ("sst2", "mrpc", "cola", "rte", "stsb"):
        for method in ("ft", "lora"):
            assert ("minilm", f"{task}-{method}-seed0") in found
