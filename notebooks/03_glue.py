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
# # 3. GLUE: LoRA against full fine-tuning on an encoder
#
# **The paper's claim** (Section 5.2, Table 2 {cite}`hu2021lora`): on RoBERTa-base
# {cite}`liu2019roberta`, LoRA with $r = 8$ on $W_q$ and $W_v$ (0.3M trainable parameters)
# scores on par with full fine-tuning of all 125M parameters on the GLUE benchmark
# {cite}`wang2019glue`, and better than BitFit and adapters of similar size.
#
# **What this chapter does**: the same comparison, at a scale this project's 2-core CPU can
# train (3.5 shows which runs its budgets stopped while still learning): five GLUE tasks
# (SST-2, MRPC, CoLA, RTE, STS-B; the other three are too large to keep offline) and
# MiniLM-L6 {cite}`wang2020minilm` (22.7M parameters) standing in for RoBERTa-base. Five
# methods, each from `lorabook.methods`:
#
# - **FT**, full fine-tuning: every weight trains;
# - **BitFit** {cite}`benzaken2021bitfit`: only the bias terms train;
# - **AdapterH** {cite}`houlsby2019parameter`: a bottleneck adapter (down-projection,
#   nonlinearity, up-projection, with its own residual) after the attention block and after
#   the feed-forward block of every layer;
# - **AdapterH (FFN only)**: the same adapter after the feed-forward block only. This
#   chapter's campaign ran it under the name `adapter_p`, taking it for Pfeiffer's adapter
#   {cite}`pfeiffer2021adapterfusion`; it is not: Pfeiffer's reads the feed-forward block's
#   output after its residual and LayerNorm, uses ReLU, and the LayerNorm is applied again
#   after it. `adapter_p` in `lorabook.methods` is now Pfeiffer's, and the `cpu` records keep
#   their meaning (`adapter_p_variant`: `houlsby_ffn`); the tables below name them so;
# - **LoRA**, $r = 8$ on $W_q$ and $W_v$.
#
# (The paper's fourth adapter, AdapterL {cite}`lin2020exploring`, appears in its GPT-2
# tables, chapter 4.) FT and LoRA run with three seeds each, the others with one. Every
# method's learning rate and epochs were picked by the same rule, from one sweep on MRPC
# (below). The paper sweeps learning rate, epochs and batch size for LoRA (its Appendix D.1)
# and tunes the adapters of its RoBERTa-large rows; its RoBERTa-base FT, BitFit and
# AdapterDrop rows are numbers quoted from earlier papers. Every number of ours is read
# from a result record that `lorabook.glue.run_glue` wrote; building the book trains nothing.
#
# With a GPU and the hub, `mode = "paper"` runs LoRA on `roberta-base` with Table 9's
# settings, and FT with one point of the fine-tuning grid of {cite:t}`liu2019roberta` (Table 9
# has no FT settings: the paper quotes its RoBERTa-base FT row from prior work).

# %% tags=["parameters"]
# "quick": read the committed CPU records; "paper": RoBERTa-base on a GPU
mode = "quick"

# %% tags=["hide-input"]
import inspect

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from lorabook import paper
from lorabook.glue import campaign, report
from lorabook.glue.presets import CPU_CHOSEN, CPU_SWEEP, CPU_SWEEP_TASK, glue_preset
from lorabook.paths import REPO_ROOT
from lorabook.runs import find_records

assert mode in ("quick", "paper"), f"mode must be 'quick' or 'paper', got {mode!r}"
results_dir = REPO_ROOT / "results"
tasks = list(campaign.TASKS)
methods = list(report.METHOD_NAMES)
# what each method's runs are called: the `cpu` campaign's `adapter_p` runs trained
# Houlsby's adapter after the feed-forward block only (see the list above)
NAMES = {
    m: report.method_name(
        m, glue_preset("paper" if mode == "paper" else "cpu", "mrpc", m).resolved(m)
    )
    for m in methods
}
colors = {
    "ft": "#666666",
    "bitfit": "#1b9e77",
    "adapter_h": "#7570b3",
    "adapter_p": "#e7298a",
    "lora": "#d95f02",
}
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})


def show(obj) -> None:
    """Print the source of a package function."""
    print(inspect.getsource(obj))


if mode == "paper":  # on a GPU with the hub: the paper's settings, FT and LoRA, 5 seeds
    from lorabook.glue.experiment import run_glue

    for task in tasks:
        for method in ("ft", "lora"):
            for seed in range(5):
                job = (task, method, "roberta-base", "paper", seed)
                run_glue(*job, results_dir=results_dir, progress=False)

# %% [markdown]
# ## 3.1 The settings
#
# The paper's LoRA hyperparameters for RoBERTa-base (Table 9) and our `cpu` preset for
# MiniLM, per task. The `cpu` preset trains on the whole training sets of MRPC, RTE, STS-B
# and CoLA and on a seeded 10,000-example part of SST-2's 67,349 {cite}`wang2019glue`
# (budget: SST-2's whole set would cost more than the four others together), with sequences
# up to 128 tokens, batches of 16 padded to their longest example and grouped by length.
# The preset now trains in bf16 where the CPU computes it natively; every `cpu`
# run of this chapter (3.2 to 3.9) was made before that, in fp32, and the campaign keeps it
# so (`campaign.RECORDED_IN`: its jobs pass `--mixed-precision no`); the `full` campaign of
# 3.10 trains in bf16.

# %% tags=["hide-input"]
rows = []
for task in tasks:
    paper_lora = glue_preset("paper", task, "lora")
    cpu = glue_preset("cpu", task, "lora")
    rows.append(
        {
            "task": task,
            "paper: batch": paper_lora.train.batch_size,
            "paper: epochs": paper_lora.train.epochs,
            "paper: lr": paper_lora.train.lr,
            "paper: max len": paper_lora.max_length,
            "cpu: batch": cpu.train.batch_size,
            "cpu: max len": cpu.max_length,
            "cpu: train examples": cpu.train_examples or "all",
        }
    )
pd.DataFrame(rows).set_index("task")

# %% [markdown]
# **The paper, its scripts, and this book.** The official scripts
# {cite}`microsoft2021loracode` (`examples/NLU/roberta_base_<task>.sh`) pass Table 9's batch
# size as the *per-device* batch, with its learning rate, epochs and maximum length, but they
# launch 8 processes (CoLA: 2), so their effective batch is 8 times (CoLA: 2 times) Table 9's,
# unless Table 9 means a per-device batch, which the paper does not say. They also pass
# `--lora_alpha 16` where Table 9 says $\alpha = 8$, and `--weight_decay 0.1`, which Table 9
# does not list. Our `paper` preset takes Table 9's batch as the whole batch, $\alpha = 8$,
# and the scripts' weight decay. For MRPC, RTE and STS-B the paper (Appendix D.1) and its
# scripts (`--lora_path roberta_base_mnli_lora.bin`) alike start LoRA from the LoRA weights
# trained on MNLI; that is a difference between the paper and this book, not within the
# paper: MNLI is not in the offline data, so every run here starts from the pretrained
# model. Finally, the paper's FT, BitFit and AdapterDrop rows for RoBERTa-base are taken
# from earlier papers, each tuned there; ours are all tuned by one sweep.
#
# ## 3.2 Choosing learning rates and epochs: the sweep
#
# Each method is trained on MRPC (seed 0) at each of a few learning rates, evaluating the dev
# set after every epoch. The rule, written before the sweep ran:

# %%
print(campaign.__doc__.split("**The rule**")[1].split("**The runs**")[0].strip())
show(campaign.pick)

# %% tags=["hide-input"]
all_records = find_records(results_dir, "glue", preset="cpu", model="minilm")
picks = campaign.pick(all_records)
sweep_rows = []
for method, result in picks.items():
    lrs, epochs = CPU_SWEEP[method]
    if "missing" in result:
        sweep_rows.append({"method": method, "status": f"{len(result['missing'])} run(s) to go"})
        continue
    sweep_rows.append(
        {
            "method": method,
            "status": "done",
            "tried (lr: best MRPC accuracy)": " · ".join(
                f"{lr:g}: {100 * s:.1f}" for lr, s in result["tried"].items()
            ),
            "picked lr": result["lr"],
            "picked epochs": f"{result['epochs']} of {epochs}",
            "in the preset": CPU_CHOSEN.get(method) == (result["lr"], result["epochs"]),
        }
    )
display(pd.DataFrame(sweep_rows).set_index("method"))

