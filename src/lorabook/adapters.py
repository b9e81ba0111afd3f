"""Adapter files: only what was trained, plus a fingerprint of the base it belongs to.

Our format, one folder:
    lorabook_adapter.safetensors   A and B of every LoRA layer, and every other trained tensor
    lorabook_adapter.json          per-layer r/alpha/split, kept modules, base fingerprint

peft's format (``export_peft`` / ``import_peft``): ``adapter_config.json`` +
``adapter_model.safetensors``, loadable by ``peft.PeftModel.from_pretrained``. A fused layer
that adapts n of its slices (GPT-2's q and v) is written as one rank n·r LoRA whose B is
block-structured (zero rows for k), with lora_alpha n·α so that peft's scale α_peft / r_peft
equals our α / r: the same function, exactly.

Loading is all or nothing. ``load_adapter`` and ``import_peft`` read the whole file and check
it (every expected tensor present, none unexpected, shapes, dtypes, the base it was made for)
before the first change to the model: a call that raises leaves the model exactly as it was,
a call that returns leaves it exactly as the file says. Warnings, too, come before any change.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import Counter
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from lorabook.inject import add_lora, freeze_except_lora, lora_layers
from lorabook.io import write_json, write_tensors
from lorabook.layers import LoRALayer, base_shape, check_lora_arguments

WEIGHTS, CONFIG = "lorabook_adapter.safetensors", "lorabook_adapter.json"
PEFT_WEIGHTS, PEFT_CONFIG, PEFT_PREFIX = (
    "adapter_model.safetensors",
    "adapter_config.json",
    "base_model.model.",
)
FORMAT_VERSION = 1
# The base's content sample: this many values, at fixed places, of this many frozen matrices.
CONTENT_WEIGHTS, CONTENT_VALUES = 8, 16


class AdapterMismatchError(ValueError):
    """The adapter was saved for a base model with other shapes, weights or architecture."""


class AdapterFileError(ValueError):
    """An adapter file is unreadable, or does not hold what its config says it holds."""


def base_name(name: str) -> str:
    """A parameter's name in the un-adapted model (drops the wrapper's ``base_layer``)."""
    return name.replace(".base_layer.", ".")


def _is_lora(name: str) -> bool:
    return name.endswith((".lora_A", ".lora_B"))


def _read_json(path: Path, source: str) -> dict:
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AdapterFileError(
            f"{source}: {path.name} is not valid JSON ({err}); save or download it again"
        ) from err


def _read_tensors(path: Path, source: str) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, or an error naming the file and the fix."""
    if not path.is_file():
        raise FileNotFoundError(f"{source}: {path.name} is missing; save the adapter again")
    try:
        return load_file(path)
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise AdapterFileError(
            f"{source}: {path.name} is not a readable safetensors file ({err}); it may be "
            "truncated or damaged: save or download it again"
        ) from err


def _check_tensor(value: torch.Tensor, shape: tuple, name: str, source: str) -> None:
    """A tensor from a file must be floating point and have the shape the model needs."""
    if tuple(value.shape) != tuple(shape):
        raise AdapterMismatchError(
            f"{source}: {name!r} is {tuple(value.shape)} in the file but "
            f"{tuple(shape)} in this model"
        )
    if not value.is_floating_point():
        raise AdapterFileError(
            f"{source}: {name!r} is {value.dtype} in the file, not a floating-point tensor; "
            "the file is damaged or not an adapter: save it again"
        )


