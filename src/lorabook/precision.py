"""Which arithmetic a phase runs in: fp32, or bf16 autocast where the hardware has native bf16.

Training keeps its weights and optimizer state in fp32 either way; ``bf16`` means
``torch.autocast`` runs the matrix multiplies in bfloat16 (Accelerate's ``mixed_precision``
does the same in ``lorabook.train``). On a CPU that only pays where bf16 is native (AVX-512
BF16 or AMX): elsewhere PyTorch emulates it and it is slower than fp32, so the CPU presets ask
:func:`cpu_precision` instead of assuming.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

PRECISIONS = ("no", "bf16", "fp16")  # Accelerate's names; "no" is fp32
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The CPU flags among :data:`NATIVE_BF16_FLAGS` that this machine has (empty if none, or
    if ``cpuinfo`` cannot be read: not Linux)."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return tuple(f for f in NATIVE_BF16_FLAGS if f in flags)


def cpu_precision(log=None) -> str:
    """``"bf16"`` where the CPU computes bf16 natively, else ``"no"`` (fp32), saying so once
    through ``log`` when it falls back."""
    if cpu_bf16_flags():
        return "bf16"
    if log is not None:
        log("This CPU has no native bf16 (avx512_bf16 / amx_bf16): training in fp32 instead")
    return "no"


def precision_info(device: torch.device | str = "cpu") -> dict:
    """What a record says about the arithmetic the hardware offers (for ``device``)."""
    device = torch.device(device)
    if device.type == "cpu":
        return {"device": "cpu", "native_bf16_flags": list(cpu_bf16_flags())}
    return {"device": device.type, "bf16_supported": bool(torch.cuda.is_bf16_supported())}


def precision_record(
    mixed_precision: str,
    device: torch.device | str = "cpu",
    phases: Sequence[str] = ("train", "evaluate"),
) -> dict:
    """What a result record says about its arithmetic: the precision of each phase that ran
    (``"fp32"``, or ``"bf16"``/``"fp16"``: matrix multiplies autocast to it, over float32
    weights and optimizer state), and what the hardware offers (:func:`precision_info`).

    Not a setting: records keep their names (the run hash covers ``mixed_precision``).
    """
    if mixed_precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {mixed_precision!r}")
    arithmetic = "fp32" if mixed_precision == "no" else mixed_precision
    return {
        **{phase: arithmetic for phase in phases},
        "weights_and_optimizer": "fp32",
        "hardware": precision_info(device),
    }


@contextlib.contextmanager
def cached_weight_casts(model: torch.nn.Module) -> Iterator[None]:
    """Let autocast cast each frozen weight once per autocast region, not at every call.

    ``torch.autocast`` keeps its low-precision copy of a weight for the rest of the region
    only for a leaf tensor that requires grad. A frozen backbone (LoRA, adapters, prefix, the
    untuned model) is therefore cast again at every forward, in beam search once per
    generated token, while FT's weights are cast once. For the duration, the frozen
    floating-point parameters are marked as requiring grad (use it under ``no_grad``: nothing
    records a graph) and restored afterwards, whatever happens: the same casts, once each, so
    the same outputs (both tested). It saves the time of casting the whole backbone at every
    generated token; decoding of a frozen backbone with beam search gains most.
    """
    frozen = [p for p in model.parameters() if p.is_floating_point() and not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(False)


@contextlib.contextmanager
def autocast(device: torch.device | str, precision: str) -> Iterator[None]:
    """``torch.autocast`` on ``device`` for ``precision`` (``"no"``: no autocast at all)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "no":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(torch.device(device).type, dtype=dtype):
        yield
