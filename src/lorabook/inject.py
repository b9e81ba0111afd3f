"""Put LoRA layers into a model by module name, freeze the rest, and count what trains.

    report = apply_lora(model, targets=["query", "value"], r=8, alpha=8,
                        keep_trainable=["classifier"])
    print(report)   # LoRA parameters, kept (head) parameters, total, percentages

A target matches a module whose dotted name equals it, ends with ``"." + target``, or fully
matches it as a regular expression (peft's rule). ``targets=None`` takes the paper's choice
for the model's architecture (Section 4.2 / 7.1: adapt W_q and W_v only).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn
from transformers.pytorch_utils import Conv1D

from lorabook.layers import LoRALayer, check_hyperparameters, check_lora_arguments

# The paper adapts the query and value projections (W_q, W_v) of every attention layer.
PAPER_TARGETS: dict[str, dict] = {
    "roberta": {"targets": ["query", "value"]},
    "bert": {"targets": ["query", "value"]},
    "deberta-v2": {"targets": ["query_proj", "value_proj"]},
    # GPT-2 fuses q, k, v into one Conv1D: adapt its first and last thirds (q and v).
    "gpt2": {"targets": ["c_attn"], "fused": {"c_attn": (True, False, True)}},
    "llama": {"targets": ["q_proj", "v_proj"]},
}

# Section 7's attention weights W_q, W_k, W_v, W_o by short name, as target patterns per
# model_type: ``attention_targets(model, ["q", "k"])``. GPT-2 is absent: its q, k and v are
# slices of one fused ``c_attn`` (pass ``targets=["c_attn"]`` and ``fused`` to apply_lora).
ATTENTION_WEIGHTS: dict[str, dict[str, str]] = {
    "bert": {"q": "query", "k": "key", "v": "value", "o": "attention.output.dense"},
    "roberta": {"q": "query", "k": "key", "v": "value", "o": "attention.output.dense"},
    "deberta-v2": {
        "q": "query_proj",
        "k": "key_proj",
        "v": "value_proj",
        "o": "attention.output.dense",
    },
    "llama": {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj"},
}


def lora_param_count(n_matrices: int, d_model: int, r: int) -> int:
    """The paper's |Θ| = 2 · L̂ · d_model · r for L̂ adapted d_model × d_model matrices."""
    return 2 * n_matrices * d_model * r


@dataclass(frozen=True)
class ParamReport:
    """Parameter counts after injection: LoRA, other trainable ("kept", e.g. a head), all."""

    lora: int
    kept: int
    total: int

    @property
    def trainable(self) -> int:
        """Every parameter that receives gradients: LoRA plus kept modules."""
        return self.lora + self.kept

    @property
    def lora_percent(self) -> float:
        """LoRA parameters as a percentage of all parameters (the paper's headline ratio)."""
        return 100.0 * self.lora / self.total if self.total else 0.0

    def __str__(self) -> str:
        return (
            f"LoRA {self.lora:,} + kept {self.kept:,} = {self.trainable:,} trainable "
            f"of {self.total:,} parameters (LoRA {self.lora_percent:.3f}%, "
            f"all trainable {100.0 * self.trainable / max(self.total, 1):.3f}%)"
        )


def name_matches(name: str, pattern: str) -> bool:
    """peft's matching rule: exact name, dotted suffix, or a full regular-expression match."""
    if name == pattern or name.endswith("." + pattern):
        return True
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error:
        return False


def model_type_default(model: nn.Module, table: dict, what: str, fix: str, hint: str):
    """``table[model.config.model_type]``, or a ValueError naming the known types and the fix."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in table:
        raise ValueError(
            f"No {what} for model_type={model_type!r} (known: {', '.join(table)}); {fix}. {hint}"
        )
    return table[model_type]


def attention_targets(model: nn.Module, names: Sequence[str]) -> list[str]:
    """Target patterns of the attention weights ``names`` (``q``, ``k``, ``v``, ``o``: W_q,
    W_k, W_v, W_o) in ``model``, e.g. ``["query", "key"]`` for ``["q", "k"]`` on BERT.

    Raises ``ValueError`` naming the known model types, or the names this model has.
    """
    table = model_type_default(
        model,
        ATTENTION_WEIGHTS,
        "short names of the attention weights",
        "pass module names as targets instead",
        _describe_linear(model),
    )
    unknown = [n for n in names if n not in table]
    if unknown:
        known = ", ".join(f"{short} ({pattern})" for short, pattern in table.items())
        raise ValueError(f"Unknown attention weights {unknown}; this model has: {known}")
    return [table[n] for n in names]


def lora_layers(model: nn.Module) -> dict[str, LoRALayer]:
    """Every LoRA layer in the model, by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALayer)}