def _check_layer(
    base: nn.Module,
    name: str,
    source: str,
    r: int,
    alpha: float,
    dropout: float = 0.0,
    init: str = "kaiming",
    split=None,
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Validate one layer to be injected; return the shapes of its A and B.

    A rank above min(d, k) is allowed here (peft writes such files) with a warning.
    """
    try:
        split = check_lora_arguments(base, r, alpha, dropout, init, split, check_rank=False)
    except (TypeError, ValueError) as err:
        raise AdapterMismatchError(f"{source} cannot adapt {name!r}: {err}") from err
    d, k = base_shape(base)
    d_slice = d // len(split)
    if r > min(d_slice, k):
        warnings.warn(
            f"{source}: {name!r} has rank r={r} > min(d, k)={min(d_slice, k)}; loaded as "
            "written (apply_lora refuses such ranks for new adapters)",
            stacklevel=3,
        )
    n = sum(split)
    return (n * r, k), (n * d_slice, r)


def base_fingerprint(model: nn.Module) -> dict:
    """Architecture and the shape of every base parameter: what an adapter depends on."""
    shapes = {base_name(n): list(p.shape) for n, p in model.named_parameters() if not _is_lora(n)}
    return {"architecture": type(model).__name__, "shapes": shapes}


def _sample(p: torch.Tensor) -> torch.Tensor:
    """CONTENT_VALUES values of ``p`` at fixed, evenly spaced places (fp32, on the CPU)."""
    flat = p.detach().reshape(-1)
    # fp32 whatever torch's default dtype (the places files were saved with); above 2**24 values
    # fp32 may round the last place up past the end, hence the clamp.
    n = flat.numel()
    places = torch.linspace(0, n - 1, min(CONTENT_VALUES, n), dtype=torch.float32)
    return flat[places.round().long().clamp(max=n - 1).to(flat.device)].float().cpu()


def base_content(model: nn.Module) -> dict:
    """A cheap sample of the base's weights: a few values of a few frozen matrices, by name.

    Only weights that training does not change are sampled (no LoRA base layer, which a merge
    changes, and nothing trainable), so a trained or merged model gives the sample of its base.
    """
    lora_bases = {id(p) for m in lora_layers(model).values() for p in m.base_layer.parameters()}
    frozen = [
        (base_name(n), p)
        for n, p in model.named_parameters()
        if not p.requires_grad and id(p) not in lora_bases and p.ndim >= 2 and p.is_floating_point()
    ]
    step = max(len(frozen) / CONTENT_WEIGHTS, 1.0)
    chosen = [frozen[int(i * step)] for i in range(min(CONTENT_WEIGHTS, len(frozen)))]
    return {
        name: {"dtype": str(p.dtype).removeprefix("torch."), "values": _sample(p).tolist()}
        for name, p in chosen
    }


def _content_differs(saved: dict, model: nn.Module) -> str | None:
    """The first sampled weight whose values differ here, compared in the coarser dtype."""
    params = {base_name(n): p for n, p in model.named_parameters(remove_duplicate=False)}
    for name, entry in saved.items():
        if name not in params:
            return name
        here, there = params[name], getattr(torch, entry["dtype"])
        coarse = max(here.dtype, there, key=lambda t: torch.finfo(t).eps)
        stored = torch.tensor(entry["values"], dtype=torch.float32)
        if not torch.equal(_sample(here).to(coarse), stored.to(there).to(coarse)):
            return name
    return None


def check_fingerprint(
    saved: dict, model: nn.Module, source: str, allow_other_base: bool = False
) -> None:
    """Refuse an adapter whose base differs from ``model``, naming what differs.

    Shapes and architecture must match. Weights are compared through the saved content sample
    (files written before it existed have none, and skip this check); a difference raises, or
    only warns with ``allow_other_base=True``.
    """
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
    differs = _content_differs(saved.get("content") or {}, model)
    if differs:
        message = (
            f"{source} was saved for a base with the same shapes but other weights: "
            f"{differs!r} differs"
        )
        if not allow_other_base:
            raise AdapterMismatchError(
                f"{message}. Load the base it was trained on, or pass allow_other_base=True "
                "to load it onto this one anyway"
            )
        warnings.warn(f"{message}; loading anyway (allow_other_base=True)", stacklevel=3)


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
        "base": {**base_fingerprint(model), "content": base_content(model)},
    }
    write_tensors(directory / WEIGHTS, {**tensors, **kept})
    write_json(directory / CONFIG, config)  # written last: its presence marks a whole adapter
    return directory


def _check_existing_lora(model: nn.Module, specs: dict, source: str) -> dict[str, LoRALayer]:
    """LoRA layers already in ``model`` must be unmerged and exactly the file's layers."""
    existing = lora_layers(model)
    merged = [n for n, m in existing.items() if m.merged]
    if merged:
        raise ValueError(
            f"{source} cannot be loaded into a merged model ({merged[0]!r} is merged): call "
            "lorabook.unmerge_lora(model) first, load, then merge_lora(model) again"
        )
    if existing and set(existing) != set(specs):
        raise AdapterMismatchError(
            f"{source}: this model has LoRA on {sorted(existing)[:3]}..., the adapter on "
            f"{sorted(specs)[:3]}...: load into the plain base model instead"
        )
    for name, layer in existing.items():
        spec = specs[name]
        here = (layer.r, layer.alpha, layer.split)
        there = (spec["r"], float(spec["alpha"]), tuple(spec["split"]))
        if here != there:
            raise AdapterMismatchError(
                f"{source}: {name!r} has (r, alpha, split)={there} in the file but {here} in "
                "this model: load into the plain base model instead"
            )
    return existing


def load_adapter(
    model: nn.Module, directory: str | Path, allow_other_base: bool = False
) -> nn.Module:
    """Load an adapter saved by ``save_adapter``, injecting its LoRA layers if needed.

    The base model must match the saved fingerprint: architecture and every shape (else an
    ``AdapterMismatchError`` names the first parameter whose shapes differ) and the sampled
    weights (else the same error, or only a warning with ``allow_other_base=True``).

    All or nothing: the files are read and checked in full before the model changes, so an
    error leaves the model exactly as it was. A model whose LoRA is merged is refused: unmerge
    it first, load, and merge again.
    """
    directory = Path(directory)
    source = f"The adapter in {directory}"
    if not (directory / CONFIG).is_file():
        hint = (
            " (it looks like peft's format: use import_peft)"
            if (directory / PEFT_CONFIG).exists()
            else ""
        )
        raise FileNotFoundError(f"No {CONFIG} in {directory}{hint}")
    config = _read_json(directory / CONFIG, source)
    lacking = sorted({"layers", "kept_modules", "kept_tensors", "base"} - set(config))
    if lacking:
        raise AdapterFileError(f"{source}: {CONFIG} lacks {lacking}; save the adapter again")
    tensors = _read_tensors(directory / WEIGHTS, source)
    specs = config["layers"]
    existing = _check_existing_lora(model, specs, source)
    check_fingerprint(config["base"], model, source, allow_other_base)

    # What the file must hold, by name and shape, then whether it holds exactly that.
    expected: dict[str, tuple] = {}
    for name, spec in specs.items():
        try:
            base = existing[name].base_layer if name in existing else model.get_submodule(name)
        except AttributeError as err:
            raise AdapterMismatchError(f"{source} adapts {name!r}, which this model lacks") from err
        args = {k: spec[k] for k in ("r", "alpha", "dropout", "init", "split")}
        a, b = _check_layer(base, name, source, **args)
        expected[f"{name}.lora_A"], expected[f"{name}.lora_B"] = a, b
    params = {base_name(n): p for n, p in model.named_parameters(remove_duplicate=False)}
    modules = dict(model.named_modules())
    for name in config["kept_modules"]:
        if name not in modules:
            raise AdapterMismatchError(f"{source} keeps module {name!r}, which this model lacks")
    for name in config["kept_tensors"]:
        if name not in params:
            raise AdapterMismatchError(f"{source} holds {name!r}, which this model lacks")
        expected[name] = tuple(params[name].shape)
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise AdapterFileError(
            f"{source}: {WEIGHTS} does not match {CONFIG}"
            + (f"; missing {missing[:5]}" if missing else "")
            + (f"; unexpected {unexpected[:5]}" if unexpected else "")
            + ": the files are damaged or from two different adapters; save the adapter again"
        )
    for name, value in tensors.items():
        _check_tensor(value, expected[name], name, source)

    # Everything checked: now change the model.
    for name, spec in specs.items():
        if name not in existing:
            add_lora(
                model,
                name,
                spec["r"],
                spec["alpha"],
                spec["dropout"],
                spec["init"],
                spec["split"],
                check_rank=False,
            )
    freeze_except_lora(model, config["kept_modules"])
    params = dict(model.named_parameters(remove_duplicate=False))
    params.update({base_name(n): p for n, p in params.items()})
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value.to(params[name].dtype))
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


