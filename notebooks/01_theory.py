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
# # 1. Theory: a low-rank update, annotated
#
# LoRA {cite}`hu2021lora` freezes a pretrained weight matrix $W_0$ and learns its change
# $\Delta W$ as the product of two thin matrices. This chapter walks through the idea the
# way *The Annotated Transformer* does: an equation, then the line of code that implements
# it. It trains nothing; it checks the arithmetic the rest of the book relies on:
#
# 1. the forward pass $h = W_0 x + \frac{\alpha}{r} B A x$ and why the model starts as the
#    pretrained one;
# 2. why a low-rank factorisation can be a good approximation (singular values and the
#    Eckart–Young theorem, on synthetic matrices);
# 3. the paper's trainable-parameter formula $|\Theta| = 2 \hat{L} d_{model} r$, computed for
#    the paper's models and checked against this book's package, `lorabook`.
#
# Everything below runs in a few seconds on a CPU.

# %% tags=["parameters"]
# every run mode computes the same (the chapter trains nothing): "quick" or "paper"
mode = "quick"

# %% [markdown]
# `mode` is the book's one notebook parameter (`make book MODE=paper` on a GPU). This chapter
# does the same work in both modes: the parameter is here so that every chapter can be
# executed the same way.

# %% tags=["hide-input"]
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import transformers

import lorabook
from lorabook import LoRALayer, apply_lora, lora_param_count, paper

assert mode in ("quick", "paper"), f"mode must be 'quick' or 'paper', got {mode!r}"

# `make book` sets LORABOOK_VENV: the kernel papermill started must be that venv's python.
expected_venv = os.environ.get("LORABOOK_VENV")
if expected_venv:
    assert Path(sys.prefix).resolve() == Path(expected_venv).resolve(), (
        f"kernel runs {sys.executable} (prefix {sys.prefix}), not the venv {expected_venv}"
    )
print(f"python      {sys.version.split()[0]}")
print(f"torch       {torch.__version__}, transformers {transformers.__version__}")
print(f"lorabook    {lorabook.__version__}, mode = {mode!r}")
torch.manual_seed(0)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## 1.1 The idea: freeze $W_0$, learn $\Delta W = BA$
#
# Full fine-tuning updates a pretrained weight $W_0 \in \mathbb{R}^{d \times k}$ to
# $W_0 + \Delta W$, where $\Delta W$ has as many entries as $W_0$. Earlier work found that
# fine-tuning can succeed in a subspace of very low "intrinsic dimension"
# {cite}`li2018intrinsic,aghajanyan2020intrinsic`; the paper's hypothesis is that the change
# needed to adapt to a task likewise has a low "intrinsic rank", so it constrains the update
# to a rank-$r$ product, $\Delta W = BA$ (the paper's equation 3), and scales its output by
# $\frac{\alpha}{r}$ (its Section 4.1):
#
# $$
# h = W_0 x + \frac{\alpha}{r} \Delta W x = W_0 x + \frac{\alpha}{r} B A x,
# \qquad \Delta W = BA,\; B \in \mathbb{R}^{d \times r},\; A \in \mathbb{R}^{r \times k},\;
# r \ll \min(d, k).
# $$
#
# In this book, as in the paper, $\Delta W$ is $BA$ alone; the weight actually changes by
# $\frac{\alpha}{r} \Delta W$. $W_0$ receives no gradient; only $A$ and $B$ are trained. The
# paper initialises $A$ with a random Gaussian (it gives no variance; the package's
# `init="gaussian"` draws each entry with standard deviation $1/r$, and its default, as in
# loralib and peft, is Kaiming-uniform) and $B$ with zeros, so $\Delta W = BA = 0$ at the
# start: **the adapted model is exactly the pretrained model until the first optimiser
# step.** The factor $\frac{\alpha}{r}$ scales the update; the paper sets $\alpha$ to the
# first $r$ it tries and does not tune it, because with Adam tuning $\alpha$ is roughly like
# tuning the learning rate if the initialisation is scaled appropriately (Section 4.1). Its
# own settings do not keep $\alpha = r$, though: RoBERTa-large is trained with $r = 8$,
# $\alpha = 16$ (Table 9) and GPT-2 with $r = 4$, $\alpha = 32$ (Table 11); what stays fixed
# is $\alpha$ across the values of $r$ tried.
#
# Here is the equation with toy sizes, one line per symbol:

