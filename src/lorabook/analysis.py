"""Why LoRA works (the paper's Section 7): how trained A's and B's overlap, and how ΔW relates to W.

Shapes, in ``nn.Linear``'s layout (the paper's d × k): a weight W and its update ΔW are
d_out × d_in, LoRA's A is r × d_in, B is d_out × r. The paper's (and the book's) ΔW is B A
(equation 3), and the weight changes by (α/r) · B A (the scaling of Section 4.1). Section 7
does not say which of the two it analyses; here ΔW's studies (Table 7) use the change the
weight receives, (α/r) · B A (:func:`lora_delta`). Where α = r (chapter 3's runs: r = α = 8)
the two are one matrix; at other ranks only ‖ΔW‖_F and the amplification factor scale with
α/r, the directions U, V and the projections ‖UᵀWVᵀ‖_F do not. With α fixed across ranks (as
the paper sets it, Section 4.1), α/r alone makes r = 4's factor 16× r = 64's for the same B A:
:func:`amplification_rows` gives B A's factor too, so that a reader can tell the two apart.

Subspace similarity (Section 7.2). For two trained A's, of ranks r₁ and r₂ and the same d_in,

    φ(A₁, A₂, i, j) = ‖U₁ⁱᵀ U₂ʲ‖²_F / min(i, j)  ∈ [0, 1],

where U₁ⁱ (d_in × i) holds the top-i *right*-singular vectors of A₁ (the first i rows of
``Vh`` in ``torch.linalg.svd(A₁)``), U₂ʲ likewise: the directions of the input space R^{d_in}
that A reads. Section 7.2 says "right-singular unitary matrix"; Appendix G calls the same
vectors "left-singular", a slip: A's left-singular vectors live in R^r, and those of an
r = 8 and an r = 64 matrix could not even be compared. For B (d_out × r) the comparable
vectors are the left-singular ones (columns of ``U``, in R^{d_out}): ``side="left"``.
φ = 1 when one subspace contains the other, 0 when they are orthogonal, and for independent
random subspaces E[φ] = max(i, j) / d_in (``tests/test_analysis.py`` derives it).

ΔW against W (Section 7.3, Table 7). With U (d_out × r) and Vᵀ (d_in × r) the top-r left and
right singular vectors of ΔW (the paper writes V for the r × d_in matrix ``Vh``, so its
``Uᵀ W Vᵀ`` is an r × r matrix), ‖Uᵀ W Vᵀ‖_F is how much of W lies in ΔW's r-dimensional
subspace. The paper compares it with the same projection on W's own top-r directions and on
a random matrix's, and calls ‖ΔW‖_F / ‖Uᵀ W Vᵀ‖_F (U, V of ΔW) the amplification factor:
how strongly ΔW amplifies directions that W already has but does not emphasise (the paper's
values for GPT-3's W_q are in its Table 7, read through :mod:`lorabook.paper`).

The trained tensors come from the records: every LoRA record keeps its A's and B's beside it
(``<record>/trainable.safetensors``), and its settings hold r and α (``read_lora_record``).
Everything here is computed in float64.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

from lorabook.adapters import _read_tensors
from lorabook.inject import linear_module_names
from lorabook.layers import LoRALayer

SIDES = ("right", "left")  # right: A's input directions (rows of Vh); left: B's (columns of U)
TRAINABLE_FILE = "trainable.safetensors"


# --- subspace similarity (Figures 3 and 4) ----------------------------------------------------


def singular_basis(matrix: torch.Tensor, side: str = "right") -> torch.Tensor:
    """The singular vectors of ``matrix`` as the rows of a tensor, largest singular value first.

    ``side="right"``: the rows of ``Vh`` (min(m, n) × n), for LoRA's A (r × d_in) the
    directions of R^{d_in} that it reads. ``side="left"``: the columns of ``U``, transposed
    (min(m, n) × m), for B (d_out × r) the directions of R^{d_out} that it writes. Vectors
    past the matrix's rank are arbitrary (any orthonormal completion).
    """
    if side not in SIDES:
        raise ValueError(
            f"side must be 'right' (A: rows of Vh) or 'left' (B: columns of U), got {side!r}"
        )
    if matrix.dim() != 2:
        raise ValueError(f"expected a 2-d matrix, got shape {tuple(matrix.shape)}")
    u, _, vh = torch.linalg.svd(matrix.detach().double(), full_matrices=False)
    return vh if side == "right" else u.T


def _bases(m1: torch.Tensor, m2: torch.Tensor, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    u1, u2 = singular_basis(m1, side), singular_basis(m2, side)
    if u1.shape[1] != u2.shape[1]:
        space = "input (d_in, A's columns)" if side == "right" else "output (d_out, B's rows)"
        raise ValueError(
            f"the {side}-singular vectors live in spaces of different size, {u1.shape[1]} and "
            f"{u2.shape[1]}: compare matrices of the same {space} dimension"
        )
    return u1, u2


def _check_count(name: str, value: int, available: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= available:
        raise ValueError(f"{name} must be a whole number from 1 to {available}, got {value!r}")


def subspace_similarity(
    m1: torch.Tensor, m2: torch.Tensor, i: int, j: int, side: str = "right"
) -> float:
    """φ(m1, m2, i, j) = ‖U₁ⁱᵀ U₂ʲ‖²_F / min(i, j): the overlap of m1's top-i and m2's top-j
    singular directions (``side="right"`` for A's, ``"left"`` for B's); in [0, 1]."""
    u1, u2 = _bases(m1, m2, side)
    _check_count("i", i, u1.shape[0])
    _check_count("j", j, u2.shape[0])
    return float((u1[:i] @ u2[:j].T).square().sum() / min(i, j))


def subspace_similarity_grid(
    m1: torch.Tensor,
    m2: torch.Tensor,
    side: str = "right",
    max_i: int | None = None,
    max_j: int | None = None,
) -> torch.Tensor:
    """φ(m1, m2, i, j) for every i ≤ max_i, j ≤ max_j (default: all): a (max_i × max_j)
    float64 tensor with ``grid[i - 1, j - 1] = subspace_similarity(m1, m2, i, j, side)``.

    One SVD per matrix: the squared cosines between m1's i-th and m2's j-th singular vector,
    summed over the top-left i × j block by a cumulative sum along both axes.
    """
    u1, u2 = _bases(m1, m2, side)
    max_i = u1.shape[0] if max_i is None else max_i
    max_j = u2.shape[0] if max_j is None else max_j
    _check_count("max_i", max_i, u1.shape[0])
    _check_count("max_j", max_j, u2.shape[0])
    squared = (u1[:max_i] @ u2[:max_j].T).square()  # cos² between single directions
    norms = squared.cumsum(0).cumsum(1)  # ‖U₁ⁱᵀ U₂ʲ‖²_F at [i - 1, j - 1]
    i = torch.arange(1, max_i + 1, dtype=norms.dtype)[:, None]
    j = torch.arange(1, max_j + 1, dtype=norms.dtype)[None, :]
    return norms / torch.minimum(i, j)


def _random_bases(
    r1: int, r2: int, d: int, draws: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The right-singular vectors (draws × r × d) of ``draws`` pairs of independent Gaussian
    A₁ (r1 × d) and A₂ (r2 × d); one batched SVD per side."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(draws, r1, d, generator=generator, dtype=torch.float64)
    b = torch.randn(draws, r2, d, generator=generator, dtype=torch.float64)
    return tuple(torch.linalg.svd(m, full_matrices=False).Vh for m in (a, b))


def _random_spans(
    r1: int, r2: int, d: int, draws: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal bases (draws × r × d) of the row spans of the same Gaussian pairs as
    :func:`_random_bases` draws, by QR: the same spans (what principal angles read) for a
    fraction of the SVD's time, not the same ordered directions."""
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(draws, r1, d, generator=generator, dtype=torch.float64)
    b = torch.randn(draws, r2, d, generator=generator, dtype=torch.float64)
    return tuple(torch.linalg.qr(m.transpose(1, 2)).Q.transpose(1, 2) for m in (a, b))


