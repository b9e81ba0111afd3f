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
mode = "quick"

# %% tags=["hide-input"]
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
# ## 2.5 Merged, unmerged, and the plain model: timing one forward pass
#
# The paper's claim: once merged, an adapted model is exactly as fast as the original. We
# time one forward pass of MiniLM (batch of 8 × 64 tokens, CPU, median of repeated runs)
# three ways: the pretrained model without LoRA, LoRA unmerged (the extra $B(Ax)$ path),
# and LoRA merged.


# %%
def median_seconds(net: torch.nn.Module, repeats: int = 15) -> float:
    with torch.no_grad():
        net(**batch)  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            net(**batch)
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


plain = minilm()
timings = {"pretrained, no LoRA": median_seconds(plain), "LoRA, unmerged": median_seconds(model)}
lorabook.merge_lora(model)
with torch.no_grad():
    merged_logits = model(**batch).logits
timings["LoRA, merged"] = median_seconds(model)
torch.testing.assert_close(merged_logits, ours, rtol=0, atol=1e-5)

fig, ax = plt.subplots(figsize=(7, 2.5))
ax.barh(list(timings), [1000 * t for t in timings.values()], color=["#888", "#d95f02", "#1b9e77"])
ax.set(xlabel="milliseconds per forward pass (median)", title="MiniLM forward pass, CPU")
fig.tight_layout()
plt.show()
for k, v in timings.items():
    print(f"{k:<22} {1000 * v:7.2f} ms")

# %% [markdown]
# The merged model runs the very same operations as the pretrained one (same layer types,
# same shapes), so any difference between those two bars is measurement noise on a shared
# CPU; the unmerged model does extra work in every adapted layer.
#
# ## 2.6 Adapter files
#
# `save_adapter` writes only what was trained (A, B and the kept head) and a fingerprint of
# the base model, so loading it into another base is refused with both shapes named;
# `export_peft` writes peft's format. Both round-trip to the same logits:

# %%
lorabook.unmerge_lora(model)
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
# outputs (asserted) and runs the same operations as the pretrained model (timed above); the
# saved adapter holds only the trained tensors (sizes above) and reloads, through lorabook
# or peft, to the same logits (asserted).
# ```
