"""The GLUE report's judgements: how runs are named, and how a difference between two runs is
judged (a paired bootstrap over dev examples), on synthetic records with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from lorabook.glue.campaign import Job
from lorabook.glue.metrics import glue_metrics
from lorabook.glue.report import bootstrap_records, method_name, paired_bootstrap, summary


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


# --------------------------------------------------------------------------- paired bootstrap

BINARY = ("accuracy", "f1", "matthews_correlation")
TASK_OF = {"accuracy": "rte", "f1": "mrpc", "matthews_correlation": "cola", "pearson": "stsb"}


def binary_run(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels and one run's class ids, right on about 80% of them."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    flip = rng.random(n) < 0.2
    return labels, np.where(flip, 1 - labels, labels)


@pytest.mark.parametrize("metric", [*BINARY, "pearson"])
def test_identical_runs_differ_by_exactly_zero(metric):
    labels, pred = binary_run()
    task = "stsb" if metric == "pearson" else "mrpc"
    if metric == "pearson":
        pred = labels + np.random.default_rng(1).normal(size=len(labels))
    out = paired_bootstrap(task, pred, pred, labels, metric=metric, samples=500)
    assert (out["difference"], out["low"], out["high"], out["share_above_zero"]) == (0, 0, 0, 0)


@pytest.mark.parametrize("metric", [*BINARY, "pearson"])
def test_the_dev_set_difference_is_the_metrics_difference(metric):
    labels, a = binary_run(seed=1)
    _, b = binary_run(seed=2)
    task = TASK_OF[metric]
    if metric == "pearson":
        rng = np.random.default_rng(3)
        labels = rng.uniform(0, 5, 300)
        a, b = labels + rng.normal(size=300), labels + 2 * rng.normal(size=300)
    out = paired_bootstrap(task, a, b, labels, metric=metric, samples=200)
    expected = glue_metrics(task, a, labels)[metric] - glue_metrics(task, b, labels)[metric]
    assert out["difference"] == pytest.approx(100 * expected, abs=1e-9)
    assert out["low"] <= out["difference"] <= out["high"]


@pytest.mark.parametrize("metric", [*BINARY, "pearson"])
def test_a_run_better_on_every_example_is_ahead_on_every_resample(metric):
    labels, _ = binary_run()
    a, b = labels, 1 - labels  # right everywhere; wrong everywhere
    task = "mrpc"
    if metric == "pearson":  # closer to the label on every example
        task, rng = "stsb", np.random.default_rng(4)
        labels = rng.uniform(0, 5, 200)
        a = labels + 0.1 * np.clip(rng.normal(size=200), -3, 3)  # off by 0.3 at most
        b = labels + rng.choice([-1, 1], 200) * (1 + np.abs(rng.normal(size=200)))  # by 1+
        assert np.all(np.abs(a - labels) < np.abs(b - labels))
    out = paired_bootstrap(task, a, b, labels, metric=metric, samples=1000)
    assert out["low"] > 0 and out["share_above_zero"] == 1.0
    if metric != "pearson":
        assert out["difference"] == {"matthews_correlation": 200}.get(metric, 100)


def test_the_accuracy_interval_is_the_normal_one_for_a_known_split():
    """1,000 examples: a right and b wrong on 100, the reverse on 50, the rest alike. The
    difference is 5 points; per example it is +1, -1 or 0 with shares 0.10, 0.05, 0.85, so
    its standard error is sqrt(0.15 - 0.05²)/sqrt(1000) = 1.215 points: 95% ≈ 5 ± 2.38."""
    labels = np.zeros(1000, dtype=int)
    a, b = labels.copy(), labels.copy()
    b[:100] = 1  # b wrong
    a[100:150] = 1  # a wrong
    out = paired_bootstrap("rte", a, b, labels, samples=20_000, seed=7)
    assert out["difference"] == pytest.approx(5.0)
    assert out["low"] == pytest.approx(5 - 2.38, abs=0.25)
    assert out["high"] == pytest.approx(5 + 2.38, abs=0.25)
    again = paired_bootstrap("rte", a, b, labels, samples=20_000, seed=7)
    assert again == out  # the seed fixes the resamples
    other = paired_bootstrap("rte", a, b, labels, samples=20_000, seed=8)
    assert [other[k] for k in ("low", "high", "share_above_zero")] != [
        out[k] for k in ("low", "high", "share_above_zero")
    ]


def test_bootstrap_records_needs_kept_predictions_on_the_same_examples():
    labels, pred = binary_run(50)
    kept = {"predictions": pred.tolist(), "labels": labels.tolist(), "epoch": 1}
    a = {**record(0.8), "task": "rte", "method": "lora", "seed": 0, "dev_predictions": kept}
    b = {**a, "method": "ft", "dev_predictions": {**kept, "predictions": labels.tolist()}}
    out = bootstrap_records(a, b, samples=200)
    assert out["metric"] == "accuracy" and out["difference"] < 0 and out["examples"] == 50
    old = {**b, "dev_predictions": None}  # a record made before issue 20
    with pytest.raises(ValueError, match="ft seed 0\\) keeps no per-example dev predictions"):
        bootstrap_records(a, old)
    other = {**b, "dev_predictions": {**kept, "labels": (1 - labels).tolist()}}
    with pytest.raises(ValueError, match="same dev examples"):
        bootstrap_records(a, other)
    with pytest.raises(ValueError, match="2 predictions for 3 labels"):
        paired_bootstrap("rte", [0, 1], [0, 1], [0, 1, 1])


def test_bf16_quality_reads_the_campaign_s_fp32_runs_and_the_cpu_preset_s_bf16(
    tmp_path, monkeypatch
):
    """Issue 17: the fp32 side is the campaign's jobs (their pin, RECORDED_IN); the bf16 side
    is the cpu preset's own default on a CPU with native bf16 (bf16 asked by name elsewhere)."""
    import json

    from lorabook import precision
    from lorabook.glue.campaign import SEEDS
    from lorabook.glue.experiment import plan_glue_run
    from lorabook.glue.report import bf16_quality

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    for seed, score in zip(SEEDS["lora"], (0.80, 0.82, 0.81), strict=True):
        path = Job("mrpc", "lora", seed).plan(tmp_path).paths.record
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**record(score), "seconds_per_step": 1.0}))
    bf16 = plan_glue_run("mrpc", "lora", "minilm", "cpu", 0, tmp_path).paths.record
    assert (
        bf16
        == plan_glue_run(
            "mrpc", "lora", "minilm", "cpu", 0, tmp_path, {"mixed_precision": "bf16"}
        ).paths.record
    )
    bf16.write_text(json.dumps({**record(0.815), "seconds_per_step": 0.7}))
    [row] = bf16_quality(tmp_path, "mrpc", ["lora"])
    assert row["fp32 scores (seeds)"] == pytest.approx([80.0, 81.0, 82.0])
    assert row["bf16 score (seed 0)"] == pytest.approx(81.5)
    assert row["within the fp32 seeds' range"] is True
    assert row["bf16 − fp32 median"] == pytest.approx(0.5)
