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
# # 5. Efficiency: latency, training memory, throughput, checkpoints, energy
#
# **The paper's claims** (abstract, Section 4.2, Table 1): once merged, LoRA adds **no
# inference latency**, where adapters add 20.7–30.3% at batch 1; against full fine-tuning
# it needs **3× less training memory**, has **25% more training throughput** and a
# **10,000× smaller checkpoint** (GPT-3 175B: 350 GB → 35 MB).
#
# **What this chapter does**: reads the records that the scripts in `benchmarks/` wrote
# (each names its device, package versions and commit) and sets them beside the paper.
# In `quick` mode it reruns nothing. In `paper` mode on a GPU it first reruns the
# benchmarks at the paper's shapes (Table 1: 32×512, 16×256, 1×128, CUDA events).
# The measuring code is `lorabook.profile` (latency, training cost, time to accuracy) and
# `lorabook.energy` (the power sampler).

# %% tags=["parameters"]
mode = "quick"

# %% tags=["hide-input"]
import inspect
import json
import subprocess
import sys

import matplotlib.pyplot as plt
import pandas as pd
import torch
from IPython.display import display

from lorabook import energy, profile
from lorabook.paths import REPO_ROOT

assert mode in ("quick", "paper"), f"mode must be 'quick' or 'paper', got {mode!r}"
bench_dir = REPO_ROOT / "results" / "bench"
device = "cuda" if torch.cuda.is_available() else "cpu"
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})

if mode == "paper" and device == "cuda":  # the GPU run: the paper's shapes, then the costs
    for script in ("latency.py", "training.py"):
        subprocess.run([sys.executable, f"benchmarks/{script}"], cwd=REPO_ROOT, check=True)


def load(name: str, command: str) -> dict | None:
    """A benchmark record of this device (else the other one), or None with the fix."""
    for dev in (device, "cpu", "cuda"):
        path = bench_dir / f"{name}-{dev}.json"
        if path.exists():
            record = json.loads(path.read_text())
            env = record["environment"]
            print(f"{path.name}: {env['device']}, commit {(env['git_commit'] or '?')[:12]}")
            if record.get("note"):
                print("note:", record["note"])
            return record
    print(f"record missing: run `python benchmarks/{command}`")
    return None


def show(obj) -> None:
    """Print the source of a package function."""
    print(inspect.getsource(obj))


# %% [markdown]
# ## 5.1 Inference latency: Table 1
#
# GPT-2 medium's architecture with random weights (timing does not depend on the values),
# one forward pass per trial. Every variant is a copy of the same model: the base, LoRA
# merged and unmerged ($r = 4$ on $W_q$, $W_v$), AdapterL and AdapterH with the adapter
# budgets of Table 1. The variants are timed *interleaved*, trial by trial, so that a change
# in the machine's load hits all of them alike:

# %%
show(profile.time_interleaved)
show(profile.overhead)

# %% [markdown]
# The paper's Table 1 (Quadro RTX 8000, mean ± std of 100 trials, ms) and ours, with the
# overhead against the base model and one standard deviation of that difference:

# %% tags=["hide-input"]
paper_t1 = pd.DataFrame(
    [
        {"variant": v, "shape": f"{b}×{n}", "paper ms": f"{m:.1f} ± {s:.1f}"}
        for v, by_shape in profile.paper_table1_ms().items()
        for (b, n), (m, s) in by_shape.items()
    ]
).pivot(index="variant", columns="shape", values="paper ms")
display(paper_t1[[f"{b}×{n}" for b, n in profile.PAPER_SHAPES]])

latency = load("latency", "latency.py")
if latency:
    lat = pd.DataFrame(
        [
            {
                "model": r["model"],
                "shape": f"{r['batch']}×{r['length']}",
                "variant": r["variant"],
                "ms": f"{r['ms']['mean']:.1f} ± {r['ms']['std']:.1f}",
                "overhead %": f"{r['overhead']['percent']:+.1f} ± "
                f"{r['overhead']['spread_percent']:.1f}",
                "within noise": r["overhead"]["within_noise"],
                "trainable": f"{r['trainable']:,}",
            }
            for r in latency["rows"]
        ]
    )
    display(lat.set_index(["model", "shape", "variant"]))
    for model, reasons in latency["unavailable"].items():
        for variant, reason in reasons.items():
            print(f"{model} {variant}: {reason[:110]}")