def random_similarity(
    r1: int, r2: int, d: int, i: int = 1, j: int = 1, draws: int = 1000, seed: int = 0
) -> torch.Tensor:
    """φ(A₁, A₂, i, j) of ``draws`` pairs of independent Gaussian A₁ (r1 × d), A₂ (r2 × d):
    the values two unrelated A's give (Figure 4's random baseline as a distribution), for a
    trained pair to be read against. Their mean is max(i, j) / d."""
    _check_count("i", i, min(r1, d))
    _check_count("j", j, min(r2, d))
    u1, u2 = _random_bases(r1, r2, d, draws, seed)
    return (u1[:, :i] @ u2[:, :j].transpose(1, 2)).square().sum(dim=(1, 2)) / min(i, j)


def principal_cosines(m1: torch.Tensor, m2: torch.Tensor, side: str = "right") -> torch.Tensor:
    """The cosines of the principal angles between the spans of m1's and m2's singular
    vectors (``side`` as in :func:`subspace_similarity`), largest first: the singular values
    of U₁ᵀ U₂. Their squares sum to min(r₁, r₂) · φ(m1, m2, r₁, r₂); each near 1 is one
    direction the two spans share."""
    u1, u2 = _bases(m1, m2, side)
    return torch.linalg.svdvals(u1 @ u2.T)


