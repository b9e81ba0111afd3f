"""Section 7's measurements on matrices with known answers, and on the tensors records keep.

Random subspaces. Let P (k × i) and Q (k × j) hold orthonormal bases of independent,
uniformly random subspaces of R^k. By symmetry E[P Pᵀ] = (i/k) I (its trace is i, and no
direction is preferred), so

    E‖Pᵀ Q‖²_F = E tr(Qᵀ P Pᵀ Q) = tr(Qᵀ E[P Pᵀ] Q) = (i/k) tr(Qᵀ Q) = i·j/k,

and E[φ] = i·j / (k · min(i, j)) = max(i, j) / k. The top singular directions of a Gaussian
matrix are such subspaces (A O has A's distribution for any orthogonal O). The same argument
on both sides gives, for U (d × r) and V (k × r) random and W fixed,
E‖Uᵀ W V‖²_F = (r/d)(r/k) ‖W‖²_F: Table 7's "random" column (GPT-3: 61.95 · 4 / 12288 =
0.020 at r = 4, 0.32 at r = 64; the paper prints 0.02 and 0.33).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import randomize_lora, tiny_model

from lorabook.analysis import (
    amplification,
    amplification_rows,
    base_weight,
    layer_at,
    layer_index,
    layers_of,
    lora_delta,
    lora_factors,
    principal_cosines,
    projection_norm,
    random_projection_norms,
    random_similarity,
    random_top_cosine,
    read_lora_record,
    seed_overlap,
    shared_directions,
    singular_basis,
    subspace_similarity,
    subspace_similarity_grid,
    top_singular,
)
from lorabook.inject import apply_lora, lora_layers
from lorabook.io import write_json, write_tensors

ROOT = Path(__file__).resolve().parents[1]


def gaussian(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def orthonormal(n: int, seed: int = 0) -> torch.Tensor:
    """An n × n orthogonal matrix."""
    return torch.linalg.qr(gaussian(n, n, seed=seed))[0]


# --- subspace similarity ---------------------------------------------------------------------


def test_a_subspace_with_itself_is_one_everywhere_and_a_change_of_basis_keeps_the_span():
    a = gaussian(4, 20)
    assert torch.allclose(
        subspace_similarity_grid(a, a), torch.ones(4, 4, dtype=torch.float64), atol=1e-12
    )
    mixed = gaussian(4, 4, seed=1) @ a  # same row space, other singular directions
    assert subspace_similarity(a, mixed, 4, 4) == pytest.approx(1, abs=1e-12)
    assert subspace_similarity(a, mixed, 1, 1) < 0.99
    # A's top-2 directions inside a rank-5 matrix that contains them: φ(2, 5) = 1
    wider = torch.cat([a[:2], gaussian(3, 20, seed=2)])
    assert subspace_similarity(a[:2], wider, 2, 5) == pytest.approx(1, abs=1e-12)


def test_orthogonal_subspaces_are_zero():
    basis = orthonormal(12)
    a1 = gaussian(3, 3, seed=1) @ basis[:3]
    a2 = gaussian(5, 5, seed=2) @ basis[3:8]
    assert subspace_similarity_grid(a1, a2).abs().max() < 1e-12


def test_random_subspaces_average_max_i_j_over_k():
    r, k, draws = 6, 24, 4000
    grids = torch.stack(
        [
            subspace_similarity_grid(gaussian(r, k, seed=2 * n), gaussian(r, k, seed=2 * n + 1))
            for n in range(draws)
        ]
    )
    i = torch.arange(1, r + 1, dtype=torch.float64)[:, None]
    j = torch.arange(1, r + 1, dtype=torch.float64)[None, :]
    expected = torch.maximum(i, j) / k
    # fixed seeds, so the outcome is fixed; five standard errors of the mean, per cell
    tolerance = 5 * grids.std(0) / draws**0.5
    assert ((grids.mean(0) - expected).abs() <= tolerance).all(), grids.mean(0) - expected
    assert (tolerance < 0.01).all()  # tight enough to tell max(i, j) from min(i, j) or i·j


def test_phi_ignores_scale_and_the_signs_of_singular_vectors():
    a1, a2 = gaussian(5, 16, seed=1), gaussian(7, 16, seed=2)
    reference = subspace_similarity_grid(a1, a2)
    for scaled in (3.5 * a1, -a1, 1e-6 * a1):
        assert torch.allclose(subspace_similarity_grid(scaled, a2), reference, atol=1e-12)
    u, s, vh = torch.linalg.svd(a1, full_matrices=False)
    signs = torch.tensor([1.0, -1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    flipped = (
        u @ torch.diag(s) @ (signs[:, None] * vh)
    )  # another matrix, same directions up to sign
    assert not torch.allclose(flipped, a1)
    assert torch.allclose(subspace_similarity_grid(flipped, a2), reference, atol=1e-12)


@pytest.mark.parametrize("side", ["right", "left"])
def test_the_grid_is_the_pairwise_function(side):
    m1, m2 = gaussian(3, 11, seed=3), gaussian(5, 11, seed=4)
    if side == "left":  # B is d_out × r
        m1, m2 = m1.T, m2.T
    grid = subspace_similarity_grid(m1, m2, side)
    assert grid.shape == (3, 5)
    for i in range(1, 4):
        for j in range(1, 6):
            assert grid[i - 1, j - 1] == pytest.approx(subspace_similarity(m1, m2, i, j, side))
    assert subspace_similarity_grid(m1, m2, side, max_i=2, max_j=4).shape == (2, 4)


def test_b_uses_left_singular_vectors_the_transpose_of_a_s_right_ones():
    b1, b2 = gaussian(16, 4, seed=5), gaussian(16, 8, seed=6)
    left = subspace_similarity_grid(b1, b2, "left")
    assert torch.allclose(left, subspace_similarity_grid(b1.T, b2.T, "right"), atol=1e-12)
    assert singular_basis(b1, "left").shape == (4, 16)
    assert singular_basis(b1.T, "right").shape == (4, 16)


def test_phi_errors_name_the_fix():
    a = gaussian(4, 10)
    with pytest.raises(ValueError, match="i must be a whole number from 1 to 4, got 5"):
        subspace_similarity(a, a, 5, 1)
    with pytest.raises(ValueError, match="same input"):
        subspace_similarity_grid(a, gaussian(4, 12))
    with pytest.raises(ValueError, match="'right' .* or 'left'"):
        singular_basis(a, "top")


# --- ΔW against W ------------------------------------------------------------------------------


def test_planted_delta_gives_the_known_projections_and_factor():
    d, k, r = 12, 10, 3
    p, q = orthonormal(d, seed=1), orthonormal(k, seed=2)
    s = torch.tensor([5.0, 3.0, 2.0], dtype=torch.float64)
    delta = p[:, :r] @ torch.diag(s) @ q[:, :r].T  # ΔW's top-3 directions: p's and q's first
    sigma = torch.tensor([0.1, 0.2, 0.3, 10, 9, 8, 7, 1, 1, 1], dtype=torch.float64)
    m = torch.zeros(d, k, dtype=torch.float64)
    m[range(k), range(k)] = sigma
    weight = p @ m @ q.T  # W is small on ΔW's directions, large on others
    got = amplification(weight, delta, r)
    assert got.delta_norm == pytest.approx(38**0.5)
    assert got.weight_norm == pytest.approx(float(sigma.square().sum().sqrt()))
    assert got.of_delta == pytest.approx(0.14**0.5)  # ‖diag(0.1, 0.2, 0.3)‖_F
    assert got.of_weight == pytest.approx((100 + 81 + 64) ** 0.5)  # W's top three
    assert got.factor == pytest.approx((38 / 0.14) ** 0.5)
    assert got.to_dict()["factor"] == got.factor
    u, vh = top_singular(delta, r)
    assert u.shape == (d, r) and vh.shape == (r, k)
    assert projection_norm(weight, u, vh) == pytest.approx(got.of_delta)


def test_frobenius_identities_and_orders():
    weight, delta = gaussian(9, 14, seed=7), gaussian(9, 2, seed=8) @ gaussian(2, 14, seed=9)
    got = amplification(weight, delta, 2, seed=3)
    sv = torch.linalg.svdvals(weight)
    assert got.weight_norm == pytest.approx(float(sv.square().sum().sqrt()))
    assert got.of_weight == pytest.approx(float(sv[:2].square().sum().sqrt()))
    # W's own top-r directions hold the most of W any r × r projection can (interlacing)
    assert got.of_delta <= got.of_weight and got.of_random <= got.of_weight
    assert got.of_weight <= got.weight_norm
    assert got.delta_norm == pytest.approx(float(torch.linalg.svdvals(delta)[:2].norm()))
    # ΔW = (α/r) B A: ‖ΔW‖_F scales with α/r and is the norm of the product
    a, b = gaussian(2, 14, seed=10), gaussian(9, 2, seed=11)
    assert torch.allclose(lora_delta(a, b, 16), 8 * (b @ a))
    assert amplification(weight, 3 * delta, 2).factor == pytest.approx(3 * got.factor)


def test_random_directions_keep_r_squared_over_d_k_of_w():
    d, k, r, draws = 16, 20, 2, 4000
    weight = gaussian(d, k, seed=12)
    squares = random_projection_norms(weight, r, draws=draws, seed=5).square()
    expected = r * r * float(weight.square().sum()) / (d * k)
    assert abs(squares.mean() - expected) <= 5 * squares.std() / draws**0.5
    delta = torch.zeros(d, k, dtype=torch.float64)
    delta[0, 0] = 1.0
    got = amplification(weight, delta, r, seed=5, draws=draws)
    assert got.of_random == pytest.approx(float(squares.sqrt().mean()))


def test_haar_frames_are_a_gaussian_matrix_s_top_directions_in_distribution():
    d, k, r, draws = 12, 9, 2, 600
    weight = gaussian(d, k, seed=13)
    haar = random_projection_norms(weight, r, draws=draws, seed=1)
    generator = torch.Generator().manual_seed(2)
    by_svd = torch.tensor(
        [
            projection_norm(
                weight,
                *top_singular(torch.randn(d, k, generator=generator, dtype=torch.float64), r),
            )
            for _ in range(draws)
        ]
    )
    se = (haar.var() / draws + by_svd.var() / draws) ** 0.5
    assert abs(haar.mean() - by_svd.mean()) <= 4 * se
    assert abs(haar.std() - by_svd.std()) <= 0.15 * by_svd.std()


def test_amplification_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        amplification(gaussian(4, 5), gaussian(5, 4), 1)
    with pytest.raises(ValueError, match="r must be a whole number from 1 to 4"):
        amplification(gaussian(4, 5), gaussian(4, 5), 5)


# --- records -------------------------------------------------------------------------------------


@pytest.fixture
def tiny_record(tmp_path):
    """A tiny BERT with trained-looking LoRA (r = 2, α = 4), written as a GLUE record is."""
    model = tiny_model("bert")
    plain = {n: p.detach().clone() for n, p in model.named_parameters()}
    apply_lora(model, targets=["query", "value"], r=2, alpha=4, keep_trainable=["classifier"])
    randomize_lora(model)
    record = tmp_path / "rte-lora-seed0-0123abcd.json"
    trained = {n: p for n, p in model.named_parameters() if p.requires_grad}
    write_tensors(record.with_suffix("") / "trainable.safetensors", trained)
    write_json(record, {"method": "lora", "settings": {"lora_r": 2, "lora_alpha": 4.0}})
    return record, model, plain


def test_a_record_gives_its_factors_scaling_and_delta(tiny_record):
    record, model, plain = tiny_record
    trained = read_lora_record(record)
    layers = lora_layers(model)
    assert set(trained.factors) == set(layers) and len(layers) == 4
    assert (trained.r, trained.alpha, trained.scaling) == (2, 4.0, 2.0)
    for name, layer in layers.items():
        a, b = trained.factors[name]
        assert torch.equal(a, layer.lora_A.detach()) and torch.equal(b, layer.lora_B.detach())
        assert torch.allclose(trained.delta(name).float(), layer.delta_weight(), atol=1e-6)
        # W: the frozen base weight, in the adapted model and in a plain one
        assert torch.equal(base_weight(model, name), plain[f"{name}.weight"])
    bert = tiny_model("bert").bert  # a plain encoder: the record's "bert." prefix is dropped
    name = "bert.encoder.layer.1.attention.self.value"
    assert torch.equal(base_weight(bert, name), plain[f"{name}.weight"])
    assert lora_factors(record.with_suffix("")).keys() == trained.factors.keys()


def test_record_errors_name_the_fix(tiny_record, tmp_path):
    record, model, _ = tiny_record
    with pytest.raises(KeyError, match="not a LoRA layer .* it has: bert.encoder"):
        read_lora_record(record).delta("bert.encoder.layer.0.attention.self.key")
    bad = tmp_path / "wrong-r.json"
    bad.with_suffix("").mkdir()
    (bad.with_suffix("") / "trainable.safetensors").write_bytes(
        (record.with_suffix("") / "trainable.safetensors").read_bytes()
    )
    bad.write_text(json.dumps({"method": "lora", "settings": {"lora_r": 8, "lora_alpha": 8}}))
    with pytest.raises(ValueError, match="says r = 8 but its A's are not r × d_in"):
        read_lora_record(bad)
    bad.write_text(json.dumps({"method": "ft", "settings": {}}))
    with pytest.raises(ValueError, match="'ft' run; pick a LoRA record"):
        read_lora_record(bad)
    with pytest.raises(FileNotFoundError, match="full fine-tuning keeps none"):
        lora_factors(tmp_path / "nothing-here")
    with pytest.raises(KeyError, match="no module 'nowhere.query'"):
        base_weight(model, "nowhere.query")
    gpt2 = tiny_model("gpt2")
    apply_lora(gpt2, targets=["c_attn"], r=2, alpha=2, fused={"c_attn": (True, False, True)})
    fused = write_tensors(
        tmp_path / "fused" / "trainable.safetensors", dict(gpt2.named_parameters())
    )
    with pytest.raises(ValueError, match="fused layer .* 2 slices stacked"):
        lora_factors(fused)


def test_a_committed_glue_lora_record_reads():
    records = sorted((ROOT / "results" / "glue" / "cpu" / "minilm").glob("mrpc-lora-seed*.json"))
    if not records:
        pytest.skip("no committed MRPC LoRA record")
    trained = read_lora_record(records[0])
    name = "bert.encoder.layer.0.attention.self.query"
    a, b = trained.factors[name]
    assert (a.shape, b.shape) == ((trained.r, 384), (384, trained.r))
    assert len(trained.factors) == 12  # W_q and W_v of MiniLM's six layers
    assert trained.delta(name).shape == (384, 384)


@pytest.mark.parametrize(
    ("name", "index"),
    [
        ("bert.encoder.layer.3.attention.self.query", 3),
        ("model.layers.11.self_attn.q_proj", 11),
        ("transformer.h.0.attn.c_attn", 0),
    ],
)
def test_layer_index_reads_the_block_number_of_every_architecture(name, index):
    assert layer_index(name) == index


def test_layers_of_orders_by_depth_and_names_what_exists(tiny_record):
    trained = read_lora_record(tiny_record[0])
    found = layers_of(trained, "value")
    assert found == [f"bert.encoder.layer.{i}.attention.self.value" for i in (0, 1)]
    with pytest.raises(KeyError, match=r"no LoRA layer named \*\.key .*\['query', 'value'\]"):
        layers_of(trained, "key")
    with pytest.raises(ValueError, match="no numbered block"):
        layer_index("classifier")
    assert layer_at(trained, "value", 1) == found[1]
    with pytest.raises(KeyError, match=r"no \*\.value LoRA layer in block 5: \[0, 1\]"):
        layer_at(trained, "value", 5)


@pytest.mark.parametrize(("r1", "r2", "i", "j"), [(8, 8, 1, 1), (8, 64, 4, 16)])
def test_the_random_baseline_averages_max_i_j_over_d(r1, r2, i, j):
    d = 96
    draws = random_similarity(r1, r2, d, i, j, draws=400, seed=3)
    assert draws.shape == (400,) and bool(((draws >= 0) & (draws <= 1)).all())
    expected = max(i, j) / d
    assert float(draws.mean()) == pytest.approx(expected, rel=0.15)
    assert torch.equal(draws, random_similarity(r1, r2, d, i, j, draws=400, seed=3))


def test_seed_overlap_compares_the_two_seeds_and_skips_tasks_without_both(tiny_record):
    record, _, _ = tiny_record
    one = read_lora_record(record)
    generator = torch.Generator().manual_seed(7)

    def seed_like(change) -> object:
        return dataclasses.replace(
            one, factors={n: change(a, b) for n, (a, b) in one.factors.items()}
        )

    def noisy(a, b):  # another seed: A and B moved by noise of their own size
        return tuple(m + m.std() * torch.randn(m.shape, generator=generator) for m in (a, b))

    two = seed_like(noisy)
    runs = {("rte", 0): one, ("rte", 1): two, ("mrpc", 0): one}
    rows = seed_overlap(runs)
    assert {r["task"] for r in rows} == {"rte"}  # mrpc has one seed
    assert [(r["matrix"], r["block"]) for r in rows] == [
        ("query", 0),
        ("query", 1),
        ("value", 0),
        ("value", 1),
    ]
    for row in rows:  # seed 0 against seed 1, not a seed against itself
        layer = layer_at(one, row["matrix"], row["block"])
        (a1, b1), (a2, b2) = one.factors[layer], two.factors[layer]
        assert row["A"] == pytest.approx(subspace_similarity(a1, a2, 1, 1)) and row["A"] < 0.999
        assert row["B"] == pytest.approx(subspace_similarity(b1, b2, 1, 1, side="left"))
        assert row["B"] < 0.999
    # A's rows swapped: the same span, so every direction is shared
    runs[("rte", 1)] = seed_like(lambda a, b: (a[[1, 0, *range(2, a.shape[0])]], b))
    assert all(r["shared A"] == one.r for r in seed_overlap(runs))


def test_shared_directions_count_a_planted_common_subspace():
    d, r = 64, 6
    basis = orthonormal(d, seed=4)
    common = basis[:, :2].T  # two directions both spans hold
    a1 = torch.cat([common, basis[:, 2:6].T])
    a2 = torch.cat([common, basis[:, 6:10].T])  # the rest orthogonal
    threshold = random_top_cosine(r, r, d, q=0.99, draws=500)
    assert 0 < threshold < 1
    assert shared_directions(a1, a2, threshold) == 2
    assert principal_cosines(a1, a2).tolist() == pytest.approx([1, 1, 0, 0, 0, 0], abs=1e-9)
    assert shared_directions(a1, a1, threshold) == r


def test_amplification_rows_are_the_layers_amplification(tiny_record):
    record, model, _ = tiny_record
    trained = read_lora_record(record)
    # two runs of one base: the second reads W's terms from the first's (computed once)
    rows = amplification_rows({("rte", 0): trained, ("rte", 1): trained}, model, block=1)
    assert [(r["task"], r["matrix"], r["seed"]) for r in rows] == [
        ("rte", "query", 0),
        ("rte", "value", 0),
        ("rte", "query", 1),
        ("rte", "value", 1),
    ]
    layer = "bert.encoder.layer.1.attention.self.value"
    expected = amplification(base_weight(model, layer), trained.delta(layer), trained.r)
    for row in rows[1], rows[3]:
        assert row["factor"] == pytest.approx(expected.factor)
        assert row["factor of BA"] == pytest.approx(expected.factor / trained.scaling)
        assert row["× random"] == pytest.approx(expected.of_delta / expected.of_random)
        assert row["of_weight"] == pytest.approx(expected.of_weight)


def test_the_random_baseline_is_the_pairwise_function_on_each_draw():
    draws = random_similarity(3, 5, 20, 2, 3, draws=4, seed=1)
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(4, 3, 20, generator=generator, dtype=torch.float64)
    b = torch.randn(4, 5, 20, generator=generator, dtype=torch.float64)
    expected = [subspace_similarity(a[k], b[k], 2, 3) for k in range(4)]
    assert draws.tolist() == pytest.approx(expected)
