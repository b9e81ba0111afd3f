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
# # 2. Implementation: the layer, the injection, the files
#
# The code shown in this chapter is not a copy: it is printed from the package the book
# uses (`inspect.getsource`), so the text cannot drift from what runs. We then put LoRA into
# a real pretrained model (MiniLM, offline), check it against the two reference
# implementations, merge it, time it, and save it.

# %% tags=["parameters"]
# every run mode computes the same (tiny models, seconds): "quick" or "paper"
mode = "quick"

# %% tags=["hide-input"]
import copy
import inspect
import tempfile
import time
import warnings
from pathlib import Path

import loralib
import matplotlib.pyplot as plt
import pandas as pd
import peft
import torch
import transformers
from IPython.display import display

import lorabook
from lorabook import LoRALayer, apply_lora, lora_layers
from lorabook.quiet import silence_libraries

assert mode in ("quick", "paper"), f"mode must be 'quick' or 'paper', got {mode!r}"
silence_libraries()  # this chapter calls transformers and peft: no bars, logs, deprecations
torch.manual_seed(0)
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})


def show(obj) -> None:
    """Print the source of a package function or method."""
    print(inspect.getsource(obj))


# %% [markdown]
# ## 2.1 The forward pass
#
# $h = W_0 x + \frac{\alpha}{r} B A x$. `LoRALayer` wraps the pretrained layer (kept as
# `base_layer`, frozen) and adds the update computed right to left, $B(A\,x)$, never forming
# the $d \times k$ matrix:

# %%
show(LoRALayer.forward)
show(LoRALayer.lora_forward)

# %% [markdown]
# For an ordinary projection there is one slice. GPT-2 computes $q, k, v$ with one fused
# matrix (`c_attn`); the paper adapts $W_q$ and $W_v$ only, so the layer keeps one $(A_i,
# B_i)$ pair per adapted slice and leaves the $k$ rows at zero: that is what `split=(True,
# False, True)` means. On a tiny random GPT-2:

# %%
gpt2 = transformers.GPT2LMHeadModel(
    transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=100, n_positions=32)
)
report = apply_lora(gpt2, r=4, alpha=8)  # targets=None: the paper's (c_attn, q and v)
layer = gpt2.transformer.h[0].attn.c_attn
print(layer)
with torch.no_grad():
    layer.lora_B.normal_()
    x = torch.randn(3, 64)
    update = layer(x) - layer.base_layer(x)
print(
    "update on q, k, v slices (max |·|):",
    [f"{update[:, i * 64 : (i + 1) * 64].abs().max():.3f}" for i in range(3)],
)
assert update[:, 64:128].abs().max() == 0

# %% [markdown]
# ## 2.2 Merging: no inference latency
#
# $W \leftarrow W_0 + \frac{\alpha}{r} BA$, computed in fp32 and cast once; `unmerge`
# subtracts it again. Merging twice is a warned no-op, never a double update:

# %%
show(LoRALayer.merge)
show(LoRALayer.delta_weight)

# %% [markdown]
# ## 2.3 Into a pretrained model
#
# MiniLM-L6 is our offline stand-in for RoBERTa. `apply_lora` with no targets takes the
# paper's ($W_q$, $W_v$: `query` and `value` in BERT's naming), freezes everything else and
# keeps the named modules (here the classification head) trainable:


# %%
def minilm() -> torch.nn.Module:
    """MiniLM with a 2-class head; the same seed gives the same head."""
    torch.manual_seed(0)
    path = lorabook.resolve_model("minilm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformers.logging.set_verbosity_error()
        return transformers.AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=2
        ).eval()


tokenizer = transformers.AutoTokenizer.from_pretrained(lorabook.resolve_model("minilm"))
batch = tokenizer(
    ["LoRA freezes the pretrained weights.", "Only A and B are trained."] * 4,
    padding="max_length",
    max_length=64,
    return_tensors="pt",
)

model = minilm()
report = apply_lora(model, r=8, alpha=8, keep_trainable=["classifier", "bert.pooler"])
print(report)
g = torch.Generator().manual_seed(1)
with torch.no_grad():  # stand-in for training: give every B a value
    for lyr in lora_layers(model).values():
        lyr.lora_B.copy_(torch.randn(lyr.lora_B.shape, generator=g) * 0.05)
    ours = model(**batch).logits

