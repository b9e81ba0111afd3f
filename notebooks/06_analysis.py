# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Why LoRA works: subspaces and amplification
#
# **The paper's questions** (Section 7 {cite}`hu2021lora`), asked of GPT-3 175B: which weight
# matrices to adapt under a fixed parameter budget (Table 5), how small the rank $r$ can be
# (Table 6), and what the learned update $\Delta W$ is: how alike the subspaces learned at
# different ranks and from different seeds are (Figures 3 and 4), and how $\Delta W$ relates to
# the pretrained $W$ (Table 7, the *amplification factor*).
#
# **What this chapter does**: the measures, as package code (`lorabook.analysis`) tested on
# matrices whose answers are known, then those measures on the LoRA runs the book already has:
# chapter 3's MiniLM runs of the `cpu` preset (3.3–3.9: $r = 8$ on $W_q$ and $W_v$, a few
# epochs each, three seeds on each of five GLUE tasks).
# Every LoRA record keeps its trained $A$ and $B$, so nothing here trains. Tables 5 and 6 and
# the $r = 8$ against $r = 64$ comparison need runs of their own, the Section 7 stage of the
# GLUE campaign (6.4); this chapter shows them when their records exist.

# %% tags=["parameters"]
# every mode reads the same committed records (the chapter trains nothing): "quick" or "paper"
mode = "quick"

# %% tags=["hide-input"]
import inspect
import re

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import Markdown, display

from lorabook import analysis, paper
from lorabook.glue import report
from lorabook.models import load_pretrained
from lorabook.paths import REPO_ROOT

assert mode in ("quick", "paper"), f"mode must be 'quick' or 'paper', got {mode!r}"
results_dir = REPO_ROOT / "results"
plt.rcParams.update({"figure.dpi": 100})
MATRICES = {"query": "$W_q$", "value": "$W_v$"}


def say(text: str) -> None:
    """A computed sentence, shown as text that wraps (not a printed line)."""
    display(Markdown(text))


def blank(table: pd.DataFrame, text: str = "") -> pd.DataFrame:
    """``table`` with ``text`` where it has no value, in columns of numbers too (where
    ``fillna`` with a string warns)."""
    return table.astype(object).where(table.notna(), text)


# %% [markdown]
# ## 6.1 How alike two learned subspaces are
#
# LoRA's $A \in \mathbb{R}^{r \times k}$ reads $r$ directions of the layer's input space
# $\mathbb{R}^k$. Two runs (two ranks, or two seeds) learn two $A$'s; Section 7.2 asks how much
# of the top-$i$ directions of one lies in the span of the top-$j$ directions of the other.
# With $U_1^i$ the top-$i$ right-singular vectors of $A_1$ (the first $i$ rows of `Vh` in
# `torch.linalg.svd`) and $U_2^j$ likewise,
#
# $$
# \phi(A_1, A_2, i, j) = \frac{\lVert {U_1^i}^\top U_2^j \rVert_F^2}{\min(i, j)} \in [0, 1].
# $$
#
# It is 1 when one span contains the other and 0 when they are orthogonal. (Section 7.2 calls
# these vectors right-singular, Appendix G left-singular; the right ones are those that live
# in $\mathbb{R}^k$, where two $A$'s of different rank can be compared.) The code:

# %%
print(inspect.getsource(analysis.subspace_similarity))

# %% [markdown]
# Known answers, computed: a matrix against itself with its rows mixed (the same span), two
# matrices reading orthogonal directions, and two random Gaussian ones, whose $\phi$ averages
# $\max(i, j)/k$ (the tests derive it): with $k = 384$ (MiniLM's width) and $i = j = 1$ that is
# $1/384 \approx 0.0026$.

# %%
k = 384
generator = torch.Generator().manual_seed(0)
a = torch.randn(8, k, generator=generator, dtype=torch.float64)
mixed = torch.randn(8, 8, generator=generator, dtype=torch.float64) @ a  # same row span
first, second = torch.eye(k, dtype=torch.float64)[:8], torch.eye(k, dtype=torch.float64)[8:16]
null = analysis.random_similarity(8, 8, k, 1, 1, draws=2000)
pd.DataFrame(
    [
        ("A against its own rows mixed", "8, 8", analysis.subspace_similarity(a, mixed, 8, 8)),
        ("orthogonal directions", "8, 8", analysis.subspace_similarity(first, second, 8, 8)),
        ("two random Gaussian A's, mean of 2,000", "1, 1", float(null.mean())),
        ("the same, 99th percentile", "1, 1", float(null.quantile(0.99))),
    ],
    columns=["case", "i, j", "φ(·, ·, i, j)"],
).set_index("case").round(4)

