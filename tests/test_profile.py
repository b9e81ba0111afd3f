"""The measuring code of the efficiency chapter: energy arithmetic, timing statistics,
latency variants, memory by account, time to equal accuracy. No timing is asserted."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_model

import lorabook.train
from lorabook import apply_lora
from lorabook import profile as P
from lorabook.energy import NOT_MEASURABLE, EnergyMeter, NullMeter, energy_meter, trapezoid
from lorabook.train import TrainConfig, fit


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


# --- energy ---------------------------------------------------------------------------------


def test_trapezoid_integrates_power_over_time():
    assert trapezoid([]) == 0.0 and trapezoid([(0.0, 100.0)]) == 0.0
    # 100 W for 2 s, then a ramp 100 → 200 W over 1 s: 200 + 150 J
    assert trapezoid([(0.0, 100.0), (2.0, 100.0), (3.0, 200.0)]) == pytest.approx(350.0)


def test_meter_integrates_fake_power_samples():
    clock, watts = FakeClock(), iter([50.0, 150.0, 150.0])
    meter = EnergyMeter(lambda: next(watts), clock=clock, interval_s=1.0, device="fake")
    meter.start(thread=False)
    clock.t = 1.0
    meter.sample()
    clock.t = 3.0
    meter.stop()
    # (50+150)/2·1 + 150·2 = 400 J over 3 s
    assert meter.joules() == pytest.approx(400.0)
    report = meter.report(steps=4)
    assert report["measurable"] and report["samples"] == 3
    assert report["joules_per_step"] == pytest.approx(100.0)
    assert report["mean_watts"] == pytest.approx(400.0 / 3)
    assert "trapezoidal" in report["source"]


def test_meter_prefers_the_energy_counter_and_keeps_the_integral_beside_it():
    clock, counter = FakeClock(), iter([10_000.0, 12_500.0])  # millijoules
    meter = EnergyMeter(lambda: 100.0, energy_mj=lambda: next(counter), clock=clock)
    meter.start(thread=False)
    clock.t = 2.0
    meter.stop()
    assert meter.joules() == pytest.approx(2.5)  # the counter: 2500 mJ
    report = meter.report()
    assert report["source"] == "NVML total-energy counter"
    assert report["joules_trapezoid"] == pytest.approx(200.0)  # 100 W · 2 s


def test_meter_thread_samples_at_its_interval_and_stops():
    meter = EnergyMeter(lambda: 10.0, interval_s=0.01)
    with meter:
        deadline = torch.randn(1)  # noqa: F841 - something to do while it samples
        import time

        time.sleep(0.1)
    n = len(meter.samples)
    assert n >= 4  # start + thread samples + stop
    time.sleep(0.05)
    assert len(meter.samples) == n  # stopped
    assert meter.joules() == pytest.approx(10.0 * meter.seconds())


def test_no_power_counter_means_not_measurable_never_a_number():
    for device in ("cpu", torch.device("cpu"), None):
        meter = energy_meter(device)
        assert isinstance(meter, NullMeter) and not meter.measurable
        assert meter.start().joules() is None
        assert meter.report()["reason"].startswith(NOT_MEASURABLE)
    if not torch.cuda.is_available():  # NVML fails here: still not measurable, with the reason
        assert energy_meter("cuda").report()["joules"] is None


def test_interval_must_be_positive():
    with pytest.raises(ValueError, match="interval_s"):
        EnergyMeter(lambda: 1.0, interval_s=0)


# --- fit stores elapsed time (and energy where measured) at each evaluation -------------------


def _toy_fit(tmp_path=None):
    g = torch.Generator().manual_seed(0)
    data = [
        {"input_ids": torch.randint(8, 99, (6,), generator=g), "labels": torch.tensor(i % 2)}
        for i in range(16)
    ]

    def collate(rows):
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}

    net = tiny_model("roberta", num_labels=2)
    apply_lora(net, r=2, alpha=4, keep_trainable=["classifier"])
    return fit(
        net,
        data,
        lambda m, a: {"score": 0.5},
        TrainConfig(epochs=3, batch_size=8),
        collate_fn=collate,
        select="score",
        progress=False,
        log=lambda s: None,
        checkpoint_dir=tmp_path,
    )


def test_fit_stores_elapsed_seconds_and_no_energy_on_a_cpu():
    history = _toy_fit().history
    elapsed = [e["elapsed_seconds"] for e in history]
    assert elapsed == sorted(elapsed) and elapsed[0] >= history[0]["train_seconds"]
    assert all("energy_joules" not in e for e in history)


def test_fit_stores_cumulative_energy_when_a_meter_measures(monkeypatch):
    made = []

    def fake_meter(device):
        made.append(EnergyMeter(lambda: 100.0, interval_s=0.005))
        return made[-1]

    monkeypatch.setattr(lorabook.train, "energy_meter", fake_meter)
    history = _toy_fit().history
    joules = [e["energy_joules"] for e in history]
    assert joules == sorted(joules) and joules[0] > 0
    # 100 W all along: joules ≈ 100 · seconds since the meter started
    assert joules[-1] == pytest.approx(100 * history[-1]["elapsed_seconds"], rel=0.2, abs=0.5)
    assert made[0]._thread is None  # stopped at the end of fit


# --- timing statistics ------------------------------------------------------------------------


def test_summarize_and_overhead_arithmetic():
    base, slow = P.summarize([10.0, 12.0]), P.summarize([15.0, 15.0])
    assert base["mean"] == 11 and base["std"] == pytest.approx(2**0.5) and base["n"] == 2
    o = P.overhead(slow, base)
    assert o["percent"] == pytest.approx(100 * 4 / 11)
    assert o["spread_percent"] == pytest.approx(100 * (2 / 2) ** 0.5 / 11)
    assert not o["within_noise"]  # 4 ms > 2 · 1 ms
    assert P.overhead(P.summarize([11.5, 11.0]), base)["within_noise"]


def test_time_interleaved_rotates_the_order_and_times_every_call():
    order = []
    calls = {name: (lambda n=name: order.append(n)) for name in "abc"}
    times = P.time_interleaved(calls, trials=3, warmup=1, device=torch.device("cpu"))
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert order == list("abc" + "abc" + "bca" + "cab")


def test_latency_rows_cover_every_variant_or_say_why_not():
    variants = ["base", "lora_merged", "lora_unmerged", "adapter_l"]
    out = P.measure_latency(
        "tiny-gpt2",
        [(1, 8)],
        variants,
        trials=3,
        warmup=1,
        adapter_params={(1, 8): 2000},
        log=lambda s: None,
    )
    measured = {r["variant"] for r in out["rows"]}
    assert measured | set(out["unavailable"]) == set(variants)
    assert {"base", "lora_merged", "lora_unmerged"} <= measured
    for reason in out["unavailable"].values():
        assert reason.startswith("not available in this version")
    base_row = next(r for r in out["rows"] if r["variant"] == "base")
    assert base_row["overhead"]["percent"] == 0 and base_row["ms"]["n"] == 3


def test_merged_variant_computes_what_the_unmerged_one_does():
    base, _ = P.build_model("tiny-gpt2")
    base.eval()
    merged, info = P.latency_variant(base, "lora_merged")
    unmerged, _ = P.latency_variant(base, "lora_unmerged")
    ids = torch.randint(3, 97, (2, 8))
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, unmerged(input_ids=ids).logits)
        assert not torch.allclose(merged(input_ids=ids).logits, base(input_ids=ids).logits)
    assert info["trainable"] == 2 * 2 * 32 * 4 * 2  # q and v, 2 layers, d = 32, r = 4


def test_adapter_width_meets_the_parameter_budget():
    build = P.MODELS["tiny-roberta"][0]
    size = P.adapter_size_for(build, "adapter_h", 5000)
    model, _ = P.build_model("tiny-roberta")
    _, report = P.apply_method(model, "adapter_h", adapter_size=size, head=[])
    per_m = 2 * 2 * (2 * 32 + 1)  # 2 layers × 2 adapters × (2d + 1) per unit of width
    assert abs(report["trainable"] - 5000) <= per_m / 2


@pytest.mark.parametrize("kind", P.PAPER_ARCHITECTURES)
def test_paper_architecture_is_its_config_on_the_meta_device(kind):
    model = P.paper_architecture(kind)
    config = P.paper_config(kind)
    assert model.config.to_dict() == config.to_dict()
    assert {p.device.type for p in model.parameters()} == {"meta"}
    d, layers = config.hidden_size, config.num_hidden_layers
    expected = {"roberta-base": (768, 12), "roberta-large": (1024, 24), "gpt2-medium": (1024, 24)}
    expected |= {"gpt2-large": (1280, 36), "gpt3-175b": (12288, 96)}
    assert (d, layers) == expected[kind]
    # the attention and FFN weights of every layer are there: 12·d² each (bias, norms aside)
    assert sum(p.numel() for p in model.parameters()) > 12 * d * d * layers


def test_paper_config_names_the_known_architectures():
    with pytest.raises(ValueError, match="known: roberta-base"):
        P.paper_config("gpt-4")


def test_unavailable_method_is_an_error_that_says_so():
    model, _ = P.build_model("tiny-llama")
    with pytest.raises(P.MethodUnavailable, match="bitfit"):
        P.apply_method(model, "bitfit")


# --- memory by account ------------------------------------------------------------------------


def test_saved_tensor_meter_counts_activations_not_weights():
    w = torch.nn.Parameter(torch.randn(4, 4))
    lin = torch.nn.Linear(4, 4)
    x = torch.randn(8, 4)
    with P.SavedTensorMeter(lin) as saved:
        y = torch.tanh(x @ w)  # saves x (for w's gradient; x needs none) and tanh's output
        lin(y).sum()  # saves y again (counted once) and lin.weight (a weight: not counted)
    assert saved.bytes == 4 * (8 * 4 + 8 * 4)


def test_memory_accounts_for_full_fine_tuning_and_lora():
    ft = P.measure_training("tiny-roberta", "ft", batch=2, length=8, steps=1, warmup=0)
    acct, weights = ft["memory_accounts"], ft["memory_accounts"]["weights"]
    assert acct["gradients"] == weights == ft["checkpoint_bytes"]
    assert 2 * weights <= acct["optimizer"] <= 2 * weights + 8 * 1000  # + step counters
    assert acct["activations"] > 0
    lora = P.measure_training("tiny-roberta", "lora", batch=2, length=8, steps=1, warmup=0)
    n = lora["params"]["trainable_incl_head"]
    assert lora["memory_accounts"]["gradients"] == 4 * n == lora["checkpoint_bytes"]
    assert lora["tokens_per_second"] > 0 and lora["energy"]["measurable"] is False
    assert set(lora["phases_seconds"]) == {"forward", "backward", "optimizer"}
    assert ft["optimizer"] == lora["optimizer"] == P.OPTIMIZER


def test_the_bench_steps_with_the_optimizer_the_runs_train_with():
    """The bench's optimizer phase is the training loop's, not PyTorch's default AdamW (a
    for-loop on a CPU, which made FT's phase several times the runs')"""
    from lorabook.train import TrainConfig, adamw

    model, optimizer, _, _ = P._prepared("tiny-roberta", "ft", torch.device("cpu"))
    expected = adamw(model, TrainConfig(lr=1e-5, weight_decay=0.01))
    assert optimizer.defaults == expected.defaults and optimizer.defaults["fused"] is True
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]


def test_speedup_split_separates_the_optimizer_phase():
    def row(method, forward, backward, optimizer):
        phases = {"forward": forward, "backward": backward, "optimizer": optimizer}
        return {"model": "m", "batch": 2, "length": 8, "method": method, "phases_seconds": phases}

    old = [row("ft", 1.0, 2.0, 1.0), row("lora", 1.0, 1.0, 0.0), row("bitfit", 1.0, 1.5, 0.1)]
    (split,) = P.speedup_split(old)
    assert split["whole step"] == pytest.approx(2.0) and split["forward + backward"] == 1.5
    assert split["FT optimizer share"] == pytest.approx(0.25)
    assert split["optimizer"] == P.OPTIMIZER_BEFORE  # a row that does not say: the old default
    new = [{**r, "optimizer": P.OPTIMIZER} for r in old]
    assert P.speedup_split(new)[0]["optimizer"] == P.OPTIMIZER
    assert P.speedup_split(old[:1]) == []  # no LoRA row: nothing to compare


def test_peft_peer_has_the_same_trainable_count():
    ours = P.measure_training("tiny-gpt2", "lora", batch=1, length=8, steps=1, warmup=0)
    theirs = P.measure_training("tiny-gpt2", "peft_lora", batch=1, length=8, steps=1, warmup=0)
    assert ours["params"]["trainable_incl_head"] == theirs["params"]["trainable_incl_head"]


@pytest.mark.slow  # `make check` (CI) runs it; `make test` leaves it out
def test_fresh_process_returns_json_or_the_reason_a_method_is_unavailable():
    args = ["train", "--model", "tiny-llama", "--batch", "1", "--length", "8", "--steps", "1"]
    row = P.in_fresh_process([*args, "--method", "lora", "--warmup", "0"])
    assert row["method"] == "lora" and row["peak_memory"]["bytes"] > 0
    assert P.in_fresh_process([*args, "--method", "bitfit"])["unavailable"].startswith(
        "not available"
    )
    with pytest.raises(RuntimeError, match="failed"):
        P.in_fresh_process(["train", "--model", "no-such-model", "--method", "lora"])


def test_peer_ratios_arithmetic():
    def row(method, mean, peak):
        return {
            "model": "m",
            "batch": 1,
            "length": 8,
            "method": method,
            "seconds_per_step": {"mean": mean, "std": 0.0, "n": 5},
            "peak_memory": {"bytes": peak, "bytes_over_start": peak // 2},
            "memory_accounts": {"activations": 10},
        }

    (r,) = P.peer_ratios([row("lora", 0.9, 90), row("peft_lora", 1.0, 100), row("ft", 2, 1)])
    assert r["step_time_ratio"] == pytest.approx(0.9) and r["peak_memory_ratio"] == 0.9
    assert r["step_time_ratio_spread"] == 0 and r["peak_over_start_ratio"] == pytest.approx(0.9)


# --- time to equal accuracy -------------------------------------------------------------------


def _history(scores, seconds, joules=None):
    return [
        {
            "epoch": i + 1,
            "acc": s,
            "train_seconds": 1.0,
            "elapsed_seconds": t,
            **({"energy_joules": joules[i]} if joules else {}),
        }
        for i, (s, t) in enumerate(zip(scores, seconds, strict=True))
    ]


def test_time_to_equal_accuracy_uses_the_lower_best_minus_half_a_point():
    out = P.time_to_equal_accuracy(
        {
            "ft": _history([0.80, 0.90, 0.91], [10, 20, 30], joules=[100, 200, 300]),
            "lora": _history([0.85, 0.895, 0.90], [5, 10, 15]),
        },
        "acc",
    )
    assert out["target"] == pytest.approx(0.895)
    assert out["runs"]["ft"] == {
        "epoch": 2,
        "score": 0.90,
        "seconds": 20,
        "clock": "elapsed_seconds",
        "joules": 200,
    }
    assert out["runs"]["lora"]["epoch"] == 2 and out["runs"]["lora"]["joules"] is None


def test_time_to_equal_accuracy_falls_back_to_cumulative_training_time():
    old = [{"epoch": i + 1, "acc": s, "train_seconds": 3.0} for i, s in enumerate([0.5, 0.7])]
    out = P.time_to_equal_accuracy({"a": old, "b": old}, "acc")
    assert out["runs"]["a"]["seconds"] == 6.0 and out["runs"]["a"]["clock"].startswith("cum")
    with pytest.raises(ValueError):
        P.time_to_equal_accuracy({"a": []}, "acc")


def test_iso_accuracy_table_takes_the_newest_record_per_task_and_method():
    def rec(task, method, scores, finished):
        return {
            "task": task,
            "method": method,
            "metric": "acc",
            "epochs": _history(scores, [1, 2]),
            "finished_at": finished,
        }

    rows = P.iso_accuracy_table(
        [
            rec("a", "ft", [0.1, 0.2], "2024-01-01"),
            rec("a", "ft", [0.6, 0.7], "2025-01-01"),
            rec("a", "lora", [0.7, 0.7], "2025-01-01"),
            rec("b", "ft", [0.7, 0.7], "2025-01-01"),  # no LoRA run: left out
        ]
    )
    assert [r["task"] for r in rows] == ["a"] and rows[0]["runs"]["ft"]["epoch"] == 2
    json.dumps(rows)


def test_paper_table1_is_read_from_the_papers_readme_and_agrees_with_its_percentages():
    import re

    from lorabook import paper
    from lorabook.profile import PAPER_SHAPES, TABLE1_ADAPTER_PARAMS, paper_table1_ms

    table = paper_table1_ms()
    assert set(table) == {"base", "adapter_l", "adapter_h"}
    for by_shape in table.values():
        assert list(by_shape) == list(PAPER_SHAPES) == list(TABLE1_ADAPTER_PARAMS)
    # the adapter budgets the benchmark needs without the transcription are its header's
    header = [c.split("/") for c in list(paper.table(1)[0])[1:]]
    assert {(int(b), int(n)): paper.value(p) for b, n, p in header} == TABLE1_ADAPTER_PARAMS
    # the overheads the paper prints beside its adapter rows follow from the means we read
    for row in paper.table(1):
        for column, cell in list(row.items())[1:]:
            printed = re.search(r"\(\+([\d.]+)%\)", cell)
            if printed:
                batch, length, _ = (int(p) if p.strip().isdigit() else p for p in column.split("/"))
                base = table["base"][batch, length][0]
                assert 100 * (paper.value(cell) / base - 1) == pytest.approx(
                    float(printed.group(1)), abs=0.06
                )


def test_peer_summary_averages_repeats_and_judges_no_worse_within_noise():
    from lorabook.profile import peer_summary

    def record(step: float, memory: float, spread: float = 0.0) -> dict:
        row = {"model": "m", "step_time_ratio": step, "peak_memory_ratio": memory}
        return {"ours_vs_peft": [{**row, "step_time_ratio_spread": spread}]}

    noisy = peer_summary([record(1.02, 0.99), record(0.98, 1.00), record(1.03, 1.001)])[0]
    assert noisy["repeats"] == 3 and noisy["step_time"]["ratios"] == [1.02, 0.98, 1.03]
    assert noisy["step_time"]["mean"] == pytest.approx(1.01)
    assert noisy["step_time"]["no_worse"]  # 1.01 is inside 2 standard errors (0.031)
    assert noisy["peak_memory"]["no_worse"]
    steady = peer_summary([record(1.05, 1.0), record(1.06, 1.0), record(1.05, 1.0)])[0]
    assert not steady["step_time"]["no_worse"]  # consistently 5% slower: not noise
    single = peer_summary([record(1.013, 1.0, spread=0.007)])[0]
    assert single["step_time"]["noise"] == pytest.approx(0.014) and single["step_time"]["no_worse"]
    assert not peer_summary([record(1.02, 1.0, spread=0.007)])[0]["step_time"]["no_worse"]
    assert peer_summary([record(1.0, 1.005)], tolerance=0.01)[0]["peak_memory"]["no_worse"]
    assert not peer_summary([record(1.0, 1.005)])[0]["peak_memory"]["no_worse"]
