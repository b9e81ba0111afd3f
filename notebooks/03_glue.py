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
# **The paper's claim** (Section 5.1, Table 2): on RoBERTa-base, LoRA with $r = 8$ on $W_q$
# and $W_v$ (0.3M trainable parameters) scores on par with full fine-tuning (125M) on the
# GLUE benchmark, and better than BitFit and adapter baselines of similar size.
#
# **What this chapter does**: runs the same comparison with the package's training engine,
# on the tasks and model we have offline: five GLUE tasks (SST-2, MRPC, CoLA, RTE, STS-B)
# and MiniLM-L6 (22.7M parameters) standing in for RoBERTa. Every number below is read
# from a result record that `lorabook.glue.run_glue` wrote; a record that already exists is
# reused, not recomputed, so building the book does not retrain anything that was trained.
#
# In `quick` mode (the default, CPU) each run trains on an 800-example subset for 3 epochs
# with short sequences: a smoke-sized version of the experiment, **not** the paper's
# setting. With a GPU and the hub, `mode = "paper"` runs the paper's hyperparameters
# (Appendix D, Table 9) on `roberta-base`.

# %% tags=["parameters"]
mode = "quick"

# %%
import json
import warnings

from tqdm import TqdmWarning

warnings.filterwarnings("ignore", category=TqdmWarning)  # no ipywidgets: plain progress bars


import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

from lorabook.glue.experiment import run_glue
from lorabook.glue.presets import PAPER_LORA_ROBERTA_BASE, glue_preset
from lorabook.paths import REPO_ROOT

assert mode in ("quick", "paper"), f"mode must be 'quick' or 'paper', got {mode!r}"
model = "minilm" if mode == "quick" else "roberta-base"
tasks = ["sst2", "mrpc", "cola", "rte", "stsb"]
methods = ["ft", "lora"]
results_dir = REPO_ROOT / "results"
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## 3.1 The settings
#
# The paper's LoRA hyperparameters for RoBERTa-base (its Table 9, which the official
# scripts match) live in `lorabook.glue.presets`; the `quick` preset is ours. Here are both,
# per task, for LoRA:

# %%
rows = []
for task in tasks:
    for preset in ("paper", "quick"):
        p = glue_preset(preset, task, "lora")
        rows.append(
            {
                "task": task,
                "preset": preset,
                "batch": p.train.batch_size,
                "epochs": p.train.epochs,
                "lr": p.train.lr,
                "max length": p.max_length,
                "train examples": p.train_examples or "all",
                "r": p.lora_r,
                "alpha": p.lora_alpha,
            }
        )
assert all(
    (
        glue_preset("paper", t, "lora").train.batch_size,
        glue_preset("paper", t, "lora").train.epochs,
        glue_preset("paper", t, "lora").train.lr,
    )
    == PAPER_LORA_ROBERTA_BASE[t]
    for t in tasks
)
pd.DataFrame(rows).set_index(["task", "preset"])

# %% [markdown]
# Two things differ between the paper and its own scripts, and the preset keeps both
# visible: Table 9 says $\alpha = 8$ while the scripts pass `--lora_alpha 16`; and for MRPC,
# RTE and STS-B the scripts start from LoRA weights trained on MNLI, which is not in the
# offline data, so every run here starts from the pretrained model.
#
# ## 3.2 The runs
#
# One call per (task, method). Each record's file name carries a hash of every setting that
# decides the run, so the call below finds the record made with exactly the `quick` preset's
# settings (and trains only if there is none). `run_glue` loads the data, the model,
# applies the method (`lorabook.methods.prepare_model`: for LoRA that is `apply_lora` on
# `query` and `value`, with the classification head trainable and counted apart), trains with
# `lorabook.train.fit`, evaluates on the dev set after every epoch and reports the best
# epoch, as the paper does.

# %%
records = {}
for task in tasks:
    for method in methods:
        records[task, method] = run_glue(
            task, method, model, preset=mode, results_dir=results_dir, progress=False
        )
print(f"{len(records)} result records from {results_dir.relative_to(REPO_ROOT)}/glue/{mode}/")

# %% [markdown]
# ## 3.3 Results
#
# The metric per task is the paper's: accuracy (SST-2, MRPC, RTE), Matthews correlation
# (CoLA), Pearson correlation (STS-B). "Trainable" excludes the classification head, as
# the paper's parameter counts do.