# %% [markdown]
# ## 6.2 Two seeds, one rank (Figure 4's question, at $r = 8$)
#
# Figure 4 trains GPT-3 twice at $r = 64$ from different seeds and finds that the top
# directions of the two $A$'s overlap far more than random ones do, and that the two runs share
# more directions for $W_q$ than for $W_v$. Chapter 3's `cpu` LoRA runs are three seeds per task
# at $r = 8$ (seed 0 and seed 1 here; 6.4 trains $\{W_q, W_v\}$ at $r = 8$ again, at Section
# 7's epochs, which are not 3.10's), and each seed starts from its own random $A$ ($B$ starts
# at zero), so an overlap well above random is direction that training found, twice. For $B$
# the comparable vectors are the left-singular ones, in the output space (`side="left"`): $B$
# starts at zero, so its overlap is not its own start carried along (its updates do pass
# through $A$, which starts random).

# %% tags=["hide-input"]
runs = report.lora_runs(results_dir)
tasks = sorted({task for task, _ in runs})
say(
    f"{len(runs)} LoRA records of chapter 3 (r = {next(iter(runs.values())).r}): "
    + ", ".join(f"{t} seeds {sorted(s for tt, s in runs if tt == t)}" for t in tasks)
)

# %% [markdown]
# The whole $\phi$ grid, $i, j = 1 \dots 8$, for a middle layer (block 3 of MiniLM's 0–5) on
# SST-2, the task with the most training steps: the $A$'s in the top row, the $B$'s below, each
# row ending with two random Gaussian matrices of the same shape. Darker means less overlap, on
# one colour scale in every panel. Section 7.2 compares $A$'s; the $B$ row is this book's
# addition.

# %% tags=["hide-input"]
task, middle = ("sst2" if "sst2" in tasks else tasks[0]), 3
one, two = runs[(task, 0)], runs[(task, 1)]
fig, axes = plt.subplots(2, 3, figsize=(9.5, 6.2), layout="constrained")
for row, (factor, side) in enumerate((("A", "right"), ("B", "left"))):  # A's rows, B's columns
    panels = {
        f"{factor} of {label}": analysis.subspace_similarity_grid(
            *(run.factors[analysis.layer_at(one, matrix, middle)][row] for run in (one, two)),
            side=side,
        )
        for matrix, label in MATRICES.items()
    }
    shape = (one.r, k) if factor == "A" else (k, one.r)  # B: d_out × r (MiniLM: d_out = k)
    panels[f"random {factor}'s"] = analysis.subspace_similarity_grid(
        torch.randn(shape, generator=generator), torch.randn(shape, generator=generator), side=side
    )
    for ax, (title, grid) in zip(axes[row], panels.items(), strict=True):
        image = ax.imshow(grid.numpy(), vmin=0, vmax=1, cmap="viridis", origin="upper")
        ax.set(title=title, xlabel="j (seed 1)" if row else None)
        ticks = range(0, grid.shape[0], 2)
        ax.set_xticks(ticks, [t + 1 for t in ticks])
        ax.set_yticks(ticks, [t + 1 for t in ticks])
    axes[row, 0].set_ylabel("i (seed 0)")
fig.colorbar(image, ax=axes, shrink=0.6, label="φ")
fig.suptitle(f"φ between seed 0 and seed 1, {task}, block {middle}")
plt.show()

# %% [markdown]
# Every block and task, by the overlap of the single top direction, $\phi(\cdot, \cdot, 1, 1)$
# (the squared cosine between the two runs' first singular vectors), against the random pairs'
# 99th percentile (dashed). Figure 4's second point is a count: $\Delta W_q$ shares *more*
# directions across seeds than $\Delta W_v$. $\phi(i, i)$ cannot count them: it is the mean of
# the $i$ squared principal cosines between the two top-$i$ spans, so one direction shared
# fully and several shared in part give the same value. The count is taken from the principal
# angles between the two whole spans: the cosines $\sigma_1 \ge \dots \ge \sigma_r$ of
# ${U_1^r}^\top U_2^r$, each $\sigma_m^2$ above the largest that random pairs reach (their 99th
# percentile) one direction shared beyond chance:

# %% tags=["hide-input"]
overlap = pd.DataFrame(analysis.seed_overlap(runs))
threshold = float(null.quantile(0.99))
fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharey=True, sharex=True)
cells = [(f, m) for f in ("A", "B") for m in MATRICES]
for ax, (factor, matrix) in zip(axes.flat, cells, strict=True):
    for task, part in overlap[overlap.matrix == matrix].groupby("task"):
        ax.plot(part.block, part[factor], "o-", label=task)
    ax.axhline(threshold, color="k", ls="--", lw=1)
    ax.set(title=f"{factor} of {MATRICES[matrix]}", xlabel="block", ylim=(0, 1))
for ax in axes[:, 0]:
    ax.set_ylabel("φ(seed 0, seed 1, 1, 1)")
