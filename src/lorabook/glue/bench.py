"""Benchmark: time per step, tokens/s and peak memory, LoRA vs full fine-tuning, same batches.

    python -m lorabook.glue.bench --task sst2 --model minilm --steps 20

Each method is measured with each way of making batches (``--batching``):

* ``max_length``: every example padded to ``--max-length`` (what this package did before;
  the "before" of dynamic padding);
* ``longest``: each batch padded to its longest example (dynamic padding, the default of
  every preset);
* ``grouped``: dynamic padding over length-grouped batches
  (:func:`lorabook.train.length_grouped_order`, chunks of 50 batches).

Tokens/s counts real (non-pad) tokens, so the three are comparable: the same examples' worth
of text per second. On a CPU shared with other work the figures are indicative only: say so
with ``--note``; the record keeps the note.

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
from collections.abc import Sequence
from pathlib import Path

import torch

from lorabook.cli import SettingsError, add_debug_flag, cli_main
from lorabook.io import write_json
from lorabook.records import environment, peak_memory

BATCHING = ("max_length", "longest", "grouped")


def measure(
    task: str,
    method: str,
    model: str,
    steps: int,
    batch_size: int,
    max_length: int,
    data_dir: str | None,
    batching: str = "longest",
    warmup: int = 3,
) -> dict:
    """Run ``warmup + steps`` AdamW steps on real ``task`` batches; time the last ``steps``.

    The batches come from one seeded pool of ``50 * batch_size`` training examples, in a
    shuffled order (``max_length``, ``longest``) or length-grouped (``grouped``).
    """
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
    )

    from lorabook.glue.data import GLUE_TASKS, load_glue, subset, tokenize_glue
    from lorabook.glue.presets import LENGTH_GROUP_BATCHES
    from lorabook.methods import prepare_model
    from lorabook.models import resolve_model
    from lorabook.quiet import quiet
    from lorabook.train import epoch_order, length_grouped_order, param_groups

    if batching not in BATCHING:
        raise ValueError(f"batching must be one of {BATCHING}, got {batching!r}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    path = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    with quiet():
        net = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=GLUE_TASKS[task].num_labels
        )
    report = prepare_model(net, method)
    net.to(device).train()
    pool = batch_size * max(steps + warmup, LENGTH_GROUP_BATCHES)
    rows = subset(load_glue(task, "train", data_dir), pool, seed=0)
    data = tokenize_glue(rows, tokenizer, task, max_length)
    lengths = [len(ids) for ids in data["input_ids"]]
    if batching == "grouped":
        order = length_grouped_order(lengths, batch_size, 0, 0, LENGTH_GROUP_BATCHES)
    else:
        order = epoch_order(len(lengths), 0, 0)
    if batching == "max_length":
        collate = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=max_length)
    else:
        collate = DataCollatorWithPadding(tokenizer, padding="longest")
    optimizer = torch.optim.AdamW(param_groups(net, 0.1), lr=1e-4)
    times, real, padded = [], 0, 0
    for i in range(steps + warmup):
        batch = collate([data[j] for j in order[i * batch_size : (i + 1) * batch_size]])
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
            real += int(batch["attention_mask"].sum())
            padded += batch["attention_mask"].numel()
    params = list(net.parameters())
    trainable = sum(p.numel() for p in params if p.requires_grad)
    total = sum(p.numel() for p in params)
    bytes_per = params[0].element_size()
    return {
        "method": method,
        "batching": batching,
        "seconds_per_step": sum(times) / len(times),
        "seconds_per_step_min": min(times),
        "real_tokens_per_second": real / sum(times),
        "padded_tokens_per_second": padded / sum(times),
        "padding_share": 1 - real / padded,
        "peak_memory": peak_memory(device),
        "accounted_training_state_bytes": bytes_per * (total + 3 * trainable),
        "trainable_incl_head": trainable,
        "params": report.to_dict(),
    }


def speedups(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Real tokens/s of each batching relative to ``max_length`` padding, per method (rows
    of one worker on every core)."""
    rows = [r for r in rows if r.get("workers", 1) == 1]
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        base = [r for r in rows if r["method"] == method and r["batching"] == "max_length"]
        if not base:
            continue
        out[method] = {
            r["batching"]: r["real_tokens_per_second"] / base[0]["real_tokens_per_second"]
            for r in rows
            if r["method"] == method
        }
    return out


def _child_command(args: argparse.Namespace, method: str, batching: str) -> list[str]:
    cmd = [sys.executable, "-m", "lorabook.glue.bench", "--one", method, batching]
    cmd += ["--task", args.task, "--model", args.model, "--steps", str(args.steps)]
    cmd += ["--warmup", str(args.warmup), "--batch-size", str(args.batch_size)]
    cmd += ["--max-length", str(args.max_length)]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    return cmd


