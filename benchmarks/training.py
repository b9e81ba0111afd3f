"""Benchmark: training cost per method (time per step, tokens/s, memory by account,
checkpoint bytes, energy), our LoRA beside peft's on the same shapes in the same run.

    python benchmarks/training.py                   # CPU sizes (below)
    python benchmarks/training.py --models minilm   # one model

Each (model, method) runs in a fresh process (``python -m lorabook.profile train``), so its
peak memory (the CUDA allocator's peak, or the process's peak RSS on a CPU) is its own.
Models: RoBERTa-base and GPT-2 medium (architectures from their configurations, random
weights: cost does not depend on the values), MiniLM and SmolLM2 (the book's offline
pretrained models). Methods: FT, BitFit, the adapters, LoRA and ``peft_lora`` (peft's LoRA
on the same targets); a method ``prepare_model`` cannot apply to a model (BitFit on Llama,
which has no biases; adapters on decoders before they are written) is listed as skipped.
Energy comes from NVML on an NVIDIA GPU; on a CPU the record says "not measurable here".

Run time: CPU defaults about 40 minutes on 2 cores (GPT-2 medium FT is the longest, ~30 s
per step at 4×128); GPU defaults a few minutes. Writes ``results/bench/training-<device>.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lorabook.profile import (
    device_kind,
    in_fresh_process,
    interleaved_steps,
    peer_ratios,
    write_record,
)

METHODS = ["ft", "bitfit", "adapter_h", "adapter_p", "adapter_l", "lora", "peft_lora"]
# (batch, length) per model: CPU sizes that fit 2 cores in minutes; GPU sizes near the paper's
SIZES = {
    "cpu": {
        "roberta-base": (4, 128),
        "gpt2-medium": (2, 128),
        "minilm": (16, 128),
        "smollm2": (4, 128),
    },
    "cuda": {
        "roberta-base": (16, 128),
        "gpt2-medium": (8, 512),
        "minilm": (32, 128),
        "smollm2": (8, 512),
    },
}
STEPS = {"cpu": (5, 2), "cuda": (20, 5)}  # (timed steps, warm-up steps)
INTERLEAVED_STEPS = {"cpu": 20, "cuda": 50}  # ours and peft's LoRA in turn, in one process


def main(argv: Sequence[str] | None = None) -> int:
    device = device_kind()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(SIZES[device]))
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--batch", type=int, default=None, help="default: per model and device")
    parser.add_argument("--length", type=int, default=None)
    parser.add_argument("--steps", type=int, default=STEPS[device][0])
    parser.add_argument("--warmup", type=int, default=STEPS[device][1])
    parser.add_argument(
        "--interleaved-steps",
        type=int,
        default=INTERLEAVED_STEPS[device],
        help="steps of ours and peft's LoRA in turn in one process, per model (0: none)",
    )
    parser.add_argument(
        "--interleaved-only",
        action="store_true",
        help="only the interleaved ours-vs-peft steps (no fresh process per method)",
    )
    parser.add_argument("--note", default=None, help="a remark kept in the record")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    rows, skipped, sizes = [], {}, {}
    header = f"{'model':<14}{'method':<11}{'s/step':>9}{'tok/s':>9}{'peak MiB':>10}"
    header += f"{'W+G+O+A MiB':>13}{'ckpt MB':>10}{'trainable':>13}"
    print(header)
    for model in args.models:
        batch, length = SIZES[device].get(model, (8, 128))
        batch, length = args.batch or batch, args.length or length
        sizes[model] = (batch, length)
        for method in [] if args.interleaved_only else args.methods:
            cmd = ["train", "--model", model, "--method", method, "--batch", str(batch)]
            cmd += ["--length", str(length), "--steps", str(args.steps)]
            cmd += ["--warmup", str(args.warmup)]
            row = in_fresh_process(cmd)
            if "unavailable" in row:
                skipped.setdefault(model, {})[method] = row["unavailable"]
                print(f"{model:<14}{method:<11} skipped: {row['unavailable'][:90]}")
                continue
            rows.append(row)
            acct = sum(row["memory_accounts"].values())
            print(
                f"{model:<14}{method:<11}{row['seconds_per_step']['mean']:>9.3f}"
                f"{row['tokens_per_second']:>9.0f}{row['peak_memory']['bytes'] / 2**20:>10.0f}"
                f"{acct / 2**20:>13.0f}{row['checkpoint_bytes'] / 1e6:>10.2f}"
                f"{row['params']['trainable_incl_head']:>13,}",
                flush=True,
            )
    ratios = peer_ratios(rows)
    for r in ratios:
        print(
            f"ours/peft {r['model']}: step time ×{r['step_time_ratio']:.3f} "
            f"(± {r['step_time_ratio_spread']:.3f}), peak memory ×{r['peak_memory_ratio']:.3f}"
        )
    interleaved = []
    for model in args.models if args.interleaved_steps else []:
        batch, length = sizes[model]
        row = interleaved_steps(model, ("lora", "peft_lora"), batch, length, args.interleaved_steps)
        interleaved.append(row)
        ratio = row["paired_ratio"]
        print(
            f"ours/peft {model}, interleaved in one process: step time ×{ratio['mean']:.3f} "
            f"(± {ratio['noise']:.3f}, {ratio['n']} paired steps)",
            flush=True,
        )
    out = args.out or f"results/bench/training-{device}.json"
    settings = {
        "models": args.models,
        "methods": args.methods,
        "sizes": sizes,
        "steps": args.steps,
        "warmup": args.warmup,
        "interleaved_steps": args.interleaved_steps,
        "interleaved_only": args.interleaved_only,
        "peak_memory": "torch.cuda.max_memory_allocated"
        if device == "cuda"
        else "peak RSS of a fresh process per method",
    }
    write_record(
        out,
        "training",
        settings,
        rows=rows,
        skipped=skipped,
        ours_vs_peft=ratios,
        ours_vs_peft_interleaved=interleaved,
        note=args.note,
    )
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