axes[0, 1].legend(fontsize=8)
fig.tight_layout()
plt.show()

above = overlap[["A", "B"]] > threshold
say(
    f"The top direction agrees across seeds above the random pairs' 99th percentile "
    f"({threshold:.4f}) in {int(above.A.sum())} of {len(overlap)} (task, matrix, block) cells "
    f"for A and {int(above.B.sum())} of {len(overlap)} for B. Median φ(1, 1): "
    + "; ".join(
        f"{m}: A {overlap[overlap.matrix == m].A.median():.2f}, "
        f"B {overlap[overlap.matrix == m].B.median():.2f}"
        for m in MATRICES
    )
    + "."
)
print(inspect.getsource(analysis.shared_directions))
count_bar = analysis.random_top_cosine(one.r, one.r, k)
say(
    f"The count's bar is another null than the dashed line's: the largest principal cosine² "
    f"between two random {one.r}-dimensional spans in {k} dimensions passes {count_bar:.3f} "
    f"in 1% of draws, so a trained pair's cosine² above it is one direction shared beyond "
    "chance."
)
shared = {m: overlap[overlap.matrix == m]["shared A"].median() for m in MATRICES}
top = {m: overlap[overlap.matrix == m].A.median() for m in MATRICES}
say(
    f"GPT-3 (Figure 4) shares more directions across seeds for W_q than for W_v. Here the two "
    f"A's share, beyond random, a median of {shared['query']:g} of {one.r} directions for W_q "
    f"and {shared['value']:g} for W_v; the single top direction agrees more for "
    f"{'W_q' if top['query'] > top['value'] else 'W_v'} (median φ(1, 1): W_q "
    f"{top['query']:.2f}, W_v {top['value']:.2f})."
)
display(
    overlap.pivot_table(
        index="task", columns="matrix", values=["A", "B", "shared A"], aggfunc="median"
    )
    .round(3)
    .rename_axis(columns=["measure", "matrix (median over blocks)"])
)

# %% [markdown]
# ## 6.3 $\Delta W$ against $W$ (Table 7's question, at $r = 8$)
#
# Section 7.3 projects the pretrained $W$ onto the $r$-dimensional subspace of $\Delta W$:
# with $U$ and $V^\top$ the top-$r$ left and right singular vectors of $\Delta W$,
# $\lVert U^\top W V^\top \rVert_F$ is how much of $W$ lies there. The paper compares it with the
# same projection onto $W$'s own top-$r$ directions and onto a random matrix's, and calls
# $\lVert \Delta W \rVert_F / \lVert U^\top W V^\top \rVert_F$ the amplification factor: how much
# $\Delta W$ amplifies directions that $W$ holds but does not emphasise. GPT-3's $W_q$ at
# $r = 4$ and $r = 64$ (its Table 7, read from the transcription; the factor column is
# computed from its cells): the factor is far larger at the low rank, the paper's "more at low
# $r$", which 6.4's runs at both ranks put to the test:

# %% tags=["hide-input"]
table7 = pd.DataFrame(paper.table(7)).set_index("")
table7["amplification factor"] = [
    paper.value(row["‖ΔW_q‖_F"]) / paper.value(row["of ΔW_q"]) for _, row in table7.iterrows()
]
table7.round(2)

# %% [markdown]
# The code, and ours, for $W_q$ and $W_v$ in block 3 (a middle layer, as the paper's layer 48
# of 96), each task's three seeds (median [min, max]). We analyse the change the weight
# receives, $\frac{\alpha}{r} BA$; the book's $\Delta W$ is $BA$ (chapter 1), and for these
# runs $\alpha = r = 8$, so the two are the same matrix (the column $\alpha/r$ says so; 6.4's
# runs keep $\alpha = 8$ at every rank, where they differ). "× random" is how many times more
# of $W$ lies in $\Delta W$'s directions than in a random matrix's, averaged over 256 random
# matrices, whose top directions are drawn directly as uniform orthonormal frames (one draw
# alone varies by tens of percent). The paper's ratio, from its Table 7, is in the sentence
# below the table.

# %%
print(inspect.getsource(analysis.amplification))
print(inspect.getsource(analysis.weight_terms))
print(inspect.getsource(analysis.random_projection_norms))

# %% tags=["hide-input"]
base, _ = load_pretrained("minilm")


def median_range(values: pd.Series) -> str:
    """'median [min, max]' over a group's runs; the value alone where every run has it."""
    low, mid, high = (f"{v:.2f}" for v in (values.min(), values.median(), values.max()))
    return mid if low == high else f"{mid} [{low}, {high}]"


