"""Which arithmetic a phase runs in: fp32, or bf16 autocast where the hardware has native bf16.

Training keeps its weights and optimizer state in fp32 either way; ``bf16`` means
``torch.autocast`` runs the matrix multiplies in bfloat16 (Accelerate's ``mixed_precision``
does the same in ``lorabook.train``). On a CPU that only pays where bf16 is native (AVX-512
BF16 or AMX): elsewhere PyTorch emulates it, 15 to 20 times slower than fp32. So the ``cpu``
presets ask :func:`cpu_precision` instead of assuming, while the ``full`` presets keep bf16
everywhere (:data:`CAMPAIGN_PRECISION`: what their records are) and their campaigns refuse to
start where it is emulated (:func:`require_native_bf16`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from lorabook.cli import UserError

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


CAMPAIGN_PRECISION = "bf16"
"""The arithmetic of the ``full`` presets (GLUE's and E2E's), pinned: bf16 autocast, what
every record of their campaigns was trained in (on CPUs with native bf16). Not asked of the
machine (:func:`cpu_precision`): a run's identity is the hash of its settings, precision
included, so on a CPU without native bf16 a preset that asked would name other runs. There the
book found none of the committed records and a campaign started every run again in fp32."""

EMULATED_BF16_SLOWDOWN = 15
"""At least about how many times fp32's time a training step takes in bf16 autocast where the
CPU only emulates it: MiniLM, 16 × 64 tokens, one thread, FT about 15×, LoRA about 20×
(``results/bench/precision-cpu-emulated-minilm.json``, an AMD EPYC without AVX-512 BF16;
chapter 5.7; a test holds this figure to that record)."""


def emulated_bf16(mixed_precision: str, device: torch.device | str = "cpu") -> bool:
    """Whether ``mixed_precision`` is bf16 on a CPU that only emulates it (no
    :data:`NATIVE_BF16_FLAGS`), where it runs about :data:`EMULATED_BF16_SLOWDOWN` times
    slower than fp32."""
    return mixed_precision == "bf16" and torch.device(device).type == "cpu" and not cpu_bf16_flags()


def emulation_warning(what: str, instead: str) -> str:
    """What to say of ``what`` (a run, a campaign) in bf16 on a CPU that only emulates it,
    ending with what to do ``instead``."""
    return (
        f"{what} trains in bf16 (as its records were), but this CPU has no native bf16 "
        f"({' / '.join(NATIVE_BF16_FLAGS)}): PyTorch emulates it, about "
        f"{EMULATED_BF16_SLOWDOWN}x slower than fp32 or more. {instead}"
    )


def fp32_instead(flags: str = "--mixed-precision no") -> str:
    """What a single run in bf16 on a CPU that emulates it can do instead: the ``flags`` that
    make it fp32 (:func:`emulation_warning`)."""
    return f"{flags} trains in fp32 instead: a run of its own, which the book does not read"


def require_native_bf16(what: str) -> None:
    """Refuse to start ``what`` (a campaign: hours of runs in :data:`CAMPAIGN_PRECISION`) on a
    CPU that only emulates bf16, saying why and what to do instead."""
    if emulated_bf16(CAMPAIGN_PRECISION):
        raise UserError(
            emulation_warning(
                what,
                "Run it on a CPU that has one of those flags: in fp32 its runs would be other "
                "runs than its records, and the book would read none of them.",
            )
        )


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
