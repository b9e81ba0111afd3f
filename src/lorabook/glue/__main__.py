"""Command line: ``python -m lorabook.glue --task sst2 --method lora --model minilm``.

Several GPUs: ``accelerate launch -m lorabook.glue --task sst2 --method lora --preset paper``.
Several tasks/methods: ``--task sst2 mrpc --method ft lora`` runs every combination in turn.
"""

from __future__ import annotations

import argparse
import sys

from lorabook.glue.presets import PRESETS
from lorabook.methods import METHODS
from lorabook.train import MIXED_PRECISION

TASKS = ("sst2", "mrpc", "cola", "rte", "stsb", "mnli", "qnli", "qqp")
OVERRIDES = {  # flag -> (setting, type, help)
    "--epochs": ("epochs", int, "training epochs"),
    "--lr": ("lr", float, "peak learning rate"),
    "--batch-size": ("batch_size", int, "training batch size per device"),
    "--grad-accum": ("grad_accum", int, "gradient accumulation steps"),
    "--mixed-precision": ("mixed_precision", str, f"one of {MIXED_PRECISION}"),
    "--max-length": ("max_length", int, "maximum tokens per example"),
    "--train-examples": ("train_examples", int, "use a seeded subset of the training set"),
    "--eval-examples": ("eval_examples", int, "use a seeded subset of the dev set"),
    "--max-steps-per-epoch": ("max_steps_per_epoch", int, "cap batches per epoch"),
    "--lora-r": ("lora_r", int, "LoRA rank"),
    "--lora-alpha": ("lora_alpha", float, "LoRA alpha (paper 8, official scripts 16)"),
    "--adapter-size": ("adapter_size", int, "adapter bottleneck width"),
}


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run each (task, method) and print its best dev score."""
    from lorabook.glue.experiment import DEFAULT_RESULTS, run_glue

    parser = argparse.ArgumentParser(
        prog="python -m lorabook.glue",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", nargs="+", required=True, choices=TASKS)
    parser.add_argument("--method", nargs="+", default=["lora"], choices=METHODS)
    parser.add_argument(
        "--model",
        default="minilm",
        help="minilm (offline), a hub id like roberta-base, or a local folder",
    )
    parser.add_argument("--preset", default="quick", choices=PRESETS)
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--data-dir",
        default=None,
        help="GLUE TSVs folder's parent (default: $LORABOOK_DATA, then ../shared/data)",
    )
    parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS))
    parser.add_argument("--force", action="store_true", help="rerun even if a record exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    for flag, (dest, kind, help_text) in OVERRIDES.items():
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=help_text)
    args = parser.parse_args(argv)
    overrides = {
        dest: getattr(args, dest)
        for dest, _, _ in OVERRIDES.values()
        if getattr(args, dest) is not None
    }
    for task in args.task:
        for method in args.method:
            for seed in args.seed:
                record = run_glue(
                    task,
                    method,
                    args.model,
                    args.preset,
                    seed,
                    args.data_dir,
                    args.results_dir,
                    overrides,
                    args.force,
                    not args.no_progress,
                )
                best = ", ".join(
                    f"{k} {v:.4f}"
                    for k, v in record["best"].items()
                    if k not in ("train_loss", "train_seconds")
                )
                print(
                    f"{task} {method} seed {seed}: best epoch {record['best_epoch']}: {best} "
                    f"| trainable {record['params']['trainable']:,} (head excluded)"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