# %% tags=["hide-input"]
if latency:
    merged = [r for r in latency["rows"] if r["variant"] == "lora_merged"]
    held = [r for r in merged if r["overhead"]["within_noise"]]
    percents = ", ".join(f"{r['overhead']['percent']:+.1f}%" for r in merged)
    print(
        f"merged LoRA within noise of the base at {len(held)} of {len(merged)} measured "
        f"shapes (overheads {percents})"
    )
    for variant in ("lora_unmerged", "adapter_l", "adapter_h"):
        rows = [r for r in latency["rows"] if r["variant"] == variant]
        print(
            f"{variant}: "
            + ", ".join(
                f"{r['model']} {r['batch']}×{r['length']} {r['overhead']['percent']:+.1f}%"
                for r in rows
            )
        )

# %% tags=["hide-input"]
if latency:
    over = pd.DataFrame(
        [
            {
                "shape": f"{r['model']}\n{r['batch']}×{r['length']}",
                "variant": r["variant"],
                "percent": r["overhead"]["percent"],
                "two_sd": 2 * r["overhead"]["spread_percent"],
            }
            for r in latency["rows"]
            if r["variant"] != "base"
        ]
    )
    shapes = list(dict.fromkeys(over["shape"]))
    pct = over.pivot(index="shape", columns="variant", values="percent").loc[shapes]
    err = over.pivot(index="shape", columns="variant", values="two_sd").loc[shapes]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    pct.plot.bar(ax=ax, yerr=err, rot=0, capsize=3)
    ax.axhline(0, color="black", lw=0.8)
    ax.set(ylabel="latency overhead vs base (%)", title="Forward-pass overhead (± 2 s.d.)")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# Merged LoRA runs exactly the layers of the base model with the same shapes, so its
# overhead should be zero up to noise; the table's "within noise" column says whether the
# measured difference is within two standard deviations. Unmerged LoRA pays for its extra
# $B(Ax)$ path, and adapters for their extra sequential layers, which the paper finds
# costliest at batch 1, where a GPU is far from saturated. On a CPU every matrix
# multiplication is compute-bound, so the adapters' relative overhead is about their share
# of the FLOPs; the GPU's batch-1 effect is not visible there.
#
# ## 5.2 Training: memory by account, FT against LoRA
#
# Each method trains in a fresh process for a few AdamW steps on random tokens. Memory is
# split by account: the weights, their gradients, AdamW's two moments, and the activations
# autograd saves for the backward pass (counted with `saved_tensors_hooks`):

# %%
show(profile.SavedTensorMeter)
training = load("training", "training.py")

# %% tags=["hide-input"]
if training:
    tr = pd.DataFrame(training["rows"])
    accounts = pd.DataFrame([r["memory_accounts"] for r in training["rows"]]) / 2**20
    accounts.index = [f"{r['model']}\n{r['method']}" for r in training["rows"]]
    keep = [i for i, r in enumerate(training["rows"]) if r["method"] in ("ft", "lora")]
    fig, ax = plt.subplots(figsize=(9, 3.5))
    accounts.iloc[keep].plot.bar(stacked=True, ax=ax, rot=0)
    ax.set(ylabel="MiB", title="Training memory by account (one step)")
    fig.tight_layout()
    plt.show()
    summary = pd.DataFrame(
        [
            {
                "model": r["model"],
                "method": r["method"],
                "batch×len": f"{r['batch']}×{r['length']}",
                "s/step": round(r["seconds_per_step"]["mean"], 3),
                "tokens/s": round(r["tokens_per_second"]),
                "peak MiB": round(r["peak_memory"]["bytes"] / 2**20),
                "accounted MiB": round(sum(r["memory_accounts"].values()) / 2**20),
                "trainable": f"{r['params']['trainable_incl_head']:,}",
            }
            for r in training["rows"]
        ]
    ).set_index(["model", "method"])
    display(summary)
    for model, reasons in training["skipped"].items():
        for method, reason in reasons.items():
            print(f"{model} {method}: {reason[:110]}")

# %% [markdown]
# The paper's 3× is for GPT-3 175B, where the weights and Adam's states dominate: LoRA keeps
# the weights (stored in 16 bits there) and drops the gradients and optimizer state of all
# but a few million parameters. The accounts above show the same shift at our sizes; how
# large the saving is depends on how much of the total the activations take, which grows
# with batch × length and does not shrink with LoRA.
#
# ## 5.3 Step time and throughput: FT, LoRA, and peft's LoRA
#
# peft's LoRA on the same targets, the same shapes, in the same run: the ratio ours/peft of
# the step time (with one standard deviation) and of the peak memory. (On GPT-2 peft adapts
# the whole fused `c_attn`, q, k and v, with the same number of parameters as our q and v
# slices.)

