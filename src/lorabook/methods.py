"""The paper's GLUE baselines (Table 2), selectable by name, with honest parameter counts.

    report = prepare_model(model, "lora")     # model: roberta-base, sequence classification
    print(report)   # lora: 294,912 trainable (0.236% of 124,942,082 parameters) + head 592,130

Methods (``METHODS``):

``ft``
    Full fine-tuning: every parameter trains.
``ft_top2``
    Fine-tuning of the last two transformer blocks only (the paper's FT-Top2, Table 3, after
    Li & Liang 2021): everything else, embeddings and the (tied) LM head included, is frozen.
``bitfit``
    BitFit (Ben Zaken et al., 2021): only bias terms train. "Bias" means every parameter whose
    name is ``bias`` outside the head: the biases of q, k, v, the attention output, the FFN's
    two dense layers, and the β of every LayerNorm, the embeddings' LayerNorm included. The
    LayerNorm scales γ stay frozen.
``adapter_h``
    Houlsby et al. (2019), the paper's AdapterH: a bottleneck adapter
    ``y + W_up · GELU(W_down · y + b_down) + b_up`` (d → m → d, with its own residual) after the
    attention output projection and after the FFN output projection of every layer, before
    the residual add and LayerNorm. 2 · (2dm + m + d) parameters per layer.
``adapter_p``
    Pfeiffer et al. (2021), the paper's AdapterP: the same adapter after the FFN output
    projection only: 2dm + m + d per layer.
``lora``
    ``apply_lora`` with the paper's targets (W_q and W_v) unless ``lora_targets`` says others.

Every method keeps the classification head trainable (``HEAD_MODULES``; a new, randomly
initialised layer must train) and reports it apart: the paper's "# Trainable Parameters"
column counts the method's parameters, not the classifier's.

Adapter placement. ``Adapter`` wraps the ``dense`` of ``BertSelfOutput`` / ``BertOutput`` (and
RoBERTa's copies), whose forward is ``LayerNorm(dropout(dense(h)) + input)``, so the adapter
runs right after the projection and before dropout, residual and LayerNorm. Houlsby's code
(google-research/adapter-bert) applies it one step later, after the dropout:
``LayerNorm(adapter(dropout(dense(h))) + input)``. The two are identical in eval mode; in
training ours drops out ``y + adapter(y)`` where Houlsby's adapter sees the dropped-out ``y``.

Adapter trainable set. Houlsby also trains every LayerNorm's γ and β; the LoRA paper's
AdapterH counts follow the adapter formula, so here only the adapter weights (and the head)
train, and ``trainable`` is exactly ``n_adapters · (2dm + m + d)``.

Adapter initialisation. Houlsby draws both projection weights from a truncated normal with
standard deviation 10⁻³ ("near identity"); here the up-projection is exactly zero (weights
and bias) and the down-projection keeps ``nn.Linear``'s kaiming-uniform init with a zero
bias, so the adapted model starts *exactly* as the pretrained one, the same choice LoRA
makes with B = 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn

from lorabook.inject import (
    apply_lora,
    linear_module_names,
    lora_layers,
    model_type_default,
    name_matches,
)

METHODS: tuple[str, ...] = ("ft", "ft_top2", "bitfit", "adapter_h", "adapter_p", "lora")
# The list of transformer blocks: GPT-2 transformer.h, Llama model.layers, BERT encoder.layer
BLOCK_LISTS = ("h", "layers", "layer")

# Modules every method keeps trainable, by model_type. RoBERTa's classification head
# (dense + tanh + out_proj) is new; BERT's analogue of its dense is the pooler (pretrained on
# next-sentence prediction, then re-trained with the new classifier).
HEAD_MODULES: dict[str, list[str]] = {
    "roberta": ["classifier"],
    "bert": ["bert.pooler", "classifier"],
}

# Where the adapters go (BERT/RoBERTa module names): the attention output projection and the
# FFN output projection of layer N.
ATTENTION_OUTPUT = r".*\.layer\.\d+\.attention\.output\.dense"
FFN_OUTPUT = r".*\.layer\.\d+\.output\.dense"
ADAPTER_SITES: dict[str, tuple[str, ...]] = {
    "adapter_h": (ATTENTION_OUTPUT, FFN_OUTPUT),
    "adapter_p": (FFN_OUTPUT,),
}


class Adapter(nn.Module):
    """A wrapped linear layer followed by a bottleneck adapter with its own residual.

    ``forward(x) = y + up(GELU(down(y)))`` with ``y = base(x)``; ``down`` is d → m and ``up``
    is m → d, d being the base layer's output size. ``up`` starts at zero, so at
    initialisation the output is exactly ``base(x)``. The base layer is frozen.

    Args:
        base: the ``nn.Linear`` whose output the adapter transforms.
        size: the bottleneck width m (≥ 1).
    """

    def __init__(self, base: nn.Linear, size: int) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"Adapter wraps an nn.Linear, not {type(base).__name__}")
        check_adapter_size(size)
        w = base.weight
        d = base.out_features
        self.base_layer = base
        self.size = size
        self.down = nn.Linear(d, size, device=w.device, dtype=w.dtype)
        self.act = nn.GELU()
        self.up = nn.Linear(size, d, device=w.device, dtype=w.dtype)
        self.reset_adapter_parameters()
        for p in self.base_layer.parameters():
            p.requires_grad_(False)

    def reset_adapter_parameters(self) -> None:
        """down: kaiming-uniform weight, zero bias; up: all zero (the adapter starts as 0)."""
        self.down.reset_parameters()
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y + up(GELU(down(y)))`` with ``y = base(x)``."""
        y = self.base_layer(x)
        return y + self.up(self.act(self.down(y)))

    def extra_repr(self) -> str:
        return f"size={self.size}"


