"""Chapter 6's reading of the Section 7 runs, on stand-in records with planted factors."""

from __future__ import annotations

import functools
import re

import pytest
import torch
from test_glue_full import write_record

from lorabook import analysis, verdict
from lorabook.glue import full_campaign as fc
from lorabook.glue import report, section7
from lorabook.glue.full_campaign import Job
from lorabook.io import write_tensors

D = 96  # a stand-in width


def factors(r: int, shared: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """LoRA tensors of two blocks' query and value whose A's top direction is ``shared``."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for block in (0, 1):
        for matrix in ("query", "value"):
            a = 0.01 * torch.randn(r, D, generator=generator)
            a[0] = shared  # the strongest direction, common to every rank
            name = f"bert.encoder.layer.{block}.attention.self.{matrix}"
            out[f"{name}.lora_A"] = a
            out[f"{name}.lora_B"] = torch.randn(D, r, generator=generator)
    return out


EPOCHS = 10  # Section 7's epochs from the fixture's LoRA runs: 2 × (10 - 5)


@pytest.fixture
def decided(tmp_path):
    """The head stage done ([CLS]), LoRA's budget and Section 7's epochs set on its tasks."""
    for job in fc.head_jobs():
        write_record(job, tmp_path, 2)
    for task in fc.SECTION7_TASKS:
        for seed in fc.SEEDS:  # best at epoch 10 of 20 (peaked), within half a point from 5
            write_record(Job("seeds", task, "lora", seed, 20, "cls"), tmp_path, 10)
    return tmp_path


def cell_job(task: str, r: int, seed: int = 0, targets=("q", "v")) -> Job:
    return Job("section7", task, "lora", seed, EPOCHS, "cls", lora_r=r, lora_targets=targets)


def test_cells_wait_for_the_budgets_then_read_every_finished_seed(tmp_path, decided):
    assert section7.cell_records(tmp_path / "none") == {}
    task = fc.SECTION7_TASKS[0]
    for seed, best in ((0, 3), (1, 5)):
        write_record(cell_job(task, 1, seed, ("q",)), decided, best)
    found = section7.cell_records(decided)
    assert ("Table 6", task, ("q", "v"), 8) not in found  # not LoRA's runs: fewer epochs
    rows = section7.score_table(found, "Table 6")
    by = {(r["targets"], r["r"]): r for r in rows if r["task"] == task}
    assert by[("W_q", 1)]["seeds"] == [0, 1] and by[("W_q", 1)]["epochs"] == EPOCHS
    assert by[("W_q", 1)]["median"] == pytest.approx((50.3 + 50.5) / 2)
    assert ("W_q", 8) not in by  # not run
    assert section7.score_table(found, "Table 5") == []  # none of its cells has run
    [sep] = [r for r in section7.separation(found, "Table 6") if r["task"] == task]
    cells = section7.score_table(found, "Table 6")
    medians = [r["median"] for r in cells if r["task"] == task]
    assert sep["gap"] == pytest.approx(max(medians) - min(medians))
    widest = max(r["max"] - r["min"] for r in cells if r["task"] == task and len(r["seeds"]) > 1)
    assert sep["seed range"] == pytest.approx(widest)
    assert sep["separates"] == (sep["gap"] > widest)


def test_the_plan_says_which_section7_epochs_are_still_assumed(tmp_path, decided):
    assert "; undecided: LoRA's budget" not in fc.plan_rows(decided)["section7"][1]
    for job in fc.head_jobs():  # the read-out picked, no LoRA seed yet
        write_record(job, tmp_path / "early", 2)
    note = fc.plan_rows(tmp_path / "early")["section7"][1]
    assert "(none decided yet; undecided: LoRA's budget)" in note


def test_a_cell_that_had_not_peaked_is_read_at_twice_the_epochs(decided):
    task = fc.SECTION7_TASKS[0]
    assert section7.rerunning(decided) == []
    write_record(cell_job(task, 2, 0, ("q",)), decided, 9)  # best in the last fifth
    assert ("Table 6", task, ("q",), 2) not in section7.cell_records(decided)
    [again] = section7.rerunning(decided)  # not in the tables, and said why
    assert again == {
        "task": task,
        "targets": "W_q",
        "r": 2,
        "epochs": EPOCHS,
        "score": pytest.approx(50.9),
        "best epoch": 9,
        "runs again at": 2 * EPOCHS,
        "score then": None,
    }
    longer = Job("section7", task, "lora", 0, 2 * EPOCHS, "cls", lora_r=2, lora_targets=("q",))
    write_record(longer, decided, 9)
    [again] = section7.rerunning(decided)  # still listed, with what the doubling scored
    assert again["score"] == pytest.approx(50.9) and again["score then"] == pytest.approx(50.9)
    found = section7.cell_records(decided)
    [record] = found[("Table 6", task, ("q",), 2)]
    assert record["settings"]["train"]["epochs"] == 2 * EPOCHS
    [row] = section7.score_table(found, "Table 6")
    assert row["epochs"] == 2 * EPOCHS and row["median"] == pytest.approx(50.9)
    assert row["peaked"] == 1  # best at 9 of 20
    write_record(longer, decided, 19)  # still gaining at its end: doubled once only, and said
    [row] = section7.score_table(section7.cell_records(decided), "Table 6")
    assert row["epochs"] == 2 * EPOCHS and row["peaked"] == 0
    assert section7.cell_label(row) == "51.9 (1 seed, 20 ep, 1 not peaked)"
    row = {**row, "seeds": [0, 1, 2], "peaked": 3, "min": 51.0}
    assert section7.cell_label(row) == "51.9 [51.0, 51.9] (3 seeds, 20 ep)"


def test_separation_says_whether_cells_differ_by_more_than_seeds_do():
    def cell(targets, r, *scores):
        records = [
            {"seed": i, "best": {"accuracy": s / 100}, "settings": {"train": {"epochs": 10}}}
            | {"best_epoch": 2}
            for i, s in enumerate(scores)
        ]
        return ("Table 6", "sst2", targets, r), [{**rec, "metric": "accuracy"} for rec in records]

    found = dict([cell(("q",), 1, 90.0, 90.4), cell(("q",), 8, 91.0)])
    [row] = section7.separation(found, "Table 6")
    assert row["gap"] == pytest.approx(0.8) and row["seed range"] == pytest.approx(0.4)
    assert row["separates"] is True and row["cells"] == 2
    found = dict([cell(("q",), 1, 89.0, 90.4), cell(("q",), 8, 91.0)])
    assert section7.separation(found, "Table 6")[0]["separates"] is False  # 1.3 < 1.4
    found = dict([cell(("q",), 1, 90.0), cell(("q",), 8, 91.0)])
    assert section7.separation(found, "Table 6")[0]["separates"] is None  # one seed each
    assert section7.separation(found, "Table 5") == []


def test_apart_reads_two_cells_against_the_wider_of_their_seed_ranges():
    def row(median, low, high):
        return {"median": median, "min": low, "max": high}

    assert section7.apart(row(91.0, 90.9, 91.1), row(90.5, 90.4, 90.6)) == "above"  # 0.5 > 0.2
    assert section7.apart(row(90.5, 90.4, 90.6), row(91.0, 90.9, 91.1)) == "below"
    assert section7.apart(row(91.0, 90.0, 91.2), row(90.5, 90.4, 90.6)) == "level"  # 0.5 < 1.2
    assert section7.apart(row(91.0, 91.0, 91.0), row(91.0, 91.0, 91.0)) == "level"


def test_figure3_pairs_r8_with_r64_and_finds_the_planted_direction(decided, monkeypatch):
    task = fc.SECTION7_TASKS[0]
    shared = torch.zeros(D)
    shared[3] = 1.0
    for r in (8, 64):
        job = cell_job(task, r)
        write_record(job, decided, 2)
        folder = job.plan(decided).paths.record.with_suffix("")
        write_tensors(folder / "trainable.safetensors", factors(r, shared, r))
    found = section7.cell_records(decided)
    pairs = section7.rank_pairs(found)
    assert list(pairs) == [(task, 0)]
    grid = section7.rank_grid(pairs[(task, 0)], "q", block=1)
    assert grid.shape == (8, 64)  # i ≤ 8, j ≤ 64: Figure 3's axes
    assert float(grid[0, 0]) == pytest.approx(1.0, abs=1e-3)  # the planted direction
    assert bool((grid <= 1 + 1e-9).all()) and bool((grid >= 0).all())
    runs = section7.lora_at(found, 64)
    assert list(runs) == [(task, 0)] and runs[(task, 0)].r == 64
    # Figure 4 at r = 64 (chapter 6.4): two seeds of the cell, the planted direction in both
    job = cell_job(task, 64, seed=1)
    write_record(job, decided, 2)
    folder = job.plan(decided).paths.record.with_suffix("")
    write_tensors(folder / "trainable.safetensors", factors(64, shared, 99))
    fewer = functools.partial(analysis.random_top_cosine, draws=100)  # its threshold, cheaper
    monkeypatch.setattr(analysis, "random_top_cosine", fewer)
    rows = analysis.seed_overlap(section7.lora_at(section7.cell_records(decided), 64))
    assert {(r["matrix"], r["block"]) for r in rows} == {
        (m, b) for m in ("query", "value") for b in (0, 1)
    }
    assert all(r["A"] == pytest.approx(1.0, abs=1e-3) for r in rows)  # the shared direction


def test_the_verdict_waits_for_every_seed_then_applies_its_rule(decided):
    from lorabook import verdict

    waiting = verdict.section7_tables(decided)
    assert waiting.verdict == "pending"
    assert "0 of 22 cells the rule reads" in waiting.evidence  # {W_q, W_v} r = 4 counted once
    cells = fc.section7_cells(
        {(t, "lora"): EPOCHS for t in fc.SECTION7_TASKS}, "cls", every_seed=True
    )

    def write_all(single_best: int) -> None:
        for _, job in cells:
            several = len(job.lora_targets or ()) > 1
            write_record(job, decided, 5 if several else single_best)

    write_all(single_best=3)  # scores 50.5 against single matrices' 50.3; ranks equal
    found = verdict.section7_tables(decided)
    assert found.verdict == "reproduced", found.evidence
    assert "(4 of 4 parts hold)" in found.evidence
    write_all(single_best=8)  # a single matrix now scores 50.8, above 50.5 (and peaked)
    found = verdict.section7_tables(decided)
    assert found.verdict == "partly" and "(2 of 4 parts hold)" in found.evidence
    assert "untested" not in found.evidence


def test_a_table_whose_cells_differ_less_than_their_seeds_decides_nothing(decided):
    cells = fc.section7_cells(
        {(t, "lora"): EPOCHS for t in fc.SECTION7_TASKS}, "cls", every_seed=True
    )
    for _, job in cells:  # every cell's median 50.5, its seeds 50.4 to 50.6
        write_record(job, decided, {0: 4, 1: 6, 2: 5}[job.seed])
    found = verdict.section7_tables(decided)
    assert found.verdict == "not testable here", found.evidence
    assert "(0 of 4 parts hold, 4 untested)" in found.evidence
    task = fc.SECTION7_TASKS[0]  # one task's Table 6 cells now apart: W_q alone far lower
    for _, job in cells:
        if job.task == task and job.lora_targets == ("q",) and job.lora_r != 8:  # not Table 5's
            write_record(job, decided, 1)  # 50.1: 0.4 below the rest, whose seeds span 0.2
    found = verdict.section7_tables(decided)
    apart = section7.separation(section7.cell_records(decided), "Table 6")
    assert {r["task"]: r["separates"] for r in apart} == {t: t == task for t in fc.SECTION7_TASKS}
    assert found.verdict == "partly", found.evidence
    assert "(1 of 4 parts hold, 3 untested)" in found.evidence


def test_more_matrices_must_beat_the_best_single_one_by_more_than_their_seeds(decided):
    """Table 5's part reads the two cells it compares: a table that separates because one
    cell (W_k) is far lower does not make a level best-multi against best-single a win."""
    cells = fc.section7_cells(
        {(t, "lora"): EPOCHS for t in fc.SECTION7_TASKS}, "cls", every_seed=True
    )
    for _, job in cells:
        several = len(job.lora_targets or ()) > 1
        best = {0: 4, 1: 6, 2: 5} if several else {0: 3, 1: 6, 2: 4}  # 50.5 [.4, .6], 50.4 [.3, .6]
        write_record(job, decided, 1 if job.lora_targets == ("k",) else best[job.seed])
    found = verdict.section7_tables(decided)
    separated = section7.separation(section7.cell_records(decided), "Table 5")
    assert all(row["separates"] for row in separated)  # W_k's 50.1 sets the table apart
    assert "50.5 (W_q, W_v) vs the best single 50.4 (W_q), level by their seeds" in found.evidence
    assert found.verdict == "not reproduced", found.evidence  # Table 6's cells: all level
    assert "(0 of 4 parts hold, 2 untested)" in found.evidence


# --- the verdict's Section 7 parts (Figures 3 and 4 at r = 64, Table 7's two ranks) ----------

BLOCKS = range(6)  # MiniLM's: the verdict reads Table 7 in block 3
MATRICES = ("query", "value")
SHARED = {"query": 2, "value": 1}  # directions every seed and rank shares: more for W_q


@functools.cache
def minilm_svd() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(U, Vh) of MiniLM's W_q and W_v in every block."""
    from lorabook.models import load_pretrained

    base, _ = load_pretrained("minilm")
    out = {}
    for block in BLOCKS:
        for matrix in MATRICES:
            name = f"bert.encoder.layer.{block}.attention.self.{matrix}"
            u, _, vh = torch.linalg.svd(analysis.base_weight(base, name).double())
            out[name] = (u, vh)
    return out


def planted(
    r: int, seed: int, alpha: float, scale: float, first: int = 2
) -> dict[str, torch.Tensor]:
    """LoRA tensors whose ΔW = (α/r)·BA lies on r of W's own singular directions, with
    singular values ``scale`` × (1, 0.99, ...). The first :data:`SHARED` directions (W's
    ``first``-th on: the third and fourth) are every run's; the rest are the run's own: at
    r = 64 interleaved among W's top 200 by seed, at r = 4 and 8 further down, apart per seed
    and rank."""
    out = {}
    for name, (u, vh) in minilm_svd().items():
        shared = SHARED[name.rsplit(".", 1)[1]]
        if r == 64:
            own = [5 + 3 * i + seed for i in range(r - shared)]
        else:
            own = [200 + 24 * seed + {4: 0, 8: 8}[r] + i for i in range(r - shared)]
        index = [first + i for i in range(shared)] + own
        s = scale * (1 - 0.01 * torch.arange(r, dtype=torch.float64))
        out[f"{name}.lora_A"] = (r / alpha) * s[:, None] * vh[index]
        out[f"{name}.lora_B"] = u[:, index]
    return out


@pytest.fixture
def planted_runs(decided, monkeypatch):
    """Every seed of Table 6's {W_q, W_v} cell at r = 4, 8 and 64 on both tasks (ΔW largest
    at r = 4), whose r = 8 runs stand in for chapter 3's; random pairs' thresholds on fewer
    draws."""
    fewer = functools.partial(analysis.random_top_cosine, draws=200)
    monkeypatch.setattr(analysis, "random_top_cosine", fewer)
    monkeypatch.setattr(verdict, "_random_top", functools.partial(verdict._random_top, draws=200))
    chapter3 = {}
    for task in fc.SECTION7_TASKS:
        for seed in fc.SEEDS:
            for r, scale in ((4, 50.0), (8, 10.0), (64, 5.0)):
                job = cell_job(task, r, seed)
                write_record(job, decided, 2)
                run = job.plan(decided)
                folder = run.paths.record.with_suffix("")
                alpha = float(run.config["settings"]["lora_alpha"])
                write_tensors(folder / "trainable.safetensors", planted(r, seed, alpha, scale))
                if r == 8:
                    chapter3[task, seed] = analysis.read_lora_record(run.paths.record)
    monkeypatch.setattr(report, "lora_runs", lambda results_dir: chapter3)
    monkeypatch.setattr(verdict, "grouped_sources", lambda paths, results_dir: list(paths))
    return decided


def test_rank_overlap_leaves_out_block_0_and_finds_the_planted_directions(planted_runs):
    pairs = section7.rank_pairs(section7.cell_records(planted_runs))
    assert sorted(pairs) == [(t, s) for t in sorted(fc.SECTION7_TASKS) for s in fc.SEEDS]
    rows = analysis.rank_overlap(pairs)
    assert {r["block"] for r in rows} == set(BLOCKS) - {0}
    assert len(rows) == len(pairs) * 2 * 5
    assert all(r["A"] == pytest.approx(1.0) for r in rows)  # the top direction is shared
    assert {r["shared A"] for r in rows if r["matrix"] == "query"} == {2}  # and only those
    assert {r["shared A"] for r in rows if r["matrix"] == "value"} == {1}
    assert rows[0]["seed"] == 0 and rows[0]["task"] == sorted(fc.SECTION7_TASKS)[0]


def test_the_subspaces_verdict_adds_figure_3_and_r_64_once_every_seed_is_in(planted_runs):
    found = verdict.subspaces(planted_runs)
    assert found.verdict == "reproduced" and not found.pending, found.evidence
    assert "(6 of 6 tests hold)" in found.evidence and "at r = 64:" in found.evidence
    assert "a median of 1.5 of r = 8's 8 directions shared" in found.evidence
    assert len(found.sources) == 2 * 3 * 2  # r = 8 and r = 64 (chapter 3's stand-ins: r = 8's)
    # r = 64's seed 2 missing: judged on chapter 3's runs alone, the rest pending
    job = cell_job(fc.SECTION7_TASKS[0], 64, 2)
    job.plan(planted_runs).paths.record.unlink()
    found = verdict.subspaces(planted_runs)
    assert "(2 of 2 tests hold)" in found.evidence and found.pending


def test_the_figure_3_test_fails_when_the_high_rank_learned_other_directions(planted_runs):
    for task in fc.SECTION7_TASKS:
        for seed in fc.SEEDS:  # r = 64's shared directions: others than r = 8's (W's 301st on)
            run = cell_job(task, 64, seed).plan(planted_runs)
            alpha = float(run.config["settings"]["lora_alpha"])
            tensors = planted(64, seed, alpha, 5.0, first=300)
            write_tensors(run.paths.record.with_suffix("") / "trainable.safetensors", tensors)
    found = verdict.subspaces(planted_runs)
    assert found.verdict == "partly", found.evidence
    assert "the top direction shared beyond random in 0 of 60" in found.evidence


def test_the_amplification_verdict_compares_r_4_with_r_64(planted_runs):
    found = verdict.amplification(planted_runs)
    assert found.verdict == "reproduced" and not found.pending, found.evidence
    assert "(3 of 3 tests hold)" in found.evidence
    assert "r = 4:" in found.evidence and "r = 64:" in found.evidence
    factors = [float(x) for x in re.findall(r"factor ([\d.]+) \(of B A alone", found.evidence)]
    assert factors[0] > factors[1]  # r = 4 amplifies more (a larger ΔW on fewer directions)
    of_ba = [float(x) for x in re.findall(r"of B A alone ([\d.]+);", found.evidence)]
    for factor, ba, r in zip(factors, of_ba, (4, 64), strict=True):  # α = 8: the scale α/r
        assert factor == pytest.approx(8 / r * ba, rel=0.05, abs=0.05)