# %%
if training:
    tput = tr.pivot_table(index="model", columns="method", values="tokens_per_second")
    if {"ft", "lora"} <= set(tput.columns):
        tput["LoRA / FT throughput"] = tput["lora"] / tput["ft"]
    display(tput.round(2))

# %% [markdown]
# One run of each is not enough to call a 1% difference: the training benchmark was run
# again for the two LoRAs alone (`training-cpu-peers-*.json`, same code, same machine), so
# each ratio below has several repeats. A ratio counts as "no worse" when its mean is at most
# one plus two standard errors of that mean (`profile.peer_summary`).

# %% tags=["hide-input"]
peer_records = [training] if training else []
peer_records += [
    json.loads(p.read_text()) for p in sorted(bench_dir.glob(f"training-{device}-peers-*.json"))
]
peers = profile.peer_summary(peer_records)
if peers:
    peer_table = pd.DataFrame(
        [
            {"model": p["model"], "repeats": p["repeats"]}
            | {
                f"{name} {column}": value
                for name in ("step_time", "peak_memory")
                for column, value in (
                    ("ours/peft", " ".join(f"{v:.3f}" for v in p[name]["ratios"])),
                    ("mean", round(p[name]["mean"], 3)),
                    ("± noise", round(p[name]["noise"], 3)),
                    ("no worse", p[name]["no_worse"]),
                )
            }
            for p in peers
        ]
    ).set_index("model")
    display(peer_table)
    accounts_equal = {r["model"]: r["activation_ratio"] for r in training["ours_vs_peft"]}
    print("saved activations, ours/peft:", {m: round(v, 3) for m, v in accounts_equal.items()})

# %% [markdown]
# Separate processes run one after the other, so a slow minute of the machine lands on one
# method only. The paired measurement removes that: both LoRAs in **one** process, trained
# in turn on the same batch, step after step (`profile.interleaved_steps`; one thread on a
# core of its own). Each row's ratio is the mean of the per-step ratios ours/peft, with two
# standard errors:

# %% tags=["hide-input"]
show(profile.interleaved_steps)
interleaved = None
path = bench_dir / f"training-{device}-interleaved.json"
if path.exists():
    interleaved = json.loads(path.read_text())
    paired = pd.DataFrame(
        [
            {
                "model": r["model"],
                "batch×len": f"{r['batch']}×{r['length']}",
                "ours s/step": round(r["seconds_per_step"]["lora"]["median"], 3),
                "peft s/step": round(r["seconds_per_step"]["peft_lora"]["median"], 3),
                "ours/peft (mean of pairs)": round(r["paired_ratio"]["mean"], 4),
                "± 2 s.e.": round(r["paired_ratio"]["noise"], 4),
                "pairs": r["paired_ratio"]["n"],
                "no worse": r["paired_ratio"]["no_worse"],
            }
            for r in interleaved["ours_vs_peft_interleaved"]
        ]
    ).set_index("model")
    display(paired)
else:
    print(
        "record missing: run `python benchmarks/training.py --interleaved-only "
        f"--out results/bench/training-{device}-interleaved.json`"
    )

# %% [markdown]
# Where ours is not "no worse", the reason is in the configuration, not in the layer. On
# RoBERTa, MiniLM and SmolLM2 both libraries adapt the same separate $W_q$ and $W_v$ with
# the same $r$: the same two matrix products per layer (ours is printed below). On GPT-2,
# $W_q$, $W_k$ and $W_v$ are one fused `c_attn` layer. The paper
# adapts only $W_q$ and $W_v$, with $r = 4$ each, and so do we: $A$ projects each token to
# $2r = 8$ values and $B$ is a block matrix that writes only the q and v slices of the
# output. peft cannot adapt part of a fused layer, so its peer adapts all of `c_attn` with one
# $r = 4$ (the same number of parameters, a different model). Counting multiply-adds per
# token of the LoRA path:

# %%
from lorabook.layers import LoRALayer

show(LoRALayer.lora_forward)
k_in, d_out, r_gpt2 = 1024, 3 * 1024, 4
ours_flops = k_in * 2 * r_gpt2 + 2 * r_gpt2 * d_out  # A: 8 outputs; block B: 8 → 3072
peft_flops = k_in * r_gpt2 + r_gpt2 * d_out  # A: 4 outputs; B: 4 → 3072
base_flops = k_in * d_out
print(
    f"per token, per c_attn: base {base_flops:,}, ours LoRA path {ours_flops:,}, "
    f"peft's {peft_flops:,}: ours does {ours_flops - peft_flops:,} more, "
    f"{100 * (ours_flops - peft_flops) / base_flops:.2f}% of the layer's own product"
)