def _measure_in_children(
    args: argparse.Namespace, method: str, batching: str, workers: int
) -> list[dict]:
    """Measure ``method``/``batching`` in ``workers`` processes at once and print each row.

    One worker uses every core this process may use; several split the cores between them,
    each pinned to its own (as :func:`lorabook.glue.campaign.run_jobs` runs a campaign).
    """
    from lorabook.campaign import available_cores, pin_to_cores, worker_env

    threads = max(1, available_cores() // workers)
    env = worker_env(threads)
    cmd = _child_command(args, method, batching)
    children = [
        subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env if workers > 1 else None,
            preexec_fn=pin_to_cores(w, threads) if workers > 1 else None,
        )
        for w in range(workers)
    ]
    rows = []
    for worker, child in enumerate(children):
        out, err = child.communicate()
        if child.returncode:
            sys.stderr.write(err)
            raise SystemExit(f"benchmark of {method}/{batching} failed (exit {child.returncode})")
        row = json.loads(out.strip().splitlines()[-1])
        rows.append({**row, "workers": workers, "worker": worker, "threads": threads})
        print(
            f"{method:<8}{batching:<12}{workers}x{threads:<4}"
            f"{row['seconds_per_step']:>8.3f} s/step"
            f"{row['real_tokens_per_second']:>10.0f} real tok/s"
            f"{100 * row['padding_share']:>6.0f}% pad"
            f"{row['peak_memory']['bytes'] / 2**20:>8.0f} MiB peak"
            f"{row['accounted_training_state_bytes'] / 2**20:>8.1f} MiB state (acct.)",
            flush=True,
        )
    return rows


def parallel_gains(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Real tokens/s of several workers together relative to one worker on every core,
    per method and batching (rows measured with ``--workers`` > 1 only)."""
    out: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.get("workers", 1) == 1 or r.get("worker", 0) != 0:
            continue
        same = [x for x in rows if (x["method"], x["batching"]) == (r["method"], r["batching"])]
        one = [x["real_tokens_per_second"] for x in same if x.get("workers", 1) == 1]
        together = [x["real_tokens_per_second"] for x in same if x.get("workers") == r["workers"]]
        if one:
            out.setdefault(r["method"], {})[r["batching"]] = sum(together) / one[0]
    return out


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lorabook.glue.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--methods", nargs="+", default=["ft", "lora"])
    parser.add_argument("--batching", nargs="+", default=list(BATCHING), choices=BATCHING)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="also measure this many runs at once, each pinned to its own cores",
    )
    parser.add_argument("--note", default=None, help="a remark kept in the record")
    parser.add_argument("--out", default=None, help="JSON file (default results/bench/...)")
    parser.add_argument("--one", nargs=2, default=None, help=argparse.SUPPRESS)  # child mode
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.workers < 1:
        raise SettingsError(f"--workers must be at least 1, got {args.workers}")
    common = (args.task, args.model, args.steps, args.batch_size, args.max_length, args.data_dir)
    if args.one:
        method, batching = args.one
        print(json.dumps(measure(*common[:1], method, *common[1:], batching, args.warmup)))
        return 0
    rows = []
    for method in args.methods:
        for batching in args.batching:
            for workers in dict.fromkeys((1, args.workers)):
                rows += _measure_in_children(args, method, batching, workers)
    print(f"peak memory = {rows[0]['peak_memory']['kind']}")
    gains = speedups(rows)
    parallel = parallel_gains(rows)
    for method, by in parallel.items():
        print(
            f"{method}: {args.workers} pinned workers together vs one on every core: "
            + ", ".join(f"{b} x{v:.2f}" for b, v in by.items())
        )
    for method, by in gains.items():
        print(
            f"{method}: real tokens/s vs max_length padding: "
            + ", ".join(f"{b} x{v:.2f}" for b, v in by.items())
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = args.model.replace("/", "--")
    out = Path(args.out or f"results/bench/glue-{args.task}-{model}-{device}.json")
    names = ("task", "model", "steps", "batch_size", "max_length", "data_dir")
    write_json(
        out,
        {
            "kind": "glue-bench",
            "settings": {
                **dict(zip(names, common, strict=True)),
                "warmup": args.warmup,
                "batching": args.batching,
            },
            "before_after": {
                "before": "max_length: every example padded to max_length",
                "after": "longest: each batch padded to its longest example (grouped: and "
                "batches of similar length)",
                "real_tokens_per_second_vs_before": gains,
            },
            "parallel": {
                "workers": args.workers,
                "real_tokens_per_second_vs_one_worker": parallel,
            },
            "note": args.note,
            "rows": rows,
            "environment": environment(),
        },
    )
    print(f"written: {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run each (method, batching) in its own process and print/write the comparison."""
    return cli_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
