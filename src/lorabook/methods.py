"""The paper's baselines (Tables 2 and 3), selectable by name, with honest parameter counts.

    report = prepare_model(model, "lora")     # model: roberta-base, sequence classification
    print(report)   # lora: 294,912 trainable (0.236% of 124,942,082 parameters) + head 592,130

    model, report = prepare_causal_lm(gpt2, "prefix")   # E2E (Table 3): may wrap the model

``prepare_model`` changes a model in place (``METHODS``, the GLUE baselines of Table 2, and
``adapter_l``); ``prepare_causal_lm`` takes the E2E methods of Table 3 (``CAUSAL_LM_METHODS``)
and returns the model to train, which for ``prefix`` is a peft wrapper around it.

Methods:

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
    Pfeiffer et al. (2021), the paper's AdapterP, as the LoRA authors ran it (BERT/RoBERTa
    only): one adapter per layer that reads the block's output, after the FFN's residual add
    and LayerNorm, with a ReLU, and the block's own LayerNorm applied again after it. With
    ``h`` the FFN's output (dense, then dropout) and ``x`` the FFN's input (the residual)::

        a = LN(h + x)                                 # the block's output without adapter
        h' = h + W_up · ReLU(W_down · a + b_down) + b_up   # its residual is h, before the LN
        out = LN(h' + x)                              # the original LayerNorm, again

    2dm + m + d parameters per layer (the LayerNorm is the model's, frozen); the sources are
    in ``PfeifferAdapter``.
``adapter_h_ffn``
    Houlsby's FFN adapter alone: ``adapter_h``'s adapter (GELU, on the FFN output projection,
    before dropout, residual and LayerNorm) at the FFN site only; 2dm + m + d per layer. This
    is what ``adapter_p`` meant before issue 20; the GLUE records made then say ``adapter_p``
    (:data:`lorabook.glue.presets.ADAPTER_P_VARIANTS` keeps them readable).
``adapter_l``
    Lin, Madotto & Fung (2020), the paper's AdapterL: one adapter per layer, after the FFN
    output projection, with its own LayerNorm and a ReLU:
    ``y + W_up · ReLU(W_down · LN(y) + b_down) + b_up``; 2dm + m + d + 2d parameters per layer
    (the LoRA paper's formula L̂_Adpt · (2dm + m + d) + 2 · L̂_LN · d with L̂_LN = L̂_Adpt = L).
    Lin et al.'s code applies it to the block's output, after the FFN's residual add
    (``H + f(LN(H))`` with ``H = h + FFN(h)``); here it transforms the FFN output before that
    add (``h + y + f(LN(y))`` with ``y = FFN(h)``), the place the LoRA paper names ("after the
    MLP module") and where AdapterH's FFN adapter sits. Same parameters, not the same function.
``prefix``
    Li & Liang (2021) prefix-layer tuning, the paper's PreLayer, through peft
    (``PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=l_p)``, no
    reparametrisation MLP): l_p trained key and value vectors per layer, prepended to every
    attention's keys and values; 2 · L · d_kv · l_p parameters (d_kv = d, or the key/value
    width of a grouped-query model). Causal LMs only, through ``prepare_causal_lm``.
    Its start: peft draws the vectors from N(0, 1), which more than doubles the untrained
    SmolLM2's E2E dev loss (``benchmarks/prefix_init.py``); ``prefix_init_ids`` starts them at
    the model's own keys and values of real tokens instead (Li & Liang's start for a prefix
    trained directly, their ``get_gold_init``), so that the prefix starts as that text would.
``lora``
    ``apply_lora`` with the paper's targets (W_q and W_v) unless ``lora_targets`` says others.

Table 3's counts for GPT-2 medium (L = 24, d = 1024), reproduced by ``tests/test_methods_causal``:
FT-Top2 25.19M = 2 blocks × 12,596,224 (exact). AdapterL 0.37M and 11.09M are m = 6
(368,784) and m = 224 (11,089,152), both exact with the adapter's LayerNorm counted. AdapterH
11.09M has no integer m: m = 112 gives 11,064,576 (11.06M), m = 113 11,162,928; 11.09M is
AdapterL's budget printed again (or m = 112 plus 24 · 1024 more, which no placement explains).
PreLayer 0.35M is 0.1% of 354.92M, Li & Liang's rounded figure: 2 · 24 · 1024 · l_p is
344,064 for l_p = 7 and 393,216 for l_p = 8 (exactly LoRA r = 4's count, which the paper
also prints as 0.35M); Li & Liang's E2E prefix has l_p = 10 (491,520).

Every method keeps the classification head trainable (``HEAD_MODULES``; a new, randomly
initialised layer must train) and reports it apart: the paper's "# Trainable Parameters"
column counts the method's parameters, not the classifier's.

Adapter placement (``ATTENTION_OUTPUT`` and ``FFN_OUTPUT``, by model type). GPT-2: the
attention's and the MLP's output projections ``attn.c_proj`` and ``mlp.c_proj`` (``Conv1D``),
before their dropout and the residual add; Llama: ``self_attn.o_proj`` and ``mlp.down_proj``,
before the residual add. BERT/RoBERTa: ``Adapter`` wraps the ``dense`` of ``BertSelfOutput``
/ ``BertOutput`` (and RoBERTa's copies), whose forward is
``LayerNorm(dropout(dense(h)) + input)``, so the adapter runs right after the projection and
before dropout, residual and LayerNorm. Houlsby's code
(google-research/adapter-bert) applies it one step later, after the dropout:
``LayerNorm(adapter(dropout(dense(h))) + input)``. The two are identical in eval mode; in
training ours drops out ``y + adapter(y)`` where Houlsby's adapter sees the dropped-out ``y``.
``adapter_p`` (``FFN_OUTPUT_BLOCK``): ``PfeifferAdapter`` replaces the whole ``BertOutput``
/ ``RobertaOutput`` block, since it needs the block's residual and LayerNorm; its adapter
reads after the dropout, as in the LoRA authors' code.

Adapter trainable set. Houlsby also trains every LayerNorm's γ and β; the LoRA paper's
AdapterH counts follow the adapter formula, so here only the adapter weights (and the head)
train, and ``trainable`` is exactly ``n_adapters · (2dm + m + d)`` (AdapterL: plus the 2d of
each adapter's own LayerNorm, which Lin et al. train; the model's LayerNorms stay frozen).
The LoRA authors' adapter runs train the same set: ``run_glue.py`` freezes every
``roberta.*`` parameter whose name lacks "adapter", the LayerNorms included. On MiniLM
(L = 6, d = 384) AdapterH m = 8 is 12 · (2·384·8 + 8 + 384) = 78,432 and AdapterP m = 16 is
6 · (2·384·16 + 16 + 384) = 76,128, against LoRA's 73,728 (r = 8 on W_q, W_v); none of the
three counts the head (``bert.pooler`` and ``classifier``, 148,610 for two labels).

Adapter initialisation. Houlsby draws both projection weights from a truncated normal with
standard deviation 10⁻³ ("near identity"); here the up-projection is exactly zero (weights
and bias) and the down-projection keeps ``nn.Linear``'s kaiming-uniform init with a zero
bias, so the adapted model starts *exactly* as the pretrained one, the same choice LoRA
makes with B = 0. AdapterL's LayerNorm starts as γ = 1, β = 0 (ε = 10⁻⁵, GPT-2's). For
AdapterP a zero up-projection leaves the block exactly as it was, because its residual is the
FFN output before the LayerNorm: the second LayerNorm sees ``h + 0 + x``, the same input as
the block's single one (no idempotence of LayerNorm is needed; with the residual taken after
the LayerNorm it would see ``LN(h + x) + x`` and the model would change).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lorabook.inject import (
    apply_lora,
    linear_module_names,
    lora_layers,
    model_type_default,
    name_matches,
)
from lorabook.quiet import quiet

# prepare_model's methods: the GLUE baselines of Table 2 (and FT-Top2), changed in place
METHODS: tuple[str, ...] = ("ft", "ft_top2", "bitfit", "adapter_h", "adapter_p", "lora")
IN_PLACE_METHODS: tuple[str, ...] = (*METHODS, "adapter_l", "adapter_h_ffn")
# prepare_causal_lm's methods: Table 3's E2E baselines (issue 6)
CAUSAL_LM_METHODS: tuple[str, ...] = ("lora", "ft", "ft_top2", "adapter_l", "adapter_h", "prefix")
# The list of transformer blocks: GPT-2 transformer.h, Llama model.layers, BERT encoder.layer
BLOCK_LISTS = ("h", "layers", "layer")

# Modules every method keeps trainable, by model_type. RoBERTa's classification head
# (dense + tanh + out_proj) is new; BERT's analogue of its dense is the pooler (pretrained on
# next-sentence prediction, then re-trained with the new classifier).
HEAD_MODULES: dict[str, list[str]] = {
    "roberta": ["classifier"],
    "bert": ["bert.pooler", "classifier"],
}

# Where the adapters go, by model_type (full-match patterns on module names): the attention
# output projection and the FFN output projection of block N.
ATTENTION_OUTPUT: dict[str, str] = {
    "bert": r".*\.layer\.\d+\.attention\.output\.dense",
    "roberta": r".*\.layer\.\d+\.attention\.output\.dense",
    "gpt2": r".*\.h\.\d+\.attn\.c_proj",  # Conv1D
    "llama": r".*\.layers\.\d+\.self_attn\.o_proj",
}
FFN_OUTPUT: dict[str, str] = {
    "bert": r".*\.layer\.\d+\.output\.dense",
    "roberta": r".*\.layer\.\d+\.output\.dense",
    "gpt2": r".*\.h\.\d+\.mlp\.c_proj",  # Conv1D
    "llama": r".*\.layers\.\d+\.mlp\.down_proj",
}
# Pfeiffer's site: the block's FFN output module (dense, dropout, residual add, LayerNorm),
# which only the post-LayerNorm encoders have
FFN_OUTPUT_BLOCK: dict[str, str] = {
    "bert": r".*\.layer\.\d+\.output",
    "roberta": r".*\.layer\.\d+\.output",
}
ADAPTER_SITES: dict[str, tuple[dict[str, str], ...]] = {
    "adapter_h": (ATTENTION_OUTPUT, FFN_OUTPUT),
    "adapter_p": (FFN_OUTPUT_BLOCK,),
    "adapter_h_ffn": (FFN_OUTPUT,),
    "adapter_l": (FFN_OUTPUT,),
}
# The adapter's inside: (activation, own LayerNorm before the down-projection)
ADAPTER_KIND: dict[str, tuple[str, bool]] = {
    "adapter_h": ("gelu", False),
    "adapter_p": ("relu", False),
    "adapter_h_ffn": ("gelu", False),
    "adapter_l": ("relu", True),
}
ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class Bottleneck(nn.Module):
    """The adapters' common inside: ``up(act(down(h)))``, or ``up(act(down(LN(h))))`` with a
    LayerNorm of its own; ``down`` is d → m and ``up`` is m → d. ``up`` starts at zero (weights
    and bias), so the bottleneck starts as 0. Subclasses say where it reads and adds."""

    def _build(
        self, d: int, size: int, activation: str, layer_norm: bool, like: torch.Tensor
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}: {activation!r}")
        check_adapter_size(size)
        kw = {"device": like.device, "dtype": like.dtype}
        self.size = size
        self.activation = activation
        self.norm = nn.LayerNorm(d, **kw) if layer_norm else None
        self.down = nn.Linear(d, size, **kw)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(size, d, **kw)
        self.reset_adapter_parameters()

    def reset_adapter_parameters(self) -> None:
        """down: kaiming-uniform weight, zero bias; up: all zero (the adapter starts as 0);
        the LayerNorm, if any: γ = 1, β = 0."""
        self.down.reset_parameters()
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        if self.norm is not None:
            self.norm.reset_parameters()

    def adapter_parameters(self) -> list[nn.Parameter]:
        """The adapter's own parameters (down, up and the LayerNorm), not the base layer's."""
        norm = list(self.norm.parameters()) if self.norm is not None else []
        return [*norm, *self.down.parameters(), *self.up.parameters()]

    def bottleneck(self, h: torch.Tensor) -> torch.Tensor:
        """``up(act(down(h)))``, or ``up(act(down(LN(h))))`` with the adapter's LayerNorm."""
        h = self.norm(h) if self.norm is not None else h
        return self.up(self.act(self.down(h)))

    def extra_repr(self) -> str:
        return f"size={self.size}, activation={self.activation}"