def check_adapter_size(size: int) -> None:
    """Reject a bottleneck width that is not a positive integer."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"adapter_size must be a positive integer, got {size!r}")


def adapter_param_count(n_adapters: int, d: int, m: int) -> int:
    """Parameters of ``n_adapters`` bottlenecks d → m → d with biases: n · (2dm + m + d)."""
    return n_adapters * (2 * d * m + m + d)


def adapter_layers(model: nn.Module) -> dict[str, Adapter]:
    """Every ``Adapter`` in the model, by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, Adapter)}


@dataclass(frozen=True)
class MethodReport:
    """Parameter counts after ``prepare_model``.

    Attributes:
        method: one of ``METHODS``.
        trainable: trainable parameters, the head excluded (the paper's column).
        head: trainable parameters of the head modules.
        total: every parameter of the prepared model, adapters or LoRA included.
    """

    method: str
    trainable: int
    head: int
    total: int

    @property
    def trainable_percent(self) -> float:
        """``trainable`` (head excluded) as a percentage of ``total``."""
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        """The counts and the percentage, JSON-ready."""
        return {**asdict(self), "trainable_percent": self.trainable_percent}

    def __str__(self) -> str:
        return (
            f"{self.method}: {self.trainable:,} trainable ({self.trainable_percent:.3f}% of "
            f"{self.total:,} parameters) + head {self.head:,}"
        )


def _top_modules(model: nn.Module) -> str:
    return ", ".join(n for n, _ in model.named_children()) or "(none)"


def resolve_head(model: nn.Module, head: Sequence[str] | None = None) -> list[str]:
    """Names of the head modules: ``head`` patterns (``name_matches`` rule) or the defaults.

    Raises ``ValueError`` naming the model's top-level modules when ``head`` is ``None`` and
    the model type has no default, or when a pattern matches no module.
    """
    if isinstance(head, str):
        head = [head]
    if head is None:
        head = model_type_default(
            model,
            HEAD_MODULES,
            "default head modules",
            "pass head=[...] (module names, [] for none)",
            f"Top-level modules of this {type(model).__name__}: {_top_modules(model)}.",
        )
    names = [n for n, _ in model.named_modules() if n]
    found: list[str] = []
    for pattern in head:
        hits = [n for n in names if name_matches(n, pattern)]
        if not hits:
            raise ValueError(
                f"No module matches head {pattern!r}. Top-level modules of this "
                f"{type(model).__name__}: {_top_modules(model)}."
            )
        found.extend(h for h in hits if h not in found)
    return found


def _set_head_trainable(model: nn.Module, head_names: Sequence[str]) -> None:
    for name in head_names:
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(True)


def _freeze(model: nn.Module) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def _head_param_ids(model: nn.Module, head_names: Sequence[str]) -> set[int]:
    return {id(p) for n in head_names for p in model.get_submodule(n).parameters()}


def _apply_bitfit(model: nn.Module, head_names: Sequence[str]) -> None:
    head_ids = _head_param_ids(model, head_names)
    biases = [
        p
        for n, p in model.named_parameters()
        if n.rsplit(".", 1)[-1] == "bias" and id(p) not in head_ids
    ]
    if not biases:
        raise ValueError(f"bitfit: this {type(model).__name__} has no bias terms outside the head")
    _freeze(model)
    for p in biases:
        p.requires_grad_(True)


