"""The LoRA layer and its injection: the equation, the invariants, the paper's counts, errors."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import transformers as T
from conftest import ARCHS, HEAD, PAPER, logits, randomize_lora, tiny_model
from torch import nn
from transformers.pytorch_utils import Conv1D

from lorabook import (
    LoRALayer,
    apply_lora,
    lora_layers,
    lora_param_count,
    merge_and_unload,
    merge_lora,
    unmerge_lora,
)


def adapted(arch: str, **kw) -> nn.Module:
    model = tiny_model(arch, **kw)
    keep = [HEAD[arch]] if HEAD[arch] else []
    apply_lora(model, r=4, alpha=8, keep_trainable=keep, **PAPER[arch])
    randomize_lora(model)
    return model


# --- the equation, on one layer -------------------------------------------------------------


def test_linear_layer_computes_equation_4():
    torch.manual_seed(0)
    base = nn.Linear(16, 12)
    layer = LoRALayer(base, r=4, alpha=8)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(3, 5, 16)
    expected = x @ base.weight.T + base.bias + (8 / 4) * (x @ layer.lora_A.T) @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-6)


def test_conv1d_layer_handles_transposed_weight():
    torch.manual_seed(0)
    base = Conv1D(12, 16)  # GPT-2 stores W as (in, out)
    layer = LoRALayer(base, r=2, alpha=2)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(4, 16)
    expected = x @ base.weight + base.bias + (x @ layer.lora_A.T) @ layer.lora_B.T
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-6)
    assert layer.delta_weight().shape == (12, 16)  # ΔW is d × k whatever the storage order


def test_split_adapts_only_the_chosen_slices():
    torch.manual_seed(0)
    layer = LoRALayer(Conv1D(3 * 8, 8), r=2, alpha=2, split=(True, False, True))
    nn.init.normal_(layer.lora_B)
    x = torch.randn(5, 8)
    update = layer(x) - layer.base_layer(x)
    assert update[:, 8:16].abs().max() == 0  # the k slice is untouched
    assert update[:, :8].abs().max() > 0 and update[:, 16:].abs().max() > 0
    assert layer.lora_A.shape == (2 * 2, 8) and layer.lora_B.shape == (2 * 8, 2)


def test_init_kaiming_and_gaussian_start_from_zero_update():
    torch.manual_seed(0)
    k = LoRALayer(nn.Linear(64, 64), r=8, alpha=8)
    g = LoRALayer(nn.Linear(64, 64), r=8, alpha=8, init="gaussian")
    for layer in (k, g):
        assert torch.count_nonzero(layer.lora_B) == 0 and torch.count_nonzero(layer.lora_A) > 0
    bound = 1 / 64**0.5  # kaiming_uniform(a=√5) on fan_in 64 gives U(-1/√64, 1/√64)
    assert k.lora_A.abs().max() <= bound
    assert abs(g.lora_A.std().item() - 1 / 8) < 0.02


def test_dropout_only_on_lora_path_and_only_in_training():
    torch.manual_seed(0)
    layer = LoRALayer(nn.Linear(16, 16), r=4, alpha=4, dropout=0.5)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(8, 16)
    layer.train()
    assert not torch.equal(layer(x), layer(x))
    layer.eval()
    assert torch.equal(layer(x), layer(x))


# --- invariants on whole models -------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHS)
def test_output_at_init_equals_base_exactly(arch, ids):
    model = tiny_model(arch)
    before = logits(model, ids)
    apply_lora(model, r=4, alpha=8, **PAPER[arch])
    assert torch.equal(logits(model, ids), before)


@pytest.mark.parametrize("arch", ARCHS)
def test_merged_equals_unmerged_and_unmerge_restores_w0(arch, ids):
    model = adapted(arch)
    w0 = {n: m.base_layer.weight.detach().clone() for n, m in lora_layers(model).items()}
    out = logits(model, ids)
    assert not torch.allclose(out, logits(tiny_model(arch), ids))  # LoRA did change something
    merge_lora(model)
    torch.testing.assert_close(logits(model, ids), out, rtol=0, atol=1e-5)
    unmerge_lora(model)
    for name, layer in lora_layers(model).items():
        torch.testing.assert_close(layer.base_layer.weight, w0[name], rtol=0, atol=1e-6)
    torch.testing.assert_close(logits(model, ids), out, rtol=0, atol=1e-5)


def test_merge_twice_and_unmerge_unmerged_are_warned_no_ops(ids):
    model = adapted("roberta")
    out = logits(model, ids)
    with pytest.warns(UserWarning, match="not merged"):
        unmerge_lora(model)
    merge_lora(model)
    merged_w = {n: m.base_layer.weight.clone() for n, m in lora_layers(model).items()}
    with pytest.warns(UserWarning, match="already merged"):
        merge_lora(model)
    for name, layer in lora_layers(model).items():
        assert torch.equal(layer.base_layer.weight, merged_w[name])
    torch.testing.assert_close(logits(model, ids), out, rtol=0, atol=1e-5)


def test_bf16_merge_error_is_within_one_rounding_step(ids):
    """The documented bf16 bound: merging rounds W0 + ΔW once; unmerging rounds once more."""
    model = adapted("llama").to(torch.bfloat16)
    layers = lora_layers(model)
    w0 = {n: m.base_layer.weight.float().clone() for n, m in layers.items()}
    delta = {n: m.delta_weight() for n, m in layers.items()}
    out = logits(model, ids).float()
    merge_lora(model)
    merged_out = logits(model, ids).float()
    # Output drift: bf16 has 8 significant bits; the merged path rounds once per weight.
    assert (merged_out - out).abs().max() <= 0.05 * out.abs().max()
    unmerge_lora(model)
    eps = 2.0**-8  # bf16's relative rounding step
    for name, layer in layers.items():
        back = layer.base_layer.weight.float()
        bound = eps * (w0[name].abs() + delta[name].abs()) + 1e-30
        assert torch.all((back - w0[name]).abs() <= bound)


@pytest.mark.parametrize("arch", ARCHS)
def test_gradients_reach_only_lora_and_kept(arch, ids):
    model = adapted(arch)
    model.train()
    out = model(input_ids=ids).logits
    out.float().pow(2).mean().backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {n for n, _ in model.named_parameters() if ".lora_" in n}
    if HEAD[arch]:
        expected |= {n for n, _ in model.named_parameters() if n.startswith(HEAD[arch] + ".")}
    assert with_grad == trainable == expected
    assert all(model.get_parameter(n).grad.abs().sum() > 0 for n in expected if "lora_A" in n)


@pytest.mark.parametrize("arch", ARCHS)
def test_merge_and_unload_gives_plain_model(arch, ids):
    model = adapted(arch)
    out = logits(model, ids)
    plain = merge_and_unload(model)
    assert not lora_layers(plain)
    assert not any(".base_layer" in n for n, _ in plain.named_parameters())
    torch.testing.assert_close(logits(plain, ids), out, rtol=0, atol=1e-5)


# --- the paper's parameter counts -----------------------------------------------------------

PAPER_COUNTS = [  # (name, config, r, |Θ| from the paper's formula 2·L̂·d_model·r)
    ("roberta-base", lambda: T.RobertaModel(T.RobertaConfig()), 8, 294_912),
    (
        "roberta-large",
        lambda: T.RobertaModel(
            T.RobertaConfig(
                hidden_size=1024,
                num_hidden_layers=24,
                num_attention_heads=16,
                intermediate_size=4096,
            )
        ),
        8,
        786_432,
    ),
    (
        "gpt2-medium",
        lambda: T.GPT2LMHeadModel(T.GPT2Config(n_embd=1024, n_layer=24, n_head=16)),
        4,
        393_216,
    ),
]


@pytest.mark.parametrize("name,build,r,expected", PAPER_COUNTS, ids=[c[0] for c in PAPER_COUNTS])
def test_paper_parameter_counts(name, build, r, expected):
    with torch.device("meta"):  # shapes only: no memory, no weights
        model = build()
        report = apply_lora(model, r=r, alpha=r)  # targets=None: the paper's W_q, W_v
    cfg = model.config
    assert (
        report.lora == expected == lora_param_count(2 * cfg.num_hidden_layers, cfg.hidden_size, r)
    )
    assert report.kept == 0 and report.trainable == expected
    assert report.total == sum(p.numel() for p in model.parameters())


def test_report_counts_kept_head_separately():
    model = tiny_model("roberta")
    report = apply_lora(
        model, targets=["query", "value"], r=4, alpha=4, keep_trainable=["classifier"]
    )
    head = sum(p.numel() for p in model.classifier.parameters())
    assert report.kept == head and report.lora == lora_param_count(4, 32, 4)
    assert "LoRA" in str(report) and f"{report.total:,}" in str(report)


# --- errors that name the fix ---------------------------------------------------------------


@pytest.mark.parametrize("r", [0, -1, 2.5, True])
def test_bad_rank_rejected(r):
    with pytest.raises(ValueError, match="rank r must be a positive integer"):
        apply_lora(tiny_model("roberta"), r=r)


def test_rank_above_min_d_k_rejected_and_model_untouched():
    model = tiny_model("llama")  # v_proj is 16 × 32 (one key-value head)
    with pytest.raises(ValueError, match=r"r=17 exceeds min\(d, k\)=16 for a 16×32 weight"):
        apply_lora(model, targets=["q_proj", "v_proj"], r=17)
    assert not lora_layers(model)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("alpha", [0, -2.0, "8"])
def test_bad_alpha_rejected(alpha):
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        apply_lora(tiny_model("roberta"), r=4, alpha=alpha)


def test_unknown_target_lists_linear_layers():
    with pytest.raises(ValueError, match="No module matches target") as err:
        apply_lora(tiny_model("roberta"), targets=["q_proj"])
    msg = str(err.value)
    assert "['q_proj']" in msg and "query" in msg and "value" in msg and "dense" in msg


def test_target_that_is_not_linear_rejected():
    with pytest.raises(ValueError, match="RobertaAttention, not a linear layer"):
        apply_lora(tiny_model("roberta"), targets=[r"roberta\.encoder\.layer\.0\.attention"])


def test_unknown_keep_trainable_lists_top_modules():
    with pytest.raises(ValueError, match=r"keep_trainable \['score'\].*roberta, classifier"):
        apply_lora(tiny_model("roberta"), keep_trainable=["score"])


def test_applying_twice_rejected():
    model = tiny_model("bert")
    apply_lora(model)
    with pytest.raises(ValueError, match="already has LoRA layers"):
        apply_lora(model)


def test_no_paper_default_for_unknown_architecture():
    with pytest.raises(ValueError, match="No paper default targets.*pass targets"):
        apply_lora(nn.Sequential(nn.Linear(4, 4)))


def test_fused_must_name_a_target():
    with pytest.raises(ValueError, match="fused names"):
        apply_lora(tiny_model("gpt2"), targets=["c_attn"], fused={"c_proj": (True, True)})


def test_layer_argument_errors():
    with pytest.raises(TypeError, match="not Embedding"):
        LoRALayer(nn.Embedding(4, 4), r=1, alpha=1)
    with pytest.raises(ValueError, match="do not divide evenly"):
        LoRALayer(nn.Linear(4, 10), r=1, alpha=1, split=(True, False, True))
    with pytest.raises(ValueError, match="adapts no slice"):
        LoRALayer(nn.Linear(4, 9), r=1, alpha=1, split=(False, False, False))
    with pytest.raises(ValueError, match="init must be one of"):
        LoRALayer(nn.Linear(4, 4), r=1, alpha=1, init="zeros")
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        LoRALayer(nn.Linear(4, 4), r=1, alpha=1, dropout=1.0)


def test_deepcopy_keeps_lora(ids):
    model = adapted("gpt2")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        twin = copy.deepcopy(model)
    torch.testing.assert_close(logits(twin, ids), logits(model, ids), rtol=0, atol=0)