def peft_pattern_key(patterns: dict, name: str, source: str) -> str | None:
    """The first key of a peft ``rank_pattern``/``alpha_pattern`` that matches ``name``.

    peft's rule (``peft.utils.other.get_pattern_key``): a key is a regular expression that
    must match the end of the module name, from the start of a dotted component.
    """
    for key in patterns:
        try:
            if re.match(rf"(.*\.)?({key})$", name):
                return key
        except re.error as err:
            raise AdapterFileError(f"{source}: pattern key {key!r} is not a regex ({err})") from err
    return None


def _peft_kept_modules(model: nn.Module, modules_to_save) -> list[str]:
    """Modules peft wraps for ``modules_to_save``: those whose full name ends with an entry.

    peft matches a plain string suffix of ``base_model.model.<name>`` (so ``"classifier"`` also
    matches DistilBERT's ``pre_classifier``) and skips entries that match nothing: SEQ_CLS
    configs list both ``"classifier"`` and ``"score"``, and a model has one or the other.
    """
    suffixes = list(modules_to_save or [])
    return [
        n
        for n, _ in model.named_modules()
        if n and any((PEFT_PREFIX + n).endswith(s) for s in suffixes)
    ]


# Settings of peft's LoRA that change the function in ways lorabook's layer does not implement.
_PEFT_UNSUPPORTED = (
    "use_dora",
    "lora_bias",
    "layer_replication",
    "trainable_token_indices",
    "target_parameters",
    "alora_invocation_tokens",
)


