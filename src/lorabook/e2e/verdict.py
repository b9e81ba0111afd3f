"""Our Table 3 over seeds, and the verdicts it supports (issue 18), computed from records.

Table 3 (GPT-2 M) puts LoRA above full fine-tuning and every other method on all five
metrics, with its spread over seeds beside each number. Our campaign's runs
(:func:`lorabook.e2e.campaign.runs_jobs`: LoRA and FT with three seeds, the other methods
with one) are read the same way: per method and metric, the mean and standard deviation over
seeds of the paper's scoring (``scores_paper``: ``measure_scores.py -p``, Table 3's units).

**How a difference is judged** (written before the runs finished):

- **BLEU**, seed by seed: LoRA's outputs against the other method's outputs of the same seed
  (a one-seed method: against each of LoRA's seeds), a paired bootstrap over the 630 test MRs
  (:func:`lorabook.e2e.compare.paired_bootstrap_bleu`, 10,000 resamples, 95% interval).
  ``above`` if every pair's interval lies above zero, ``below`` if every pair's lies below,
  else ``not separable``.
- **NIST, METEOR, ROUGE-L, CIDEr** (no resampled form here, see :mod:`lorabook.e2e.compare`):
  the difference of the means against the seeds' spread, the larger of the two methods'
  standard deviations over seeds. ``above`` / ``below`` if the difference exceeds it, else
  ``within the spread``; with one seed on both sides there is no spread: ``one seed each``.

Beside the rule, not part of it (added once seed 0 of every method was scored): ROUGE-L and
CIDEr are means of per-MR scores, so :func:`resampled` judges them as BLEU is judged, seed
pair by seed pair, for a reader who wants more than "one seed each" on those two metrics.

``not separable``, ``within the spread`` and ``one seed each`` are "on par". How a method's
comparisons become the verdict on Table 3's claim is :func:`lorabook.verdict.judge_above`.

The spread rule is lenient, and is kept as it was committed before the runs: with three
seeds a side and equal spreads, "difference > one standard deviation" is a t of about 1.2 on
about four degrees of freedom. Each comparison therefore also carries ``t``, the difference
over its standard error √(s₁²/n₁ + s₂²/n₂) (Welch's statistic; ``None`` without two seeds on
both sides), for a reader to weigh an ``above`` or a ``below``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path

from lorabook.e2e.report import as_table3, outputs_of

METRICS = ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")
ABOVE, BELOW = "above", "below"


def runs_records(results_dir: str | Path, model: str = "smollm2") -> dict[str, list[dict]]:
    """Per method, the scored records of the campaign's runs (seeds in order); empty while
    the campaign has no runs to read (the sweep's pick or a pilot is missing)."""
    from lorabook.cli import SettingsError
    from lorabook.e2e import campaign

    try:
        jobs = campaign.runs_jobs(results_dir, model)
    except SettingsError:
        return {}
    out: dict[str, list[dict]] = {}
    for job in jobs:
        paths = job.plan(results_dir, model).paths
        record = paths.finished()
        if record is not None and record.get("scores_paper"):
            out.setdefault(job.method, []).append({**record, "_path": str(paths.record)})
    return out


def _scores(records: Sequence[Mapping], metric: str) -> list[float]:
    return [as_table3(r["scores_paper"])[metric] for r in records]


def table_rows(found: Mapping[str, Sequence[Mapping]]) -> list[dict]:
    """Our Table 3: per method its trainable parameters, seeds, and each metric's mean and
    standard deviation over seeds (``None`` with one seed)."""
    rows = []
    for method, records in found.items():
        row: dict = {
            "method": method,
            "trainable": records[0]["params"]["trainable"],
            "seeds": [r["seed"] for r in records],
        }
        for metric in METRICS:
            values = _scores(records, metric)
            row[metric] = statistics.mean(values)
            row[f"{metric} std"] = statistics.stdev(values) if len(values) > 1 else None
        rows.append(row)
    return rows


def shown_rows(found: Mapping[str, Sequence[Mapping]]) -> list[dict]:
    """:func:`table_rows` as chapter 4.9 prints them beside the paper's: Table 3's method
    name, trainable parameters, how many seeds (a one-seed row says so: it has no spread),
    the data form its records trained and scored in (``csv``, the official files, or
    ``paper``, Li & Liang's tokenised form in which the paper scores), and each metric as
    ``mean ± std`` (``mean`` alone for one seed), two decimals, in Table 3's units."""
    from lorabook.e2e.report import NAMES

    out = []
    for row in table_rows(found):
        forms = {r.get("settings", {}).get("data_form", "csv") for r in found[row["method"]]}
        seeds = len(row["seeds"])
        shown = {
            "method": NAMES.get(row["method"], row["method"]),
            "trainable": f"{row['trainable']:,}",
            "seeds": f"{seeds}" if seeds > 1 else "1 (one seed: no spread)",
            "data form": ", ".join(sorted(forms)),
        }
        for metric in METRICS:
            std = row[f"{metric} std"]
            shown[metric] = f"{row[metric]:.2f}" + (f" ± {std:.2f}" if std is not None else "")
        out.append(shown)
    return out


def judge_by_spread(ours: Sequence[float], theirs: Sequence[float]) -> dict:
    """The difference of two methods' means on one metric against the seeds' spread (the
    larger standard deviation over seeds; module docstring)."""
    spreads = [statistics.stdev(v) for v in (ours, theirs) if len(v) > 1]
    difference = statistics.mean(ours) - statistics.mean(theirs)
    if not spreads:
        verdict = "one seed each"
    else:
        spread = max(spreads)
        verdict = (
            ABOVE if difference > spread else BELOW if difference < -spread else "within the spread"
        )
    t = None
    if len(ours) > 1 and len(theirs) > 1:
        error = math.sqrt(sum(statistics.variance(v) / len(v) for v in (ours, theirs)))
        t = difference / error if error > 0 else None
    return {
        "difference": difference,
        "spread": max(spreads) if spreads else None,
        "t": t,
        "verdict": verdict,
    }


def seed_pairs(ours: Sequence[Mapping], theirs: Sequence[Mapping]) -> list[tuple[Mapping, Mapping]]:
    """The records compared run by run: seed with seed; a one-seed side with every seed of
    the other."""
    if len(theirs) == 1 or len(ours) == 1:
        return [(a, b) for a in ours for b in theirs]
    by_seed = {r["seed"]: r for r in theirs}
    return [(a, by_seed[a["seed"]]) for a in ours if a["seed"] in by_seed]


def _references(record: Mapping, root: str | Path) -> list[list[str]]:
    from lorabook.e2e.metrics import read_reference_blocks

    return read_reference_blocks(Path(root, record["_path"]).with_suffix("") / "references.txt")


def bleu_pairs(
    ours: Sequence[Mapping], theirs: Sequence[Mapping], root: str | Path, **bootstrap: object
) -> list[dict]:
    """The paired bootstrap of BLEU for each seed pair (:func:`seed_pairs`), ours minus
    theirs."""
    from lorabook.e2e.compare import paired_bootstrap_bleu

    out = []
    for a, b in seed_pairs(ours, theirs):
        refs = _references(a, root)
        result = paired_bootstrap_bleu(outputs_of(a, root), outputs_of(b, root), refs, **bootstrap)
        out.append({"seeds": (a["seed"], b["seed"]), **result})
    return out


def judge_bleu(pairs: Sequence[Mapping]) -> str:
    """``above`` if every pair's interval lies above zero, ``below`` if every one lies below,
    else ``not separable``."""
    if pairs and all(p["low"] > 0 for p in pairs):
        return ABOVE
    if pairs and all(p["high"] < 0 for p in pairs):
        return BELOW
    return "not separable"


def findings(judged: Sequence[Mapping]) -> dict[str, dict[str, str]]:
    """What chapter 4.9's reading of Table 3's claim is written for, from :func:`verdicts`'
    rows: LoRA against FT, metric by metric, and against each other method on BLEU (the
    one-seed methods are read on BLEU only)."""
    return {
        "against FT": {r["metric"]: r["verdict"] for r in judged if r["versus"] == "ft"},
        "against the one-seed methods (BLEU)": {
            r["versus"]: r["verdict"]
            for r in judged
            if r["metric"] == "BLEU" and r["versus"] != "ft"
        },
    }


def verdicts(
    found: Mapping[str, Sequence[Mapping]],
    root: str | Path,
    ours: str = "lora",
    **bootstrap: object,
) -> list[dict]:
    """For every other method, per metric: our mean minus theirs, and the verdict by the
    module's rule (BLEU: the bootstrap pairs, listed under ``pairs``)."""
    rows = []
    for method, records in found.items():
        if method == ours or ours not in found:
            continue
        mine = found[ours]
        pairs = bleu_pairs(mine, records, root, **bootstrap)
        for metric in METRICS:
            judged = judge_by_spread(_scores(mine, metric), _scores(records, metric))
            row = {"versus": method, "metric": metric, **judged}
            if metric == "BLEU":
                row["verdict"] = judge_bleu(pairs)
                row["pairs"] = pairs
            rows.append(row)
    return rows


RESAMPLED = {"ROUGE_L": 100.0, "CIDEr": 1.0}  # per-MR metrics, and the scale to Table 3's units


def resampled(
    found: Mapping[str, Sequence[Mapping]],
    root: str | Path,
    ours: str = "lora",
    **bootstrap: object,
) -> list[dict]:
    """A supplement to :func:`verdicts` (not the committed rule): ROUGE-L and CIDEr judged as
    BLEU is, by a paired bootstrap over the test MRs for each seed pair
    (:func:`lorabook.e2e.compare.paired_bootstrap_mean` on
    :func:`lorabook.e2e.metrics.per_mr_scores`), with :func:`judge_bleu`'s rule. Rows:
    ``versus``, ``metric``, ``difference`` (mean over pairs), ``verdict`` and ``pairs``."""
    from lorabook.e2e.compare import paired_bootstrap_mean
    from lorabook.e2e.metrics import per_mr_scores

    scored: dict[str, dict] = {}  # per record: its per-MR scores, computed once

    def per_mr(record: Mapping) -> dict:
        if record["_path"] not in scored:
            outputs = outputs_of(record, root)
            scored[record["_path"]] = per_mr_scores(outputs, _references(record, root))
        return scored[record["_path"]]

    rows = []
    for method, records in found.items():
        if method == ours or ours not in found:
            continue
        pairs = seed_pairs(found[ours], records)
        for metric, scale in RESAMPLED.items():
            judged = [
                {"seeds": (a["seed"], b["seed"])}
                | paired_bootstrap_mean(
                    per_mr(a)[metric], per_mr(b)[metric], scale=scale, **bootstrap
                )
                for a, b in pairs
            ]
            rows.append(
                {
                    "versus": method,
                    "metric": metric,
                    "difference": statistics.mean(p["difference"] for p in judged),
                    "verdict": judge_bleu(judged),
                    "pairs": judged,
                }
            )
    return rows


def seeds_owed(seeds: Mapping[str, int]) -> list[str]:
    """The campaign's methods whose planned seeds are not all scored, as ``"LoRA 1 of 3"``
    (``seeds``: method -> seeds scored so far); empty when none is owed."""
    from lorabook.e2e.campaign import RUN_SEEDS
    from lorabook.e2e.report import NAMES

    return [
        f"{NAMES.get(m, m)} {seeds.get(m, 0)} of {len(RUN_SEEDS[m])}"
        for m in seeds
        if seeds.get(m, 0) < len(RUN_SEEDS[m])
    ]