# %%
d, k, r, alpha = 6, 5, 2, 4
W0 = torch.randn(d, k)  # pretrained weight, frozen
A = torch.randn(r, k) / r  # A: Gaussian, standard deviation 1/r
B = torch.zeros(d, r)  # B = 0, so ΔW = BA = 0 at initialisation
x = torch.randn(k)

h = W0 @ x + (alpha / r) * (B @ (A @ x))  # h = W0 x + (α/r) B A x
assert torch.equal(h, W0 @ x)  # at initialisation the model is the pretrained one
print("h at init equals W0 x:", torch.equal(h, W0 @ x))

# %% [markdown]
# Note the order of operations: $B(Ax)$ first squeezes $x$ through $r$ dimensions and never
# forms the $d \times k$ matrix $BA$. Unmerged, the layer costs the $dk$ multiply-adds per
# token of $W_0 x$ **plus** $r(d + k)$ for the LoRA path; $r(d + k)$ is a saving only against
# applying a dense $\Delta W$, which would add another $dk$ (merged, the extra cost is zero:
# below). The trainable parameters per adapted matrix are $r(d + k)$ as well:

# %%
for dd, kk, rr in [(768, 768, 8), (1024, 1024, 4), (12288, 12288, 4)]:
    print(
        f"d=k={dd:>5}, r={rr}: r(d+k) = {rr * (dd + kk):>7,} vs dk = {dd * kk:>11,}"
        f"  ({rr * (dd + kk) / (dd * kk):.3%} of the matrix)"
    )

# %% [markdown]
# The package's `LoRALayer` wraps an existing `nn.Linear` and implements the same equation.
# Give it our $W_0$ and $A$, pretend training has moved $B$ away from zero, and compare it
# with the formula:

# %%
base = torch.nn.Linear(k, d, bias=False)  # nn.Linear stores W0 as (out, in) = (d, k)
with torch.no_grad():
    base.weight.copy_(W0)
layer = LoRALayer(base, r=r, alpha=alpha, init="gaussian")
with torch.no_grad():
    layer.lora_A.copy_(A)
    layer.lora_B.normal_()  # stands in for a trained B
B_trained = layer.lora_B.detach().clone()

torch.testing.assert_close(layer(x), W0 @ x + (alpha / r) * B_trained @ (A @ x))
print("trainable:", [n for n, p in layer.named_parameters() if p.requires_grad])
print("frozen:   ", [n for n, p in layer.named_parameters() if not p.requires_grad])

# %% [markdown]
# **No inference latency.** After training, $W = W_0 + \frac{\alpha}{r} BA$ can be computed
# once and stored in place of $W_0$: the adapted layer is then an ordinary linear layer of
# the original shape, and switching tasks means subtracting one $\frac{\alpha}{r} BA$ and
# adding another (the paper's Section 4.1, "No Additional Inference Latency").

# %%
h_before = layer(x)
layer.merge()  # W0 <- W0 + (α/r) B A
torch.testing.assert_close(layer.base_layer.weight, W0 + (alpha / r) * B_trained @ A)
torch.testing.assert_close(layer.base_layer(x), h_before)  # plain linear layer, same output
layer.unmerge()  # and back
torch.testing.assert_close(layer.base_layer.weight, W0)
print("merged weight = W0 + (α/r)BA, same outputs; unmerge restores W0")

# %% [markdown]
# ## 1.2 Why low rank can be enough: singular values
#
# A rank-$r$ product $BA$ can represent exactly the $d \times k$ matrices of rank at most
# $r$. How much is lost by that restriction depends on the matrix. Write the singular value
# decomposition $M = \sum_i \sigma_i u_i v_i^\top$ with $\sigma_1 \ge \sigma_2 \ge \dots$. The
# **Eckart–Young theorem** {cite}`eckart1936approximation` (extended to every unitarily
# invariant norm by {cite:t}`mirsky1960symmetric`) says the best rank-$r$ approximation in
# Frobenius norm is the truncated SVD $M_r = \sum_{i \le r} \sigma_i u_i v_i^\top$, and its
# error is what the discarded singular values add up to:
#
# $$
# \min_{\operatorname{rank}(X) \le r} \lVert M - X \rVert_F = \lVert M - M_r \rVert_F
# = \sqrt{\textstyle\sum_{i > r} \sigma_i^2}.
# $$
#
# So a matrix whose singular values fall off a cliff is well approximated at small $r$; one
# whose spectrum is flat is not. We build one of each (seeded): a rank-8 matrix plus a little
# noise, and a plain Gaussian random matrix of the same size and norm.

