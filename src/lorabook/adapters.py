"""Adapter files: only what was trained, plus a fingerprint of the base it belongs to.

Our format, one folder:
    lorabook_adapter.safetensors   A and B of every LoRA layer, and every other trained tensor
    lorabook_adapter.json          per-layer r/alpha/split, kept modules, base fingerprint

peft's format (``export_peft`` / ``import_peft``): ``adapter_config.json`` +
``adapter_model.safetensors``, loadable by ``peft.PeftModel.from_pretrained``. A fused layer
that adapts n of its slices (GPT-2's q and v) is written as one rank n·r LoRA whose B is
block-structured (zero rows for k), with lora_alpha n·α so that peft's scale α_peft / r_peft
equals our α / r: the same function, exactly.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from lorabook.inject import add_lora, freeze_except_lora, lora_layers, name_matches
from lorabook.io import write_json, write_tensors
from lorabook.layers import LoRALayer

WEIGHTS, CONFIG = "lorabook_adapter.safetensors", "lorabook_adapter.json"
PEFT_WEIGHTS, PEFT_CONFIG, PEFT_PREFIX = (
    "adapter_model.safetensors",
    "adapter_config.json",
    "base_model.model.",
)
FORMAT_VERSION = 1


class AdapterMismatchError(ValueError):
    """The adapter was saved for a base model with other shapes or another architecture."""


def base_name(name: str) -> str:
    """A parameter's name in the un-adapted model (drops the wrapper's ``base_layer``)."""
    return name.replace(".base_layer.", ".")


def _is_lora(name: str) -> bool:
    return name.endswith((".lora_A", ".lora_B"))


def base_fingerprint(model: nn.Module) -> dict:
    """Architecture and the shape of every base parameter: what an adapter depends on."""
    shapes = {base_name(n): list(p.shape) for n, p in model.named_parameters() if not _is_lora(n)}
    return {"architecture": type(model).__name__, "shapes": shapes}


def check_fingerprint(saved: dict, model: nn.Module, source: str) -> None:
    """Refuse an adapter whose base differs from ``model``, naming both shapes."""
    here = base_fingerprint(model)
    if saved["architecture"] != here["architecture"]:
        raise AdapterMismatchError(
            f"{source} was saved for a {saved['architecture']}, not a {here['architecture']}"
        )
    for name, shape in saved["shapes"].items():
        if name not in here["shapes"]:
            raise AdapterMismatchError(f"{source} expects a parameter {name!r} this model lacks")
        if here["shapes"][name] != shape:
            raise AdapterMismatchError(
                f"{source} was saved for another base model: {name!r} is "
                f"{tuple(shape)} there but {tuple(here['shapes'][name])} here"
            )


def _copy_checked(param: torch.Tensor, value: torch.Tensor, name: str, source: str) -> None:
    if param.shape != value.shape:
        raise AdapterMismatchError(
            f"{source}: {name!r} is {tuple(value.shape)} in the file but "
            f"{tuple(param.shape)} in this model"
        )
    with torch.no_grad():
        param.copy_(value.to(param.dtype))


def _require_lora(model: nn.Module) -> dict:
    layers = lora_layers(model)
    if not layers:
        raise ValueError("This model has no LoRA layers: call lorabook.apply_lora first")
    return layers


def save_adapter(model: nn.Module, directory: str | Path) -> Path:
    """Save LoRA weights and every other trainable tensor, with the base fingerprint."""
    layers, directory = _require_lora(model), Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"{n}.{ab}": getattr(m, ab) for n, m in layers.items() for ab in ("lora_A", "lora_B")
    }
    kept = {
        base_name(n): p for n, p in model.named_parameters() if p.requires_grad and not _is_lora(n)
    }
    config = {
        "format": "lorabook-adapter",
        "version": FORMAT_VERSION,
        "layers": {
            n: {
                "r": m.r,
                "alpha": m.alpha,
                "split": list(m.split),
                "init": m.init,
                "dropout": getattr(m.dropout, "p", 0.0),
            }
            for n, m in layers.items()
        },
        "kept_modules": list(getattr(model, "lora_kept_modules", [])),
        "kept_tensors": sorted(kept),
        "base": base_fingerprint(model),
    }
    write_tensors(directory / WEIGHTS, {**tensors, **kept})
    write_json(directory / CONFIG, config)  # written last: its presence marks a whole adapter
    return directory


def load_adapter(model: nn.Module, directory: str | Path) -> nn.Module:
    """Load an adapter saved by ``save_adapter``, injecting its LoRA layers if needed.

    The base model must match the saved fingerprint (architecture and every shape); if not,
    an ``AdapterMismatchError`` names the first parameter whose shapes differ.
    """
    directory = Path(directory)
    if not (directory / CONFIG).is_file():
        hint = (
            " (it looks like peft's format: use import_peft)"
            if (directory / PEFT_CONFIG).exists()
            else ""
        )
        raise FileNotFoundError(f"No {CONFIG} in {directory}{hint}")
    config = json.loads((directory / CONFIG).read_text())
    check_fingerprint(config["base"], model, f"The adapter in {directory}")
    existing = lora_layers(model)
    if existing and set(existing) != set(config["layers"]):
        raise AdapterMismatchError(
            f"This model has LoRA on {sorted(existing)[:3]}..., the adapter on "
            f"{sorted(config['layers'])[:3]}...: load into the plain base model instead"
        )
    for name, spec in config["layers"].items():
        if name not in existing:
            add_lora(
                model, name, spec["r"], spec["alpha"], spec["dropout"], spec["init"], spec["split"]
            )
    freeze_except_lora(model, config["kept_modules"])
    params = dict(model.named_parameters())
    params.update({base_name(n): p for n, p in params.items()})
    for name, value in load_file(directory / WEIGHTS).items():
        _copy_checked(params[name], value, name, f"The adapter in {directory}")
    for name in config["kept_tensors"]:
        params[name].requires_grad_(True)
    return model


def _peft_tensors(layer: LoRALayer) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) of one layer as one peft LoRA of rank n·r; B has zero rows for skipped slices."""
    n, r = len(layer.slots), layer.r
    b_slices = layer.lora_B.detach().view(n, -1, r)
    d_slice = b_slices.shape[1]
    b = b_slices.new_zeros(len(layer.split) * d_slice, n * r)
    for i, slot in enumerate(layer.slots):
        b[slot * d_slice : (slot + 1) * d_slice, i * r : (i + 1) * r] = b_slices[i]
    return layer.lora_A.detach(), b