# %%
table = pd.DataFrame(
    [
        {
            "task": t,
            "method": m,
            "metric": r["metric"],
            "best epoch": r["best_epoch"],
            "dev score": 100 * r["best"][r["metric"]],
            "trainable": r["params"]["trainable"],
            "trainable %": r["params"]["trainable_percent"],
            "s/step": r["seconds_per_step"],
        }
        for (t, m), r in records.items()
    ]
)
scores = table.pivot(index="task", columns="method", values="dev score").loc[tasks]
scores["LoRA − FT"] = scores["lora"] - scores["ft"]
scores.loc["average"] = scores.mean()
scores.round(1)

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
scores.loc[tasks, methods].plot.bar(ax=ax, rot=0, color=["#888888", "#d95f02"])
ax.set(ylabel="dev score (×100)", title=f"Best-epoch dev score, {model}, {mode} preset")
ax.legend(["full fine-tuning", "LoRA (r=8, q,v)"])
fig.tight_layout()
plt.show()

# %% [markdown]
# Learning curves: the dev score after every epoch.

# %%
fig, axes = plt.subplots(1, len(tasks), figsize=(14, 3), sharex=True)
for ax, task in zip(axes, tasks, strict=True):
    for method, color in zip(methods, ["#888888", "#d95f02"], strict=True):
        record = records[task, method]
        epochs = [e["epoch"] for e in record["epochs"]]
        ax.plot(
            epochs,
            [100 * e[record["metric"]] for e in record["epochs"]],
            marker="o",
            color=color,
            label=method,
        )
    ax.set(title=task, xlabel="epoch")
axes[0].set_ylabel("dev score (×100)")
axes[0].legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3.4 What trains, and what it costs
#
# The parameter counts come from the models themselves; the time per step and peak memory
# from the same runs (on a CPU the memory is the whole process's peak, which is dominated by
# the frozen model and the activations: the benchmark below separates the two methods).

# %%
cost = table[table.task == tasks[0]].set_index("method")[["trainable", "trainable %"]]
cost["trainable"] = cost["trainable"].map("{:,}".format)
cost["trainable %"] = cost["trainable %"].map("{:.3f}%".format)
cost["head (not counted)"] = [f"{records[tasks[0], m]['params']['head']:,}" for m in cost.index]
cost["saved tensors (MB)"] = [
    f"{records[tasks[0], m]['trainable_file_bytes'] / 1e6:.2f}" for m in cost.index
]
cost

# %%
bench_files = sorted((results_dir / "bench").glob(f"glue-*-{model}-*.json"))
if bench_files:
    bench = json.loads(bench_files[-1].read_text())
    print(f"{bench_files[-1].name}: {bench['environment']['device']}")
    if bench.get("note"):
        print(bench["note"])
    display(
        pd.DataFrame(
            [
                {
                    "method": r["method"],
                    "batching": r.get("batching", "max_length"),  # older records: padded
                    "s/step": round(r["seconds_per_step"], 3),
                    "real tokens/s": round(r["real_tokens_per_second"])
                    if "real_tokens_per_second" in r
                    else None,
                    "peak memory (MiB)": round(r["peak_memory"]["bytes"] / 2**20),
                    "training state by account (MiB)": round(
                        r["accounted_training_state_bytes"] / 2**20, 1
                    ),
                    "trainable": f"{r['params']['trainable']:,}",
                }
                for r in bench["rows"]
            ]
        ).set_index(["method", "batching"])
    )
else:
    print("No benchmark record yet: run `python -m lorabook.glue.bench --model", model, "`")

# %% [markdown]
# ## 3.5 Where the numbers came from
#
# Each record names its device, package versions and the git commit of the code that
# produced it:

# %%
provenance = pd.DataFrame(
    [
        {
            "task": t,
            "method": m,
            "device": r["environment"]["device"],
            "commit": (r["environment"]["git_commit"] or "?")[:12],
            "finished": r["finished_at"],
            "train rows": r["data"]["train_rows"],
            "dev rows": r["data"]["eval_rows"],
        }
        for (t, m), r in records.items()
    ]
)
provenance.set_index(["task", "method"])

# %%
gap = scores.loc["average", "LoRA − FT"]
lora_share = table[table.method == "lora"]["trainable %"].max()
print(
    f"Average over {len(tasks)} tasks: LoRA − FT = {gap:+.1f} points; "
    f"LoRA trains {lora_share:.2f}% of the encoder's parameters (head excluded)."
)
assert lora_share < 1.0

# %% [markdown]
# ```{admonition} Claims checked in this chapter
# :class: tip
#
# **The paper** (Table 2): LoRA on RoBERTa-base (0.3M trainable parameters) is on par with
# full fine-tuning (125M) on GLUE.
#
# **This chapter, in `quick` mode**: the same comparison on MiniLM with 800 training
# examples and 3 epochs per task. The printed line above gives the measured average gap and
# the fraction of parameters LoRA trains (< 1%, asserted). With so little training the
# comparison says how each method fares on a small budget, not whether LoRA matches full
# fine-tuning at convergence: that needs the `paper` preset on a GPU. The paper's GLUE table
# is not transcribed here yet; the verdict chapter will set it beside the paper-mode runs.
# ```