# %%
rng = np.random.default_rng(0)
n, true_rank, noise = 256, 8, 0.05

U = rng.standard_normal((n, true_rank))
V = rng.standard_normal((true_rank, n))
low_rank_plus_noise = U @ V / np.sqrt(true_rank) + noise * rng.standard_normal((n, n))
gaussian = rng.standard_normal((n, n))
gaussian *= np.linalg.norm(low_rank_plus_noise) / np.linalg.norm(gaussian)  # same ‖·‖_F

matrices = {f"rank {true_rank} + noise": low_rank_plus_noise, "Gaussian random": gaussian}

# %% [markdown]
# For each matrix: the SVD, the truncated reconstruction $M_r$ for every $r$, its relative
# error $\lVert M - M_r \rVert_F / \lVert M \rVert_F$, and a check of that error against the
# tail formula above.

# %%
ranks = np.arange(0, 65)
spectra, errors = {}, {}
for name, M in matrices.items():
    Um, s, Vt = np.linalg.svd(M)  # M = U diag(s) V^T, s sorted descending
    norm = np.linalg.norm(M)  # Frobenius norm
    err = np.array([np.linalg.norm(M - (Um[:, :q] * s[:q]) @ Vt[:q]) / norm for q in ranks])
    tail = np.array([np.sqrt(np.sum(s[q:] ** 2)) / norm for q in ranks])  # Eckart-Young
    np.testing.assert_allclose(err, tail, rtol=1e-6, atol=1e-9)
    spectra[name], errors[name] = s, err

# %% tags=["hide-input"]
fig, (ax_s, ax_e) = plt.subplots(1, 2, figsize=(11, 4))
for name, s in spectra.items():
    ax_s.semilogy(np.arange(1, n + 1), s / s[0], marker=".", markersize=3, label=name)
    ax_e.plot(ranks, errors[name], marker=".", markersize=3, label=name)
ax_s.axvline(true_rank, color="grey", linestyle=":", label=f"r = {true_rank}")
ax_s.set(
    title="Singular value spectrum",
    xlabel="index i",
    ylabel=r"$\sigma_i / \sigma_1$ (log scale)",
)
ax_e.axvline(true_rank, color="grey", linestyle=":", label=f"r = {true_rank}")
ax_e.set(
    title="Best rank-r approximation (Eckart–Young)",
    xlabel="rank r",
    ylabel=r"relative error $\|M - M_r\|_F \,/\, \|M\|_F$",
    ylim=(0, 1.02),
)
ax_s.legend()
ax_e.legend()
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
summary = pd.DataFrame(
    {name: [errors[name][q] for q in (1, 4, true_rank, 32, 64)] for name in matrices},
    index=pd.Index([1, 4, true_rank, 32, 64], name="rank r"),
).map(lambda e: f"{e:.3f}")
summary.columns.name = "relative error of M_r"
summary

# %%
signal_err = errors[f"rank {true_rank} + noise"][true_rank]
gaussian_err = errors["Gaussian random"][64]
outside = gaussian_err**2  # the share of ‖M‖²_F that the rank-64 approximation leaves out
assert signal_err < 0.1 < 0.5 < gaussian_err and outside > 1 / 3
print(f"rank {true_rank} + noise at r = {true_rank}: relative error {signal_err:.3f}")
print(
    f"Gaussian random   at r = 64: relative error {gaussian_err:.3f}, i.e. {outside:.0%} of "
    f"the squared norm left out ({1 - outside:.0%} captured)"
)