# %% [markdown]
# ## 2.4 Against the anchors: peft and loralib
#
# Same pretrained weights, same head, same $A$ and $B$: the logits must agree to float
# rounding. peft wraps the same modules; loralib replaces them with its own `lora.Linear`.

# %%
reference = minilm()
theirs_peft = peft.get_peft_model(
    reference,
    peft.LoraConfig(
        r=8, lora_alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"]
    ),
)
params = dict(theirs_peft.named_parameters())
with torch.no_grad():
    for name, lyr in lora_layers(model).items():
        params[f"base_model.model.{name}.lora_A.default.weight"].copy_(lyr.lora_A)
        params[f"base_model.model.{name}.lora_B.default.weight"].copy_(lyr.lora_B)
    peft_logits = theirs_peft.eval()(**batch).logits

theirs_loralib = minilm()
with torch.no_grad():
    for name, lyr in lora_layers(model).items():
        base = lyr.base_layer
        swap = loralib.Linear(
            base.in_features, base.out_features, r=8, lora_alpha=8, merge_weights=False
        )
        swap.weight.copy_(base.weight)
        swap.bias.copy_(base.bias)
        swap.lora_A.copy_(lyr.lora_A)
        swap.lora_B.copy_(lyr.lora_B)
        parent, _, child = name.rpartition(".")
        setattr(theirs_loralib.get_submodule(parent), child, swap)
    loralib_logits = theirs_loralib.eval()(**batch).logits

with torch.no_grad():  # the comparison means something only if LoRA changed the output
    assert not torch.allclose(minilm()(**batch).logits, ours, atol=1e-3)
anchors = pd.DataFrame(
    {
        "max |logits − lorabook|": [
            (peft_logits - ours).abs().max().item(),
            (loralib_logits - ours).abs().max().item(),
        ],
    },
    index=["peft", "loralib"],
)
assert (anchors.iloc[:, 0] < 1e-5).all()
anchors

# %% [markdown]
# ## 2.5 Merged, unmerged, and the plain model
#
# The paper's claim (its Section 4.1, "No Additional Inference Latency"
# {cite}`hu2021lora`): once $\frac{\alpha}{r} BA$ is merged into $W_0$, the adapted model is
# the original architecture with other weights, so it is as fast as the original *by
# construction*. The evidence for that is structural. `merge_and_unload` folds each update
# into its weight and puts the plain `nn.Linear` back; the result must have the pretrained
# model's modules, names and parameter shapes, and the unmerged model's outputs:


# %%
plain = minilm()
merged = lorabook.merge_and_unload(copy.deepcopy(model))  # `model` itself stays unmerged
with torch.no_grad():
    merged_logits = merged(**batch).logits
torch.testing.assert_close(merged_logits, ours, rtol=0, atol=1e-5)
assert [(n, type(m)) for n, m in merged.named_modules()] == [
    (n, type(m)) for n, m in plain.named_modules()
]
assert {n: p.shape for n, p in merged.named_parameters()} == {
    n: p.shape for n, p in plain.named_parameters()
}
print("merged: the pretrained model's modules, names and shapes; the unmerged model's logits")

# %% [markdown]
# (`merge_lora`, which training code uses when it will switch back, keeps the `LoRALayer`
# wrappers and only skips their LoRA path: the same matrix products, plus a Python branch
# per adapted layer.)
#
# Timing can only add a sanity check. Unmerged, each adapted layer adds $r(d + k)$
# multiply-adds per token (chapter 1), a small share of the model's linear layers, counted
# below. We time one forward pass of MiniLM (a batch of 8 × 64 tokens, CPU) for the three
# variants in turn, round after round, so that a change in the machine's load hits all three
# alike, and print each one's median with its interquartile range (IQR):


# %%
def time_in_turn(nets: dict[str, torch.nn.Module], rounds: int = 15) -> pd.DataFrame:
    """One forward pass of every net in turn, ``rounds`` times after one warm-up each:
    median and interquartile range in ms."""
    times: dict[str, list[float]] = {name: [] for name in nets}
    with torch.no_grad():
        for net in nets.values():
            net(**batch)
        for _ in range(rounds):
            for name, net in nets.items():
                start = time.perf_counter()
                net(**batch)
                times[name].append(1000 * (time.perf_counter() - start))
    ms = pd.DataFrame(times)
    return pd.DataFrame({"median ms": ms.median(), "IQR ms": ms.quantile(0.75) - ms.quantile(0.25)})


