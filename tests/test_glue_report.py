"""The GLUE report's judgements: how runs are named, and how a difference between two runs is
judged (a paired bootstrap over dev examples), on synthetic records with known answers."""

from __future__ import annotations

import pytest

from lorabook.glue.campaign import Job
from lorabook.glue.report import method_name, summary


def record(score: float, settings: dict | None = None) -> dict:
    """A stand-in for a finished run's record with this dev accuracy."""
    return {
        "metric": "accuracy",
        "best": {"accuracy": score},
        "best_epoch": 1,
        "epochs": [{"train_loss": 0.3}],
        "params": {"trainable": 100},
        "settings": settings or {},
    }


PFEIFFER = {"adapter_p_variant": "pfeiffer"}


def test_adapter_p_records_are_named_by_their_variant():
    assert method_name("adapter_p", PFEIFFER) == "AdapterP"
    # no variant: a record of adapter_p before issue 20 (or of the cpu preset): Houlsby's FFN
    assert method_name("adapter_p", {}) == method_name("adapter_p") == "AdapterH (FFN only)"
    assert method_name("adapter_h", {}) == "AdapterH" and method_name("lora") == "LoRA"
    rows = summary({Job("rte", "adapter_p", s): record(0.6, PFEIFFER) for s in (0, 1)})
    assert [r["name"] for r in rows] == ["AdapterP"]


def test_one_row_never_mixes_the_two_adapter_p_variants():
    found = {
        Job("rte", "adapter_p", 0): record(0.6),
        Job("rte", "adapter_p", 1): record(0.6, PFEIFFER),
    }
    with pytest.raises(ValueError, match=r"rte adapter_p: .*AdapterH \(FFN only\).*AdapterP"):
        summary(found)