def export_peft(model: nn.Module, directory: str | Path) -> Path:
    """Write the adapter in peft's format so that ``PeftModel.from_pretrained`` loads it."""
    layers, directory = _require_lora(model), Path(directory)
    kept_modules = list(getattr(model, "lora_kept_modules", []))
    covered = {
        f"{m}.{n}" for m in kept_modules for n, _ in model.get_submodule(m).named_parameters()
    }
    stray = [
        base_name(n)
        for n, p in model.named_parameters()
        if p.requires_grad and not _is_lora(n) and base_name(n) not in covered
    ]
    if stray:
        raise ValueError(f"peft's LoRA format cannot hold these trained tensors: {stray[:5]}")
    ranks = {n: len(m.slots) * m.r for n, m in layers.items()}
    alphas = {n: len(m.slots) * m.alpha for n, m in layers.items()}
    r0, a0 = (
        Counter(ranks.values()).most_common(1)[0][0],
        Counter(alphas.values()).most_common(1)[0][0],
    )
    first = next(iter(layers.values()))
    config = {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": getattr(getattr(model, "config", None), "_name_or_path", None)
        or None,
        "r": r0,
        "lora_alpha": a0,
        "rank_pattern": {n: v for n, v in ranks.items() if v != r0},
        "alpha_pattern": {n: v for n, v in alphas.items() if v != a0},
        "target_modules": sorted(layers),
        "lora_dropout": getattr(first.dropout, "p", 0.0),
        "fan_in_fan_out": any(m.fan_in_fan_out for m in layers.values()),
        "bias": "none",
        "modules_to_save": kept_modules or None,
        "init_lora_weights": True,
        "inference_mode": True,
        "use_rslora": False,
        "use_dora": False,
    }
    tensors = {}
    for name, layer in layers.items():
        a, b = _peft_tensors(layer)
        tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"] = a
        tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"] = b
    params = {base_name(n): p for n, p in model.named_parameters()}
    tensors.update({f"{PEFT_PREFIX}{n}": params[n] for n in sorted(covered)})
    directory.mkdir(parents=True, exist_ok=True)
    write_tensors(directory / PEFT_WEIGHTS, tensors)
    write_json(directory / PEFT_CONFIG, config)
    return directory


