"""Benchmark: what bf16 autocast and loss-only logits buy a training step on this CPU, and
what bf16 buys beam search (issue 17).

    python benchmarks/precision.py --note "quiet machine, 2 cores"

Training: one process, one model per (model, method), steps interleaved variant by variant
(:func:`lorabook.profile.precision_steps`): fp32 against bf16 autocast, and for SmolLM2 the
E2E loss with the LM head on every position against only where the loss is. Shapes: SmolLM2
at E2E's (batch 8 × 64 tokens), MiniLM at GLUE's (16 × 64). Then our LoRA against peft's in
bf16, interleaved (:func:`lorabook.profile.interleaved_steps`): the lorabook/peft ratio must
stay ≤ 1 there too. Decoding: beam 10 on the first 32 unique E2E test MRs, fp32 against bf16
in turn (:func:`lorabook.profile.decode_speed`), and whether the outputs stay the same.

Every figure is a ratio of steps measured side by side, so a slow drift of the machine's
speed cancels; a busy machine still adds noise: say so with ``--note``. Run time with the
defaults on 2 CPU cores: about 25 minutes (SmolLM2 FT and the four decodes of 32 MRs are
most of it). Writes ``results/bench/precision-<device>.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from lorabook.precision import precision_info
from lorabook.profile import (
    MODELS,
    decode_speed,
    device_kind,
    interleaved_steps,
    precision_steps,
    write_record,
)

SHAPES = {"smollm2": (8, 64), "minilm": (16, 64)}  # E2E's and GLUE's batch × tokens
STEPS = {"cpu": (20, 3), "cuda": (50, 5)}  # (timed rounds, warm-up rounds)


def main(argv: Sequence[str] | None = None) -> int:
    device = device_kind()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(SHAPES))
    parser.add_argument("--methods", nargs="+", default=["lora", "ft"])
    parser.add_argument("--batch", type=int, default=None, help="default: per model (SHAPES)")
    parser.add_argument("--length", type=int, default=None, help="default: per model (SHAPES)")
    parser.add_argument("--steps", type=int, default=STEPS[device][0])
    parser.add_argument("--warmup", type=int, default=STEPS[device][1])
    parser.add_argument(
        "--peer-steps",
        type=int,
        default=STEPS[device][0],
        help="rounds of our LoRA against peft's in bf16, per causal model (0: none)",
    )
    parser.add_argument("--decode-model", default="smollm2", help="'' for no decoding")
    parser.add_argument("--decode-mrs", type=int, default=32)
    parser.add_argument("--num-beams", type=int, default=10)
    parser.add_argument("--batch-mrs", type=int, default=32, help="MRs per generate call")
    parser.add_argument("--decode-rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64, help="E2E's: 64")
    parser.add_argument("--data-dir", default=None, help="default: $LORABOOK_DATA")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's; 1: a campaign's pinned one-thread worker)",
    )
    parser.add_argument("--note", default=None, help="a remark kept in the record")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads or threads)
    try:
        return _bench(args, device)
    finally:
        torch.set_num_threads(threads)  # as it was (a caller's process keeps its setting)


def _bench(args: argparse.Namespace, device: str) -> int:
    rows, peers, sizes = [], [], {}
    for model in args.models:
        batch, length = SHAPES.get(model, (8, 64))
        batch, length = args.batch or batch, args.length or length
        sizes[model] = (batch, length)
        for method in args.methods:
            row = precision_steps(model, method, batch, length, None, args.steps, args.warmup)
            rows.append(row)
            times = "  ".join(f"{v} {s['mean']:.3f} s" for v, s in row["seconds_per_step"].items())
            gains = "  ".join(
                f"{k} ×{s['mean']:.2f} (± {s['noise']:.2f})" for k, s in row["speedups"].items()
            )
            print(f"{model} {method} {batch}×{length}: {times}\n    {gains}", flush=True)
        if args.peer_steps and MODELS[model][1] == "lm":
            peer = interleaved_steps(
                model, ("lora", "peft_lora"), batch, length, args.peer_steps, precision="bf16"
            )
            peers.append(peer)
            ratio = peer["paired_ratio"]
            print(
                f"ours/peft {model} bf16: step time ×{ratio['mean']:.3f} (± {ratio['noise']:.3f})",
                flush=True,
            )
    decode = None
    if args.decode_model:
        decode = decode_speed(
            args.decode_model,
            mrs=args.decode_mrs,
            num_beams=args.num_beams,
            batch_mrs=args.batch_mrs,
            rounds=args.decode_rounds,
            max_new_tokens=args.max_new_tokens,
            data_dir=args.data_dir,
        )
        rates = "  ".join(f"{p} {r:.3f} MRs/s" for p, r in decode["mrs_per_second"].items())
        print(
            f"decode {args.decode_model} beam {args.num_beams}, {decode['mrs']} MRs: {rates}; "
            f"same output {100 * decode['same_output_share']:.0f}%",
            flush=True,
        )
    out = args.out or f"results/bench/precision-{device}.json"
    settings = {
        "models": args.models,
        "methods": args.methods,
        "sizes": sizes,
        "steps": args.steps,
        "warmup": args.warmup,
        "peer_steps": args.peer_steps,
        "decode_model": args.decode_model,
        "decode_mrs": args.decode_mrs,
        "num_beams": args.num_beams,
        "batch_mrs": args.batch_mrs,
        "decode_rounds": args.decode_rounds,
        "max_new_tokens": args.max_new_tokens,
        "threads": torch.get_num_threads(),
    }
    write_record(
        out,
        "precision",
        settings,
        hardware=precision_info(device),
        rows=rows,
        ours_vs_peft_bf16=peers,
        decode=decode,
        note=args.note,
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