# %% [markdown]
# At $r = 8$ the first matrix's error drops to the noise level: the low-rank signal is
# captured entirely, and more rank only fits noise. The Gaussian matrix's singular values
# decay slowly (for a square Gaussian matrix they follow the quarter-circle law, the square
# case of the Marchenko–Pastur law {cite}`marchenko1967distribution`): its best rank-64
# approximation still leaves a relative error above one half, more than a third of the
# squared norm (printed above), where the first matrix is captured at rank 8.
#
# Truncated SVD is the best any rank-$r$ matrix can do. As an illustration (not a proof),
# projecting onto $r$ random directions is always worse:

# %%
M = low_rank_plus_noise
s = spectra[f"rank {true_rank} + noise"]
for q in (1, 4, true_rank, 32):
    Q, _ = np.linalg.qr(rng.standard_normal((n, q)))  # q random orthonormal directions
    random_err = np.linalg.norm(M - M @ Q @ Q.T) / np.linalg.norm(M)
    assert random_err >= errors[f"rank {true_rank} + noise"][q] - 1e-12
    print(
        f"r = {q:>2}: truncated SVD {errors[f'rank {true_rank} + noise'][q]:.3f}"
        f"  <=  random rank-{q} projection {random_err:.3f}"
    )

# %% [markdown]
# What this does **not** show: that the weight updates of a fine-tuned language model look
# like the first matrix rather than the second. That is the paper's empirical claim (its
# Section 7 compares the subspaces learned with $r = 8$ and $r = 64$ on GPT-3); chapter 6,
# *Why LoRA works*, tests it on the models we can train (in part so far: subspace similarity
# across seeds and the amplification of Table 7 on chapter 3's runs; its rank and
# weight-choice studies wait for their runs).
#
# ## 1.3 Counting trainable parameters: $|\Theta| = 2 \hat{L} d_{model} r$
#
# The paper adapts square $d_{model} \times d_{model}$ attention projections. Each adapted
# matrix adds $A$ ($r \times d_{model}$) and $B$ ($d_{model} \times r$), i.e. $2 d_{model} r$
# parameters, so with $\hat{L}$ adapted matrices (Section 5.1 of the paper):
#
# $$
# |\Theta| = 2 \times \hat{L} \times d_{model} \times r .
# $$
#
# The package implements this formula as `lora_param_count(n_matrices, d_model, r)`:

# %%
assert lora_param_count(n_matrices=1, d_model=d, r=r) == 2 * d * r
print(lora_param_count(n_matrices=24, d_model=768, r=8))

# %% [markdown]
# The formula is one thing; what the code actually injects is another. For each of the
# paper's settings we build the model **on the meta device** (shapes only: no weights are
# allocated or downloaded, so even GPT-3's 175 billion parameters cost nothing), call
# `apply_lora` with the paper's targets for that architecture ($W_q$ and $W_v$ in every
# layer; for GPT-2, the $q$ and $v$ thirds of its fused `c_attn` projection), and require the
# injected count to equal the formula. GPT-3 is built as a GPT-2-style model with GPT-3
# 175B's shape (96 layers, $d_{model} = 12288$, 96 heads: Table 2.1 of
# {cite:t}`brown2020language`; 2048 positions, its context length).
#
# The paper's own figures for the same settings are read from the transcription of its
# tables (`lorabook.paper`), as printed there: Table 2 for RoBERTa, Table 3 for GPT-2, and for
# GPT-3 Table 4's two LoRA rows, which its Appendix D.4 gives as $r_q = r_v = 1$ and
# $r_q = r_v = 8$ (D.4 also offers $r = 2$ on all four matrices for the larger, a slip:
# Table 15 implies 4). GPT-3 at $r = 4$ has no row in Table 4: Section 7.1 uses it under
# "a parameter budget of 18M (roughly 35MB if stored in FP16)", the figure in Table 5's
# heading. That figure is a budget, not a count. Everything else is computed.


# %%
from lorabook.profile import paper_architecture, paper_config  # shapes; models on meta

# The paper's printed LoRA counts (the transcription's cells, e.g. "0.35M"), each with its
# model, rank and source: lorabook.paper.printed_lora_counts
settings = [tuple(c.values()) for c in paper.printed_lora_counts()]
table_4 = {label.rpartition(" ")[::2]: cells for label, cells in paper.entries(4).items()}