TABLE7_COLUMNS = {
    "α/r": "α/r",
    "delta_norm": "‖(α/r)BA‖_F",
    "of_delta": "of ΔW",
    "of_weight": "of W",
    "of_random": "random",
    "× random": "× random",
    "factor": "amplification",
    "factor of BA": "amplification of BA",
}


def table7_rows(rows: list[dict], by: list[str]) -> pd.DataFrame:
    """Table 7's columns, each group's median [min, max] over its runs."""
    shown = pd.DataFrame(rows).rename(columns=TABLE7_COLUMNS)
    columns = list(TABLE7_COLUMNS.values())
    if (shown["α/r"] == 1).all():  # (α/r) BA is BA: its factor is the amplification column's
        columns.remove("amplification of BA")
    return shown.groupby(by)[columns].agg(median_range)


amp_rows = analysis.amplification_rows(runs, base, middle)
amp = pd.DataFrame(amp_rows).rename(columns=TABLE7_COLUMNS)
display(table7_rows(amp_rows, ["matrix", "task"]))
paper_ratio = paper.value(table7.loc["r = 4", "of ΔW_q"]) / paper.value(
    table7.loc["r = 4", "random"]
)
printed_factor = re.search(r"≈ ([\d.]+) at r = 4", paper.section(7)[1]).group(1)
say(
    f"‖UᵀWVᵀ‖_F on ΔW's directions is {amp['× random'].min():.1f}–{amp['× random'].max():.1f}× "
    f"the random directions' here (GPT-3's W_q at r = 4: {paper_ratio:.0f}×); the amplification "
    f"factor is {amp.amplification.min():.1f}–{amp.amplification.max():.1f} (GPT-3, r = 4: "
    f"{table7.loc['r = 4', 'amplification factor']:.1f} from Table 7's cells; the paper's text "
    f"prints {printed_factor})."
)

# %% [markdown]
# ## 6.4 Which weights, which rank, and $r = 8$ against $r = 64$
#
# Tables 5 and 6 and Figure 3 need LoRA runs that chapter 3 does not have: other target
# matrices at a fixed budget, ranks 1 to 64, and pairs of $r = 8$ and $r = 64$ runs of the same
# seed. They are the `section7` stage of the GLUE campaign (`python -m
# lorabook.glue.full_campaign section7`, on SST-2 and STS-B), read by
# `lorabook.glue.section7`. **How long each run trains** is a rule written after chapter 3's
# three LoRA seeds on those tasks had finished and before any Section 7 run began
# (`full_campaign.section7_epochs`): twice the latest epoch at which one of those three runs
# came within half a point of its best, at most LoRA's budget. Those runs were all within half
# a point of their best in the first third of their budget (each run's epoch is printed
# below), so LoRA's budget for every Section 7 cell would spend most of its hours after LoRA
# had stopped gaining. The doubling is a margin for
# cells that may learn slower (a single matrix, $r = 1$), and it is checked: a cell whose
# seed 0 has not peaked by the budget rule's test runs again, every seed, at twice the epochs
# (`full_campaign.section7_longer`). The campaign runs them after every seed of chapter 3's
# Table 2 runs, so that the claims of that chapter are decided first, and before the larger
# adapters ($m = 64$), which decide no claim. Where that stage stands:

# %% tags=["hide-input"]
from lorabook import campaign as shared
from lorabook.glue import full_campaign, full_report

stages = full_campaign.plan_rows(results_dir)
rows7, note7 = stages["section7"]
totals = shared.plan_totals(rows7)
seeds_full = full_report.seed_records(results_dir)
near = {
    t: [(full_campaign.near_best_epoch(r), len(r["epochs"])) for r in seeds_full[(t, "lora")]]
    for t in full_campaign.SECTION7_TASKS
    if (t, "lora") in seeds_full
}
if near:
    say(
        "LoRA's runs at its budget, the epoch each came within half a point of its best (of "
        "its epochs): "
        + "; ".join(f"{t} " + ", ".join(f"{e} of {n}" for e, n in runs) for t, runs in near.items())
    )
    assert all(3 * e <= n for runs in near.values() for e, n in runs), near  # "first third"
say(
    f"The plan: {note7}. Finished so far: {int(totals['done'])} of those {len(rows7)} runs, "
    f"~{totals['left']:.1f} worker-hours left."
)
cells = pd.DataFrame(
    [
        {
            "table": table,
            "targets": ", ".join(f"W_{t}" for t in job.lora_targets or ()),
            "r": job.lora_r,
        }
        for table, job in full_campaign.section7_cells(
            {(t, "lora"): 1 for t in full_campaign.SECTION7_TASKS}, "cls"
        )
        if job.seed == 0 and job.task == full_campaign.SECTION7_TASKS[0]
    ]
).drop_duplicates()
say("The cells, per task:")
display(
    cells.groupby(["table", "targets"])
    .r.apply(lambda r: ", ".join(map(str, sorted(r))))
    .to_frame("ranks")
)