def import_peft(model: nn.Module, directory: str | Path) -> nn.Module:
    """Load a peft LoRA adapter (``adapter_config.json`` + safetensors) into a plain model.

    Read as peft reads it: ``rank_pattern``/``alpha_pattern`` keys are regexes matched against
    the end of a module name (a key that matches no adapted module is an error, not a silent
    default); ``modules_to_save`` entries match by name ending and those matching nothing are
    skipped; a base weight the file carries (``lm_head.base_layer.weight``) is loaded into the
    base, as peft does; a rank above min(d, k) loads with a warning.

    A file with no lora_A/lora_B weights is refused (peft would load it with B = 0 and a
    warning; lorabook adapts the modules the file holds weights for). All or nothing:
    everything is read and checked before the model changes.
    """
    directory = Path(directory)
    source = f"The peft adapter in {directory}"
    if not (directory / PEFT_CONFIG).is_file() or not (directory / PEFT_WEIGHTS).is_file():
        raise FileNotFoundError(f"{source}: expected {PEFT_CONFIG} and {PEFT_WEIGHTS}")
    cfg = _read_json(directory / PEFT_CONFIG, source)
    if cfg.get("peft_type") != "LORA":
        raise ValueError(f"{source} is a {cfg.get('peft_type')} adapter, not LORA")
    unsupported = [k for k in _PEFT_UNSUPPORTED if cfg.get(k)]
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
    tensors = _read_tensors(directory / PEFT_WEIGHTS, source)

    # Sort the file's tensors: (A, B) per adapted module, and the rest (kept or base tensors).
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    rest: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if not key.startswith(PEFT_PREFIX):
            raise AdapterFileError(f"{source}: {key!r} lacks peft's prefix {PEFT_PREFIX!r}")
        name = key[len(PEFT_PREFIX) :]
        ab = next((x for x in "AB" if name.endswith(f".lora_{x}.weight")), None)
        if ab:
            pairs.setdefault(name.removesuffix(f".lora_{ab}.weight"), {})[ab] = value
        elif ".lora_" in name:
            raise AdapterFileError(
                f"{source} holds {name!r}, a LoRA tensor lorabook does not implement "
                "(it adapts the weights of nn.Linear and Conv1D layers only)"
            )
        else:
            rest[name] = value
    for name, ab in pairs.items():
        if len(ab) != 2:
            raise AdapterFileError(
                f"{source}: {name!r} has lora_{''.join(ab)} but no lora_{'AB'.replace(*ab, '')}: "
                "the file is incomplete; save or download it again"
            )
    if not pairs:
        raise AdapterFileError(
            f"{source}: {PEFT_WEIGHTS} holds no lora_A/lora_B weights: the file is incomplete "
            "or not a LoRA adapter; save or download it again"
        )

    # Each adapted module: its rank and alpha as peft computes them, and its shapes.
    rank_pattern, alpha_pattern = cfg.get("rank_pattern") or {}, cfg.get("alpha_pattern") or {}
    for what, patterns in (("rank_pattern", rank_pattern), ("alpha_pattern", alpha_pattern)):
        for key in patterns:
            if not any(peft_pattern_key({key: 0}, n, source) for n in pairs):
                raise AdapterFileError(
                    f"{source}: {what} key {key!r} matches none of the adapted modules (peft "
                    "matches it as a regular expression against the end of a module name, e.g. "
                    f"{min(pairs)!r}); fix or remove the key"
                )
    modules = dict(model.named_modules())
    dropout = cfg.get("lora_dropout", 0.0)
    plan: dict[str, tuple[int, float]] = {}
    for name in sorted(pairs):
        if name not in modules:
            raise AdapterMismatchError(f"{source} adapts {name!r}, which this model does not have")
        r_key = peft_pattern_key(rank_pattern, name, source)
        r = rank_pattern[r_key] if r_key is not None else cfg["r"]
        a_key = peft_pattern_key(alpha_pattern, name, source)
        alpha = alpha_pattern[a_key] if a_key is not None else cfg["lora_alpha"]
        a, b = pairs[name]["A"], pairs[name]["B"]
        if a.shape[0] != r or b.ndim != 2 or b.shape[1] != r:
            raise AdapterFileError(
                f"{source}: {name!r} has lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)}, "
                f"but its config gives rank r={r}: the file and its config disagree"
            )
        if cfg.get("use_rslora"):
            alpha = alpha * math.sqrt(r)  # rsLoRA scales by alpha/sqrt(r) = (alpha·sqrt(r))/r
        a_shape, b_shape = _check_layer(modules[name], name, source, r, alpha, dropout)
        _check_tensor(a, a_shape, f"{name}.lora_A", source)
        _check_tensor(b, b_shape, f"{name}.lora_B", source)
        plan[name] = (r, alpha)

    # The other tensors: kept modules' (trainable) and base weights the file carries.
    kept_modules = _peft_kept_modules(model, cfg.get("modules_to_save"))
    targets = {
        **dict(model.named_buffers(remove_duplicate=False)),
        **dict(model.named_parameters(remove_duplicate=False)),
    }
    for name, value in rest.items():
        if base_name(name) not in targets:
            raise AdapterMismatchError(f"{source} holds {name!r}, which this model does not have")
        _check_tensor(value, targets[base_name(name)].shape, name, source)
    for module in kept_modules:
        own = [f"{module}.{n}" for n, _ in modules[module].named_parameters()]
        held = [n for n in own if n in rest]
        if held and len(held) < len(own):
            raise AdapterFileError(
                f"{source} holds {held} but not {sorted(set(own) - set(held))} of the kept "
                f"module {module!r}: the file is incomplete; save or download it again"
            )
    kept_params = {f"{m}.{n}" for m in kept_modules for n, _ in modules[m].named_parameters()}
    for name, value in rest.items():
        here = targets[base_name(name)]
        if name not in kept_params and not torch.equal(value.to(here.device, here.dtype), here):
            why = f"carries its own {name!r}, which differs from this model's"
            warnings.warn(f"{source} {why}; it replaces this model's, as peft does", stacklevel=2)

    # Everything checked: now change the model.
    for name, (r, alpha) in plan.items():
        layer = add_lora(model, name, r, alpha, dropout, check_rank=False)
        with torch.no_grad():
            layer.lora_A.copy_(pairs[name]["A"])
            layer.lora_B.copy_(pairs[name]["B"])
    freeze_except_lora(model, kept_modules)
    with torch.no_grad():
        for name, value in rest.items():
            target = targets[base_name(name)]
            target.copy_(value.to(target.dtype))
    return model