# %% [markdown]
# Half of our block $B$'s products are with zeros (each slice's $B$ sees only its own $r$
# columns), which keeps the layer to two matrix products and no scatter; a slice-by-slice
# product would halve that extra work at the price of writing into two slices of the output.
# A difference of this size, under 1% of the step, is what the GPT-2 row shows.

# %% [markdown]
# The paper's +25% throughput comes from not computing the gradients of the frozen weights
# (and no optimizer step for them); the activation gradients still flow through every
# layer, so the backward pass keeps about two thirds of its cost.
#
# ## 5.4 Checkpoint sizes
#
# What a task's checkpoint must hold: every weight for full fine-tuning, only what trains
# for the others (the head, where there is one, included).

# %% tags=["hide-input"]
if training:
    ck = tr.pivot_table(index="model", columns="method", values="checkpoint_bytes")
    fig, ax = plt.subplots(figsize=(9, 3.2))
    (ck / 1e6).plot.bar(ax=ax, rot=0, logy=True)
    ax.set(ylabel="MB (log scale)", title="Checkpoint size per method")
    fig.tight_layout()
    plt.show()
    if {"ft", "lora"} <= set(ck.columns):
        print((ck["ft"] / ck["lora"]).round(0).rename("FT / LoRA checkpoint").to_string())

# %% [markdown]
# ## 5.5 Energy
#
# `lorabook.energy` samples a GPU's power through NVML at a fixed interval (trapezoidal
# rule) and reads its total-energy counter where it has one; the training benchmark wraps
# its timed steps in it, and `lorabook.train.fit` stores the joules at each evaluation.

# %%
show(energy.EnergyMeter.joules)
print(energy.energy_meter(device).report())
if training:
    print({f"{r['model']}/{r['method']}": r["energy"].get("joules") for r in training["rows"]})

# %% [markdown]
# ## 5.6 Time to equal accuracy
#
# From the GLUE records (chapter 3): the time for FT and for LoRA to first reach the same
# dev score, the lower of their two best scores minus half a point
# (`benchmarks/time_to_accuracy.py`, seed 0), on the `cpu` campaign's runs: each method at
# the settings its sweep picked, so LoRA and FT each train for their own number of epochs.

# %% tags=["hide-input"]
show(profile.time_to_equal_accuracy)
glue_model = "minilm" if mode == "quick" else "roberta-base"
presets_tried = ("cpu",) if mode == "quick" else ("paper",)
iso = None
for glue_preset_name in presets_tried:
    path = bench_dir / f"time-to-accuracy-{glue_preset_name}-{glue_model}.json"
    if path.exists():
        tta_record = json.loads(path.read_text())
        iso = tta_record["rows"]
        print(
            f"{path.name}: GLUE {glue_preset_name} preset, commit "
            f"{(tta_record['environment']['git_commit'] or '?')[:12]}"
        )
        break
if iso:
    tta = pd.DataFrame(
        [
            {
                "task": r["task"],
                "target": round(100 * r["target"], 1),
                "FT s": round(r["runs"]["ft"]["seconds"], 1),
                "FT epoch": r["runs"]["ft"]["epoch"],
                "LoRA s": round(r["runs"]["lora"]["seconds"], 1),
                "LoRA epoch": r["runs"]["lora"]["epoch"],
                "LoRA / FT time": round(
                    r["runs"]["lora"]["seconds"] / r["runs"]["ft"]["seconds"], 2
                ),
                "FT J": r["runs"]["ft"]["joules"],
                "LoRA J": r["runs"]["lora"]["joules"],
                "clock": r["runs"]["ft"]["clock"],
            }
            for r in iso
        ]
    ).set_index("task")
    display(tta)
else:
    print(
        f"record missing: run `python benchmarks/time_to_accuracy.py --preset "
        f"{presets_tried[0]} --model {glue_model}`"
    )

# %% [markdown]
# Two effects meet here. Per step LoRA is cheaper (no gradients for the frozen weights, no
# optimizer state for them: section 5.3), but at its learning rate it may need more epochs
# to reach a score. The ratio says which wins, task by task:

# %%
if iso:
    ratios = tta["LoRA / FT time"]
    print(
        f"LoRA reached the common target sooner than FT on {int((ratios < 1).sum())} of "
        f"{len(ratios)} tasks; median time ratio LoRA / FT = {ratios.median():.2f}"
    )