def shared_directions(
    m1: torch.Tensor, m2: torch.Tensor, threshold: float, side: str = "right"
) -> int:
    """How many directions the spans of m1 and m2 share beyond chance: the principal cosines²
    above ``threshold`` (:func:`random_top_cosine` gives the random pairs' quantile).

    This is Figure 4's "how many common directions" (ΔW_q shares more of them across seeds
    than ΔW_v). φ(i, i) cannot count them: it is the mean of the i squared principal cosines
    between the two top-i spans, so one direction shared fully and several shared in part give
    the same value."""
    return int((principal_cosines(m1, m2, side).square() > threshold).sum())


def random_top_cosine(
    r1: int, r2: int, d: int, q: float = 0.99, draws: int = 2000, seed: int = 0
) -> float:
    """The ``q`` quantile of the largest principal cosine² between the spans of two
    independent Gaussian A₁ (r1 × d), A₂ (r2 × d): a trained pair's :func:`shared_directions`
    above it counts directions that chance alone gives with probability at most 1 − q."""
    u1, u2 = _random_spans(r1, r2, d, draws, seed)
    top = torch.linalg.svdvals(u1 @ u2.transpose(1, 2))[:, 0].square()
    return float(top.quantile(q))


# --- ΔW against W (Table 7) --------------------------------------------------------------------