# %% [markdown]
# As their records land: Table 5's and Table 6's analogues (each cell's median [range] of the
# best dev score over its finished seeds, beside the paper's GPT-3 rows), Figure 3's heat map
# ($A$ at $r = 8$ against $A$ at $r = 64$ of the same seed, block 3, beside two random $A$'s of
# those shapes, whose $\phi$ averages $\max(i, j)/k$), Table 7's two ranks, and
# Figure 4's question at the paper's rank (6.2's measures on two seeds at $r = 64$).
# SST-2 and STS-B were picked as the tasks whose FT and LoRA seeds moved least in chapter 3's
# `cpu` runs, so that a small difference between cells can show; but the cells may differ
# little too, so under each table a line per task says how far apart its best and worst cells
# are against how far the seeds of one cell are (`section7.separation`). Where no two cells
# differ by more than seeds do, the runs cannot tell any cells apart: the table's order is
# noise, and "a low rank suffices" (a flat $\{W_q, W_v\}$ column, which is what the claim
# predicts) would pass without being tested, so chapter 7 counts both parts of that task
# untested. Where the table does separate, each part is read on its own cells: Table 5's
# (two or four matrices beat one) holds only when the better of its two multi-matrix cells is
# above the best single matrix by more than those two cells' seeds differ
# (`section7.apart`), and the low-rank part holds when $r = 1$ or $2$ is within a point of
# the column's best rank. Both rules were written before any Section 7 run had finished.
#
# Table 7's two ranks differ in scale as well as rank: the runs keep $\alpha = 8$ at every
# rank (as the paper sets $\alpha$ once, Section 4.1), so the update $\frac{\alpha}{r}BA$ is
# scaled by 2 at $r = 4$ and by $1/8$ at $r = 64$, and for the same $BA$ the amplification
# factor at $r = 4$ would be 16 times that at $r = 64$ from the scale alone (the directions
# and the "× random" column do not depend on it). The table shows the factor of $BA$ without
# the scale beside it; the paper does not say which of the two its Table 7 measures, nor
# GPT-3's $\alpha$.

# %% tags=["hide-input"]
from lorabook.glue import section7

found7 = section7.cell_records(results_dir)
if not found7:
    say("No Section 7 run has finished yet.")
for table_name in ("Table 5", "Table 6"):
    rows = section7.score_table(found7, table_name)
    if rows:
        shown7 = pd.DataFrame(rows)
        shown7["median [range]"] = [section7.cell_label(r) for r in rows]
        say(
            f"{table_name}, ours (MiniLM; a Table 6 cell shared with Table 5 has Table 5's "
            "seeds, the others as the budget allowed; ep: the epochs its runs trained, twice "
            "the task's where seed 0 had not peaked; 'not peaked': seeds still gaining at "
            "their end):"
        )
        display(
            shown7.pivot_table(
                index=["targets", "r"], columns="task", values="median [range]", aggfunc="first"
            ).fillna("—")  # no run of that cell has finished
        )
        say("Best cell's median − the worst's, and the widest range of one cell's seeds:")
        separation = pd.DataFrame(section7.separation(found7, table_name)).set_index("task")
        display(blank(separation.round(2), "—"))  # "—": no cell of the task has two seeds yet
if again := section7.rerunning(results_dir):
    say(
        "Cells whose seed 0 was still gaining at its last epoch (the budget rule's test), run "
        "again, every seed, at twice the epochs; the tables show only the longer runs, a cell "
        "once they finish ('score then': seed 0's at twice the epochs, blank until it has run):"
    )
    display(blank(pd.DataFrame(again).set_index(["task", "targets", "r"]).round(1)))
if found7:
    say(f"The paper's {paper.section(5)[0]}:")  # its heading, as transcribed
    table5 = paper.entries(5)  # "WikiSQL / MNLI" a cell, as the transcription prints them
    display(
        pd.DataFrame(
            [cells.split(" / ") for cells in table5.values()],
            index=pd.Index(list(table5), name="weights, rank"),
            columns=["WikiSQL", "MNLI"],
        )
    )
    say("Table 6, the paper's (GPT-3; each cell: r = 1, 2, 4, 8, 64):")
    display(pd.DataFrame(paper.table(6)).set_index("targets"))

