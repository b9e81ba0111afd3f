"""Benchmark: time (and energy, on a GPU) for FT and for LoRA to first reach the same dev
score, from the GLUE records' per-epoch history (the seed reproduction's iso-accuracy test).

    python benchmarks/time_to_accuracy.py --preset cpu --model minilm

For the ``cpu`` preset only the campaign's runs count (:mod:`lorabook.glue.campaign`: the
picked settings, not the sweep's other learning rates); for every preset, one seed
(``--seed``, default 0).

The target is the lower of the two best dev scores minus half a point
(:func:`lorabook.profile.time_to_equal_accuracy`). Records that ``fit`` wrote with the
elapsed time at each evaluation use it; older ones fall back to the cumulative training
seconds (the record says which clock). Reads records only, trains nothing: seconds to run.
Writes ``results/bench/time-to-accuracy-<preset>-<model>.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from lorabook.profile import iso_accuracy_table, write_record
from lorabook.runs import find_records, model_slug


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--methods", nargs=2, default=["ft", "lora"])
    parser.add_argument("--margin", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results", default="results")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    fields = {"preset": args.preset, "model": args.model, "seed": args.seed}
    records = find_records(args.results, "glue", **fields)
    if args.preset == "cpu":  # the campaign's runs, not the sweep's
        from lorabook.glue.campaign import campaign_jobs
        from lorabook.glue.report import campaign_records

        jobs = [j for j in campaign_jobs() if j.seed == args.seed and j.method in args.methods]
        records = list(campaign_records(args.results, jobs).values())
    if not records:
        raise SystemExit(
            f"no GLUE records under {args.results}/glue/{args.preset}/{model_slug(args.model)}/"
        )
    rows = iso_accuracy_table(records, args.methods, args.margin)
    a, b = args.methods
    print(f"{'task':<7}{'metric':<13}{'target':>8}  {a:>12}  {b:>12}  {b}/{a}")
    for r in rows:
        ta, tb = r["runs"][a], r["runs"][b]
        print(
            f"{r['task']:<7}{r['metric']:<13}{100 * r['target']:>8.1f}  "
            f"{ta['seconds']:>9.1f} s e{ta['epoch']}  {tb['seconds']:>9.1f} s e{tb['epoch']}  "
            f"×{tb['seconds'] / ta['seconds']:.2f}"
        )
    out = args.out or str(
        Path("results/bench") / f"time-to-accuracy-{args.preset}-{model_slug(args.model)}.json"
    )
    settings = {
        "preset": args.preset,
        "model": args.model,
        "methods": args.methods,
        "margin": args.margin,
        "seed": args.seed,
    }
    write_record(out, "time-to-accuracy", settings, rows=rows)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
