"""Benchmark: time per training step and peak memory, LoRA vs full fine-tuning, same batches.

    python -m lorabook.glue.bench --task sst2 --model minilm --steps 20

Each method runs in a fresh process, so that the peak memory measured (CUDA allocator peak
on a GPU, process peak RSS on a CPU) belongs to that method alone. Beside the measurement it
prints the memory the training state needs by account: weights + gradients + AdamW's two
moments, which is where LoRA's saving comes from (paper, Section 4.2: up to 2/3 less VRAM).
This is a benchmark, not a test: timings depend on the machine; the result is written as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from lorabook.io import write_json
from lorabook.records import environment, peak_memory


def measure(
    task: str,
    method: str,
    model: str,
    steps: int,
    batch_size: int,
    max_length: int,
    data_dir: str | None,
    warmup: int = 3,
) -> dict:
    """Run ``warmup + steps`` AdamW steps on real ``task`` batches; time the last ``steps``."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
    )

    from lorabook.glue.data import GLUE_TASKS, load_glue, subset, tokenize_glue
    from lorabook.methods import prepare_model
    from lorabook.models import resolve_model
    from lorabook.train import param_groups

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    path = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    net = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=GLUE_TASKS[task].num_labels
    )
    report = prepare_model(net, method)
    net.to(device).train()
    rows = subset(load_glue(task, "train", data_dir), batch_size * (steps + warmup), seed=0)
    data = tokenize_glue(rows, tokenizer, task, max_length)
    collate = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max_length)
    optimizer = torch.optim.AdamW(param_groups(net, 0.1), lr=1e-4)
    times = []
    for i in range(steps + warmup):
        batch = collate([data[j] for j in range(i * batch_size, (i + 1) * batch_size)])
        batch = {k: v.to(device) for k, v in batch.items()}
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        net(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    params = list(net.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    total = sum(p.numel() for p in params)
    bytes_per = params[0].element_size()
    return {
        "method": method,
        "seconds_per_step": sum(times) / len(times),
        "seconds_per_step_min": min(times),
        "peak_memory": peak_memory(device),
        "accounted_training_state_bytes": bytes_per * (total + 3 * trainable),
        "trainable_incl_head": trainable,
        "params": report.to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    """Run each method in its own process and print/write the comparison."""
    parser = argparse.ArgumentParser(
        prog="python -m lorabook.glue.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--methods", nargs="+", default=["ft", "lora"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", default=None, help="JSON file (default results/bench/...)")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args(argv)
    settings = (args.task, args.model, args.steps, args.batch_size, args.max_length, args.data_dir)
    if args.one:
        print(
            json.dumps(
                measure(
                    args.task,
                    args.one,
                    args.model,
                    args.steps,
                    args.batch_size,
                    args.max_length,
                    args.data_dir,
                )
            )
        )
        return 0
    rows = []
    for method in args.methods:
        cmd = [
            sys.executable,
            "-m",
            "lorabook.glue.bench",
            "--one",
            method,
            "--task",
            args.task,
            "--model",
            args.model,
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--max-length",
            str(args.max_length),
        ]
        if args.data_dir:
            cmd += ["--data-dir", args.data_dir]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"benchmark of {method} failed (exit {done.returncode})")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{'method':<10}{'s/step':>10}{'peak MiB':>12}{'state MiB (acct.)':>20}{'trainable':>14}")
    for r in rows:
        print(
            f"{r['method']:<10}{r['seconds_per_step']:>10.3f}"
            f"{r['peak_memory']['bytes'] / 2**20:>12.0f}"
            f"{r['accounted_training_state_bytes'] / 2**20:>20.1f}"
            f"{r['params']['trainable']:>14,}"
        )
    print(f"peak memory = {rows[0]['peak_memory']['kind']}")
    env = environment()
    out = (
        Path(args.out)
        if args.out
        else Path("results/bench")
        / (
            f"glue-{args.task}-{args.model.replace('/', '--')}-"
            f"{'cuda' if torch.cuda.is_available() else 'cpu'}.json"
        )
    )
    write_json(
        out,
        {
            "kind": "glue-bench",
            "settings": dict(
                zip(
                    ("task", "model", "steps", "batch_size", "max_length", "data_dir"),
                    settings,
                    strict=True,
                )
            ),
            "rows": rows,
            "environment": env,
        },
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
