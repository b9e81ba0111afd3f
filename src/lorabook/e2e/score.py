"""Command line: score a file of E2E system outputs with the five official metrics.

    python -m lorabook.e2e.score OUTPUTS [--refs CSV_OR_BLOCKS] [--variant paper|challenge] [--json]

OUTPUTS has one output per line, one line per MR, in the order in which the MRs first appear
in the references. ``--refs`` is an E2E CSV (columns ``mr``, ``ref``; default
``<data>/e2e/testset_w_refs.csv``) or a text file in the official e2e-metrics layout (one block
of references per MR, blocks separated by an empty line). ``--variant`` picks how BLEU and NIST
are computed (``lorabook.e2e.metrics.VARIANTS``): ``challenge`` (default) as the official
script's Perl mteval, ``paper`` as its ``-p`` Python pymteval. Bad input exits with status 2 and
a one-line message.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from lorabook.e2e.metrics import (
    METRICS,
    VARIANTS,
    MetricUnavailableError,
    e2e_scores,
    read_outputs,
    read_references,
)
from lorabook.paths import data_dir


def default_references() -> Path:
    """The E2E test references: ``data_dir() / "e2e" / "testset_w_refs.csv"``."""
    return data_dir() / "e2e" / "testset_w_refs.csv"


def format_table(scores: dict[str, float]) -> str:
    """The scores one per line, with 4 decimals as the official script prints them."""
    return "\n".join(f"{name:<8} {scores[name]:.4f}" for name in METRICS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 on bad input)."""
    parser = argparse.ArgumentParser(
        prog="python -m lorabook.e2e.score",
        description="BLEU, NIST, METEOR, ROUGE_L and CIDEr of E2E outputs, as the official "
        "e2e-metrics script computes them.",
    )
    parser.add_argument("outputs", type=Path, help="system outputs, one per line (one per MR)")
    parser.add_argument(
        "--refs",
        type=Path,
        default=None,
        help="E2E CSV (mr,ref) or blank-line-separated reference blocks; "
        "default: <data>/e2e/testset_w_refs.csv",
    )
    parser.add_argument(
        "--variant",
        choices=VARIANTS,
        default="challenge",
        help="how BLEU and NIST are computed: 'challenge' (default), the official script's Perl "
        "mteval-v13a-sig.pl, as the E2E challenge scored; 'paper', the script's Python pymteval "
        "(measure_scores.py -p), as the LoRA paper scored Table 3. METEOR, ROUGE_L and CIDEr "
        "are the same in both",
    )
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args = parser.parse_args(argv)

    try:
        refs_path = args.refs if args.refs is not None else default_references()
        outputs = read_outputs(args.outputs)
        references = read_references(refs_path)
        if len(outputs) != len(references):
            raise ValueError(
                f"{args.outputs} has {len(outputs)} lines but {refs_path} has "
                f"{len(references)} MRs: write one output per MR, in the references' order"
            )
        scores = e2e_scores(outputs, references, variant=args.variant)
    except (FileNotFoundError, ValueError, MetricUnavailableError) as err:
        print(f"error: {err}".replace("\n", " "), file=sys.stderr)
        return 2
    print(json.dumps(scores, indent=2) if args.json else format_table(scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())