# %% tags=["hide-input"]
done = {m: r for m, r in picks.items() if "missing" not in r}
if done:
    fig, axes = plt.subplots(1, len(done), figsize=(3.2 * len(done), 3), squeeze=False)
    by_key = {r["key"]: r for r in all_records}
    for ax, (method, result) in zip(axes[0], done.items(), strict=True):
        for job in (j for j in campaign.sweep_jobs(all_records) if j.method == method):
            record = by_key[job.plan(results_dir).paths.key]
            curve = [100 * e[record["metric"]] for e in record["epochs"]]
            ax.plot(
                range(1, len(curve) + 1),
                curve,
                marker="o",
                ms=3,
                label=f"lr {job.lr:g}",
                lw=2.5 if job.lr == result["lr"] else 1,
            )
        ax.axvline(result["epochs"], color="black", lw=0.8, ls=":")
        ax.set(title=f"{NAMES[method]}", xlabel="epoch")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(f"{CPU_SWEEP_TASK} dev accuracy (×100)")
    fig.suptitle("Sweep on MRPC: dev accuracy per epoch; dotted: the epochs picked")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## 3.3 The runs
#
# FT and LoRA with seeds 0, 1 and 2, BitFit and the adapters with seed 0, on the five
# tasks, at the picked settings (`python -m lorabook.glue.campaign runs`). Each record's
# name carries a hash of every setting that decides the run, so the sweep's runs at other
# learning rates sit beside these without being mistaken for them.

# %%
planned = campaign.campaign_jobs()  # the methods the sweep has picked settings for
found = report.campaign_records(results_dir, planned)
waiting = [m for m in methods if m not in CPU_CHOSEN]
print(
    f"{len(found)} of {len(planned)} planned runs finished"
    + (f"; waiting for their sweep: {', '.join(waiting)}" if waiting else "")
)
missing = [str(j) for j in planned if j not in found]
if missing:
    print("not yet run:", ", ".join(missing[:12]) + (" ..." if len(missing) > 12 else ""))
summary = pd.DataFrame(report.summary(found))

# %% [markdown]
# ## 3.4 Our Table 2
#
# In the paper's layout: the metric per task is the paper's (accuracy for SST-2, MRPC and
# RTE, Matthews correlation for CoLA, Pearson correlation for STS-B, all ×100), each run at
# its best epoch; for FT and LoRA the median of three seeds with the range in brackets (the
# paper reports the median of five). "Trainable" excludes the classification head, as the
# paper's counts do. The last row is what a model that learned nothing scores: the training
# set's most frequent label predicted for every dev example (no row entry for STS-B, where a
# constant has no correlation). Below ours, the paper's RoBERTa-base rows, read from the
# paper's table.


# %% tags=["hide-input"]
def cell(row) -> str:
    if row["seeds"] == 1:
        return f"{row['median']:.1f}"
    return f"{row['median']:.1f} [{row['min']:.1f}, {row['max']:.1f}]"


def table_2(summary: pd.DataFrame, model: str) -> pd.DataFrame:
    """Median [range] per method and task, in Table 2's layout; the average where complete."""
    ours = summary.assign(cell=summary.apply(cell, axis=1))
    table = ours.pivot(index="method", columns="task", values="cell")
    medians = ours.pivot(index="method", columns="task", values="median")
    table = table.reindex(
        index=[m for m in methods if m in table.index],
        columns=[t for t in tasks if t in table.columns],
    ).fillna("—")
    table.insert(0, "trainable", ours.groupby("method")["trainable"].first().map("{:,}".format))
    complete = medians.reindex(columns=tasks).notna().all(axis=1)
    table["avg"] = [
        f"{medians.loc[m, tasks].mean():.1f}" if complete[m] else "—" for m in table.index
    ]
    table.index = [f"{model} {NAMES[m]} (ours)" for m in table.index]
    return table


if len(summary):
    ours = table_2(summary, "MiniLM-L6")
    guess = {t: report.majority_class(t) for t in tasks}
    ours.loc["no training: the majority class"] = [
        "0",
        *("—" if guess[t] is None else f"{guess[t]:.1f}" for t in ours.columns[1:-1]),
        "—",
    ]
    display(ours)
paper_table = pd.DataFrame(report.paper_rows())
paper_table["avg (these 5 tasks)"] = paper_table[tasks].mean(axis=1).round(1)
paper_table["params"] = paper_table["params"].map(lambda p: f"{p / 1e6:.1f}M")
paper_table = paper_table.set_index("method")[["params", *tasks, "avg (these 5 tasks)", "source"]]
paper_table.index = [f"RoBERTa-base {m}" for m in paper_table.index]
paper_table

# %% [markdown]
# In `paper` mode (a GPU and the hub), the chapter's first cell trained LoRA on
# RoBERTa-base with Table 9's settings and FT with one point of RoBERTa's fine-tuning grid
# (`lorabook.glue.presets`), five seeds each; their table, in the same layout, and LoRA − FT
# per task:

# %%
if mode == "paper":
    roberta = pd.DataFrame(
        report.summary(report.preset_records(results_dir, "paper", "roberta-base"))
    )
    display(table_2(roberta, "RoBERTa-base"))
    display(pd.DataFrame(report.lora_minus_ft(roberta.to_dict("records"))).set_index("task"))
else:
    print("quick mode: no RoBERTa-base runs (run this notebook with mode='paper' on a GPU)")

# %% [markdown]
# The paper's average is over eight tasks; the one beside its rows here is over the same five
# tasks as ours. The paper's `*` rows are numbers from earlier papers: FT from RoBERTa's
# {cite}`liu2019roberta`, BitFit from {cite:t}`benzaken2021bitfit`; its AdptD rows are
# AdapterDrop {cite}`ruckle2020adapterdrop`, not the adapters we train (the paper reports
# AdapterH and AdapterP only on RoBERTa-large).
#
# ## 3.5 LoRA − FT, task by task
#
# The paper's claim is about its table as a whole: LoRA "on-par or better than fine-tuning"
# (its abstract). It makes no promise for every task, and its own Table 2 would fail a
# per-task test; for all eight of its tasks (read from the transcription of Table 2):

# %% tags=["hide-input"]
table_2 = {row["model / method"]: row for row in paper.table(2)}
glue_columns = [
    c for c in table_2["RoBERTa-base LoRA"] if c not in ("model / method", "params", "avg")
]
paper_per_task = pd.DataFrame(
    {
        column: {
            f"LoRA − {other}": paper.value(table_2["RoBERTa-base LoRA"][column])
            - paper.value(table_2[f"RoBERTa-base {other}*"][column])
            for other in ("FT", "BitFit")
        }
        for column in glue_columns
    }
).T
paper_per_task.index.name = "RoBERTa-base, Table 2"
display(paper_per_task.round(1))
below_ft = sorted(paper_per_task.index[paper_per_task["LoRA − FT"] < -1])
below_bitfit = sorted(paper_per_task.index[paper_per_task["LoRA − BitFit"] < 0])
assert below_ft == ["QQP"] and below_bitfit == ["MRPC"], (below_ft, below_bitfit)
print(f"more than a point below FT: {below_ft}; below BitFit: {below_bitfit}")

# %% [markdown]
# On QQP the paper's LoRA is more than a point below its FT, and on MRPC below BitFit. The
# per-task test is therefore **our own criterion**, stricter than the paper's, written before
# our runs: LoRA's median no more than 1 point below FT's, task by task. The table gives the
# median of LoRA minus the median of FT, with each method's seed range:

# %% tags=["hide-input"]
diffs = pd.DataFrame(report.lora_minus_ft(report.summary(found)))
if len(diffs):
    shown = diffs.set_index("task")
    for col in ("FT range", "LoRA range"):
        shown[col] = shown[col].map(lambda r: f"[{r[0]:.1f}, {r[1]:.1f}]")
    display(shown.round(2))
    fig, ax = plt.subplots(figsize=(7, 3))
    x = np.arange(len(diffs))
    ax.bar(x, diffs["LoRA − FT"], color=["#1b9e77" if h else "#d95f02" for h in diffs["holds"]])
    low = [lr[0] - fr[1] for lr, fr in zip(diffs["LoRA range"], diffs["FT range"], strict=True)]
    high = [lr[1] - fr[0] for lr, fr in zip(diffs["LoRA range"], diffs["FT range"], strict=True)]
    ax.vlines(x, low, high, color="black", lw=1, label="LoRA range − FT range")
    ax.axhline(0, color="black", lw=0.8)
    ax.axhline(-1, color="grey", lw=0.8, ls="--", label="1 point below FT")
    ax.set(
        xticks=x,
        xticklabels=diffs["task"],
        ylabel="LoRA − FT (points)",
        title="Median LoRA − median FT per task",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    plt.show()
else:
    print("no task has both FT and LoRA records yet")

# %% [markdown]
# ### How far did training get?
#
# A run that was still learning when it stopped shows it twice: its training loss at the last
# epoch is still high, and its best dev score is at its last epoch. Per task and method, the
# median over seeds of the last epoch's training loss, and how many runs peaked at their last
# epoch:

# %% tags=["hide-input"]
if len(summary):
    progress = summary[summary.method.isin(["ft", "lora"])].assign(
        method=lambda d: d.method.map(NAMES),
        peaked=lambda d: d.peaked_last.astype(str) + " of " + d.seeds.astype(str),
    )
    display(
        progress.set_index(["task", "method"])[["epochs", "last_train_loss", "peaked"]]
        .rename(
            columns={
                "last_train_loss": "last-epoch train loss",
                "peaked": "peaked at the last epoch",
            }
        )
        .reindex([(t, m) for t in tasks for m in ("FT", "LoRA")])
        .dropna()
        .round(3)
    )

# %% [markdown]
# ### Where LoRA falls behind: under-trained?
#
# One explanation is cheap to test. On these five tasks the paper trains LoRA on RoBERTa-base
# for many times our epochs (Table 9's epochs are printed below); our sweep's rule picked
# LoRA's epochs on MRPC and then fixed them for every task. Where LoRA's median over its
# three seeds ends more than a point below FT's, `python -m lorabook.glue.campaign
# follow-ups` trains LoRA once more (seed 0, same learning rate) for four times the epochs.
# These runs test the explanation; the table above keeps the rule's settings.

# %% tags=["hide-input"]
print(report.follow_up_jobs.__doc__.split("\n\n")[0])
paper_epochs = {task: glue_preset("paper", task, "lora").train.epochs for task in tasks}
print("paper, Table 9, RoBERTa-base LoRA epochs:", paper_epochs)
follow_ups = report.follow_up_jobs(results_dir)
followed = report.campaign_records(results_dir, follow_ups)
if not follow_ups:
    print(
        "no task with all its FT and LoRA seeds finished where LoRA is more than a point "
        "behind FT: nothing to follow up (yet)"
    )
elif not followed:
    print("not yet run:", ", ".join(map(str, follow_ups)))
else:
    by_task = {d["task"]: d for d in diffs.to_dict("records")}
    fig, axes = plt.subplots(1, len(followed), figsize=(4 * len(followed), 3), squeeze=False)
    for ax, (job, longer) in zip(axes[0], followed.items(), strict=True):
        for method in ("ft", "lora"):
            record = found.get(campaign.Job(job.task, method, 0))
            if record is not None:
                curve = [100 * e[record["metric"]] for e in record["epochs"]]
                ax.plot(
                    range(1, len(curve) + 1),
                    curve,
                    "-",
                    color=colors[method],
                    marker="o",
                    ms=3,
                    label=f"{NAMES[method]} (picked)",
                )
        curve = [100 * e[longer["metric"]] for e in longer["epochs"]]
        ax.plot(
            range(1, len(curve) + 1),
            curve,
            "--",
            color=colors["lora"],
            label=f"LoRA, {job.epochs} epochs",
        )
        ft_median = by_task[job.task]["FT median"]
        ax.axhline(ft_median - 1, color="grey", lw=0.8, ls=":", label="FT's median − 1")
        ax.set(title=f"{job.task}, seed 0", xlabel="epoch")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("dev score (×100)")
    fig.tight_layout()
    plt.show()
    ft_loss = summary.set_index(["task", "method"])["last_train_loss"]
    lines = []
    for job, longer in followed.items():
        d = by_task[job.task]
        lines.append(
            f"- **{job.task}**: LoRA with {job.epochs} epochs reaches {report.score(longer):.1f}"
            f" (seed 0, best at epoch {longer['best_epoch']}; last-epoch train loss "
            f"{longer['epochs'][-1]['train_loss']:.3f}, FT's median "
            f"{ft_loss[job.task, 'ft']:.3f}). FT's median score is {d['FT median']:.1f}, "
            f"LoRA's with the picked epochs {d['LoRA median']:.1f}."
        )
    display(Markdown("\n".join(lines)))


# %% [markdown]
# ## 3.6 Score against trainable parameters
#
# The paper's picture: methods that train far fewer parameters can match the one that trains
# them all. Per task, each method's median dev score against its trainable parameters
# (head excluded), log scale:

# %% tags=["hide-input"]
if len(summary):
    fig, axes = plt.subplots(1, len(tasks), figsize=(15, 3), sharex=True)
    for ax, task in zip(axes, tasks, strict=True):
        part = summary[summary.task == task]
        for _, row in part.iterrows():
            ax.errorbar(
                row["trainable"],
                row["median"],
                yerr=[[row["median"] - row["min"]], [row["max"] - row["median"]]],
                fmt="o",
                color=colors[row["method"]],
                capsize=3,
                label=NAMES[row["method"]],
            )
        ax.set(xscale="log", title=task, xlabel="trainable parameters")
    axes[0].set_ylabel("dev score (×100)")
    handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
    fig.legend(
        handles.values(),
        handles.keys(),
        loc="upper center",
        ncol=5,
        fontsize=8,
        bbox_to_anchor=(0.5, 1.08),
    )
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## 3.7 Learning curves
#
# The dev score after every epoch, every seed (thin lines) of FT and LoRA:

# %% tags=["hide-input"]
if found:
    fig, axes = plt.subplots(1, len(tasks), figsize=(15, 3), sharex=False)
    for ax, task in zip(axes, tasks, strict=True):
        for job, record in found.items():
            if job.task != task or job.method not in ("ft", "lora"):
                continue
            curve = [100 * e[record["metric"]] for e in record["epochs"]]
            ax.plot(
                range(1, len(curve) + 1),
                curve,
                color=colors[job.method],
                lw=1,
                alpha=0.8,
                label=NAMES[job.method] if job.seed == 0 else None,
            )
        ax.set(title=task, xlabel="epoch")
    axes[0].set_ylabel("dev score (×100)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## 3.8 Where the numbers came from
#
# Each record names its device, package versions and the git commit of the code that made
# it; the data folder's files are identified by their SHA-256 in the record. "Train tok/s" is
# real (non-pad) training tokens per second of training: two runs trained at a time here,
# each on one core with one thread.

# %% tags=["hide-input"]
pd.DataFrame(
    [
        {
            "run": str(job),
            "device": r["environment"]["device"],
            "train tok/s": round(
                r["train_tokens"]["real"] / sum(e["train_seconds"] for e in r["epochs"])
            ),
            "commit": (r["environment"]["git_commit"] or "?")[:12],
            "finished": r["finished_at"],
            "train rows": r["data"]["train_rows"],
            "dev rows": r["data"]["eval_rows"],
        }
        for job, r in found.items()
    ]
).set_index("run") if found else print("no records yet")

# %% [markdown]
# What it cost: the plan's estimate for each part (`python -m lorabook.glue.campaign plan`,
# from the measured tokens per second of one worker, a training process on one core; a
# worker-hour is one such process for an hour) and the training time its finished
# records spent, summed over epochs; evaluating the dev set after each epoch comes on top.

# %% tags=["hide-input"]
sweep = campaign.sweep_jobs(all_records)
by_key = {r["key"]: r for r in all_records}
cost = []
for part, jobs in (("sweep", sweep), ("runs", planned), ("follow-ups", follow_ups)):
    done = [by_key[j.key()] for j in jobs if j.key() in by_key]
    cost.append(
        {
            "part": part,
            "runs planned": len(jobs),
            "runs finished": len(done),
            "estimated worker-hours (all)": sum(j.estimate_seconds() for j in jobs) / 3600,
            "worker-hours spent": sum(e["train_seconds"] for r in done for e in r["epochs"]) / 3600,
        }
    )
pd.DataFrame(cost).set_index("part").round(1)

# %% [markdown]
# ## 3.9 What the evidence supports
#
# The paper makes two claims about Table 2: LoRA is on par with full fine-tuning, and it
# beats the other parameter-efficient methods (BitFit, adapters). Both are claims about the
# table as a whole; the per-task tests below are ours (3.5). Computed from the records:

# %% tags=["hide-input"]
lines = []
if len(diffs):
    held = int(diffs["holds"].sum())
    lines.append(
        f"**On par with FT**, our per-task test (LoRA's median within 1 point of FT's, or "
        f"above): on {held} of {len(diffs)} tasks."
    )
    for d in diffs.to_dict("records"):
        verdict = "holds" if d["holds"] else "does not hold"
        lines.append(
            f"- **{d['task']}**: LoRA − FT = {d['LoRA − FT']:+.2f} points (seeds: "
            f"{d['seeds'][1]} LoRA, {d['seeds'][0]} FT): our test {verdict} here."
        )
    others = report.lora_vs_others(summary.to_dict("records"))
    ahead = sum(o["LoRA ahead"] for o in others)
    lines.append(
        f"\n**Above BitFit and the adapters** (LoRA's median at or above the best of the "
        f"three, each of which has one seed): on {ahead} of {len(others)} tasks."
    )
    for o in others:
        lines.append(
            f"- **{o['task']}**: LoRA {o['LoRA median']:.1f}, best other "
            f"{o['best other']} {o['its score']:.1f}."
        )
else:
    lines.append("No task has both FT and LoRA records yet: no verdict.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ### Reading it, task by task
#
# The prose below was written for the findings this cell computes from the records. If a
# re-run changes one of them, the cell stops the book's build (and a test fails on the
# committed records), so that the text is rewritten instead of contradicting the tables.

# %% tags=["hide-input"]
written_for = {
    "LoRA within a point of FT": {
        "mrpc": True,
        "rte": False,
        "stsb": True,
        "cola": False,
        "sst2": False,
    },
    "LoRA at or above BitFit and the adapters": {
        "mrpc": False,
        "rte": False,
        "stsb": False,
        "cola": False,
        "sst2": False,
    },
    "LoRA trained longer within a point of FT": {"rte": False, "cola": True, "sst2": True},
}
findings = report.outcomes(results_dir)
missing = len(planned) - len(found) + len(follow_ups) - len(followed)
if missing:
    print(f"{missing} planned runs are missing: the reading below is ahead of the records")
elif findings != written_for:
    raise AssertionError(
        f"the records now say {findings}; the prose below was written for {written_for}: "
        "rewrite it, then update written_for"
    )
else:
    print("the records give the findings the prose below was written for")

# %% [markdown]
# **MRPC** (our test holds, just). The sweep ran on MRPC, so every method's learning rate
# and epochs were chosen here: the fairest ground for all five. LoRA's median lands inside
# the one-point line with almost nothing to spare, and FT's own three seeds spread wider than
# the gap between the two. All five methods lie within about two points of each other, with
# BitFit, which trains the biases only, on top. At three seeds (one for BitFit and the
# adapters) this is "indistinguishable", not an ordering.
#
# **STS-B** (holds). Scoring how alike two sentences are is what all-MiniLM-L6-v2 was trained
# for (a contrastive objective on about a billion sentence pairs, in the manner of
# Sentence-BERT {cite}`sbert2021allminilm,reimers2019sentence`), so its features plausibly carry
# most of the answer before any training: every method lands within about a point of the others,
# and BitFit is again at the top. LoRA is the lowest of the five, yet within the line; its
# seeds all scored best at their last epoch, so a longer run would probably close more of the
# gap.
#
# **RTE** (does not hold, by several points). RTE is where our scores are furthest from the
# paper's. It is the smallest task (2,490 training pairs {cite}`wang2019glue`; one dev
# example is worth 0.36 points), and it is nearly balanced, so the no-training row sits
# close to 50. Only FT clearly leaves that row: BitFit stays on it, the adapters and LoRA
# rise a few points above. The paper's RoBERTa-base LoRA does not start RTE from the
# pretrained model but from a LoRA already trained on MNLI (its Appendix D.1; 3.1), and it
# says that its FT baseline, too, started from a model adapted to MNLI (Section 5.2). So
# that start cannot explain why its LoRA beats its FT on RTE, and the paper does not isolate
# its effect (its only pair with and without it, RoBERTa-large LoRA and LoRA†, also differs
# in maximum length and batch size, Table 9). Our FT and LoRA both start from MiniLM as
# pretrained, like every other run here. The training loss (above) says LoRA had barely
# begun to fit RTE when its five epochs ended, so the follow-up trained it four times longer
# (3.5). It then fits the training pairs better than FT did, its last-epoch loss well below
# FT's, and still stays several points behind FT on dev, inside the range of its own
# five-epoch runs. So four times the epochs did not close the gap on RTE; but that run's dev
# score was still at its highest in its last epochs (3.5), the sign of a run still learning,
# so whether a longer one would close it these runs cannot say. The `full` campaign's budget
# rule (3.10), which doubles a run still rising at its end, will. Whether an MNLI start would
# change the gap, for LoRA or for FT, this offline setup cannot say.
#
# **CoLA** (does not hold at the picked epochs; LoRA trained longer closes the gap). Every
# method is far below RoBERTa here, and FT's own seeds spread widely. Grammatical
# acceptability is plausibly what a sentence-embedding objective teaches a model to ignore:
# two wordings that mean the same are pulled together whether or not both are grammatical.
# LoRA's three seeds all scored best at their last epoch, and its training loss ended well
# above FT's: the two signs of runs stopped while still learning. Trained four times longer
# (3.5), LoRA's seed 0 scores *above* FT's median, by more than its one-point margin (the
# follow-up lines in 3.5). With one seed, this says that training time explains the gap on
# CoLA, not that longer training closes it every time; our rule fixed that time on MRPC,
# where five epochs were enough, and the paper trains LoRA on CoLA for many times that
# (Table 9, printed in 3.5). AdapterH, with eight times LoRA's trainable parameters here,
# reached FT's level within its five epochs.
#
# **SST-2** (does not hold at the picked epochs; LoRA trained longer closes the gap). Sentiment
# of single sentences, trained here on a 10,000-example part of SST-2's training set (3.1).
# At their picked epochs (four or five, from the sweep: 3.2) the two adapters, with four and
# eight times LoRA's trainable parameters, land within a point of FT; LoRA and BitFit, the
# two smallest methods, trail it. LoRA's
# training loss ended well above FT's, and trained four times longer (3.5) its seed 0 comes
# within a point of FT's median, as on CoLA, though only just, at a peak of its noisy curve
# (3.5): with one seed, this says training time explains most of the gap, not that it closes
# it every time.
#
# **Across the tasks.** LoRA holds on MRPC and STS-B and falls behind, at the rule's
# settings, on RTE, CoLA and SST-2. On STS-B, the task MiniLM's own training objective
# prepared it for, the pretrained features plausibly carry much of the task; on MRPC we have
# no such evidence (no linear probe: the only reference point is the majority class), so why
# LoRA holds there is open. Training longer closes the gap on CoLA and SST-2 (one seed each),
# not, within four times the epochs, on RTE: the five epochs our rule read off MRPC were too
# few for LoRA elsewhere. The paper, for its part, sweeps LoRA's epochs per task (Appendix
# D.1, Table 9) without saying why; our runs suggest one reason. RTE's gap outlasts four times
# the epochs, for a reason these runs do not identify; the MNLI start is not a ready answer,
# since the paper gives it to FT and LoRA alike.
# The paper's second claim, LoRA above BitFit and the adapters, does not hold on any task
# here. Our comparison is not the paper's, though: on MiniLM, $r = 8$ on $W_q, W_v$ gives
# LoRA a quarter of AdapterH (FFN only)'s trainable parameters and an eighth of AdapterH's (the
# "trainable" column above), where the paper sets LoRA beside adapters of about its own size
# (the "params" column of its rows); and its baseline rows come from other papers, each
# tuned there, where ours share one sweep rule and, like LoRA, few epochs. One seed of each
# baseline cannot separate methods that the seeds of FT alone spread across, task by task.
# The paper's claim is its "Avg." column, though, and chapter 7 reads these same runs that
# way (the average over the tasks, against LoRA's spread over its seeds, the baselines
# having none); computed here from the same records:

# %% tags=["hide-input"]
from lorabook import verdict

on_average = verdict.glue_vs_baselines(results_dir, cpu_only=True)
display(
    Markdown(
        f"**Chapter 7's row, on these runs**: *{on_average.verdict}*. {on_average.evidence}. "
        f"Rule: {on_average.why}."
    )
)

# %% [markdown]
# ## 3.10 The `full` campaign: budgets per task, baselines at LoRA's size, three seeds each
#
# What 3.9 cannot decide, the `full` campaign (`lorabook.glue.full_campaign`) is built to:
# every method trains at a budget chosen per task by a rule written before the runs (a long
# seed-0 run, 10 epochs for FT and 20 for the others to start with (printed below), doubled
# until it has peaked, at most twice: its best epoch lies in the first
# four fifths, or its last fifth gains less than one dev example's share; after two
# doublings the longest run is the budget; seeds 1 and 2 then train at seed 0's budget),
# AdapterH and AdapterP at LoRA's size (78,432 and 76,128 trainable parameters against
# LoRA's 73,728), Pfeiffer's AdapterP, no sequence truncated (SST-2 still on its
# 10,000-example part), a read-out ([CLS] or mean pooling) chosen on two tasks for every
# method alike, bf16, and three seeds of every method. A difference is judged by the rule in
# `lorabook.glue.full_report`: the medians' difference against the seeds' ranges and, seed
# by seed, a paired bootstrap over the dev examples (the table counts the seeds whose 95%
# interval lies above or below zero). LoRA is *above* (or *below*) another method only when
# both say so: the medians' difference exceeds the larger of the two methods' ranges over
# seeds (the table's "spread"), **and** every seed's interval lies on that side of zero;
# otherwise "not separated". "On par with FT" also asks LoRA's median to be
# within a point of FT's, so that a wide spread alone cannot make a large gap "on par". It
# ran on this machine's two cores beside the E2E campaign, then after it, in four stages:
# `head` (the read-out, below), `long` (the seed-0 runs that set the budgets), `seeds` (seeds
# 1 and 2 at those budgets, and the larger adapters' one seed) and `section7` (chapter 6's
# cells). Where it stands (a
# finished run's estimate is the one the plan made before it finished, at the speeds of the
# runs that finished before it, so "estimated h" against "spent h" says how far off the plan
# was; the lines below the table re-estimate each stage at today's speeds, so their hours
# differ a little):

# %% tags=["hide-input"]
from lorabook import campaign as shared
from lorabook.glue import full_campaign, full_report

full_stages, full_order = full_campaign.plan_and_order(results_dir)
stage_rows = shared.stage_progress(full_stages)
display(pd.DataFrame(stage_rows).set_index("stage").drop(columns="note").round(1))
display(Markdown(shared.progress_markdown(stage_rows)))

# %% [markdown]
# The stages do not run one after the other. Planned from measured speeds (those of the
# machine the campaign last ran on, where it has run a method), the campaign is over the
# budget this project set for it (about 20 worker-hours for this chapter's runs and 15 for
# chapter 6's; the line below the table gives both), so it runs what decides a claim first,
# in the order of what matters most when the budget does not fit all: FT and LoRA, every
# seed, first (the first claim); then BitFit and
# the adapters at LoRA's size, every seed (the second claim); then chapter 6's Section 7
# runs, one seed of every cell before the other seeds, so that this chapter's evidence is
# whole before chapter 6's begins; last, the larger adapters, one seed (they decide no claim,
# and the `cpu` runs of 3.9 have them at its budgets). The order is a priority, not a
# wait: a worker that comes free takes the first job that can run now, so it does not sit
# idle while the other finishes a step's last run.
# Each step, its hours left (runs still waiting for a budget counted at the starting epochs)
# and the running total:

# %% tags=["hide-input"]
display(pd.DataFrame(full_order).set_index("step").round(1))
aims = full_campaign.GLUE_AIM_HOURS + full_campaign.SECTION7_AIM_HOURS
planned = sum(r["estimated h"] for r in stage_rows)
print(
    f"the whole campaign: ~{planned:.0f} worker-hours planned; the budget set: ~{aims} "
    f"({full_campaign.GLUE_AIM_HOURS} for this chapter's runs, "
    f"{full_campaign.SECTION7_AIM_HOURS} for chapter 6's)"
)
print("starting epochs of each method's long runs:", full_campaign.presets.FULL_START_EPOCHS)
assert planned > aims, planned  # "over the budget": else rewrite the prose

# %% [markdown]
# The read-out comes first. all-MiniLM-L6-v2 was trained to be read by the mean of its token
# vectors, and its pooler (the [CLS] head the other sections use) looks untrained, which may
# hold back the methods that freeze the encoder more than FT. The head stage trains every
# method on SST-2 and STS-B, seed 0, with each read-out, at the `cpu` preset's epochs. It
# picks the read-out with the higher mean dev score, for every method alike (a tie: [CLS]).
# What this rule cannot see, said before it decides: at the `cpu` preset's few epochs most of
# these runs still score best at their last epoch, so the pick favours the read-out that
# learns faster, not necessarily the better one at the long budgets; and the learning rates
# came from a sweep that read [CLS]. Its runs so far (best dev score ×100 and the epoch it was
# reached at, of the run's epochs; empty while a run is still to finish):

# %% tags=["hide-input"]
# the full campaign's names: its adapter_p is Pfeiffer's adapter, not the cpu runs' FFN one
FULL_NAMES = {m: full_report.method_name(m) for m in methods}
head = pd.DataFrame(full_report.head_rows(results_dir))
head = head[["task", "method", "cls", "mean", "mean − cls", "cls epoch", "mean epoch", "epochs"]]
head["method"] = head["method"].map(FULL_NAMES)
numbers = ["cls", "mean", "mean − cls"]
head[numbers] = head[numbers].astype(float)
epochs_at = ["cls epoch", "mean epoch"]
head[epochs_at] = head[epochs_at].astype("Int64")  # the best epoch, of "epochs"
display(head.set_index(["task", "method"]).style.format(precision=2, na_rep=""))
display(Markdown(full_report.head_sentence(results_dir)))
picked_head = full_campaign.pick_pooling(results_dir).get("pooling")
assert picked_head in (None, "mean"), "3.10's prose says the head stage picked mean pooling"

# %% [markdown]
# The long runs that set each budget (dev score by epoch; the budget's run is the table's
# seed 0), the budgets they set (each run's length and best epoch), what they can say of the
# learning rates (the rule set before the runs: the MRPC sweep's rates stay unless a long
# run shows a method held back by its rate; for a method slow to peak, we also ask the sweep
# whether its higher rates fit the training set faster), and, once a (task, method) has its
# three seeds, Table 2 over seeds with both claims judged per task:

# %% tags=["hide-input"]
curves = full_report.long_curves(results_dir)
if not curves:
    print(
        "No long run has finished yet: the long stage waits for the read-out's pick "
        "(python -m lorabook.glue.full_campaign all)."
    )
else:
    tasks_with = sorted({t for t, _ in curves})
    fig, axes = plt.subplots(
        1, len(tasks_with), figsize=(3.2 * len(tasks_with), 3), squeeze=False, layout="constrained"
    )
    colour = {m: f"C{i}" for i, m in enumerate(methods)}  # one colour a method in every panel
    for ax, task in zip(axes[0], tasks_with, strict=True):
        for (t, method), found_curve in curves.items():
            if t != task:
                continue
            for i, run in enumerate(found_curve["runs"]):  # a doubled run: dashed, then dotted
                ax.plot(
                    range(1, len(run["scores"]) + 1),
                    run["scores"],
                    color=colour[method],
                    ls=("-", "--", ":")[i],
                    lw=1,
                )
        ax.set(title=task, xlabel="epoch", ylabel="dev score")
    handles = [plt.Line2D([], [], color=colour[m], label=FULL_NAMES[m]) for m in methods]
    handles += [
        plt.Line2D([], [], color="k", ls=ls, lw=1, label=label)
        for ls, label in (("-", "first run"), ("--", "doubled"), (":", "doubled twice"))
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize=7)
    plt.show()
    # each budget as the rule set it, and what the long runs say of the learning rates
    budgets_shown = pd.DataFrame(full_report.budget_rows(curves))
    budgets_shown["method"] = budgets_shown["method"].map(FULL_NAMES)
    budgets_shown["budget"] = budgets_shown["budget"].astype("Int64")  # empty while open
    display(budgets_shown.set_index(["task", "method"]).style.format(na_rep="open"))
    display(Markdown(full_report.rate_reading(curves, FULL_NAMES)))
    display(Markdown(full_report.doubling_reading(curves, FULL_NAMES)))
    prose = "3.10 says 'Only the baselines needed doublings'"
    assert all(m in full_report.BASELINES for _, m in full_report.doubled(curves)), prose
    shortest = all(  # "FT's budget is the shortest on every task"
        found["budget"] < other["budget"]
        for (t, m), found in curves.items()
        if m == "ft"
        for (t2, m2), other in curves.items()
        if t2 == t and m2 != "ft" and other["budget"] is not None
    )
    assert shortest, budgets_shown
    display(Markdown(full_report.fit_reading(picks, curves, FULL_NAMES)))  # picks: 3.2's sweep

found_full = full_report.seed_records(results_dir)
judged = full_report.verdicts(found_full)  # none while no task has LoRA's seeds and another's
if not found_full:
    print("No (task, method) has its three seeds at its budget yet.")
else:
    full_rows = full_report.table2(found_full)
    full_table = pd.DataFrame(full_rows)
    full_table["method"] = full_table["method"].map(FULL_NAMES)
    full_table["median [range]"] = [
        f"{r['median']:.1f} [{r['min']:.1f}, {r['max']:.1f}]" for _, r in full_table.iterrows()
    ]
    display(  # "–": the (task, method) has not its three seeds yet
        full_table.pivot(index="method", columns="task", values="median [range]").fillna("–")
    )
    # the same seeds read at their last epoch: how much picking the best epoch on dev adds
    last_table = pd.DataFrame(full_report.table2(found_full, epoch="last"))
    full_table["best − last"] = full_table["median"] - last_table["median"]
    print("Median best-epoch score minus median last-epoch score (points):")
    display(
        full_table.pivot(index="method", columns="task", values="best − last").style.format(
            precision=2, na_rep="–"
        )
    )
    print("Median training loss at each run's last epoch (how closely it fits the training set):")
    display(
        full_table.pivot(index="method", columns="task", values="last train loss").style.format(
            precision=3, na_rep="–"
        )
    )
    if not judged:  # a method has its seeds on a task where LoRA does not yet, or the reverse
        print("No task has LoRA's three seeds beside another method's yet: no verdict so far.")
    else:
        judged_shown = pd.DataFrame(full_report.verdict_table(judged))
        judged_shown["versus"] = judged_shown["versus"].map(FULL_NAMES)
        display(judged_shown.set_index(["task", "versus"]).round(2))
        claims_full = full_report.claims(judged)
        display(
            pd.DataFrame(
                {
                    "LoRA on par with FT (claim 1)": claims_full["on par with FT"],
                    "LoRA against BitFit and the adapters (claim 2)": claims_full[
                        "against the baselines"
                    ],
                }
            )
            .rename_axis("task")
            .astype(object)  # (a column of booleans, or strings, with NaN where no row is)
            .fillna("no baseline has its seeds yet")  # a task judged against FT only
        )

# %% [markdown]
# ### Reading it: LoRA against FT at per-task budgets
#
# As in 3.9, the prose below was written for findings this cell computes from the records;
# a re-run that changes one stops the book's build (and a test fails on the committed
# records), so that the text is rewritten rather than contradicting the tables.

# %% tags=["hide-input"]
full_written_for = {
    "LoRA on par with FT": {
        "cola": False,
        "sst2": False,
        "stsb": False,
        "rte": False,
        "mrpc": True,
    },
    "LoRA below FT by the rule": {
        "cola": False,
        "sst2": False,
        "stsb": True,
        "rte": False,
        "mrpc": False,
    },
    "LoRA ends with a higher training loss": {
        "cola": True,
        "sst2": True,
        "stsb": True,
        "rte": True,
        "mrpc": True,
    },
}
full_findings = full_report.outcomes(found_full, judged)
both = [t for t in tasks if (t, "ft") in found_full and (t, "lora") in found_full]
if len(both) < len(tasks):
    print(
        f"FT and LoRA have their three seeds on {len(both)} of {len(tasks)} tasks: the reading "
        "below is ahead of the records"
    )
elif full_findings != full_written_for:
    raise AssertionError(
        f"the records now say {full_findings}; the prose below was written for "
        f"{full_written_for}: rewrite it, then update full_written_for"
    )
else:
    by = {(r["task"], r["method"]): r for r in full_rows}
    gaps = {t: by[(t, "lora")]["median"] - by[(t, "ft")]["median"] for t in tasks}
    fits = {t: by[(t, "lora")]["last train loss"] / by[(t, "ft")]["last train loss"] for t in tasks}
    print("LoRA − FT, medians (points):", ", ".join(f"{t} {g:+.2f}" for t, g in gaps.items()))
    print("LoRA's last training loss / FT's:", ", ".join(f"{t} {f:.1f}×" for t, f in fits.items()))
    peaks = {t: [r["best_epoch"] for r in found_full[(t, "lora")]] for t in tasks}
    print(
        "LoRA's best epochs by seed (of its budget):",
        ", ".join(f"{t} {p} (of {by[(t, 'lora')]['epochs']})" for t, p in peaks.items()),
    )
    lora_sweep = picks["lora"]  # 3.2's MRPC sweep (cpu configuration)
    print(
        "LoRA in the MRPC sweep, rate: last training loss, best dev:",
        "; ".join(
            f"{lr:g}: {lora_sweep['fit'][lr]:.3f}, {100 * best:.1f}"
            for lr, best in lora_sweep["tried"].items()
        ),
    )
    paper_t2 = {r["method"]: r for r in report.paper_rows()}
    paper_gaps = {t: paper_t2["LoRA"][t] - paper_t2["FT*"][t] for t in tasks}
    print(
        "the paper, Table 2, RoBERTa-base, LoRA − FT:",
        ", ".join(f"{t} {g:+.1f}" for t, g in paper_gaps.items()),
    )
    # what the prose's words say of these numbers
    assert all(g >= -full_report.ON_PAR_MARGIN for g in paper_gaps.values())
    assert gaps["mrpc"] > 0 and gaps["cola"] < -3, gaps  # "a little above", "several points"
    assert all(-2 <= gaps[t] < -1 for t in ("sst2", "stsb", "rte")), gaps  # "one to two"
    assert min(fits.values()) > 3, fits  # "several times FT's on every task"
    early = [p <= 0.8 * by[(t, "lora")]["epochs"] for t, ps in peaks.items() for p in ps]
    assert sum(early) > len(early) / 2, peaks  # "most seeds peak well before its end"
    picked_fit = lora_sweep["fit"][lora_sweep["lr"]]
    higher = [lr for lr in lora_sweep["fit"] if lr > lora_sweep["lr"]]  # "the higher rate ..."
    assert higher and all(lora_sweep["fit"][lr] < picked_fit for lr in higher)  # "fit faster"
    assert all(lora_sweep["tried"][lr] < lora_sweep["score"] for lr in higher)  # "scored lower"

# %% [markdown]
# **Claim 1 holds on MRPC only.** There LoRA's median is a little above FT's. On the other
# four tasks it trails FT's by more than the one point that "on par" allows here: by several
# points on CoLA, by one to two on SST-2, STS-B and RTE (the differences printed above). Only
# STS-B's gap is separated by the rule: both methods' seeds lie close together and every
# seed's bootstrap interval is below zero. On the other three the seeds' spread, or the dev
# set's size (RTE's 277 pairs), leaves the order open, but a gap that size is not what
# "on par" claims, and the margin was set before any of these runs.
#
# **Not under-training.** The explanation 3.9 tested does not apply here: every budget was set
# by a long run that had peaked by 3.10's rule, and most LoRA seeds at that budget peak well
# before its end (their best epochs are printed above). What differs is how closely each
# method fits its training set: at the end of its budget LoRA's training loss is several times
# FT's on every task (the ratios above). With $r = 8$ on $W_q$ and $W_v$, LoRA trains 0.3% of
# MiniLM's weights, and on these tasks that fits less than FT does. What this campaign does
# not vary is the rank, the targets and LoRA's learning rate (swept on MRPC in the `cpu`
# configuration: the first of the four points below; there the higher rate fit MRPC's
# training set faster and scored lower on dev, printed above, so a faster fit alone did not
# buy a better score); chapter 6's Section 7 runs vary the rank and the targets on SST-2 and
# STS-B.
#
# **RTE** depends on its seed, as in 3.9: one LoRA seed stays near chance for most of its
# budget and ends well below the other two, and the paper starts its RTE runs from an
# MNLI-adapted model, which we cannot.
#
# **Against the paper.** Table 2 has LoRA on RoBERTa-base within a point of FT or above it on
# all five tasks (printed above); on MiniLM-L6 at per-task budgets, the first claim holds on
# one of five. That is a result about the method on a 22M encoder with 3 seeds at these
# budgets, not a reproduction of Table 2's numbers; chapter 7 reads it as its GLUE row.

# %% [markdown]
# ### Reading it: LoRA against BitFit and the adapters at LoRA's size
#
# The lines below sum up the table's verdicts per baseline (LoRA's median minus the
# baseline's, task by task, and where the rule separates them), then chapter 7's row: the
# paper's form of the claim, the average over the tasks. The reading after them was written
# for the findings this cell computes, guarded as the first claim's is.

# %% tags=["hide-input"]
# the findings the prose of this section is written for
baseline_written_for = {
    "LoRA's median higher": {
        "bitfit": {
            "cola": True,
            "sst2": True,
            "stsb": False,
            "rte": True,
            "mrpc": False,
        },
        "adapter_h": {
            "cola": False,
            "sst2": False,
            "stsb": False,
            "rte": False,
            "mrpc": False,
        },
        "adapter_p": {
            "cola": False,
            "sst2": False,
            "stsb": False,
            "rte": True,
            "mrpc": True,
        },
    },
    "LoRA above by the rule": {
        "bitfit": {
            "cola": False,
            "sst2": False,
            "stsb": False,
            "rte": False,
            "mrpc": False,
        },
        "adapter_h": {
            "cola": False,
            "sst2": False,
            "stsb": False,
            "rte": False,
            "mrpc": False,
        },
        "adapter_p": {
            "cola": False,
            "sst2": False,
            "stsb": False,
            "rte": False,
            "mrpc": False,
        },
    },
    "LoRA below by the rule": {
        "bitfit": {
            "cola": False,
            "sst2": False,
            "stsb": True,
            "rte": False,
            "mrpc": False,
        },
        "adapter_h": {
            "cola": False,
            "sst2": False,
            "stsb": True,
            "rte": False,
            "mrpc": False,
        },
        "adapter_p": {
            "cola": False,
            "sst2": False,
            "stsb": False,
            "rte": False,
            "mrpc": False,
        },
    },
}
baseline_findings = full_report.baseline_outcomes(found_full, judged)
if judged:  # each baseline on the tasks where it and LoRA have their seeds
    display(Markdown(full_report.baseline_reading(full_rows, judged, FULL_NAMES)))
owed = [
    f"{FULL_NAMES[m]} on {t}"
    for t in tasks
    for m in ("lora", *full_report.BASELINES)
    if (t, m) not in found_full
]
if owed:
    print(f"Still without three seeds ({len(owed)}): {', '.join(owed)}.")
else:  # the paper's form of the claim: Table 2's average over tasks, as chapter 7 judges it
    on_average = verdict.glue_vs_baselines(results_dir)
    display(
        Markdown(
            f"**Chapter 7's row**: *{on_average.verdict}* ({on_average.why.split(';')[0]}). "
            f"{on_average.evidence}. The paper: {on_average.paper}."
        )
    )
    if baseline_findings != baseline_written_for:
        raise AssertionError(
            f"the records now say {baseline_findings}; the reading of claim 2 was written for "
            f"{baseline_written_for}: rewrite it (and the second point of the closing 'Claims "
            "checked in this chapter'), then update baseline_written_for"
        )
    versus = {(row["versus"], row["task"]): row for row in judged}
    gap = {key: row["difference"] for key, row in versus.items()}
    budget = {(r["task"], r["method"]): r["epochs"] for r in full_rows}
    by_method = {r["method"]: r for r in full_rows if r["task"] == "stsb"}
    by_mrpc = {r["method"]: r["max"] - r["min"] for r in full_rows if r["task"] == "mrpc"}
    last = {(r["task"], r["method"]): r["median"] for r in full_report.table2(found_full, "last")}
    last_gap = {t: last[(t, "lora")] - last[(t, "adapter_h")] for t in tasks}
    print(
        "LoRA − AdapterH read at the last epoch (medians, points):",
        ", ".join(f"{t} {g:+.1f}" for t, g in last_gap.items()),
    )
    print(
        "budgets (epochs), LoRA / AdapterH:",
        ", ".join(f"{t} {budget[(t, 'lora')]}/{budget[(t, 'adapter_h')]}" for t in tasks),
    )
    seed_scores = {
        m: {t: [report.score(r) for r in found_full[(t, m)]] for t in tasks}
        for m in ("lora", *full_report.BASELINES)
    }
    versus_h = verdict.judge_on_average(seed_scores)["adapter_h"]  # chapter 7's rule
    print(
        f"Average over the five tasks, LoRA − AdapterH: {versus_h['difference']:+.2f} points; "
        f"the larger standard deviation of the two methods' per-seed averages: "
        f"{versus_h['spread']:.2f}"
    )
    cola_bitfit, mrpc_bitfit = versus[("bitfit", "cola")], versus[("bitfit", "mrpc")]
    cola_pairs = cola_bitfit["pairs"]
    print(
        "CoLA, LoRA − BitFit, bootstrap intervals by seed (points):",
        "; ".join(f"seed {p['seed']} [{p['low']:+.1f}, {p['high']:+.1f}]" for p in cola_pairs),
    )
    # what the prose's words say of these numbers
    assert on_average.verdict == "not reproduced", on_average
    avg_rule = on_average.why.split(";")[0]  # judge_above's words: below on ...; above on ...
    assert avg_rule == "below on AdapterH" and "above on" not in on_average.why, on_average.why
    assert all(budget[(t, m)] >= budget[(t, "lora")] for t, m in budget if m != "ft"), budget
    behind_h = {t: -gap[("adapter_h", t)] for t in tasks}
    assert min(behind_h, key=behind_h.get) == "sst2" and round(behind_h["sst2"], 1) == 0.5
    assert max(behind_h, key=behind_h.get) == "mrpc" and round(behind_h["mrpc"], 1) == 2.5
    same = [t for t in tasks if budget[(t, "lora")] == budget[(t, "adapter_h")]]
    assert set(tasks) - set(same) == {"rte"}, same  # "the same budget on every task but RTE"
    assert budget[("rte", "adapter_h")] == 2 * budget[("rte", "lora")]  # "twice LoRA's"
    assert {t for t, g in last_gap.items() if g < 0} == {"cola", "stsb", "mrpc"}, last_gap
    assert last_gap["rte"] > 0 and abs(last_gap["sst2"]) < 0.05, last_gap  # "turns", "level"
    assert versus_h["difference"] < -2 * versus_h["spread"], versus_h  # "more than twice"
    assert 5.5 <= cola_bitfit["difference"] < 6.5, cola_bitfit  # "about six points"
    assert cola_bitfit["difference"] > cola_bitfit["spread"]  # "exceeds the seeds' range"
    assert all(p["high"] - p["low"] > 12 for p in cola_pairs), cola_pairs  # "about 14 wide"
    assert sum(p["low"] > 0 for p in cola_pairs) == 1  # "only one of three above zero"
    assert -2.5 < mrpc_bitfit["difference"] < -1.5 < 0 < mrpc_bitfit["spread"]  # "about two"
    assert -mrpc_bitfit["difference"] < mrpc_bitfit["spread"]  # BitFit's seeds' range:
    assert abs(mrpc_bitfit["spread"] - by_mrpc["bitfit"]) < 1e-6, by_mrpc
    assert sum(p["high"] < 0 for p in mrpc_bitfit["pairs"]) == 1, mrpc_bitfit["pairs"]
    assert all(0 < gap[("bitfit", t)] < 1 for t in ("sst2", "rte"))  # "by under one"
    tight = {m: by_method[m] for m in ("lora", "bitfit", "adapter_h")}
    assert all(r["max"] - r["min"] < 1 / 3 for r in tight.values()), tight  # "a third"
    assert full_campaign.presets.FULL_ADAPTER_SIZE == {"adapter_h": 8, "adapter_p": 16}
    assert full_campaign.LARGER_ADAPTER_SIZE == 64  # the size the rates were swept at
    for model, mark in (("RoBERTa-base", ""), ("RoBERTa-large", "†")):  # "LoRA above ..."
        rows = [r for r in report.paper_rows(model) if r["params"] <= 1e6]
        rows = [r for r in rows if r["method"].endswith(mark)]  # large: the † rows, 0.8M
        average = {
            r["method"].rstrip("*†") + f" {r['params']:g}": sum(r[t] for t in tasks) for r in rows
        }
        lora = average.pop(next(k for k in average if k.startswith("LoRA ")))
        assert len(average) >= 2 and all(a < lora for a in average.values()), (model, average)

# %% [markdown]
# **Claim 2 is not seen on MiniLM.** With the adapters at LoRA's size and three seeds of every
# method, the rule separates LoRA above no baseline on any task, and on the paper's own terms,
# the average over the tasks, Houlsby's adapter is above it by chapter 7's rule for the
# average (the difference of the per-seed averages against the larger standard deviation
# over seeds; no bootstrap there):
#
# - **AdapterH** (bottleneck 8, 1.06× LoRA's trainable parameters) has the higher median on
#   all five tasks, by half a point (SST-2) to two and a half (MRPC). The rule separates only
#   STS-B, where LoRA's, BitFit's and AdapterH's seeds each lie within a third of a point; on
#   the average over the five tasks AdapterH's lead is more than twice the larger standard
#   deviation of the two methods' per-seed averages (printed above). It trains for LoRA's
#   budget on every task but RTE, so on those four the best of more evaluations does not
#   explain it; read at the last epoch instead (no choice of epoch on dev), AdapterH stays
#   ahead on CoLA, STS-B and MRPC and is level on SST-2, and on RTE, where it trained twice
#   LoRA's epochs, the order turns (the numbers above).
# - **AdapterP** (Pfeiffer's, bottleneck 16, 1.03×) and LoRA trade places: LoRA's median is
#   higher on RTE and MRPC, lower on CoLA, SST-2 and STS-B; nothing is separated, on a task or
#   on the average.
# - **BitFit** (a third of LoRA's parameters) is the baseline LoRA's medians beat most often:
#   on CoLA by about six points, on SST-2 and RTE by under one. None of these leads is
#   separated. On CoLA the gap exceeds the seeds' range, but MCC over 1,043 dev sentences is
#   a coarse measure: each seed pair's 95% bootstrap interval is about 14 points wide, and
#   only one of the three lies above zero (printed above). BitFit is higher on STS-B,
#   separated, and on MRPC by about two points, not separated there: BitFit's three seeds
#   spread over more than that, and only one seed pair's interval lies below zero. On the
#   average the two are level.
#
# **Against the paper.** Table 2's claim is its "Avg." column: on RoBERTa-base LoRA is above
# BitFit and AdapterDrop (which the book does not run), and in the paper's restricted,
# adapter-comparable RoBERTa-large setup (†) above Houlsby's and Pfeiffer's adapters at
# LoRA's 0.8M parameters. Chapter 7's row above averages the paper's rows, like ours, over
# the book's five tasks. On MiniLM-L6 the order against Houlsby's adapter is reversed, and LoRA is
# level with BitFit and Pfeiffer's adapter. What the design does not equalise (the four
# points below) has no single direction: the adapters' learning rates were swept at a
# bottleneck of 64 (AdapterP's on Houlsby's FFN-only adapter), a mismatch LoRA's rate does
# not have, of unknown sign; every baseline's budget is LoRA's or longer, and the best of
# more evaluations favours the baselines, but AdapterH, the one baseline above LoRA, has
# LoRA's budget on four of the five tasks. It is evidence about these methods on a 22M
# encoder, not about Table 2's numbers; the paper's other reasons to prefer LoRA (no added
# inference latency, chapter 5; the adapters' sequential cost there) are not what this
# table tests.

# %% [markdown]
# ### The adapters at the `cpu` preset's size
#
# The `cpu` runs of 3.9 set LoRA beside adapters with a bottleneck of 64, several times its
# trainable parameters. The campaign trains both adapters at $m = 64$ too, once (seed 0), at
# the budget their size-matched twin's long run set and with its seed, so that each pair
# differs in the bottleneck alone: does the larger adapter score higher on these tasks? With
# one seed, a difference within the seeds' ranges in the table above is noise, not a finding.
# They come last in the campaign's order, after chapter 6's runs, so this table fills late.

# %% tags=["hide-input"]
larger = pd.DataFrame(full_report.larger_adapters(results_dir))
if larger.empty:
    print("No adapter at m = 64 has finished yet: they run last, after chapter 6's runs.")
else:
    larger["method"] = larger["method"].map(FULL_NAMES)
    display(larger.set_index(["task", "method"]).round(1))

# %% [markdown]
# Four things this design does not equalise, for a reader to weigh when the table fills:
#
# - **The learning rates** were all swept on MRPC in the `cpu` configuration (fp32, length
#   128, [CLS], five to eight epochs), not in the `full` one (bf16, no truncation, longer
#   budgets, the picked read-out). The adapters' were swept at the `cpu` preset's size
#   (bottleneck 64), and reused at LoRA's; Pfeiffer's AdapterP, which the `cpu` runs do not
#   have, takes the rate swept for the FFN-only adapter. What the long runs and the sweep's
#   training losses can say of it is printed under the budgets above.
# - **The trained head.** Every method also trains the head that reads the encoder out, and
#   as in the paper it is not counted. The head stage picked mean pooling, so the head is the
#   classifier alone (one linear layer on the 384-wide mean: 385 parameters a class), small
#   beside every method's trainable parameters, and Section 7's cells (chapter 6) read out the
#   same way. [CLS] would have trained BERT's pooler too (a 384 × 384 layer, more parameters
#   than LoRA itself), a head large enough to absorb part of the adaptation.
# - **Best epoch of more evaluations.** Each seed is reported at its best dev epoch, as Table
#   2 is, and a longer budget evaluates more epochs; the maximum of more noisy evaluations is
#   more optimistic, which favours the methods with longer budgets, the more so the smaller
#   the dev set (RTE's and MRPC's are the smallest). FT's budget is the shortest on every
#   task (it starts at half the others' epochs and never needed a doubling), so this leans
#   claim 1 toward LoRA. The records keep every epoch's score, so the table above sets the
#   last epoch's reading beside it ("best − last": what choosing the epoch on dev adds, noise
#   and any decline after the peak alike).
# - **Where a budget stops.** The rule keeps the budget at the run that peaked, not at the one
#   that scored best, and a doubled budget is a longer learning-rate schedule, not more of the
#   shorter run. Only the baselines needed doublings; where the run at the budget scored
#   below a shorter one (listed under the budgets above), that baseline's seeds are read
#   where seed 0 scored lower, which leans the second claim toward LoRA by up to the
#   differences shown there.

# %% [markdown]
# ```{admonition} Claims checked in this chapter
# :class: tip
#
# **The paper** (Section 5.2, Table 2): LoRA on RoBERTa-base (0.3M trainable parameters) is
# on par with full fine-tuning (125M) on GLUE, and better than BitFit and adapters.
#
# **Here**, on MiniLM-L6 (22.7M) and five GLUE tasks, each method's learning rate picked by
# one sweep on MRPC; the `cpu` runs of 3.9 at the sweep's epochs, and the `full` campaign of
# 3.10 at per-task budgets, three seeds of every method, which decides chapter 7's rows:
#
# - *On par with FT* (our per-task test, stricter than the paper's, which its own Table 2
#   fails on QQP): in the `full` campaign it holds on MRPC only; LoRA trails FT by more than
#   a point on the other four, though every budget was set by a long run that had peaked,
#   and ends its budget with several times FT's training loss (3.10). In the `cpu` runs it
#   held on MRPC and STS-B, and four times the epochs (one seed) closed the gap on CoLA and
#   SST-2, not on RTE, where the paper starts FT and LoRA alike from MNLI-adapted models,
#   which we cannot.
# - *Better than BitFit and the adapters* (the paper's claim is its average over tasks: its
#   own Table 2 has BitFit above LoRA on MRPC): not seen. In the `full` campaign, with the
#   adapters at LoRA's size and three seeds of every method, Houlsby's adapter is above LoRA
#   on the average (by more than twice the seeds' standard deviation), and its median is
#   higher on every task; LoRA is level with Pfeiffer's adapter and with BitFit, whose medians
#   it beats on three tasks without the rule separating any; the rule separates only STS-B,
#   where LoRA is below BitFit and AdapterH (3.10). The `cpu` runs of 3.9 had not seen it either,
#   with larger adapters, one seed each and the few epochs that held LoRA back.
#
# MiniLM is not RoBERTa: six layers, 384 wide, distilled {cite}`wang2020minilm` and then
# trained for sentence embeddings {cite}`sbert2021allminilm`, and $r = 8$ is a larger share
# of its width than of RoBERTa's 768. What holds here is evidence about the method at this
# scale, not a reproduction of Table 2's numbers.
# ```