def lora_delta(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """The change the weight receives, (α/r) · B A (d_out × d_in, float64), from A (r × d_in)
    and B (d_out × r); the paper's ΔW scaled by α/r (module docstring)."""
    if a.dim() != 2 or b.dim() != 2 or b.shape[1] != a.shape[0]:
        raise ValueError(
            f"expected A (r × d_in) and B (d_out × r) with the same r, got A {tuple(a.shape)} "
            f"and B {tuple(b.shape)}"
        )
    return (alpha / a.shape[0]) * (b.double() @ a.double())


def top_singular(matrix: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U, Vh)``: the top-r left (d × r) and right (r × k) singular vectors of a d × k matrix."""
    u, _, vh = torch.linalg.svd(matrix.detach().double(), full_matrices=False)
    _check_count("r", r, vh.shape[0])
    return u[:, :r], vh[:r]


def projection_norm(weight: torch.Tensor, u: torch.Tensor, vh: torch.Tensor) -> float:
    """‖Uᵀ W Vhᵀ‖_F: the part of W (d × k) in the span of U's columns (d × r) on the left and
    of Vh's rows (r × k) on the right; Uᵀ W Vhᵀ is r × r."""
    return float(torch.linalg.matrix_norm(u.T @ weight.detach().double() @ vh.T))


@dataclass(frozen=True)
class Amplification:
    """Table 7's row for one layer and rank: ‖Uᵀ W Vᵀ‖_F with U, V the top-r singular
    directions of ΔW (``of_delta``), of W itself (``of_weight``) and of random Gaussian
    matrices of W's shape (``of_random``, the mean over draws); ‖W‖_F and ‖ΔW‖_F."""

    r: int
    weight_norm: float
    delta_norm: float
    of_delta: float
    of_weight: float
    of_random: float

    @property
    def factor(self) -> float:
        """The amplification factor ‖ΔW‖_F / ‖Uᵀ W Vᵀ‖_F, U and V of ΔW (Section 7.3)."""
        return self.delta_norm / self.of_delta

    def to_dict(self) -> dict:
        """The fields and the factor, JSON-ready."""
        return {**asdict(self), "factor": self.factor}


def random_projection_norms(
    weight: torch.Tensor, r: int, draws: int = 256, seed: int = 0
) -> torch.Tensor:
    """‖Uᵀ W Vᵀ‖_F for ``draws`` random matrices' top-r directions U (d × r), Vᵀ (k × r).

    A Gaussian matrix's singular vectors are uniform (Haar) orthonormal frames, U and V
    independent of each other (the distribution is invariant under rotations on either
    side), so they are drawn as such, by QR of Gaussian d × r and k × r matrices, without the
    SVD. E‖Uᵀ W Vᵀ‖²_F = r² ‖W‖²_F / (d k)."""
    w = weight.detach().double()
    d, k = w.shape
    _check_count("r", r, min(d, k))
    generator = torch.Generator().manual_seed(seed)
    u = torch.linalg.qr(torch.randn(draws, d, r, generator=generator, dtype=torch.float64)).Q
    v = torch.linalg.qr(torch.randn(draws, k, r, generator=generator, dtype=torch.float64)).Q
    return torch.linalg.matrix_norm(u.transpose(1, 2) @ w @ v)


def weight_terms(weight: torch.Tensor, r: int, seed: int = 0, draws: int = 256) -> dict[str, float]:
    """What Table 7 reads of W alone at rank ``r``: ‖W‖_F (``weight_norm``), and ‖Uᵀ W Vᵀ‖_F
    on W's own top-r directions (``of_weight``) and on random matrices' (``of_random``, the
    mean over ``draws``, drawn from ``seed``: one draw varies by tens of percent from one to
    the next). The same for every run that adapts W, so a table of runs computes it once."""
    w = weight.detach().double()
    return {
        "weight_norm": float(torch.linalg.matrix_norm(w)),
        "of_weight": projection_norm(w, *top_singular(w, r)),
        "of_random": float(random_projection_norms(w, r, draws, seed).mean()),
    }


def amplification(
    weight: torch.Tensor,
    delta: torch.Tensor,
    r: int,
    seed: int = 0,
    draws: int = 256,
    of_w: Mapping[str, float] | None = None,
) -> Amplification:
    """Table 7's quantities for a pretrained W and its update ΔW, both d_out × d_in.

    ``r`` is the number of singular directions (the LoRA rank: (α/r) B A has rank ≤ r).
    W's own terms are :func:`weight_terms` (``seed``, ``draws``), or ``of_w`` where the
    caller has them already for this W and r.
    """
    if weight.shape != delta.shape or weight.dim() != 2:
        raise ValueError(
            f"W and ΔW must be matrices of the same shape (d_out × d_in), got "
            f"{tuple(weight.shape)} and {tuple(delta.shape)}"
        )
    return Amplification(
        r=r,
        delta_norm=float(torch.linalg.matrix_norm(delta.detach().double())),
        of_delta=projection_norm(weight, *top_singular(delta, r)),
        **(of_w or weight_terms(weight, r, seed, draws)),
    )


# --- the trained tensors of a record, and the base weights -------------------------------------


def lora_factors(path: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{layer: (A, B)}`` from a ``trainable.safetensors`` (or the record folder holding it).

    ``layer`` is the module's name in the trained model, e.g.
    ``bert.encoder.layer.0.attention.self.query`` (keys ``<layer>.lora_A`` / ``.lora_B``);
    other trained tensors (the head) are left out. A is r × d_in, B is d_out × r.
    """
    path = Path(path)
    if path.is_dir():
        path = path / TRAINABLE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; LoRA records keep their A and B in "
            f"<record name>/{TRAINABLE_FILE} (full fine-tuning keeps none)"
        )
    tensors = _read_tensors(path, str(path.parent))
    layers = sorted({k.rsplit(".", 1)[0] for k in tensors if k.endswith((".lora_A", ".lora_B"))})
    if not layers:
        raise ValueError(f"{path} holds no LoRA tensors (<layer>.lora_A/.lora_B): not a LoRA run")
    factors = {}
    for layer in layers:
        a, b = tensors.get(f"{layer}.lora_A"), tensors.get(f"{layer}.lora_B")
        if a is None or b is None:
            raise ValueError(
                f"{path}: {layer} has only one of lora_A and lora_B; the file is damaged"
            )
        if b.shape[1] != a.shape[0]:
            raise ValueError(
                f"{path}: {layer} is a fused layer (A {tuple(a.shape)}, B {tuple(b.shape)}: "
                f"{a.shape[0] // b.shape[1]} slices stacked); split A into row blocks of "
                f"{b.shape[1]} and B into as many row blocks before comparing them"
            )
        factors[layer] = (a, b)
    return factors


@dataclass(frozen=True)
class TrainedLoRA:
    """A LoRA record's trained factors with the r and α it was trained with."""

    record: Path
    r: int
    alpha: float
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]

    @property
    def scaling(self) -> float:
        """α / r, the factor in the weight's change (α/r) · B A."""
        return self.alpha / self.r

    def delta(self, layer: str) -> torch.Tensor:
        """The change ``layer``'s weight receives, (α/r) · B A (d_out × d_in, float64)."""
        if layer not in self.factors:
            raise KeyError(
                f"{layer!r} is not a LoRA layer of {self.record.name}; it has: "
                f"{', '.join(self.factors)}"
            )
        a, b = self.factors[layer]
        return lora_delta(a, b, self.alpha)


def layer_index(name: str) -> int:
    """The block number in a module name: 3 in ``bert.encoder.layer.3.attention.self.query``,
    ``model.layers.3.self_attn.q_proj`` or ``transformer.h.3.attn.c_attn``."""
    parts = name.split(".")
    for i, part in enumerate(parts[:-1]):
        if part in ("layer", "layers", "h") and parts[i + 1].isdigit():
            return int(parts[i + 1])
    raise ValueError(f"{name!r} names no numbered block (layer.N, layers.N or h.N)")


def layers_of(trained: TrainedLoRA, matrix: str) -> list[str]:
    """The LoRA layers of ``trained`` whose name ends with ``matrix`` (``"query"``,
    ``"q_proj"``, or dotted: ``"attention.output.dense"``, not the FFN's ``output.dense``),
    shallowest first."""
    found = [n for n in trained.factors if n == matrix or n.endswith("." + matrix)]
    if not found:
        ends = sorted({n.rsplit(".", 1)[-1] for n in trained.factors})
        raise KeyError(f"no LoRA layer named *.{matrix} in {trained.record.name}; it has {ends}")
    return sorted(found, key=layer_index)


def layer_at(trained: TrainedLoRA, matrix: str, block: int) -> str:
    """The LoRA layer of ``trained`` for ``matrix`` (as :func:`layers_of`) in ``block``."""
    found = layers_of(trained, matrix)
    for name in found:
        if layer_index(name) == block:
            return name
    blocks = [layer_index(n) for n in found]
    raise KeyError(f"{trained.record.name} has no *.{matrix} LoRA layer in block {block}: {blocks}")


def read_lora_record(record: str | Path) -> TrainedLoRA:
    """The factors kept beside a LoRA record (GLUE or E2E) and its ``lora_r``, ``lora_alpha``.

    ``record`` is the record's JSON file; its tensors are in the folder of the same name.
    """
    record = Path(record)
    data = json.loads(record.read_text())
    if data.get("method") != "lora":
        raise ValueError(f"{record.name} is a {data.get('method')!r} run; pick a LoRA record")
    settings = data["settings"]
    r, alpha = settings["lora_r"], float(settings["lora_alpha"])
    factors = lora_factors(record.with_suffix("") / TRAINABLE_FILE)
    wrong = {n: tuple(a.shape) for n, (a, _) in factors.items() if a.shape[0] != r}
    if wrong:
        first = ", ".join(f"{n} {shape}" for n, shape in list(wrong.items())[:2])
        raise ValueError(f"{record.name} says r = {r} but its A's are not r × d_in: {first}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"{record.name}: lora_alpha must be a positive number, got {alpha}")
    return TrainedLoRA(record, r, alpha, factors)


def base_weight(model: nn.Module, layer: str) -> torch.Tensor:
    """The frozen pretrained W (d_out × d_in) of ``layer`` in ``model``, e.g.
    ``base_weight(load_pretrained("minilm")[0], "bert.encoder.layer.0.attention.self.query")``.

    ``layer`` may carry a prefix the model lacks (a record's ``bert.`` on a plain
    ``BertModel``): leading parts are dropped until a module of that name exists. A LoRA
    layer gives its base layer's weight; GPT-2's ``Conv1D`` (stored d_in × d_out) is transposed.
    """
    parts = layer.split(".")
    names = {n for n, _ in model.named_modules()}
    found = next(
        (".".join(parts[i:]) for i in range(len(parts)) if ".".join(parts[i:]) in names), None
    )
    if found is None:
        raise KeyError(
            f"no module {layer!r} (nor a suffix of it) in this {type(model).__name__}; "
            f"its linear layers are named like {linear_module_names(model)[:2]}"
        )
    module = model.get_submodule(found)
    if isinstance(module, LoRALayer):
        if module.merged:
            raise ValueError(f"{found} is merged (W holds ΔW): call unmerge() first")
        module = module.base_layer
    if not isinstance(module, nn.Linear | Conv1D):
        raise ValueError(f"{found} is a {type(module).__name__}, not a linear layer")
    weight = module.weight.detach()
    return weight.T if isinstance(module, Conv1D) else weight


# --- the two studies on a set of runs (chapter 6 and the verdict) ------------------------------


def pair_overlap(
    pairs: Mapping[str, tuple[TrainedLoRA, TrainedLoRA]],
    matrices: Sequence[str] = ("query", "value"),
    q: float = 0.99,
) -> list[dict]:
    """Figures 3 and 4's measures between the two runs of each pair (``{task: (one, two)}``,
    two seeds or two ranks), per LoRA matrix and block: φ(·, ·, 1, 1) between their A's
    (right-singular vectors) and B's (left-singular), the squared cosine between their top
    directions; and how many directions the two A's spans share beyond chance
    (:func:`shared_directions` against the ``q`` quantile of random pairs of the A's shapes).

    Rows: task, matrix, block, A, B, shared A."""
    rows, thresholds = [], {}
    for task, (one, two) in sorted(pairs.items()):
        for matrix in matrices:
            for layer in layers_of(one, matrix):
                (a1, b1), (a2, b2) = one.factors[layer], two.factors[layer]
                shape = (a1.shape[0], a2.shape[0], a1.shape[1])
                if shape not in thresholds:
                    thresholds[shape] = random_top_cosine(*shape, q=q)
                rows.append(
                    {
                        "task": task,
                        "matrix": matrix,
                        "block": layer_index(layer),
                        "A": subspace_similarity(a1, a2, 1, 1),
                        "B": subspace_similarity(b1, b2, 1, 1, side="left"),
                        "shared A": shared_directions(a1, a2, thresholds[shape]),
                    }
                )
    return rows


def seed_overlap(
    runs: Mapping[tuple[str, int], TrainedLoRA],
    matrices: Sequence[str] = ("query", "value"),
    seeds: tuple[int, int] = (0, 1),
    q: float = 0.99,
) -> list[dict]:
    """Figure 4's questions at the runs' rank: :func:`pair_overlap` between ``seeds`` of
    every task that has both (``runs``: ``{(task, seed): TrainedLoRA}``).

    Rows: task, matrix, block, A, B, shared A."""
    pairs = {
        task: (runs[(task, seeds[0])], runs[(task, seeds[1])])
        for task in sorted({task for task, _ in runs})
        if all((task, seed) in runs for seed in seeds)
    }
    return pair_overlap(pairs, matrices, q)


def rank_overlap(
    pairs: Mapping[tuple[str, int], tuple[TrainedLoRA, TrainedLoRA]],
    matrices: Sequence[str] = ("query", "value"),
    q: float = 0.99,
    first_block: int = 1,
) -> list[dict]:
    """Figure 3's questions: :func:`pair_overlap` between one seed's run at a low and at a
    high rank (``pairs``: ``{(task, seed): (low, high)}``, as
    :func:`lorabook.glue.section7.rank_pairs` gives them), blocks from ``first_block`` on.

    Block 0 is left out by default: two runs of one seed draw the first LoRA layer's A from
    the same random stream, so A at the high rank *starts* with A at the low rank as its first
    rows, and an overlap there would be partly the start, not training.

    Rows: task, seed, matrix, block, A, B, shared A."""
    return [
        {"task": task, "seed": seed, **{k: v for k, v in row.items() if k != "task"}}
        for (task, seed), pair in sorted(pairs.items())
        for row in pair_overlap({task: pair}, matrices, q)
        if row["block"] >= first_block
    ]


def amplification_rows(
    runs: Mapping[tuple[str, int], TrainedLoRA],
    base: nn.Module,
    block: int,
    matrices: Sequence[str] = ("query", "value"),
) -> list[dict]:
    """Table 7's quantities for every run, in ``block`` (a middle one, as the paper's layer
    48 of 96), per LoRA matrix: task, matrix, seed, α/r (the scale in ΔW = (α/r)·BA), the
    :class:`Amplification` fields and factor, ``factor of BA`` (the factor over α/r: that of
    B A without the scale, which α/r alone makes differ between ranks at a fixed α), and
    ``× random``: ‖UᵀWVᵀ‖_F on ΔW's directions over that on random matrices' (the paper's
    ratio is Table 7's "of ΔW_q" over its "random")."""
    rows, of_w = [], {}  # W's own terms, once per (layer, r): the runs share the base
    for (task, seed), run in sorted(runs.items()):
        for matrix in matrices:
            layer = layer_at(run, matrix, block)
            weight = base_weight(base, layer)
            if (layer, run.r) not in of_w:
                of_w[layer, run.r] = weight_terms(weight, run.r)
            found = amplification(weight, run.delta(layer), run.r, of_w=of_w[layer, run.r])
            rows.append(
                {
                    "task": task,
                    "matrix": matrix,
                    "seed": seed,
                    "α/r": run.scaling,
                    **found.to_dict(),
                    "factor of BA": found.factor / run.scaling,
                    "× random": found.of_delta / found.of_random,
                }
            )
    return rows
