"""The benchmark scripts run end to end at toy sizes and write complete records."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from lorabook.paths import REPO_ROOT


def script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_record(path, kind):
    record = json.loads(path.read_text())
    assert record["kind"] == kind
    env = record["environment"]
    assert env["device"] and env["packages"]["torch"] and "git_commit" in env
    return record


def test_latency_benchmark(tmp_path):
    out = tmp_path / "latency.json"
    args = ["--model", "tiny-gpt2", "--shapes", "1x8", "--trials", "2", "--warmup", "0"]
    assert script("latency").main([*args, "--decoder", "tiny-llama", "--out", str(out)]) == 0
    record = check_record(out, "latency")
    assert {r["model"] for r in record["rows"]} == {"tiny-gpt2", "tiny-llama"}
    assert script("latency").parse_shapes("1x128,4x64") == [(1, 128), (4, 64)]


@pytest.mark.slow  # `make check` (CI) runs it; `make test` leaves it out
def test_training_benchmark(tmp_path):
    out = tmp_path / "training.json"
    args = ["--models", "tiny-llama", "--methods", "lora", "peft_lora", "bitfit"]
    args += ["--steps", "1", "--warmup", "0", "--batch", "1", "--length", "8"]
    args += ["--interleaved-steps", "3"]
    assert script("training").main([*args, "--out", str(out)]) == 0
    record = check_record(out, "training")
    assert [r["method"] for r in record["rows"]] == ["lora", "peft_lora"]
    assert "bitfit" in record["skipped"]["tiny-llama"]
    assert record["ours_vs_peft"][0]["model"] == "tiny-llama"
    (paired,) = record["ours_vs_peft_interleaved"]
    assert paired["seconds_per_step"]["lora"]["n"] == paired["paired_ratio"]["n"] == 3
    only = tmp_path / "only.json"
    assert script("training").main([*args, "--interleaved-only", "--out", str(only)]) == 0
    record = check_record(only, "training")
    assert record["rows"] == [] and len(record["ours_vs_peft_interleaved"]) == 1


def test_precision_benchmark(tmp_path, model_folder, small_data):
    """fp32 against bf16 (and the loss-only logits on a causal LM) step by step, ours against
    peft's LoRA in bf16, and beam search in both precisions, in one record."""
    out = tmp_path / "precision.json"
    args = ["--models", "tiny-llama", "tiny-roberta", "--methods", "lora", "ft"]
    args += ["--batch", "2", "--length", "16", "--steps", "2", "--warmup", "0"]
    args += ["--peer-steps", "2", "--decode-model", str(model_folder), "--decode-mrs", "3"]
    args += ["--num-beams", "2", "--batch-mrs", "2", "--max-new-tokens", "6"]
    args += ["--data-dir", str(small_data), "--threads", "1"]
    threads = torch.get_num_threads()
    assert script("precision").main([*args, "--out", str(out)]) == 0
    assert torch.get_num_threads() == threads  # the caller's setting is given back
    record = check_record(out, "precision")
    assert record["settings"]["threads"] == 1
    rows = {(r["model"], r["method"]): r for r in record["rows"]}
    assert set(rows) == {(m, k) for m in ("tiny-llama", "tiny-roberta") for k in ("lora", "ft")}
    llama, roberta = rows["tiny-llama", "lora"], rows["tiny-roberta", "lora"]
    assert llama["variants"] == ["fp32", "bf16", "fp32+loss-logits", "bf16+loss-logits"]
    assert roberta["variants"] == ["fp32", "bf16"] and set(roberta["speedups"]) == {"bf16_vs_fp32"}
    assert len(llama["speedups"]) == 5 and llama["speedups"]["bf16_vs_fp32"]["n"] == 2
    assert llama["tokens_per_second"]["bf16"] > 0
    (peer,) = record["ours_vs_peft_bf16"]
    assert peer["model"] == "tiny-llama" and peer["precision"] == "bf16"
    decode = record["decode"]
    assert decode["mrs"] == 3 and set(decode["mrs_per_second"]) == {"fp32", "bf16"}
    assert decode["speedup"]["bf16_vs_fp32"]["n"] == 2 and 0 <= decode["same_output_share"] <= 1
    assert record["hardware"]["device"] in ("cpu", "cuda")