def linear_module_names(model: nn.Module) -> list[str]:
    """Names of the layers LoRA can adapt (nn.Linear and GPT-2's Conv1D)."""
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear | Conv1D) and not n.endswith(".base_layer")
    ]


def _describe_linear(model: nn.Module) -> str:
    names = linear_module_names(model)
    if not names:
        return "This model has no nn.Linear or Conv1D layers."
    leaves = sorted({n.rsplit(".", 1)[-1] for n in names})
    return f"Linear layers by short name: {', '.join(leaves)} (e.g. {names[0]!r})."


def _match(model: nn.Module, patterns: Iterable[str], what: str) -> dict[str, list[str]]:
    """Module names matched by each pattern; a pattern that matches nothing is an error."""
    names = [n for n, _ in model.named_modules() if n]
    found = {p: [n for n in names if name_matches(n, p)] for p in patterns}
    missing = [p for p, hits in found.items() if not hits]
    if missing:
        hint = (
            _describe_linear(model)
            if what == "target"
            else ("Top-level modules: " + ", ".join(n for n, _ in model.named_children()) + ".")
        )
        raise ValueError(f"No module matches {what} {missing}. {hint}")
    return found


def add_lora(
    model: nn.Module,
    name: str,
    r: int,
    alpha: float,
    dropout: float = 0.0,
    init: str = "kaiming",
    split: Sequence[bool] | None = None,
    check_rank: bool = True,
) -> LoRALayer:
    """Replace the module called ``name`` by a ``LoRALayer`` wrapping it; return the layer."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name)
    layer = LoRALayer(getattr(parent, child), r, alpha, dropout, init, split, check_rank)
    setattr(parent, child, layer)
    return layer


def freeze_except_lora(model: nn.Module, kept_modules: Iterable[str] = ()) -> None:
    """requires_grad only for LoRA's A, B and the parameters of the kept modules."""
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in lora_layers(model).values():
        layer.lora_A.requires_grad_(True)
        layer.lora_B.requires_grad_(True)
    for name in kept_modules:
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(True)
    model.lora_kept_modules = list(kept_modules)


def apply_lora(
    model: nn.Module,
    targets: Sequence[str] | None = None,
    r: int = 8,
    alpha: float = 8,
    dropout: float = 0.0,
    fused: dict[str, Sequence[bool]] | None = None,
    keep_trainable: Sequence[str] = (),
    init: str = "kaiming",
) -> ParamReport:
    """Inject LoRA into ``model`` in place, freeze everything else, report the counts.

    Args:
        model: any torch model (transformers or not).
        targets: module-name patterns to adapt; ``None`` = the paper's (``PAPER_TARGETS``).
        r, alpha, dropout, init: see ``LoRALayer``.
        fused: per target, which equal output slices to adapt, e.g. ``{"c_attn":
            (True, False, True)}`` for the q and v parts of GPT-2's fused qkv projection.
        keep_trainable: module-name patterns left fully trainable (e.g. ``["classifier"]``).
    """
    check_hyperparameters(r, alpha)
    if lora_layers(model):
        raise ValueError("This model already has LoRA layers: apply_lora must be called once")
    if targets is None:
        default = model_type_default(
            model,
            PAPER_TARGETS,
            "paper default targets",
            "pass targets=[...]",
            _describe_linear(model),
        )
        targets, fused = default["targets"], default.get("fused")
    fused = dict(fused or {})
    unknown = set(fused) - set(targets)
    if unknown:
        raise ValueError(f"fused names {sorted(unknown)} are not among targets {list(targets)}")

    plan: dict[str, Sequence[bool] | None] = {}
    for pattern, names in _match(model, targets, "target").items():
        for name in names:
            module = model.get_submodule(name)
            if not isinstance(module, nn.Linear | Conv1D):
                raise ValueError(
                    f"Target {pattern!r} matches {name!r}, of type {type(module).__name__}, not "
                    f"a linear layer. {_describe_linear(model)}"
                )
            plan[name] = fused.get(pattern)
    kept = sorted(
        {n for hits in _match(model, keep_trainable, "keep_trainable").values() for n in hits}
    )

    # Validate every layer (r, split, init, dropout) before wrapping the first, so that a bad
    # argument leaves the model untouched.
    for name, split in plan.items():
        check_lora_arguments(model.get_submodule(name), r, alpha, dropout, init, split)
    for name, split in plan.items():
        add_lora(model, name, r, alpha, dropout, init, split)
    freeze_except_lora(model, kept)
    return parameter_report(model)