rows = []
for kind, rank, cell, where, figure in settings:
    model = paper_architecture(kind)
    cfg = model.config
    n_layers, d_model = cfg.num_hidden_layers, cfg.hidden_size
    report = apply_lora(model, r=rank, alpha=rank)  # targets=None: the paper's W_q, W_v
    n_matrices = 2 * n_layers  # W_q and W_v in every layer
    formula = lora_param_count(n_matrices=n_matrices, d_model=d_model, r=rank)
    assert report.lora == formula, (kind, rank, report.lora, formula)
    assert report.kept == 0 and report.trainable == report.lora  # nothing else trains
    reported_m = paper.value(cell) / 1e6
    decimals = len(cell.rstrip("M").partition(".")[2])  # the paper's rounding, from its cell
    rows.append(
        {
            "model": kind,
            "r": rank,
            "L̂": n_matrices,
            "d_model": d_model,
            "formula 2·L̂·d·r": formula,
            "apply_lora": report.lora,
            "pretrained params": report.total - report.lora,
            "pretrained / LoRA": round((report.total - report.lora) / report.lora),
            "paper": cell,
            "paper (M)": reported_m,
            "decimals": decimals,
            "formula (M), paper's rounding": f"{round(formula / 1e6, decimals):g}",
            "agrees": paper.rounds_to(formula, cell),
            "paper's figure": figure,
            "paper's source": where,
        }
    )
    del model

counts = pd.DataFrame(rows).set_index(["model", "r"])
shown = counts.copy()  # the same numbers, formatted for reading
for column in ["formula 2·L̂·d·r", "apply_lora", "pretrained params", "pretrained / LoRA"]:
    shown[column] = counts[column].map("{:,}".format)
shown[["L̂", "d_model", "formula 2·L̂·d·r", "apply_lora", "pretrained params"]]

# %% [markdown]
# And the same settings against what the paper prints, rounded the way the paper rounds
# (`pretrained / LoRA`: how many times fewer parameters are trained than the model has):

# %%
shown[
    [
        "paper",
        "paper's figure",
        "formula (M), paper's rounding",
        "agrees",
        "pretrained / LoRA",
        "paper's source",
    ]
]

# %% [markdown]
# Every row passes the first check: the parameters `apply_lora` injects are exactly
# $2 \hat{L} d_{model} r$, including GPT-2, where the $q$ and $v$ slices of one fused
# matrix count as two adapted matrices. The `agrees` column compares with the paper's
# printed figures; the assertions below pin down what the table shows, so that this text
# cannot drift from the numbers.

# %%
agrees = counts["agrees"]
assert agrees[("roberta-base", 8)] and agrees[("roberta-large", 8)]
assert agrees[("gpt3-175b", 1)] and agrees[("gpt3-175b", 8)]
assert not agrees[("gpt2-medium", 4)] and not agrees[("gpt2-large", 4)]
assert not agrees[("gpt3-175b", 4)]  # the budget: the exact count rounds above it
budget_row = counts.loc[("gpt3-175b", 4)]
assert budget_row["formula 2·L̂·d·r"] > 1e6 * budget_row["paper (M)"]  # over the budget

# Full fine-tuning of GPT-3 in Table 4 (its FT row's parameter count, as printed)
paper_ft = next(paper.value(count) for method, count in table_4 if method == "FT")
gpt3 = counts.loc["gpt3-175b"]
print(
    f"GPT-3 175B shape: {gpt3['pretrained params'].iloc[0] / 1e9:.1f}B pretrained parameters "
    f"here; Table 4's FT row: {paper_ft / 1e9:.1f}B"
)
for rank, row in gpt3.iterrows():
    lora = row["formula 2·L̂·d·r"]
    print(
        f"GPT-3, W_q and W_v at r = {rank}: {lora:,} LoRA parameters "
        f"({2 * lora / 1e6:.1f} MB in FP16), {row['pretrained / LoRA']:,}x fewer than our "
        f"model, {paper_ft / lora:,.0f}x fewer than Table 4's FT"
    )

# %% [markdown]
# Could another choice of adapted matrices explain the GPT-2 figures? Search every number
# of adapted square attention matrices per layer (1 to 4 of $W_q, W_k, W_v, W_o$, in all
# layers) and every rank up to 64 for a count that rounds to the printed one:

