"""Command line: ``python -m lorabook.e2e --method lora --model smollm2 --preset cpu``.

The paper's run, on a GPU with the Hugging Face hub:
``python -m lorabook.e2e --model gpt2-medium --method lora --preset paper``
(several GPUs: ``accelerate launch -m lorabook.e2e ...``). ``--method none`` decodes and scores
the untuned model. Several methods/seeds run in turn; finished runs are not recomputed.
"""

from __future__ import annotations

import argparse
import sys

from lorabook.cli import (
    TRAINING_OVERRIDES,
    Override,
    add_checkpoint_flag,
    add_debug_flag,
    add_overrides,
    cli_main,
    given_overrides,
)
from lorabook.e2e.paper_format import DATA_FORMS
from lorabook.e2e.presets import ALGORITHMS, NGRAM_SCOPES, PRESETS, e2e_preset
from lorabook.methods import CAUSAL_LM_METHODS
from lorabook.optimizers import OPTIMIZERS
from lorabook.precision import PRECISIONS
from lorabook.train import CHECKPOINT_EVERY, MIXED_PRECISION, process_state


def yes_no(text: str) -> bool:
    """A command-line truth value: true/false, yes/no, 1/0 (any case)."""
    value = text.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


OVERRIDES: dict[str, Override] = {
    **TRAINING_OVERRIDES,
    "--warmup-steps": ("warmup_steps", int, "linear warm-up steps"),
    "--mixed-precision": ("mixed_precision", str, f"one of {MIXED_PRECISION}"),
    "--max-length": ("max_length", int, "maximum tokens per training example"),
    "--train-examples": ("train_examples", int, "a seeded subset of the training rows"),
    "--eval-examples": ("eval_examples", int, "dev rows for the per-epoch dev loss"),
    "--test-mrs": ("test_mrs", int, "decode only the first N unique test MRs"),
    "--lora-alpha": ("lora_alpha", float, "LoRA alpha (paper: 32)"),
    "--dropout": ("dropout", float, "LoRA's dropout (paper: 0.1)"),
    "--backbone-dropout": (
        "backbone_dropout",
        float,
        "every dropout rate of the model (default: the model's own)",
    ),
    "--adapter-size": (
        "adapter_size",
        int,
        "adapter bottleneck m (Table 3, GPT-2 M: AdapterL 6 or 224, AdapterH 112)",
    ),
    "--prefix-length": ("prefix_length", int, "prefix virtual tokens l_p (default 8)"),
    "--prefix-init": (
        "prefix_init",
        str,
        "the prefix's start: 'random' (peft's N(0, 1)) or a text whose keys and values start it",
    ),
    "--num-beams": ("num_beams", int, "beam size (paper: 10)"),
    "--length-penalty": (
        "length_penalty",
        float,
        "beam length penalty (Table 11: 0.9; official README: 0.8)",
    ),
    "--batch-mrs": ("batch_mrs", int, "MRs per generate call when decoding"),
    "--algorithm": (
        "algorithm",
        str,
        f"beam search: one of {ALGORITHMS} (official: the paper's gpt2_beam.py)",
    ),
    "--ngram-scope": (
        "ngram_scope",
        str,
        f"what the no-repeat-n-gram ban reads: one of {NGRAM_SCOPES} (paper: continuation)",
    ),
    "--decode-precision": ("precision", str, f"decoding arithmetic: one of {PRECISIONS}"),
    "--optimizer": ("optimizer", str, f"one of {OPTIMIZERS} (official: the paper's AdamW)"),
    "--data-form": ("data_form", str, f"one of {DATA_FORMS} (paper: Li & Liang's tokenised)"),
    "--rounds-per-epoch": ("rounds_per_epoch", int, "evaluations per pass over the training set"),
    "--rounds": ("rounds", int, "rounds to train (default: the whole schedule)"),
    "--stop-flat": (
        "stop_flat",
        float,
        "stop once the dev loss improved by less than this fraction over flat_window rounds",
    ),
    "--dev-mrs": ("dev_mrs", int, "dev MRs decoded greedily at each evaluation (BLEU)"),
    "--decode-test": ("decode_test", yes_no, "decode and score the test set (true/false)"),
}


def main(argv: list[str] | None = None) -> int:
    """Run the command line: a user's mistake is one ``error:`` line and exit status 2."""
    from lorabook.e2e.metrics import MetricUnavailableError

    return cli_main(_main, argv, extra_errors=(MetricUnavailableError,))


def _main(argv: list[str] | None = None) -> int:
    """Parse arguments, run each (method, seed), print its scores."""
    from lorabook.e2e.experiment import NO_TRAINING, run_e2e
    from lorabook.runs import DEFAULT_RESULTS

    parser = argparse.ArgumentParser(
        prog="python -m lorabook.e2e",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--method", nargs="+", default=["lora"], choices=(*CAUSAL_LM_METHODS, NO_TRAINING)
    )
    parser.add_argument("--model", default="smollm2", help="smollm2, gpt2-medium, or a folder")
    parser.add_argument("--preset", default="cpu", choices=PRESETS)
    parser.add_argument("--seed", type=int, nargs="+", default=[0])
    parser.add_argument("--data-dir", default=None, help="default: $LORABOOK_DATA")
    parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS))
    parser.add_argument("--no-score", action="store_true", help="decode only, no metrics")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--trained-from",
        default=None,
        metavar="RECORD",
        help="decode the trained tensors of this finished record (same run but for the "
        "decoding settings) instead of training again",
    )
    parser.add_argument(
        "--continue-from",
        default=None,
        metavar="RECORD",
        help="start from the final checkpoint of this finished record (same run but for how "
        "long it trains, run with --keep-checkpoint) instead of from the beginning",
    )
    parser.add_argument(
        "--keep-checkpoint",
        action="store_true",
        help="keep the final checkpoint after the record is written (for --continue-from)",
    )
    add_checkpoint_flag(parser, CHECKPOINT_EVERY)
    add_debug_flag(parser)
    add_overrides(parser, OVERRIDES)
    args = parser.parse_args(argv)
    overrides = given_overrides(args, OVERRIDES)
    if args.continue_from and len(args.method) * len(args.seed) > 1:
        parser.error("--continue-from continues one run: give one --method and one --seed")
    for method in args.method:  # every combination's settings are checked before any runs
        e2e_preset(args.preset, "lora" if method == NO_TRAINING else method).with_overrides(
            **overrides
        ).require_set()
    for method in args.method:
        for seed in args.seed:
            record = run_e2e(
                method,
                args.model,
                args.preset,
                seed,
                args.data_dir,
                args.results_dir,
                overrides,
                progress=not args.no_progress,
                score=not args.no_score,
                trained_from=args.trained_from,
                checkpoint_every=args.checkpoint_every,
                continue_from=args.continue_from,
                keep_checkpoint=args.keep_checkpoint,
            )
            if not process_state().is_main_process:
                continue  # the main process reports
            scores = record.get("scores") or {}
            if "selection" in record:
                print(f"selected: {record['selection']}")
            print(
                f"{method} seed {seed}: "
                + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
                + f" | trainable {record['params']['trainable']:,}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