timings = time_in_turn(
    {"pretrained, no LoRA": plain, "LoRA, unmerged": model, "LoRA, merged": merged}
)

linear_macs = sum(
    m.in_features * m.out_features
    for m in plain.bert.encoder.modules()
    if isinstance(m, torch.nn.Linear)
)
lora_macs = sum(
    lyr.r * (lyr.lora_A.shape[1] + lyr.lora_B.shape[0]) for lyr in lora_layers(model).values()
)
fig, ax = plt.subplots(figsize=(7, 2.5))
ax.barh(
    timings.index,
    timings["median ms"],
    xerr=timings["IQR ms"] / 2,
    color=["#888", "#d95f02", "#1b9e77"],
    capsize=3,
)
ax.set(xlabel="milliseconds per forward pass (median, bar: IQR)", title="MiniLM forward pass, CPU")
fig.tight_layout()
plt.show()
display(timings.round(2))
base_ms = timings.loc["pretrained, no LoRA", "median ms"]
for name in ("LoRA, unmerged", "LoRA, merged"):
    gap = timings.loc[name, "median ms"] - base_ms
    spread = max(timings.loc[[name, "pretrained, no LoRA"], "IQR ms"])
    print(
        f"{name} − pretrained: {gap:+.2f} ms ({100 * gap / base_ms:+.1f}%), "
        f"{'within' if abs(gap) <= spread else 'beyond'} the larger IQR ({spread:.2f} ms)"
    )
print(
    f"unmerged LoRA's extra multiply-adds per token: {lora_macs:,}, "
    f"{100 * lora_macs / linear_macs:.2f}% of the encoder's linear layers' {linear_macs:,}"
)

# %% [markdown]
# A gap within the spread says nothing either way, and the unmerged model's extra work is
# too small a share for a shared CPU to show reliably: whichever way the bars fall, the
# claim rests on the structure checked above, not on this timing. Chapter 5 times the base,
# merged LoRA (by `merge_lora`, which keeps the wrappers) and unmerged LoRA, beside adapters,
# in interleaved trials on GPT-2 medium's shape and on SmolLM2.
#
# ## 2.6 Adapter files
#
# `save_adapter` writes only what was trained (A, B and the kept head) and a fingerprint of
# the base model, so loading it into another base is refused with both shapes named;
# `export_peft` writes peft's format. Both round-trip to the same logits:

# %%
folder = Path(tempfile.mkdtemp())
lorabook.save_adapter(model, folder / "ours")
lorabook.export_peft(model, folder / "peft")
restored = lorabook.load_adapter(minilm(), folder / "ours")
via_peft = peft.PeftModel.from_pretrained(minilm(), folder / "peft").eval()
with torch.no_grad():
    diffs = {
        "load_adapter": (restored(**batch).logits - ours).abs().max().item(),
        "peft.PeftModel.from_pretrained": (via_peft(**batch).logits - ours).abs().max().item(),
    }
full = sum(p.numel() * p.element_size() for p in plain.parameters())
sizes = pd.DataFrame(
    {
        "bytes": [
            full,
            (folder / "ours" / "lorabook_adapter.safetensors").stat().st_size,
            (folder / "peft" / "adapter_model.safetensors").stat().st_size,
        ],
    },
    index=[
        "all weights of the model (fp32)",
        "lorabook adapter (LoRA + head)",
        "peft adapter (LoRA + head)",
    ],
)
sizes["MB"] = (sizes["bytes"] / 1e6).round(2)
assert max(diffs.values()) < 1e-5
print({k: f"{v:.2e}" for k, v in diffs.items()})
sizes

# %% [markdown]
# ```{admonition} Claims checked in this chapter
# :class: tip
#
# **The paper** (Section 4): LoRA adds trainable low-rank matrices beside frozen weights;
# they can be merged into the weights for deployment with no additional inference latency;
# a task needs only its small $A$, $B$ to be stored.
#
# **Checked here, by running code on MiniLM:** the package's layer gives the same logits as
# peft and loralib with the same $A$ and $B$ (asserted, < 1e-5); merging preserves the
# outputs (asserted), and `merge_and_unload` leaves a model with the pretrained model's
# modules and shapes (asserted), which therefore runs the same operations (a CPU timing of
# a few percent cannot add to that); the saved adapter holds only the trained tensors (sizes
# above) and reloads, through lorabook or peft, to the same logits (asserted).
# ```
