"""Command line: ``python -m lorabook.glue --task sst2 --method lora --model minilm``.

Several GPUs: ``accelerate launch -m lorabook.glue --task sst2 --method lora --preset paper``.
Several CPU processes: ``torchrun --nproc_per_node 2 -m lorabook.glue --task rte ...`` (gloo).
``--batch-size`` is the step's: N processes take batch / N each (``--batch-scope process``: each
takes the whole batch, N times the step); a run of N > 1 processes is a run of its own.
Several tasks/methods: ``--task sst2 mrpc --method ft lora`` runs every combination in turn.
LoRA on other attention weights (Section 7): ``--lora-targets q k v o --lora-r 2``.

Each run's record is named by a hash of all its settings, so changing one (``--epochs 1``)
makes a new record beside the others instead of returning an old one; the path is printed.
Every combination's settings are checked before the first one loads anything; a mistake
prints one ``error:`` line and exits with status 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from lorabook.cli import (
    TRAINING_OVERRIDES,
    Override,
    add_checkpoint_flag,
    add_debug_flag,
    add_overrides,
    cli_main,
    given_overrides,
)
from lorabook.glue.presets import LORA_TARGETS, PADDING, PRESETS
from lorabook.methods import METHODS
from lorabook.runs import DEFAULT_RESULTS
from lorabook.train import CHECKPOINT_EVERY, MIXED_PRECISION

TASKS = ("sst2", "mrpc", "cola", "rte", "stsb", "mnli", "qnli", "qqp")
ALL = "all"


def count_or_all(text: str) -> int | str:
    """An example count for ``--train-examples``/``--eval-examples``: a whole number or 'all'."""
    if text == ALL:
        return ALL
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or '{ALL}', got {text!r}"
        ) from None


OVERRIDES: dict[str, Override] = {
    **TRAINING_OVERRIDES,
    "--mixed-precision": ("mixed_precision", str, f"one of {MIXED_PRECISION}"),
    "--max-length": ("max_length", int, "maximum tokens per example"),
    "--train-examples": (
        "train_examples",
        count_or_all,
        f"a seeded subset of the training set ('{ALL}': the whole set)",
    ),
    "--eval-examples": (
        "eval_examples",
        count_or_all,
        f"a seeded subset of the dev set ('{ALL}': the whole set)",
    ),
    "--max-steps-per-epoch": ("max_steps_per_epoch", int, "cap batches per epoch"),
    "--lora-alpha": ("lora_alpha", float, "LoRA alpha (paper 8, official scripts 16)"),
    "--adapter-size": ("adapter_size", int, "adapter bottleneck width"),
    "--adapter-p-variant": (
        "adapter_p_variant",
        str,
        "what adapter_p trains: 'pfeiffer' (Pfeiffer's adapter) or 'houlsby_ffn' (Houlsby's FFN "
        "adapter alone, adapter_p before issue 20; the cpu preset's)",
    ),
    "--padding": ("padding", str, f"{PADDING[0]!r}: pad a batch to its longest; {PADDING[1]!r}"),
    "--pooling": (
        "pooling",
        str,
        "what the classifier reads: 'cls' (the model's own [CLS] head, default) or 'mean' (the "
        "masked mean of the tokens, what all-MiniLM-L6-v2 was trained for)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m lorabook.glue`` argument parser."""
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
        help="the folder holding glue/ (default: $LORABOOK_DATA if set, else ../shared/data)",
    )
    parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS))
    parser.add_argument(
        "--force",
        action="store_true",
        help="rerun even if a record of exactly these settings exists (replaces only that one)",
    )
    parser.add_argument(
        "--keep-scratch",
        action="store_true",
        help="keep the run's checkpoint folder (results/_scratch/...) after its record is written",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_checkpoint_flag(parser, CHECKPOINT_EVERY)
    add_overrides(parser, OVERRIDES)
    parser.add_argument(
        "--lora-targets",
        dest="lora_targets",
        nargs="+",
        default=None,
        metavar="NAME",
        help=f"the attention weights LoRA adapts, of {' '.join(LORA_TARGETS)} (W_q, W_k, W_v, "
        "W_o; default: q v, the paper's)",
    )
    parser.add_argument(
        "--group-by-length",
        dest="group_by_length",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="batches of similar length (seeded), less padding (default: the preset's)",
    )
    add_debug_flag(parser)
    return parser


def overrides_from(args: argparse.Namespace) -> dict:
    """The settings the command line changes (``'all'`` examples → ``None``)."""
    given = given_overrides(args, OVERRIDES)
    overrides = {dest: None if value == ALL else value for dest, value in given.items()}
    if args.group_by_length is not None:
        overrides["group_by_length"] = args.group_by_length
    if args.lora_targets is not None:
        overrides["lora_targets"] = tuple(args.lora_targets)
    return overrides


def _main(argv: Sequence[str] | None) -> int:
    from lorabook.glue.experiment import plan_glue_run, run_glue
    from lorabook.train import process_state

    args = build_parser().parse_args(argv)
    overrides = overrides_from(args)
    runs = [(t, m, s) for t in args.task for m in args.method for s in args.seed]
    for task, method, seed in runs:  # check every combination before running any
        plan_glue_run(task, method, args.model, args.preset, seed, args.results_dir, overrides)
    for task, method, seed in runs:
        record = run_glue(
            task,
            method,
            args.model,
            args.preset,
            seed,
            args.data_dir,
            args.results_dir,
            overrides,
            force=args.force,
            progress=not args.no_progress,
            keep_scratch=args.keep_scratch,
            checkpoint_every=args.checkpoint_every,
        )
        best = ", ".join(
            f"{k} {v:.4f}"
            for k, v in record["best"].items()
            # the epoch's metrics, not its loss curve, clocks or energy
            if k
            not in ("train_loss", "loss_curve", "train_seconds", "elapsed_seconds", "energy_joules")
        )
        if not process_state().is_main_process:
            continue  # the main process reports
        print(
            f"{task} {method} seed {seed}: best epoch {record['best_epoch']} of "
            f"{len(record['epochs'])}: {best} "
            f"| trainable {record['params']['trainable']:,} (head excluded)"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run each (task, method, seed) and print its best dev score and its record's path."""
    return cli_main(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