def _pattern_value(name: str, patterns: dict, default: float) -> float:
    for key, value in patterns.items():
        if name_matches(name, key):
            return value
    return default


def import_peft(model: nn.Module, directory: str | Path) -> nn.Module:
    """Load a peft LoRA adapter (``adapter_config.json`` + safetensors) into a plain model."""
    directory = Path(directory)
    source = f"The peft adapter in {directory}"
    if not (directory / PEFT_CONFIG).is_file() or not (directory / PEFT_WEIGHTS).is_file():
        raise FileNotFoundError(f"{source}: expected {PEFT_CONFIG} and {PEFT_WEIGHTS}")
    cfg = json.loads((directory / PEFT_CONFIG).read_text())
    if cfg.get("peft_type") != "LORA":
        raise ValueError(f"{source} is a {cfg.get('peft_type')} adapter, not LORA")
    unsupported = [k for k in ("use_dora", "lora_bias") if cfg.get(k)]
    if cfg.get("bias", "none") != "none":
        unsupported.append(f"bias={cfg['bias']!r}")
    if unsupported:
        raise ValueError(
            f"{source} uses {unsupported}, which lorabook's LoRA layer does not implement"
        )
    if lora_layers(model):
        raise ValueError(
            "import_peft needs the plain base model, but this one already has LoRA layers"
        )
    tensors = load_file(directory / PEFT_WEIGHTS)
    names = {
        k[len(PEFT_PREFIX) :].removesuffix(".lora_A.weight")
        for k in tensors
        if k.endswith(".lora_A.weight")
    }
    modules = dict(model.named_modules())
    for name in sorted(names):
        if name not in modules:
            raise AdapterMismatchError(f"{source} adapts {name!r}, which this model does not have")
        a = tensors[f"{PEFT_PREFIX}{name}.lora_A.weight"]
        r = a.shape[0]
        alpha = _pattern_value(name, cfg.get("alpha_pattern") or {}, cfg["lora_alpha"])
        if cfg.get("use_rslora"):
            alpha = alpha * math.sqrt(r)  # rsLoRA scales by alpha/sqrt(r) = (alpha·sqrt(r))/r
        layer = add_lora(model, name, r, alpha, cfg.get("lora_dropout", 0.0))
        _copy_checked(layer.lora_A, a, f"{name}.lora_A", source)
        _copy_checked(
            layer.lora_B, tensors[f"{PEFT_PREFIX}{name}.lora_B.weight"], f"{name}.lora_B", source
        )
    kept_modules = list(cfg.get("modules_to_save") or [])
    freeze_except_lora(model, kept_modules)
    params = {base_name(n): p for n, p in model.named_parameters()}
    for key, value in tensors.items():
        if ".lora_" not in key:
            name = key[len(PEFT_PREFIX) :]
            if name not in params:
                raise AdapterMismatchError(
                    f"{source} holds {name!r}, which this model does not have"
                )
            _copy_checked(params[name], value, name, source)
    return model
