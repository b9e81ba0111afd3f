"""The LoRA layer: one frozen weight, one trainable low-rank update.

The paper's equation (3) for an adapted weight matrix W0 (d x k), with the scale α / r of its
Section 4.1:

    h = W0 x + (α / r) · ΔW x = W0 x + (α / r) · B A x,    ΔW = B A,
    B ∈ R^{d×r},  A ∈ R^{r×k},  r ≪ min(d, k)

ΔW is B A alone, as in the paper; the weight changes by (α / r) · ΔW.

``LoRALayer`` wraps an existing ``nn.Linear`` (RoBERTa, BERT, Llama) or a transformers
``Conv1D`` (GPT-2, which stores its weight transposed: "fan_in_fan_out") without copying it.

Fused projections. GPT-2's ``c_attn`` computes q, k and v with one (k × 3d) matrix. The paper
adapts only W_q and W_v, so ``split=(True, False, True)`` gives the q and v thirds of the
output their own A_i, B_i and leaves k untouched, exactly as loralib's ``MergedLinear`` does.
A and B are stored stacked, loralib's layout: A is (n·r × k), B is (n·d_slice × r), where n is
the number of adapted slices.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from transformers.pytorch_utils import Conv1D

INITS = ("kaiming", "gaussian")


class LoRALayer(nn.Module):
    """``h = base(x) + (alpha / r) · B A dropout(x)``, with the base layer frozen.

    Args:
        base: the pretrained ``nn.Linear`` or transformers ``Conv1D`` to adapt.
        r: the rank of the update (1 ≤ r ≤ min(d, k), d taken per slice).
        alpha: the scale numerator; the update is multiplied by ``alpha / r``.
        dropout: dropout probability on the LoRA path's input (0 disables it).
        init: ``"kaiming"`` (A ~ kaiming-uniform(a=√5), as loralib and peft) or
            ``"gaussian"`` (each entry of A drawn from N(0, σ²) with σ = 1/r, i.e. variance
            1/r²: the paper says "random Gaussian" and gives no variance). B is always 0,
            so the adapted model starts exactly as the pretrained one.
        split: for fused projections, which equal slices of the output get an update,
            e.g. ``(True, False, True)`` for q and v of GPT-2's ``c_attn``. ``None`` = one slice.
        check_rank: refuse r > min(d, k) (the default). Importing a file that peft wrote with
            such a rank turns it off: the layer then computes exactly what the file says.

    Merging: ``merge()`` folds the update into the base weight (computed in fp32, cast once)
    so inference costs nothing extra; ``unmerge()`` subtracts it again. Merging a merged
    layer, or unmerging an unmerged one, is a no-op with a warning: never a double update.
    A merged layer's forward skips the LoRA path, so it does not train: unmerge first.
    """

    def __init__(
        self,
        base: nn.Module,
        r: int,
        alpha: float,
        dropout: float = 0.0,
        init: str = "kaiming",
        split: Sequence[bool] | None = None,
        check_rank: bool = True,
    ) -> None:
        super().__init__()
        self.split = check_lora_arguments(base, r, alpha, dropout, init, split, check_rank)
        self.base_layer = base
        self.fan_in_fan_out = isinstance(base, Conv1D)
        out_features, in_features = self._base_weight_dk().shape
        slice_out = out_features // len(self.split)

        self.r, self.alpha, self.init = r, float(alpha), init
        self.scaling = self.alpha / r
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        n, w = sum(self.split), base.weight
        self.lora_A = nn.Parameter(torch.empty(n * r, in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(n * slice_out, r, dtype=w.dtype, device=w.device))
        self.slots = [i for i, s in enumerate(self.split) if s]  # indices of adapted slices
        self.merged = False
        self.reset_lora_parameters()
        for p in self.base_layer.parameters():
            p.requires_grad_(False)

    def reset_lora_parameters(self) -> None:
        """A random (kaiming-uniform or gaussian), B = 0: ΔW = BA = 0 at initialisation."""
        if self.init == "kaiming":
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        else:
            nn.init.normal_(self.lora_A, std=1 / self.r)
        nn.init.zeros_(self.lora_B)

    def _base_weight_dk(self) -> torch.Tensor:
        """The base weight as (d × k) = (out × in), whatever its storage order."""
        w = self.base_layer.weight
        return w.T if self.fan_in_fan_out else w

    def _per_slice(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A as (n, r, k) and B as (n, d_slice, r): one (A_i, B_i) pair per adapted slice."""
        n = sum(self.split)
        return self.lora_A.view(n, self.r, -1), self.lora_B.view(n, -1, self.r)

    def delta_weight(self) -> torch.Tensor:
        """The update (α/r) · ΔW = (α/r) · BA as a (d × k) matrix, computed in fp32; zero rows
        for skipped slices."""
        a, b = self._per_slice()
        delta = torch.bmm(b.float(), a.float()) * self.scaling  # (n, d_slice, k)
        full = delta.new_zeros(len(self.split), delta.shape[1], delta.shape[2])
        full[self.slots] = delta
        return full.reshape(-1, delta.shape[2])

    def lora_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The update (α/r) · B A x alone, never forming the d × k matrix ΔW.

        Two matmuls, as peft's: ``x → A x`` (n·r values), then ``→ B_blocks (A x)``, where
        for fused projections ``B_blocks`` puts each B_i on its slice's rows and its own r
        columns (zero elsewhere, zero rows for skipped slices): a small (d × n·r) matrix,
        so no activation-sized tensor is zero-filled or scattered.
        """
        ax = F.linear(self.dropout(x), self.lora_A)  # (..., n·r)
        return F.linear(ax, self._b_blocks()) * self.scaling

    def _b_blocks(self) -> torch.Tensor:
        """B as a (d × n·r) block matrix: B_i in slice ``slots[i]``'s rows, columns i·r…."""
        if len(self.split) == 1:
            return self.lora_B
        _, b = self._per_slice()
        n, d_slice = b.shape[0], b.shape[1]
        zeros = b.new_zeros(d_slice, n * self.r)
        rows = [zeros] * len(self.split)
        for i, slot in enumerate(self.slots):
            rows[slot] = F.pad(b[i], (i * self.r, (n - 1 - i) * self.r))
        return torch.cat(rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """h = W0 x + (α/r) B A x; only W0 x once merged (ΔW is then inside W0)."""
        result = self.base_layer(x)
        if self.merged:
            return result
        return result + self.lora_forward(x).to(result.dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """W0 ← W0 + (α/r)·BA, the sum in fp32 and cast once. No-op (warning) if merged."""
        if self.merged:
            warnings.warn("LoRA layer is already merged: merge() did nothing", stacklevel=2)
            return
        self._add_to_base(self.delta_weight())
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W0 ← W0 - (α/r)·BA, undoing ``merge``. No-op (warning) if not merged.

        In fp32 this restores W0 up to float rounding (~1e-7 relative); in bf16 each
        merge/unmerge round trip may move a weight by up to one bf16 rounding step.
        """
        if not self.merged:
            warnings.warn("LoRA layer is not merged: unmerge() did nothing", stacklevel=2)
            return
        self._add_to_base(-self.delta_weight())
        self.merged = False

    def _add_to_base(self, delta_dk: torch.Tensor) -> None:
        w = self.base_layer.weight
        delta = delta_dk.T if self.fan_in_fan_out else delta_dk
        w.copy_((w.float() + delta).to(w.dtype))

    def extra_repr(self) -> str:
        split = "" if self.split == (True,) else f", split={self.split}"
        return f"r={self.r}, alpha={self.alpha:g}, init={self.init}{split}, merged={self.merged}"


def base_shape(base: nn.Module) -> tuple[int, int]:
    """(d, k) = (out, in) of an ``nn.Linear`` or a ``Conv1D`` (which stores its weight as k × d)."""
    d, k = base.weight.T.shape if isinstance(base, Conv1D) else base.weight.shape
    return d, k


def check_lora_arguments(
    base: nn.Module,
    r: int,
    alpha: float,
    dropout: float = 0.0,
    init: str = "kaiming",
    split: Sequence[bool] | None = None,
    check_rank: bool = True,
) -> tuple[bool, ...]:
    """Every check ``LoRALayer(base, ...)`` makes, changing nothing; returns the split as a tuple.

    ``apply_lora`` and the adapter loaders run it on every layer before wrapping the first, so
    a bad argument leaves the model untouched.
    """
    if not isinstance(base, nn.Linear | Conv1D):
        raise TypeError(
            f"LoRA adapts nn.Linear or transformers Conv1D layers, not {type(base).__name__}"
        )
    d, k = base_shape(base)
    split = tuple(bool(s) for s in (split if split is not None else (True,)))
    if not any(split):
        raise ValueError(f"split={split} adapts no slice: set at least one True")
    if d % len(split):
        raise ValueError(
            f"split has {len(split)} slices but the layer's {d} outputs do not divide evenly: "
            f"use a split whose length divides {d}"
        )
    if check_rank:
        check_hyperparameters(r, alpha, d=d // len(split), k=k)
    else:
        check_hyperparameters(r, alpha)
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    return split


def check_hyperparameters(r: int, alpha: float, d: int | None = None, k: int | None = None) -> None:
    """Reject a rank or scale that cannot work, with a message that says what would."""
    if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
        raise ValueError(f"LoRA rank r must be a positive integer, got r={r!r}")
    if d is not None and k is not None and r > min(d, k):
        raise ValueError(
            f"LoRA rank r={r} exceeds min(d, k)={min(d, k)} for a {d}×{k} weight: a rank above "
            f"{min(d, k)} adds parameters without adding expressiveness; use r ≤ {min(d, k)}"
        )
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not alpha > 0:
        raise ValueError(f"LoRA alpha must be a positive number (scale = alpha / r), got {alpha!r}")