def parameter_report(model: nn.Module) -> ParamReport:
    """Count LoRA parameters, other trainable parameters and all parameters."""
    lora_ids = {id(p) for m in lora_layers(model).values() for p in (m.lora_A, m.lora_B)}
    params = list(model.parameters())
    lora = sum(p.numel() for p in params if id(p) in lora_ids)
    kept = sum(p.numel() for p in params if p.requires_grad and id(p) not in lora_ids)
    return ParamReport(lora=lora, kept=kept, total=sum(p.numel() for p in params))


def tied_lora_weights(model: nn.Module) -> dict[str, list[str]]:
    """LoRA layers whose base weight is shared with other parameters: {layer: [other names]}.

    GPT-2 and many causal LMs tie ``lm_head.weight`` to the input embedding; merging ΔW into
    such a weight would change the embedding too.
    """
    names_by_id: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names_by_id.setdefault(id(p), []).append(name)
    tied = {}
    for name, layer in lora_layers(model).items():
        own = f"{name}.base_layer.weight"
        others = [n for n in names_by_id[id(layer.base_layer.weight)] if n != own]
        if others:
            tied[name] = others
    return tied


def _untie_or_refuse(model: nn.Module, untie: bool) -> None:
    """Before a merge: give each tied LoRA base weight its own copy (``untie``) or refuse."""
    layers = lora_layers(model)
    tied = {n: others for n, others in tied_lora_weights(model).items() if not layers[n].merged}
    if not tied:
        return
    described = "; ".join(f"{n}.base_layer.weight is also {others}" for n, others in tied.items())
    if not untie:
        raise ValueError(
            f"Merging would also change tied weights: {described}. Keep these layers unmerged, "
            "or pass untie=True to give each its own copy of the weight before merging"
        )
    for name in tied:
        base = layers[name].base_layer
        base.weight = nn.Parameter(base.weight.detach().clone(), requires_grad=False)
    note = ""
    config = getattr(model, "config", None)
    if getattr(config, "tie_word_embeddings", False):
        config.tie_word_embeddings = False  # or save/from_pretrained would tie them again
        note = "; config.tie_word_embeddings is now False"
    warnings.warn(f"Untied before merging: {described}{note}", stacklevel=3)


def merge_lora(model: nn.Module, untie: bool = False) -> None:
    """Fold every LoRA update into its base weight (no inference latency).

    A base weight tied to another parameter (GPT-2's ``lm_head`` and input embedding) is
    refused, since the merge would change both; ``untie=True`` copies it first, with a warning.
    """
    _untie_or_refuse(model, untie)
    for layer in lora_layers(model).values():
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Undo ``merge_lora``: subtract every update from its base weight again."""
    for layer in lora_layers(model).values():
        layer.unmerge()


def merge_and_unload(model: nn.Module, untie: bool = False) -> nn.Module:
    """Merge, then put the plain base layers back: a model with no trace of LoRA.

    Tied base weights are refused, or untied first with ``untie=True``, as in ``merge_lora``.
    """
    _untie_or_refuse(model, untie)
    for name, layer in lora_layers(model).items():
        if not layer.merged:
            layer.merge()
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, layer.base_layer)
    return model