pairs = section7.rank_pairs(found7)
if pairs:
    (task_seed, pair), *_ = pairs.items()
    low_r, high_r = (lora.r for lora in pair)
    grids = {
        f"$W_{m}$: A at r = {low_r} (i) against r = {high_r} (j)": section7.rank_grid(
            pair, m, block=middle
        )
        for m in ("q", "v")
    }
    grids["random A's of the same shapes"] = analysis.subspace_similarity_grid(
        torch.randn(low_r, k, generator=generator), torch.randn(high_r, k, generator=generator)
    )
    fig, axes = plt.subplots(1, len(grids), figsize=(12, 3.6), layout="constrained")
    for ax, (title, grid) in zip(axes, grids.items(), strict=True):
        rows_i, cols_j = grid.shape  # cell [0, 0] is i = j = 1
        image = ax.imshow(
            grid.numpy(),
            vmin=0,
            vmax=1,
            cmap="viridis",
            aspect="auto",
            extent=(0.5, cols_j + 0.5, rows_i + 0.5, 0.5),
        )
        ax.set(title=title, xlabel="j", ylabel="i")
    fig.colorbar(image, ax=axes, shrink=0.8, label="φ")
    fig.suptitle(f"{task_seed[0]}, seed {task_seed[1]}, block {middle}")
    plt.show()
    say(
        f"Every pair, blocks 1-5 (block 0's A's start alike): φ(1, 1) between A at r = {low_r} "
        f"and at r = {high_r}, and how many of r = {low_r}'s directions the two share beyond "
        "random (medians over the blocks and seeds):"
    )
    display(
        pd.DataFrame(analysis.rank_overlap(pairs))
        .pivot_table(index="task", columns="matrix", values=["A", "shared A"], aggfunc="median")
        .round(3)
    )
ranks7 = {r: section7.lora_at(found7, r) for r in (4, 64)}
if all(ranks7.values()):
    say("Table 7, ours (each task's seeds: median [min, max]; α/r is ΔW's scale):")
    display(
        table7_rows(
            [
                {"r": r, **row}
                for r, runs_r in ranks7.items()
                for row in analysis.amplification_rows(runs_r, base, middle)
            ],
            ["r", "matrix", "task"],
        )
    )
# Figure 4 at the paper's rank: seeds 0 and 1 of Table 6's {W_q, W_v} cell at r = 64, as 6.2
overlap64 = pd.DataFrame(analysis.seed_overlap(section7.lora_at(found7, 64)))
if len(overlap64):
    say(
        "Figure 4's question at r = 64 (seeds 0 and 1; medians over the blocks, as 6.2's table; "
        "'shared A' counts directions beyond the random pairs' 99th percentile, of 64):"
    )
    display(
        overlap64.pivot_table(
            index="task", columns="matrix", values=["A", "B", "shared A"], aggfunc="median"
        )
        .round(3)
        .rename_axis(columns=["measure", "matrix (median over blocks)"])
    )

# %% [markdown]
# ## 6.5 How small $r$ can be on E2E (Table 18's question)
#
# The paper's Table 18 (below, as transcribed) trains GPT-2 medium on E2E with its whole
# recipe at ranks from 1 up, 26,000 steps each. The validation loss stops improving at a
# moderate rank (the first rank at its lowest value is printed below), and on the test
# metrics one rank stands out: $r = 4$, the rank the rest of the recipe uses (Table 11; we
# guess its other settings were tuned there, the paper does not say), scores highest on most
# of them (counted below). A small $r$ suffices on GPT-2 medium: $r = 1$ and $2$ score lower
# on BLEU than $r = 4$, but as the ranks from 8 up do ($r = 2$ within their range, $r = 1$ at
# its floor, printed below). Chapter 4.9's campaign has a stage for the analogue
# (`python -m lorabook.e2e.campaign ranks`, its rule written before it ran): SmolLM2 with
# LoRA on $W_q$ and $W_v$ at $r \in \{1, 2, 4, 8, 16, 32, 64\}$, seed 0, LoRA's picked
# learning rate and $\alpha = 32$ at every rank (the paper sets $\alpha$ once and does not
# tune it, so $\alpha / r$ falls as $r$ grows), **one round** (a quarter epoch, 1,315 steps:
# a reduced budget, where the paper trains each rank for its whole recipe), then the test
# set decoded as in 4.9. One round is not a converged run (the sentence below says how much
# further LoRA's pilot fell), so this asks which rank learns E2E fastest, not which is best
# at the end; and with $\alpha$ fixed, the update's scale $\alpha / r$ runs from 32 at
# $r = 1$ to $0.5$ at $r = 64$, so in one round a rank's result is also its effective step
# size's (with Adam, $B$ and $A$ move by about the learning rate whatever the scale).

# %% tags=["hide-input"]
from lorabook.campaign import plan_totals
from lorabook.e2e import campaign as e2e_campaign
from lorabook.e2e import progress as e2e_progress
from lorabook.e2e import report as e2e_report