# %% [markdown]
# A target at or below a chance-level score (a Matthews correlation near 0, say) is reached
# by both methods at once and says nothing: read those rows with the dev scores of chapter 3.

# %% [markdown]
# ## 5.7 bf16 on this CPU: what it buys and what it costs
#
# This machine's CPU computes bfloat16 natively (`avx512_bf16`), so `torch.autocast` can run
# the matrix multiplies in bf16 while the weights and the optimizer state stay fp32. The
# bench interleaves fp32 and bf16 steps in one process (and, for SmolLM2, the E2E loss with
# the LM head on every position against only where the loss is), then decodes 32 test MRs
# with beam 10 in both (`benchmarks/precision.py`, record `results/bench/precision-cpu.json`):

# %%
from lorabook.precision import cpu_bf16_flags

print("native bf16 on this machine:", ", ".join(cpu_bf16_flags()) or "no")
precision_bench = REPO_ROOT / "results" / "bench" / "precision-cpu.json"
if precision_bench.exists():
    pb = json.loads(precision_bench.read_text())
    speed = pd.DataFrame(
        [
            {
                "model": row["model"],
                "method": row["method"],
                **{f"{v} s/step": s["mean"] for v, s in row["seconds_per_step"].items()},
                **{
                    f"×{k}": f"{s['mean']:.2f} ± {s['noise']:.2f}"
                    for k, s in row["speedups"].items()
                },
            }
            for row in pb["rows"]
        ]
    ).set_index(["model", "method"])
    display(speed.round(3))
    if pb.get("decode"):
        d = pb["decode"]
        print(
            "beam-10 decoding, MRs/s: "
            + ", ".join(f"{p} {r:.3f}" for p, r in d["mrs_per_second"].items())
            + f"; outputs identical in {100 * d['same_output_share']:.0f}% of MRs"
        )
    print("note:", pb.get("note"))
else:
    print(
        "no precision bench yet: python benchmarks/precision.py --note '...' "
        "(about 25 minutes on 2 quiet cores)"
    )

# %% [markdown]
# Speed is worth nothing if the runs learn less. Two checks: MRPC with the GLUE campaign's
# settings (seed 0, FT and LoRA) trained in bf16, against the campaign's fp32 runs of three
# seeds; and a short E2E run (800 training rows, 100 steps) in fp32 and in bf16, whose dev
# losses should agree within 1%.

# %%
from lorabook.e2e import report as e2e_report
from lorabook.glue import report as glue_report

quality = pd.DataFrame(glue_report.bf16_quality(REPO_ROOT / "results")).set_index(
    ["task", "method"]
)
display(quality.round(2))
losses = e2e_report.bf16_dev_losses(REPO_ROOT / "results")
if all(losses.values()):
    gap = losses["bf16"]["dev_loss"] / losses["no"]["dev_loss"] - 1
    print(
        f"E2E, LoRA, 100 steps: dev loss fp32 {losses['no']['dev_loss']:.4f}, bf16 "
        f"{losses['bf16']['dev_loss']:.4f} ({100 * gap:+.2f}%); s/step "
        f"{losses['no']['seconds_per_step']:.2f} vs {losses['bf16']['seconds_per_step']:.2f}"
    )
else:
    print(
        "E2E check not run yet: python -m lorabook.e2e --method lora --preset cpu "
        "--train-examples 800 --test-mrs 8 [--mixed-precision bf16]"
    )

# %% [markdown]
# ```{admonition} Claims checked in this chapter
# :class: tip
#
# **Testable on this CPU**: merged LoRA's latency equals the base model's (same layers,
# same shapes), and unmerged LoRA's and the adapters' extra work is measured, not assumed;
# memory by account (weights, gradients, optimizer state, activations) and checkpoint sizes
# do not depend on the device; our LoRA against peft's on the same shapes; time to equal
# accuracy in CPU seconds.
#
# **Needs a GPU**: Table 1's batch-1 adapter overhead (a latency effect of a GPU that is
# not saturated: on a CPU adapters cost only their FLOPs), the paper's throughput figure
# (it is a GPU-utilisation claim), the allocator's peak memory (`torch.cuda`; a CPU gives
# only the process's peak RSS, libraries included), and every energy figure (this CPU
# exposes no power counter: "energy: not measurable here"). `mode = "paper"` on a GPU
# reruns the benchmarks at the paper's shapes.
# ```
