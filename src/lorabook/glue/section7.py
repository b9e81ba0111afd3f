"""Section 7's studies from the GLUE ``full`` campaign's records (issue 19, chapter 6):
Tables 5 and 6 over seeds, Figure 3's pairs (one seed at r = 8 and at r = 64), and Table 7's
two ranks.

The runs are the ``section7`` stage's (:func:`lorabook.glue.full_campaign.section7_cells`),
at Section 7's epochs on each task (:func:`lorabook.glue.full_campaign.section7_epochs`), a
cell that had not peaked at twice them; a cell of one table that is a cell of the other is the
same record. Scores are each run's best dev epoch ×100, as in Table 2; a cell shows the
median and range over the seeds that have finished.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from lorabook.glue import full_campaign as fc
from lorabook.glue.report import score
from lorabook.inject import ATTENTION_WEIGHTS

MATRIX = ATTENTION_WEIGHTS["bert"]
"""The short target names of the ``full`` preset and the LoRA layers they name on BERT."""

Cell = tuple[str, str, tuple[str, ...], int]  # (table, task, targets, r)


def _setup(results_dir: str | Path, model: str) -> tuple[str, dict, frozenset] | None:
    """The read-out, Section 7's epochs and the cells run longer; ``None`` while undecided."""
    from lorabook.cli import SettingsError

    try:
        pooling = fc.picked_pooling(results_dir, model)
    except SettingsError:
        return None
    decided = fc.budgets(pooling, results_dir, model)
    return pooling, *fc.section7_setup(decided, pooling, results_dir, model)


def cell_records(
    results_dir: str | Path = fc.DEFAULT_RESULTS, model: str = fc.MODEL
) -> dict[Cell, list[dict]]:
    """(table, task, targets, r) -> the finished records of that cell (every seed that has
    one, at the cell's epochs), each with ``_path``; empty while the read-out or Section 7's
    epochs are undecided."""
    if (setup := _setup(results_dir, model)) is None:
        return {}
    pooling, epochs, longer = setup
    out: dict[Cell, list[dict]] = {}
    for table, job in fc.section7_cells(epochs, pooling, every_seed=True, longer=longer):
        paths = job.plan(results_dir, model).paths
        record = paths.finished()
        if record is not None:
            cell = (table, job.task, tuple(job.lora_targets or ()), int(job.lora_r or 0))
            out.setdefault(cell, []).append({**record, "_path": str(paths.record)})
    return out


def rerunning(results_dir: str | Path = fc.DEFAULT_RESULTS, model: str = fc.MODEL) -> list[dict]:
    """The cells that run again at twice Section 7's epochs, because their seed 0 at those
    epochs was still gaining at its end (:func:`~lorabook.glue.full_campaign.section7_longer`):
    task, targets, r, that first run's epochs, best dev score ×100 and best epoch, and seed
    0's score at twice the epochs (``None`` until it has finished). The tables show a doubled
    cell's longer runs only, and no cell until they finish; this shows what the first run
    scored, and what the doubling changed."""
    if (setup := _setup(results_dir, model)) is None:
        return []
    pooling, epochs, longer = setup
    rows = {}
    for _, job in fc.section7_cells(epochs, pooling):  # at Section 7's epochs, not twice them
        if job.seed == 0 and (cell := job.cell) in longer:
            record = job.finished(results_dir, model)
            again = replace(job, epochs=2 * job.epochs).finished(results_dir, model)
            rows[cell] = {
                "task": job.task,
                "targets": targets_label(cell[1]),
                "r": cell[2],
                "epochs": job.epochs,
                "score": score(record),
                "best epoch": record["best_epoch"],
                "runs again at": 2 * job.epochs,
                "score then": None if again is None else score(again),
            }
    return list(rows.values())


def targets_label(targets: Sequence[str]) -> str:
    """``("q", "v")`` → ``"W_q, W_v"``."""
    return ", ".join(f"W_{t}" for t in targets)


def score_table(found: Mapping[Cell, Sequence[dict]], table: str) -> list[dict]:
    """``table``'s cells ("Table 5" or "Table 6"): task, targets, r, the median, min and max
    best dev score over the finished seeds, the seeds, the epochs they trained (Section 7's
    on the task, twice them for a cell that had not peaked), and how many of the seeds' runs
    :func:`~lorabook.glue.full_campaign.peaked` (the others were still gaining at their end)."""
    rows = []
    for (which, task, targets, r), records in found.items():
        if which != table:
            continue
        scores = [score(rec) for rec in records]
        rows.append(
            {
                "task": task,
                "targets": targets_label(targets),
                "r": r,
                "median": statistics.median(scores),
                "min": min(scores),
                "max": max(scores),
                "seeds": sorted(rec["seed"] for rec in records),
                "epochs": records[0]["settings"]["train"]["epochs"],
                "peaked": sum(fc.peaked(rec) for rec in records),
            }
        )
    return rows