class Adapter(Bottleneck):
    """A wrapped linear layer followed by a bottleneck adapter with its own residual.

    ``forward(x) = y + up(act(down(y)))`` with ``y = base(x)`` (Houlsby: GELU), or
    ``y + up(ReLU(down(LN(y))))`` with ``layer_norm=True`` (Lin et al.); d is the base
    layer's output size. ``up`` starts at zero, so at initialisation the output is exactly
    ``base(x)``. The base layer is frozen.

    Args:
        base: the ``nn.Linear`` (or GPT-2's ``Conv1D``) whose output the adapter transforms.
        size: the bottleneck width m (≥ 1).
        activation: ``"gelu"`` or ``"relu"``.
        layer_norm: a LayerNorm over d (γ = 1, β = 0) before the down-projection.
    """

    def __init__(
        self,
        base: nn.Linear | Conv1D,
        size: int,
        activation: str = "gelu",
        layer_norm: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear | Conv1D):
            raise TypeError(f"Adapter wraps an nn.Linear or Conv1D, not {type(base).__name__}")
        w = base.weight
        d = base.out_features if isinstance(base, nn.Linear) else w.shape[1]  # Conv1D: (in, out)
        self.base_layer = base
        self._build(d, size, activation, layer_norm, w)
        for p in self.base_layer.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y + up(act(down(y)))``, or ``y + up(act(down(LN(y))))``, with ``y = base(x)``."""
        y = self.base_layer(x)
        return y + self.bottleneck(y)


class PfeifferAdapter(Bottleneck):
    """Pfeiffer's adapter around a BERT/RoBERTa FFN output block (``BertOutput``,
    ``RobertaOutput``: ``LN(dropout(dense(h_in)) + x)``), as the LoRA authors ran AdapterP.

    With ``h = dropout(dense(h_in))`` (the FFN's output) and ``x`` the residual::

        a = LN(h + x)                          # the block's output without adapter
        out = LN(h + up(ReLU(down(a))) + x)    # adapter residual h; the same LN again

    Source: microsoft/LoRA, ``examples/NLU/src/transformers/models/roberta/modeling_roberta.py``,
    ``RobertaOutput.forward`` with ``adapter_type == 'pfeiffer'`` (``residual = hidden_states``;
    ``hidden_states = self.LayerNorm(hidden_states + input_tensor)``; ``self.adapter(
    hidden_states, residual=residual)``; ``self.LayerNorm(hidden_states + input_tensor)``),
    with ``Adapter(hidden_size, adapter_size, 'relu')`` from ``models/adapter.py``
    (``adapter_B(act(adapter_A(x))) + residual``), run by ``adapter_pfeiffer_roberta_large_mnli
    .sh`` with ``--adapter_size 16``. It is adapter-hub's ``PfeifferConfig``
    (``original_ln_before=True``: the adapter reads ``LN(h + x)``; ``residual_before_ln=True``:
    its residual is ``h``, taken before that LN; ``original_ln_after=True``: ``LN(· + x)``
    after it; ``non_linearity="relu"``; ``reduction_factor=16``, i.e. m = d/16;
    ``mh_adapter=False``, ``output_adapter=True``: the FFN site only). Only the adapter
    trains; the block's LayerNorm stays the model's (frozen), used twice.

    Initialisation is this book's, not theirs: ``up`` = 0, so ``out = LN(h + x)`` exactly,
    the pretrained block (their ``nn.Linear`` defaults, or adapter-hub's N(0, 0.02) with
    zero biases, start the model slightly off it).

    Args:
        base: the FFN output block; it must have ``dense``, ``dropout`` and ``LayerNorm``.
        size: the bottleneck width m (≥ 1).
    """

    def __init__(self, base: nn.Module, size: int, activation: str = "relu") -> None:
        super().__init__()
        missing = [a for a in ("dense", "dropout", "LayerNorm") if not hasattr(base, a)]
        if missing or not isinstance(getattr(base, "dense", None), nn.Linear):
            raise TypeError(
                f"PfeifferAdapter wraps a BERT/RoBERTa FFN output block (dense: nn.Linear, "
                f"dropout, LayerNorm); this {type(base).__name__} lacks {missing or ['dense']}"
            )
        self.base_layer = base
        self._build(base.dense.out_features, size, activation, False, base.dense.weight)
        for p in self.base_layer.parameters():
            p.requires_grad_(False)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        """``LN(h + up(ReLU(down(LN(h + x)))) + x)`` with ``h = dropout(dense(hidden_states))``
        and ``x = input_tensor``."""
        block = self.base_layer
        h = block.dropout(block.dense(hidden_states))
        a = block.LayerNorm(h + input_tensor)
        return block.LayerNorm(h + self.bottleneck(a) + input_tensor)


def check_adapter_size(size: int) -> None:
    """Reject a bottleneck width that is not a positive integer."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"adapter_size must be a positive integer, got {size!r}")


def adapter_param_count(n_adapters: int, d: int, m: int, layer_norm: bool = False) -> int:
    """Parameters of ``n_adapters`` bottlenecks d → m → d with biases: n · (2dm + m + d);
    with ``layer_norm`` (AdapterL) each also has a LayerNorm's 2d: n · (2dm + m + 3d)."""
    return n_adapters * (2 * d * m + m + d + (2 * d if layer_norm else 0))


def adapter_layers(model: nn.Module) -> dict[str, Bottleneck]:
    """Every adapter (``Adapter``, ``PfeifferAdapter``) in the model, by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, Bottleneck)}


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


def _linear_leaves(model: nn.Module) -> str:
    leaves = sorted({n.rsplit(".", 1)[-1] for n in linear_module_names(model)})
    return ", ".join(leaves) or "(none)"


def adapter_sites(model: nn.Module, method: str) -> list[str]:
    """Names of the modules ``method`` wraps in an ``Adapter`` (``ADAPTER_SITES`` tables).

    Raises ``ValueError`` listing the known model types, or the model's linear layers when
    the table's patterns match nothing.
    """
    tables = ADAPTER_SITES[method]
    fix = (
        "adapter_p (Pfeiffer) wraps a post-LayerNorm block's FFN output module (BERT/RoBERTa); "
        "on other models use adapter_h_ffn or adapter_l, or add the module to FFN_OUTPUT_BLOCK"
        if method == "adapter_p"
        else "add its attention/FFN output projections to ATTENTION_OUTPUT and FFN_OUTPUT in "
        "lorabook.methods"
    )
    patterns = [
        model_type_default(
            model,
            table,
            f"{method} adapter sites",
            fix,
            f"Linear layers of this {type(model).__name__} by short name: {_linear_leaves(model)}.",
        )
        for table in tables
    ]
    sites = [n for n, _ in model.named_modules() if any(re.fullmatch(p, n) for p in patterns)]
    if not sites:
        raise ValueError(
            f"{method}: no module of this {type(model).__name__} matches {patterns}. Linear "
            f"layers by short name: {_linear_leaves(model)}."
        )
    for name in sites:
        module = model.get_submodule(name)
        if method == "adapter_p":
            continue  # PfeifferAdapter checks its block itself
        if not isinstance(module, nn.Linear | Conv1D):
            raise ValueError(
                f"{method}: {name!r} is of type {type(module).__name__}, not nn.Linear or Conv1D"
            )
    return sites


def _apply_adapters(model: nn.Module, method: str, size: int) -> None:
    activation, layer_norm = ADAPTER_KIND[method]
    for name in adapter_sites(model, method):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        base = getattr(parent, child)
        if method == "adapter_p":
            adapter: Bottleneck = PfeifferAdapter(base, size, activation)
        else:
            adapter = Adapter(base, size, activation, layer_norm)
        setattr(parent, child, adapter)
    _freeze(model)
    for adapter in adapter_layers(model).values():
        for p in adapter.adapter_parameters():
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
        method: one of ``METHODS``, or ``adapter_l`` (``IN_PLACE_METHODS``); ``prefix``
            wraps the model: use ``prepare_causal_lm``.
        head: module-name patterns kept trainable by every method and reported apart;
            ``None`` = ``HEAD_MODULES[model.config.model_type]``; ``[]`` = no head.
        lora_r, lora_alpha, lora_dropout: LoRA's rank, scale numerator and dropout.
        lora_targets: modules LoRA adapts; ``None`` = the paper's W_q and W_v.
        adapter_size: the adapters' bottleneck width m (``adapter_h``, ``adapter_p``,
            ``adapter_h_ffn``, ``adapter_l``).

    Returns:
        A ``MethodReport``: trainable (head excluded), head, total.

    Raises:
        ValueError: unknown method; adapter_size ≤ 0 for an adapter method; no default head
            for the model type; a model that already has LoRA or adapter layers.
    """
    if method not in IN_PLACE_METHODS:
        hint = " (prefix wraps the model: use prepare_causal_lm)" if method == "prefix" else ""
        raise ValueError(
            f"Unknown method {method!r} for prepare_model{hint}: choose one of "
            f"{', '.join(IN_PLACE_METHODS)}"
        )
    if method in ADAPTER_SITES:
        check_adapter_size(adapter_size)
    if lora_layers(model) or adapter_layers(model) or _is_peft(model):
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


def _is_peft(model: nn.Module) -> bool:
    return hasattr(model, "peft_config")


def prefix_param_count(model: nn.Module, prefix_length: int) -> int:
    """2 · L · d_kv · l_p: a key and a value vector per layer and virtual token. d_kv is the
    hidden size, or ``num_key_value_heads · head_dim`` for a grouped-query model."""
    cfg = model.config
    layers = cfg.num_hidden_layers
    d_kv = cfg.hidden_size
    if getattr(cfg, "num_key_value_heads", None) is not None:
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        d_kv = cfg.num_key_value_heads * head_dim
    return 2 * layers * d_kv * prefix_length


def prefix_token_ids(tokenizer, text: str, prefix_length: int) -> list[int]:
    """The ``prefix_length`` token ids of ``text`` (no special tokens) that start a prefix:
    the text's tokens repeated as often as needed, then cut to ``prefix_length``."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"prefix_init: {text!r} has no tokens; give a text with words in it")
    return (ids * (prefix_length // len(ids) + 1))[:prefix_length]


def cache_keys_values(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer ``(keys, values)``, each ``(batch, kv heads, tokens, head dim)``, of a
    transformers cache (``DynamicCache`` of any recent version, or the legacy tuples)."""
    if hasattr(cache, "layers"):  # transformers >= 4.56
        return [(layer.keys, layer.values) for layer in cache.layers]
    if hasattr(cache, "key_cache"):
        return list(zip(cache.key_cache, cache.value_cache, strict=True))
    return [(k, v) for k, v in cache]


@torch.no_grad()
def real_word_prefix(model: nn.Module, token_ids: Sequence[int]) -> torch.Tensor:
    """The keys and values ``model`` computes for ``token_ids`` at positions 0, 1, ..., laid
    out as peft's prefix embedding: ``(l_p, 2 · L · d_kv)``, per token the key then the value
    of layer 0, then of layer 1, and so on (peft views a row as ``(2L, heads, head dim)``)."""
    was_training = model.training
    model.eval()
    try:
        out = model(input_ids=torch.tensor([list(token_ids)]), use_cache=True)
    finally:
        model.train(was_training)
    kv = [t[0] for pair in cache_keys_values(out.past_key_values) for t in pair]
    return torch.stack(kv).permute(2, 0, 1, 3).reshape(len(token_ids), -1)


def _apply_prefix(model: nn.Module, prefix_length: int) -> nn.Module:
    from peft import PrefixTuningConfig, get_peft_model

    if isinstance(prefix_length, bool) or not isinstance(prefix_length, int) or prefix_length < 1:
        raise ValueError(f"prefix_length must be a positive integer, got {prefix_length!r}")
    can_generate = getattr(model, "can_generate", None)
    if not (callable(can_generate) and can_generate()):
        raise ValueError(
            f"prefix: needs a causal LM with generate() (GPT2LMHeadModel, LlamaForCausalLM, "
            f"...), not this {type(model).__name__}"
        )
    config = PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=prefix_length, prefix_projection=False
    )
    with quiet():  # peft reads transformers' deprecated `is_gradient_checkpointing`
        return get_peft_model(model, config)