ranks_plan = e2e_campaign.plan_rows(results_dir)["ranks"][0]
ranks_left = plan_totals(ranks_plan)
ours18 = e2e_report.rank_rows(results_dir)
pilot_losses = [e["dev_loss"] for e in e2e_progress.pilot_records(results_dir)["lora"]["epochs"]]
say(
    f"LoRA's pilot (chapter 4.9): dev loss {pilot_losses[0]:.4f} after one round, "
    f"{pilot_losses[-1]:.4f} after {len(pilot_losses)}, "
    f"{100 * (1 - pilot_losses[-1] / pilot_losses[0]):.1f}% lower. The ranks stage: "
    f"{int(ranks_left['done'])} of {len(ranks_plan)} runs finished "
    f"(~{ranks_left['left']:.0f} worker-hours left). It decides no claim (one round a "
    "rank), so it started after chapter 4.9's runs, which do"
    + (
        ", and its remaining ranks wait for the Section 7 runs of 6.4, which decide three."
        if ranks_left["done"] < len(ranks_plan)
        else "."
    )
)
theirs18 = pd.DataFrame(paper.table(18)).assign(source="paper: GPT-2 M, Table 18")
paper18 = theirs18.set_index("r").drop(columns="source").astype(float)
test_metrics = [m for m in paper18.columns if m != "val loss"]
best_rank = paper18[test_metrics].idxmax()  # each test metric's highest-scoring rank
lowest_loss = paper18.index[paper18["val loss"] == paper18["val loss"].min()][0]
say(
    f"Table 18: the validation loss reaches its lowest, {paper18['val loss'].min():.2f}, at "
    f"r = {lowest_loss}; r = 4 scores highest on {(best_rank == '4').sum()} of "
    f"{len(test_metrics)} test metrics (each metric's best rank: "
    + ", ".join(f"{m} r = {r}" for m, r in best_rank.items())
    + ")."
)
assert (best_rank == "4").sum() > len(test_metrics) / 2, best_rank  # the prose: "most of them"
assert all(paper18.loc[r, "BLEU"] < paper18.loc["4", "BLEU"] for r in ("1", "2")), paper18
higher = paper18.loc[paper18.index.astype(int) >= 8, "BLEU"]
say(
    f"BLEU at r = 1 and 2: {paper18.loc['1', 'BLEU']:.2f} and {paper18.loc['2', 'BLEU']:.2f}; "
    f"at r = 4: {paper18.loc['4', 'BLEU']:.2f}; at r = 8 to {paper18.index[-1]}: "
    f"{higher.min():.2f} to {higher.max():.2f}."
)
assert higher.min() <= paper18.loc["2", "BLEU"] <= higher.max(), higher  # "within their range"
assert abs(paper18.loc["1", "BLEU"] - higher.min()) < 0.05, higher  # "at its floor"
if ours18:
    shown18 = pd.DataFrame(ours18).assign(source="ours: SmolLM2, one round")
    shown18["r"] = shown18["r"].astype(str)
    shown18 = shown18.rename(columns={"dev loss": "val loss", "ROUGE_L": "ROUGE-L"})
    shown18["trainable"] = shown18["trainable"].map("{:,}".format)
    display(
        pd.concat([shown18.round(4).astype(str), theirs18], ignore_index=True)
        .fillna("")
        .set_index(["source", "r"])
    )
else:
    display(theirs18.set_index(["source", "r"]))

# %% [markdown]
# The same, drawn against $r$ (doubling along the axis). Our dev loss and the paper's
# validation loss are per token of different tokenisers, so each has its own panel; BLEU is the
# same metric on the same test set, so both sources share one. The grey points are LoRA's
# three seeds after their first round in chapter 4.9's runs: the ranks stage's settings at
# $r = 4$, seeds 0, 1 and 2 (seed 0's first round is the ranks stage's $r = 4$ run itself, as
# the last sentence below checks). Their spread is how far the seed alone moves a one-round
# dev loss, the scale against which a difference between ranks is read.

# %% tags=["hide-input"]
seeds_round1 = e2e_report.first_round_losses(results_dir)
ours_by_r = pd.DataFrame(ours18).set_index("r") if ours18 else pd.DataFrame()
fig, (ax_ours, ax_paper, ax_bleu) = plt.subplots(1, 3, figsize=(13, 3.4), layout="constrained")
paper_r = paper18.index.astype(int)
if len(ours_by_r):
    ax_ours.plot(ours_by_r.index, ours_by_r["dev loss"], "o-", label="ours: one round")
    ax_bleu.plot(ours_by_r.index, ours_by_r["BLEU"], "o-", label="ours: SmolLM2, one round")