# %%
for kind in ("gpt2-medium", "gpt2-large"):
    printed = counts.loc[(kind, 4)]  # the paper's Table 3 cell, and its rounding
    digits = int(printed["decimals"])
    cfg = paper_config(kind)
    hits = [
        (per_layer, rank)
        for per_layer in range(1, 5)
        for rank in range(1, 65)
        if round(lora_param_count(per_layer * cfg.n_layer, cfg.n_embd, rank) / 1e6, digits)
        == round(printed["paper (M)"], digits)
    ]
    print(f"{kind}: printed {printed['paper']}; (matrices per layer, r) for it: {hits or 'none'}")

# %% [markdown]
# So, against the paper's printed figures:
#
# - **RoBERTa** (Table 2) and **GPT-3** (Table 4's two LoRA rows) agree with the formula for
#   $W_q, W_v$ in all layers, to the paper's rounding, at the paper's ranks ($r = 8$ for
#   RoBERTa, Table 9; $r = 1$ and $r = 8$ for GPT-3, Appendix D.4).
# - **GPT-3 at $r = 4$** does not agree, and is not meant to: Section 7.1's figure is a
#   budget in round millions, and the exact count, 18,874,368, is over it (Table 15 prints
#   it as 18.8M, a slip the transcription lists).
# - **GPT-2 Medium and Large** do *not* agree: the paper's own setting ($W_q, W_v$,
#   $r = 4$) gives the counts in the table, not the ones Table 3 prints, and no all-layer
#   choice of attention matrices and rank gives either. The discrepancy is an open question
#   upstream (microsoft/LoRA issue #172). This chapter records it; the E2E and efficiency
#   chapters count the parameters of the models they actually train.
# - **"10,000 times."** The abstract's "10,000 times" fewer trainable parameters is the size
#   of the ratio at $r = 4$ against Table 4's FT count (printed above). Table 4's own
#   smallest LoRA, $r = 1$, trains four times fewer parameters still, so by the paper's own
#   Table 4 the factor is more than three times the 10,000× it states. Our ratios are
#   computed against a GPT-2-style model of GPT-3's shape, slightly smaller than Table 4's
#   FT count, so the table's ratios come out a little below those against the paper's count
#   (both printed above).

# %% [markdown]
# ```{admonition} Claims checked in this chapter
# :class: tip
#
# **What the paper claims** (Sections 4 and 5.1):
# - LoRA's update $\Delta W = BA$ starts at zero ($B = 0$), so training starts from the
#   pretrained model; the layer computes $W_0 x + \frac{\alpha}{r} \Delta W x$.
# - After training, $\frac{\alpha}{r} BA$ can be merged into $W_0$: no extra inference
#   latency.
# - The number of trainable parameters is $|\Theta| = 2 \hat{L} d_{model} r$: 0.3M for
#   RoBERTa-base and 0.8M for RoBERTa-large ($r = 8$, Table 2), 10,000× fewer than full
#   fine-tuning on GPT-3 175B.
#
# **What this chapter checked, by running code:**
# - $h = W_0 x$ exactly at initialisation; the package's `LoRALayer` computes
#   $W_0 x + \frac{\alpha}{r} B A x$; merging gives the same outputs and unmerging restores
#   $W_0$.
# - Eckart–Young on synthetic matrices: the truncated SVD's error equals the tail of the
#   singular values, and a low-rank-plus-noise matrix is captured at its rank while a
#   Gaussian one is not. This motivates, but does not prove, the low-rank hypothesis for
#   real weight updates (chapter 6 tests it, in part so far).
# - `apply_lora` injects exactly $2 \hat{L} d_{model} r$ parameters for RoBERTa-base/large,
#   GPT-2 Medium/Large and a GPT-3-175B-shaped model. The paper's figures, read from the
#   transcription of its tables, match the formula except in three rows of the table
#   above: GPT-2 Medium and Large (Table 3's printed counts follow from no all-layer
#   setting), and GPT-3 at $r = 4$, where the paper's figure is Section 7.1's round budget,
#   which the exact count exceeds.
# - The "10,000×" is the ratio at $r = 4$; Table 4's $r = 1$ setting gives a ratio four
#   times larger (printed above).
# ```