def test_interleaved_steps_alternate_the_order_and_pair_the_ratios(monkeypatch):
    from lorabook import profile

    order = []
    real = profile._prepared

    def spy(model_name, method, device, *args):
        model, optimizer, batches, facts = real(model_name, method, device, *args)
        forward = model.forward

        def logged(*a, **k):
            order.append(method)
            return forward(*a, **k)

        model.forward = logged
        return model, optimizer, batches, facts

    monkeypatch.setattr(profile, "_prepared", spy)
    row = profile.interleaved_steps("tiny-llama", ("lora", "peft_lora"), 1, 8, steps=3, warmup=1)
    assert order == [
        "lora",
        "peft_lora",
        "peft_lora",
        "lora",
        "lora",
        "peft_lora",
        "peft_lora",
        "lora",
    ]
    ratios = row["paired_ratio"]
    assert ratios["n"] == 3 and ratios["no_worse"] == (ratios["mean"] <= 1 + ratios["noise"])


def test_time_to_accuracy_benchmark(tmp_path):
    folder = tmp_path / "glue" / "quick" / "m"
    folder.mkdir(parents=True)
    for method, scores in (("ft", [0.6, 0.8]), ("lora", [0.7, 0.79])):
        epochs = [
            {"epoch": i + 1, "accuracy": s, "train_seconds": 2.0} for i, s in enumerate(scores)
        ]
        record = {"task": "rte", "method": method, "model": "m", "preset": "quick", "seed": 0}
        record |= {"metric": "accuracy", "epochs": epochs}
        (folder / f"rte-{method}.json").write_text(json.dumps(record))
    out = tmp_path / "tta.json"
    args = ["--preset", "quick", "--model", "m", "--results", str(tmp_path), "--out", str(out)]
    assert script("time_to_accuracy").main(args) == 0
    (row,) = check_record(out, "time-to-accuracy")["rows"]
    assert row["target"] == 0.785 and row["runs"]["lora"]["seconds"] == 4.0


def test_time_to_accuracy_on_the_cpu_preset_counts_only_the_campaigns_runs(tmp_path, monkeypatch):
    from lorabook.glue import presets
    from lorabook.glue.campaign import Job

    monkeypatch.setattr(presets, "CPU_CHOSEN", {"ft": (5e-5, 2), "lora": (1e-3, 2)})
    runs = {
        Job("rte", "ft", 0): [0.6, 0.8],
        Job("rte", "lora", 0): [0.7, 0.79],
        Job("rte", "lora", 0, 2e-3, 2): [0.9, 0.95],  # a sweep run at another lr: not counted
    }
    for job, scores in runs.items():
        path = job.plan(tmp_path).paths.record
        path.parent.mkdir(parents=True, exist_ok=True)
        epochs = [
            {"epoch": i + 1, "accuracy": s, "elapsed_seconds": 3.0 * (i + 1)}
            for i, s in enumerate(scores)
        ]
        record = {"task": "rte", "method": job.method, "model": "minilm", "preset": "cpu"}
        path.write_text(json.dumps(record | {"seed": 0, "metric": "accuracy", "epochs": epochs}))
    out = tmp_path / "tta.json"
    args = ["--preset", "cpu", "--results", str(tmp_path), "--out", str(out)]
    assert script("time_to_accuracy").main(args) == 0
    (row,) = check_record(out, "time-to-accuracy")["rows"]
    assert row["target"] == 0.785 and row["runs"]["lora"]["seconds"] == 6.0


@pytest.mark.slow  # `make check` (CI) runs it; `make test` leaves it out
def test_glue_bench_measures_pinned_workers_against_one_worker(tmp_path):
    from lorabook.glue import bench
    from lorabook.glue.campaign import available_cores

    out = tmp_path / "bench.json"
    args = ["--task", "rte", "--model", "minilm", "--methods", "lora", "--batching", "grouped"]
    args += ["--steps", "1", "--warmup", "0", "--batch-size", "4", "--workers", "2"]
    assert bench.main([*args, "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    rows = record["rows"]
    assert [(r["workers"], r["worker"]) for r in rows] == [(1, 0), (2, 0), (2, 1)]
    assert all(r["threads"] == max(1, available_cores() // 2) for r in rows[1:])
    ratio = record["parallel"]["real_tokens_per_second_vs_one_worker"]["lora"]["grouped"]
    expected = (
        sum(r["real_tokens_per_second"] for r in rows[1:]) / rows[0]["real_tokens_per_second"]
    )
    assert ratio == pytest.approx(expected)