def cell_label(row: Mapping) -> str:
    """A :func:`score_table` row as chapter 6 shows it: ``"86.1 [85.8, 86.4] (3 seeds, 10 ep)"``
    (one seed: its score, no range), with ``", 1 not peaked"`` before the bracket's end when
    seeds were still gaining."""
    n = len(row["seeds"])
    still = n - row["peaked"]
    more = f", {still} not peaked" if still else ""
    spread = f" [{row['min']:.1f}, {row['max']:.1f}]" if n > 1 else ""
    return f"{row['median']:.1f}{spread} ({n} seed{'s' * (n != 1)}, {row['epochs']} ep{more})"


def separation(found: Mapping[Cell, Sequence[dict]], table: str) -> list[dict]:
    """Per task of ``table``: how far apart its cells are against how far one cell's seeds
    are. ``gap``: the best cell's median minus the worst's; ``seed range``: the widest range
    (max − min) over the seeds of any cell with two or more; ``separates``: the gap exceeds
    that range (``None`` while no cell has two seeds).

    SST-2 and STS-B were chosen because their seeds moved least in the ``cpu`` runs, but
    their cells may differ little too, and then "a low rank suffices" passes without being
    tested: a reader needs to see whether the table's cells differ by more than its seeds do
    before reading an order into them (:func:`lorabook.verdict.section7_tables` counts a part
    untested where they do not)."""
    out = []
    rows = score_table(found, table)
    for task in sorted({r["task"] for r in rows}):
        mine = [r for r in rows if r["task"] == task]
        ranges = [r["max"] - r["min"] for r in mine if len(r["seeds"]) > 1]
        gap = max(r["median"] for r in mine) - min(r["median"] for r in mine)
        widest = max(ranges) if ranges else None
        out.append(
            {
                "task": task,
                "cells": len(mine),
                "gap": gap,
                "seed range": widest,
                "separates": None if widest is None else gap > widest,
            }
        )
    return out


def apart(first: Mapping, second: Mapping) -> str:
    """Two :func:`score_table` cells against their own seeds: ``"above"`` when the first's
    median exceeds the second's by more than the wider of the two cells' seed ranges
    (max − min), ``"below"`` when the second's exceeds the first's by more, ``"level"``
    otherwise. :func:`lorabook.verdict.section7_tables` reads Table 5's claim (two or four
    matrices beat one) on the two cells it compares this way."""
    noise = max(first["max"] - first["min"], second["max"] - second["min"])
    gap = first["median"] - second["median"]
    return "above" if gap > noise else "below" if -gap > noise else "level"


def records_at(
    found: Mapping[Cell, Sequence[dict]], r: int, targets: tuple[str, ...] = ("q", "v")
) -> dict[tuple[str, int], dict]:
    """{(task, seed): record} of Table 6's ``targets`` at rank ``r``."""
    return {
        (task, rec["seed"]): rec
        for (table, task, cell_targets, rank), records in found.items()
        if table == "Table 6" and cell_targets == targets and rank == r
        for rec in records
    }


def lora_at(
    found: Mapping[Cell, Sequence[dict]], r: int, targets: tuple[str, ...] = ("q", "v")
) -> dict[tuple[str, int], object]:
    """{(task, seed): TrainedLoRA} of Table 6's ``targets`` at rank ``r``."""
    from lorabook.analysis import read_lora_record

    return {
        key: read_lora_record(rec["_path"]) for key, rec in records_at(found, r, targets).items()
    }


def rank_pairs(
    found: Mapping[Cell, Sequence[dict]], low: int = 8, high: int = 64
) -> dict[tuple[str, int], tuple[object, object]]:
    """Figure 3's pairs: {(task, seed): (LoRA at r = low, LoRA at r = high)} of {W_q, W_v},
    for every task and seed with both."""
    from lorabook.analysis import read_lora_record

    lows, highs = records_at(found, low), records_at(found, high)
    return {
        key: (read_lora_record(lows[key]["_path"]), read_lora_record(highs[key]["_path"]))
        for key in sorted(lows)
        if key in highs
    }


def rank_grid(pair: tuple, matrix: str, block: int, side: str = "right"):
    """φ(A_low, A_high, i, j) for i ≤ low, j ≤ high in ``block`` for ``matrix`` (``"q"`` or
    ``"v"``): Figure 3's heat map (``side="left"``: the B's).

    Mind the first LoRA layer: two runs of one seed draw its A from the same random stream
    (the same fan-in), so A at r = 64 starts with A at r = 8 as its first rows, and their
    overlap there is partly the start, not training. Deeper layers are drawn at other offsets
    of the stream; chapter 6 reads a middle block."""
    from lorabook.analysis import layer_at, subspace_similarity_grid

    low, high = pair
    name = layer_at(low, MATRIX[matrix], block)
    factor = 0 if side == "right" else 1
    return subspace_similarity_grid(
        low.factors[name][factor], high.factors[name][factor], side=side
    )