def _apply_adapters(model: nn.Module, method: str, size: int) -> None:
    patterns = ADAPTER_SITES[method]
    sites = [n for n, _ in model.named_modules() if any(re.fullmatch(p, n) for p in patterns)]
    if not sites:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in linear_module_names(model)})
        raise ValueError(
            f"{method}: no module of this {type(model).__name__} matches {list(patterns)} "
            f"(BERT/RoBERTa attention and FFN output projections). Linear layers by short "
            f"name: {', '.join(leaves) or '(none)'}."
        )
    for name in sites:
        module = model.get_submodule(name)
        if not isinstance(module, nn.Linear):
            raise ValueError(f"{method}: {name!r} is a {type(module).__name__}, not nn.Linear")
    for name in sites:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, Adapter(getattr(parent, child), size))
    _freeze(model)
    for adapter in adapter_layers(model).values():
        for p in (*adapter.down.parameters(), *adapter.up.parameters()):
            p.requires_grad_(True)


def transformer_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's list of transformer blocks: the first ``nn.ModuleList`` named ``h``,
    ``layers`` or ``layer`` (GPT-2, Llama, BERT/RoBERTa), with its dotted name."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.rsplit(".", 1)[-1] in BLOCK_LISTS:
            return name, module
    raise ValueError(
        f"No list of transformer blocks (a ModuleList named {', '.join(BLOCK_LISTS)}) in this "
        f"{type(model).__name__}; top-level modules: {_top_modules(model)}"
    )


def _apply_top_blocks(model: nn.Module, n: int) -> None:
    _, blocks = transformer_blocks(model)
    if len(blocks) < n:
        raise ValueError(f"ft_top{n}: the model has only {len(blocks)} blocks")
    _freeze(model)
    for block in list(blocks)[-n:]:
        for p in block.parameters():
            p.requires_grad_(True)


def method_report(model: nn.Module, method: str, head_names: Sequence[str]) -> MethodReport:
    """Count trainable (head excluded), head and all parameters; shared tensors once."""
    head_ids = _head_param_ids(model, head_names)
    params = list(model.parameters())
    return MethodReport(
        method=method,
        trainable=sum(p.numel() for p in params if p.requires_grad and id(p) not in head_ids),
        head=sum(p.numel() for p in params if id(p) in head_ids),
        total=sum(p.numel() for p in params),
    )


def prepare_model(
    model: nn.Module,
    method: str,
    *,
    head: Sequence[str] | None = None,
    lora_r: int = 8,
    lora_alpha: float = 8,
    lora_dropout: float = 0.0,
    lora_targets: Sequence[str] | None = None,
    adapter_size: int = 64,
) -> MethodReport:
    """Make ``model`` ready to train with ``method`` (in place) and count its parameters.

    Args:
        model: a plain (not yet adapted) model, e.g. ``RobertaForSequenceClassification``.
        method: one of ``METHODS``.
        head: module-name patterns kept trainable by every method and reported apart;
            ``None`` = ``HEAD_MODULES[model.config.model_type]``; ``[]`` = no head.
        lora_r, lora_alpha, lora_dropout: LoRA's rank, scale numerator and dropout.
        lora_targets: modules LoRA adapts; ``None`` = the paper's W_q and W_v.
        adapter_size: the adapters' bottleneck width m (``adapter_h``, ``adapter_p``).

    Returns:
        A ``MethodReport``: trainable (head excluded), head, total.

    Raises:
        ValueError: unknown method; adapter_size ≤ 0 for an adapter method; no default head
            for the model type; a model that already has LoRA or adapter layers.
    """
    if method not in METHODS:
        raise ValueError(f"Unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if method in ADAPTER_SITES:
        check_adapter_size(adapter_size)
    if lora_layers(model) or adapter_layers(model):
        raise ValueError(
            "This model already has LoRA or adapter layers: prepare_model takes a plain model"
        )
    head_names = resolve_head(model, head)

    if method == "ft":
        for p in model.parameters():
            p.requires_grad_(True)
    elif method == "ft_top2":
        _apply_top_blocks(model, 2)
    elif method == "bitfit":
        _apply_bitfit(model, head_names)
    elif method in ADAPTER_SITES:
        _apply_adapters(model, method, adapter_size)
    else:  # lora
        apply_lora(
            model,
            targets=lora_targets,
            r=lora_r,
            alpha=lora_alpha,
            dropout=lora_dropout,
            keep_trainable=head_names,
        )
    _set_head_trainable(model, head_names)
    return method_report(model, method, head_names)
