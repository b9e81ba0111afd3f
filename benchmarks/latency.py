"""Benchmark: inference latency of one forward pass, the paper's Table 1 on our hardware.

    python benchmarks/latency.py                 # CPU: GPT-2 medium at 1×128 and 4×128
    python benchmarks/latency.py --shapes paper  # GPU: 32×512, 16×256, 1×128 (CUDA events)

GPT-2 medium's architecture with random weights (built from its configuration, no
download): the base model, LoRA merged, LoRA unmerged (r = 4 on W_q, W_v), AdapterL and
AdapterH with Table 1's adapter budgets at Table 1's shapes (0.5M parameters at 32×512, 11M
at 16×256 and 1×128) and a bottleneck width of 64 at the shapes Table 1 does not have;
then SmolLM2, the book's decoder, at batch 1. The variants are timed interleaved, trial by
trial (:func:`lorabook.profile.time_interleaved`). A method that this version of
``lorabook.methods.prepare_model`` cannot apply to the model is skipped with its reason.

Run time: CPU defaults (30 trials) about 15 minutes on 2 cores; GPU paper shapes
(100 trials) about 5 minutes. Writes ``results/bench/latency-<device>.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lorabook.profile import (
    LATENCY_VARIANTS,
    PAPER_SHAPES,
    device_kind,
    measure_latency,
    write_record,
)

CPU_SHAPES = ((1, 128), (4, 128))
SHAPES = {"paper": PAPER_SHAPES, "cpu": CPU_SHAPES}


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """``paper``, ``cpu`` or ``BxL,BxL`` (e.g. ``1x128,4x64``)."""
    if text in SHAPES:
        return list(SHAPES[text])
    try:
        return [tuple(int(v) for v in s.lower().split("x", 1)) for s in text.split(",")]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"shapes: paper, cpu or BxL,BxL; got {text!r}") from err


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="gpt2-medium")
    parser.add_argument("--shapes", type=parse_shapes, default=None, help="default: by device")
    parser.add_argument("--variants", nargs="+", default=list(LATENCY_VARIANTS))
    parser.add_argument("--trials", type=int, default=None, help="default 100 GPU, 30 CPU")
    parser.add_argument("--warmup", type=int, default=None, help="default 10 GPU, 3 CPU")
    parser.add_argument("--decoder", default="smollm2", help="timed at batch 1; '' to skip")
    parser.add_argument("--decoder-length", type=int, default=128)
    parser.add_argument("--note", default=None, help="a remark kept in the record")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    device = device_kind()
    gpu = device == "cuda"
    shapes = args.shapes or list(PAPER_SHAPES if gpu else CPU_SHAPES)
    trials = args.trials or (100 if gpu else 30)
    warmup = args.warmup if args.warmup is not None else (10 if gpu else 3)

    print(f"{args.model}, {device}, {trials} trials after {warmup} warm-up rounds")
    main_part = measure_latency(args.model, shapes, args.variants, trials, warmup)
    parts = {args.model: main_part}
    if args.decoder:
        print(f"{args.decoder}, batch 1")
        shape = [(1, args.decoder_length)]
        parts[args.decoder] = measure_latency(
            args.decoder, shape, args.variants, trials, warmup, adapter_params={}
        )
    rows = [{"model": m, **row} for m, part in parts.items() for row in part["rows"]]
    unavailable = {m: part["unavailable"] for m, part in parts.items()}
    out = args.out or f"results/bench/latency-{device}.json"
    settings = {
        "model": args.model,
        "shapes": shapes,
        "variants": args.variants,
        "trials": trials,
        "warmup": warmup,
        "decoder": args.decoder,
        "decoder_length": args.decoder_length,
        "timer": "CUDA events" if gpu else "time.perf_counter",
        "interleaved": True,
    }
    write_record(out, "latency", settings, rows=rows, unavailable=unavailable, note=args.note)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