def prepare_causal_lm(
    model: nn.Module,
    method: str,
    *,
    head: Sequence[str] | None = (),
    lora_r: int = 4,
    lora_alpha: float = 32,
    lora_dropout: float = 0.0,
    lora_targets: Sequence[str] | None = None,
    adapter_size: int = 64,
    prefix_length: int = 8,
    prefix_init_ids: Sequence[int] | None = None,
) -> tuple[nn.Module, MethodReport]:
    """Make a causal LM ready to train with one of Table 3's methods; return it and its counts.

    Train, save and decode with the returned model: for ``prefix`` it is a peft
    ``PeftModelForCausalLM`` around ``model`` (its ``generate`` prepends the trained prefix);
    for every other method it is ``model`` itself, changed in place by ``prepare_model``.

    Args:
        model: a plain causal LM (``GPT2LMHeadModel``, ``LlamaForCausalLM``, ...).
        method: one of ``CAUSAL_LM_METHODS`` (or any of ``IN_PLACE_METHODS``).
        head: modules kept trainable and reported apart; none by default (the LM head is
            pretrained, and tied to the embeddings in GPT-2).
        lora_r, lora_alpha, lora_dropout, lora_targets, adapter_size: as ``prepare_model``
            (defaults: the paper's E2E LoRA, r = 4 and α = 32).
        prefix_length: ``prefix``'s number of virtual tokens l_p.
        prefix_init_ids: ``prefix`` only: ``l_p`` token ids whose keys and values start the
            prefix (:func:`real_word_prefix`, ids from :func:`prefix_token_ids`); ``None``:
            peft's N(0, 1).
    Returns:
        ``(model to train, MethodReport)``; for ``prefix`` the report's ``total`` counts the
        base model and the prefix.
    """
    if method != "prefix":
        report = prepare_model(
            model,
            method,
            head=list(head) if head is not None else None,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            lora_targets=lora_targets,
            adapter_size=adapter_size,
        )
        return model, report
    if head:
        raise ValueError("prefix: peft's prefix tuning trains the prefix only; pass head=()")
    if lora_layers(model) or adapter_layers(model) or _is_peft(model):
        raise ValueError(
            "This model already has LoRA, adapter or peft layers: prepare_causal_lm takes a "
            "plain model"
        )
    start = None
    if prefix_init_ids is not None:
        if len(prefix_init_ids) != prefix_length:
            raise ValueError(
                f"prefix_init_ids has {len(prefix_init_ids)} token ids, the prefix "
                f"{prefix_length}: make them with prefix_token_ids(tokenizer, text, "
                f"{prefix_length})"
            )
        start = real_word_prefix(model, prefix_init_ids)
    wrapped = _apply_prefix(model, prefix_length)
    if start is not None:
        embedding = wrapped.prompt_encoder[wrapped.active_adapter].embedding.weight
        with torch.no_grad():
            embedding.copy_(start.to(embedding.dtype))
    return wrapped, method_report(wrapped, method, [])