ax_ours.plot(
    [4] * len(seeds_round1),
    list(seeds_round1.values()),
    "o",
    color="grey",
    alpha=0.6,
    label=f"seeds {', '.join(map(str, seeds_round1))} at r = 4 (4.9's runs)",
)
ax_paper.plot(paper_r, paper18["val loss"], "s-", color="C1")
ax_bleu.plot(paper_r, paper18["BLEU"], "s-", color="C1", label="paper: GPT-2 M, Table 18")
for ax, title in (
    (ax_ours, "ours: SmolLM2's dev loss"),
    (ax_paper, "paper: GPT-2 M's val loss (Table 18)"),
    (ax_bleu, "BLEU on the test set"),
):
    ax.set_xscale("log", base=2)
    ax.set(title=title, xlabel="r", xlim=(0.7, 1.4 * paper_r.max()))
    ax.set_xticks(ticks := [1, 4, 16, 64, 256, 1024], labels=map(str, ticks))
for ax in (ax_ours, ax_bleu):
    ax.legend(fontsize="small")
plt.show()
if seeds_round1:
    spread = max(seeds_round1.values()) - min(seeds_round1.values())
    said = (
        f"The seeds' dev losses after one round at r = 4 span {spread:.4f} "
        f"({min(seeds_round1.values()):.4f} to {max(seeds_round1.values()):.4f})"
    )
    if len(ours_by_r) > 1:
        losses = ours_by_r["dev loss"]
        said += (
            f"; the {len(losses)} ranks scored so far span {losses.max() - losses.min():.4f}, "
            f"lowest at r = {losses.idxmin()} ({losses.min():.4f}), highest at "
            f"r = {losses.idxmax()} ({losses.max():.4f})"
        )
    if 4 in ours_by_r.index and 0 in seeds_round1:  # the same run twice: round 1 of seed 0
        said += (
            f". The ranks stage's r = 4 is seed 0's first round trained again: dev loss "
            f"{ours_by_r.loc[4, 'dev loss']:.6f} here, {seeds_round1[0]:.6f} in 4.9's run"
        )
    say(said + ".")

# %% [markdown]
# ## 6.6 What carries over
#
# - **The measures are the paper's, and tested.** $\phi$, its grid, the projections and the
#   amplification factor (and the book's additions: the $B$ panels, the count of shared
#   directions by principal angles, "× random") are package functions with known-answer
#   tests (identical spans give 1, orthogonal ones 0, random ones $\max(i,j)/k$ on average, a
#   planted $\Delta W$ its known projections); the chapter computes every number above from
#   the records.
# - **The scale is not the paper's** (the shapes below are computed from the two configs): a
#   random direction overlaps a fixed one by $1/k$ on average, so chance alone gives larger
#   $\phi$ at MiniLM's width: "beyond random" is a higher bar for $\phi$ here than at
#   GPT-3's, and a value that would stand far above chance there can be chance here. The
#   tasks (SST-2 and STS-B against WikiSQL and MNLI) differ too.
#
# What the records say of the paper's three Section 7 claims, by the rules chapter 7 applies
# (`lorabook.verdict`; the rules for the Section 7 runs were committed before any of them
# ran), with what is still to come. These sentences are computed: they change when a record
# does.

# %% tags=["hide-input"]
from lorabook import verdict
from lorabook.profile import paper_config

gpt3 = paper_config("gpt3-175b")
say(
    f"GPT-3 175B: {gpt3.num_hidden_layers} layers of width {gpt3.hidden_size:,}; MiniLM: "
    f"{base.config.num_hidden_layers} layers of width {base.config.hidden_size}. Two random "
    f"directions overlap {gpt3.hidden_size // base.config.hidden_size} times more, on average, "
    "at MiniLM's width."
)
for finding in (
    verdict.section7_tables(results_dir),
    verdict.subspaces(results_dir),
    verdict.amplification(results_dir),
):
    say(
        f"**{finding.claim}**: *{finding.verdict}*. Ours: {finding.evidence}."
        + (f" Basis: {finding.why}." if finding.why else "")
        + (f" Still to come: {finding.pending}." if finding.pending else "")
    )

# %% [markdown]
# The three rules, as the package states them (each claim's function's docstring, the same
# text chapter 7 applies; open the output to read them):

# %% tags=["hide-input", "hide-output"]
for rule in (verdict.section7_tables, verdict.subspaces, verdict.amplification):
    print(f"{rule.__name__}:\n{inspect.getdoc(rule)}\n")

# %% [markdown]
# Where the Section 7 stage stands:

# %% tags=["hide-input"]
table18 = [row["r"] for row in paper.table(18)]
say(
    f"The Section 7 stage: {int(totals['done'])} of {len(rows7)} runs finished "
    f"(~{totals['left']:.0f} worker-hours left). Tables 5 and 6 (which weights, which rank) "
    f"and Figure 3 (one run at two ranks) are shown in 6.4 as their records land. The paper's "
    f"rank ablation on E2E (its Table 18, GPT-2 medium, r = {table18[0]} to {table18[-1]}): "
    f"{len(ours18)} of {len(ranks_plan)} ranks scored (6.5)."
)
