"""The LoRA layer and its injection: the equation, the invariants, the paper's counts, errors."""

from __future__ import annotations

import copy
import re
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
    assert 0.95 * bound < k.lora_A.abs().max() <= bound  # 512 draws come near the bound
    assert abs(g.lora_A.std().item() - 1 / 8) < 0.008 and abs(g.lora_A.mean().item()) < 0.01


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


# --- properties a user relies on (found by mutation testing, docs/mutation.md) --------------


@pytest.mark.parametrize("arch", ARCHS)
def test_default_targets_are_the_papers(arch):
    """targets=None adapts exactly the layers (and GPT-2 slices) the paper adapts."""
    default, explicit = tiny_model(arch), tiny_model(arch)
    apply_lora(default, r=4)
    apply_lora(explicit, r=4, **PAPER[arch])
    ours = {n: m.split for n, m in lora_layers(default).items()}
    assert ours == {n: m.split for n, m in lora_layers(explicit).items()} and ours


def test_gpt2_default_adapts_q_and_v_never_k(ids):
    """The paper's GPT-2 setting: k's slice of c_attn never changes, in the output or merged."""
    model = tiny_model("gpt2")
    apply_lora(model, r=4, alpha=8)  # targets=None
    randomize_lora(model)
    d = model.config.n_embd
    x = torch.randn(3, d)
    for layer in lora_layers(model).values():
        assert layer.split == (True, False, True)
        update = layer(x) - layer.base_layer(x)
        assert update[:, d : 2 * d].abs().max() == 0
        assert update[:, :d].abs().max() > 0 and update[:, 2 * d :].abs().max() > 0
        w0 = layer.base_layer.weight.detach().clone()  # Conv1D: (in, out), columns q | k | v
        layer.merge()
        moved = (layer.base_layer.weight - w0).abs().amax(dim=0)
        assert moved[d : 2 * d].max() == 0 and moved[:d].min() > 0 and moved[2 * d :].min() > 0


def test_lora_on_a_bf16_base_is_bf16_and_trains(ids):
    """A and B take the base's dtype, so a bf16 model runs and its B moves in one step."""
    model = tiny_model("llama").to(torch.bfloat16)
    apply_lora(model, r=4, alpha=8, **PAPER["llama"])
    for layer in lora_layers(model).values():
        assert layer.lora_A.dtype == layer.lora_B.dtype == torch.bfloat16
    model.train()
    out = model(input_ids=ids, labels=ids)
    assert out.logits.dtype == torch.bfloat16 and torch.isfinite(out.loss)
    loss = out.loss
    loss.backward()
    b = [m.lora_B for m in lora_layers(model).values()]
    torch.optim.SGD(b, lr=1.0).step()
    assert all(p.abs().max() > 0 for p in b)


def test_rank_limit_is_per_slice_of_a_fused_layer():
    """q, k, v each is d × k: a rank above d/3 is refused for a split layer, not for a whole one."""
    base = Conv1D(3 * 8, 16)  # d = 24 outputs (8 per slice), k = 16 inputs
    LoRALayer(base, r=9, alpha=9)  # whole layer: min(24, 16) = 16
    with pytest.raises(ValueError, match=r"r=9 exceeds min\(d, k\)=8 for a 8×16 weight"):
        LoRALayer(Conv1D(3 * 8, 16), r=9, alpha=9, split=(True, False, True))
    LoRALayer(Conv1D(3 * 8, 16), r=8, alpha=8, split=(True, False, True))  # r = d_slice: allowed
    LoRALayer(Conv1D(3 * 8, 16), r=9, alpha=9, split=(True, False, True), check_rank=False)


def test_argument_boundaries():
    LoRALayer(nn.Linear(4, 4), r=4, alpha=1, dropout=0.0)  # r = min(d, k), no dropout: fine
    LoRALayer(nn.Linear(4, 4), r=1, alpha=0.5)  # a float alpha
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        LoRALayer(nn.Linear(4, 4), r=1, alpha=True)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got -0.1"):
        LoRALayer(nn.Linear(4, 4), r=1, alpha=1, dropout=-0.1)


def test_layer_settings_are_what_was_asked_and_shown_in_repr():
    layer = LoRALayer(Conv1D(3 * 8, 8), r=2, alpha=6, dropout=0.25, split=[1, 0, 1])
    assert (layer.r, layer.alpha, layer.scaling, layer.split) == (2, 6.0, 3.0, (True, False, True))
    assert isinstance(layer.dropout, nn.Dropout) and layer.dropout.p == 0.25
    assert repr(layer).startswith(
        "LoRALayer(\n  r=2, alpha=6, init=kaiming, split=(True, False, True)"
    )
    assert not any(p.requires_grad for p in layer.base_layer.parameters())  # W0 is frozen
    assert layer.lora_A.requires_grad and layer.lora_B.requires_grad
    plain = LoRALayer(nn.Linear(4, 4), r=1, alpha=1)
    assert isinstance(plain.dropout, nn.Identity)
    assert "r=1, alpha=1, init=kaiming, merged=False" in repr(plain)


SPLITS = [(True,), (True, False), (False, True), (True, True), (False, True, True)]


@pytest.mark.parametrize("split", SPLITS, ids=lambda s: "".join("TF"[not x] for x in s))
def test_update_is_scaled_b_i_a_i_on_each_adapted_slice_and_zero_elsewhere(split):
    """ΔW stacks (α/r)·B_i A_i on the adapted slices, zeros on the others; the forward
    update (never forming ΔW) is x ΔWᵀ, and merging adds exactly ΔW."""
    torch.manual_seed(0)
    d_slice, k, r = 4, 5, 2
    layer = LoRALayer(nn.Linear(k, len(split) * d_slice), r=r, alpha=6, split=split)
    nn.init.normal_(layer.lora_B)
    n = sum(split)
    a, b = layer.lora_A.view(n, r, k), layer.lora_B.view(n, d_slice, r)
    blocks, i = [], 0
    for adapted in split:
        blocks.append(3.0 * b[i] @ a[i] if adapted else torch.zeros(d_slice, k))
        i += adapted
    expected = torch.cat(blocks)
    torch.testing.assert_close(layer.delta_weight(), expected, rtol=0, atol=1e-6)
    x = torch.randn(7, k)
    torch.testing.assert_close(layer.lora_forward(x), x @ expected.T, rtol=0, atol=1e-5)
    w0 = layer.base_layer.weight.detach().clone()
    layer.merge()
    torch.testing.assert_close(layer.base_layer.weight, w0 + expected, rtol=0, atol=1e-6)


def test_defaults():
    """apply_lora: r = alpha = 8 (scale 1), no dropout, kaiming A; a layer adapts all of its
    output and refuses a rank above min(d, k) unless told otherwise."""
    from lorabook.inject import add_lora
    from lorabook.layers import check_hyperparameters, check_lora_arguments

    model = tiny_model("bert")
    apply_lora(model)
    for layer in lora_layers(model).values():
        assert (layer.r, layer.alpha, layer.init, layer.split) == (8, 8.0, "kaiming", (True,))
        assert isinstance(layer.dropout, nn.Identity)
    layer = LoRALayer(nn.Linear(8, 8), r=2, alpha=2)
    assert (layer.init, layer.split, type(layer.dropout)) == ("kaiming", (True,), nn.Identity)
    assert check_lora_arguments(nn.Linear(8, 8), 2, 2) == (True,)
    check_hyperparameters(99, 1.0)  # no shape given: no rank limit
    with pytest.raises(ValueError, match="exceeds min"):
        LoRALayer(nn.Linear(8, 8), r=9, alpha=9)
    with pytest.raises(ValueError, match="exceeds min"):
        check_lora_arguments(nn.Linear(8, 8), 9, 9)
    net = nn.Sequential(nn.Linear(8, 8))
    added = add_lora(net, "0", r=2, alpha=2)
    assert net[0] is added and (added.init, added.split) == ("kaiming", (True,))
    assert isinstance(added.dropout, nn.Identity)
    with pytest.raises(ValueError, match="exceeds min"):
        add_lora(nn.Sequential(nn.Linear(8, 8)), "0", r=9, alpha=9)


def test_apply_lora_passes_every_setting_to_every_layer():
    model = tiny_model("roberta")
    report = apply_lora(
        model, targets=["query", "value"], r=2, alpha=3, dropout=0.1, init="gaussian"
    )
    layers = lora_layers(model)
    assert len(layers) == 4 and report.lora == sum(
        m.lora_A.numel() + m.lora_B.numel() for m in layers.values()
    )
    for layer in layers.values():
        assert (layer.r, layer.alpha, layer.init, layer.dropout.p) == (2, 3.0, "gaussian", 0.1)
    assert model.lora_kept_modules == []


def test_targets_match_by_name_suffix_or_regex_never_by_substring():
    from lorabook.inject import linear_module_names, name_matches

    assert name_matches("encoder.layer.0.attention.self.query", "query")
    assert name_matches("query", "query")
    assert name_matches("encoder.layer.0.attention.self.query", r".*layer\.0.*query")
    assert not name_matches("encoder.layer.0.attention.self.query", "uery")
    assert not name_matches("encoder.layer.0.attention.self.query", "layer.0")
    assert not name_matches("x.query", "[")  # an invalid regex matches nothing
    model = tiny_model("roberta")
    apply_lora(model, targets=[r"roberta\.encoder\.layer\.1\..*\.value"], r=2)
    assert list(lora_layers(model)) == ["roberta.encoder.layer.1.attention.self.value"]
    names = linear_module_names(model)  # what is left to adapt: not the wrapped base
    assert "roberta.encoder.layer.1.attention.self.query" in names
    assert "roberta.encoder.layer.0.attention.self.value" in names
    assert not any(n.startswith("roberta.encoder.layer.1.attention.self.value") for n in names)


def test_keep_trainable_accepts_patterns_and_records_the_modules():
    model = tiny_model("roberta")
    report = apply_lora(model, r=2, keep_trainable=[r"classifier\.(dense|out_proj)"])
    assert model.lora_kept_modules == ["classifier.dense", "classifier.out_proj"]
    assert report.kept == sum(p.numel() for p in model.classifier.parameters())


def test_param_report_text_and_percentages():
    from lorabook.inject import ParamReport

    report = ParamReport(lora=10, kept=5, total=1000)
    assert report.trainable == 15 and report.lora_percent == 1.0
    assert str(report) == (
        "LoRA 10 + kept 5 = 15 trainable of 1,000 parameters (LoRA 1.000%, all trainable 1.500%)"
    )
    assert ParamReport(0, 0, 0).lora_percent == 0.0


def test_no_tied_weights_reported_for_untied_layers():
    from lorabook.inject import tied_lora_weights

    model = tiny_model("gpt2")
    apply_lora(model, targets=["lm_head", "c_attn"], r=2)
    assert tied_lora_weights(model) == {"lm_head": ["transformer.wte.weight"]}


def test_merge_and_unload_of_a_merged_model_adds_the_update_once(ids):
    model = adapted("llama")
    out = logits(model, ids)
    merge_lora(model)
    plain = merge_and_unload(model)
    torch.testing.assert_close(logits(plain, ids), out, rtol=0, atol=1e-5)


def test_merge_and_unload_unties_when_asked(ids):
    model = tiny_model("gpt2")
    apply_lora(model, targets=["lm_head"], r=4)
    randomize_lora(model)
    out = logits(model, ids)
    embedding = model.transformer.wte.weight.detach().clone()
    untied = r"lm_head\.base_layer\.weight is also \['transformer\.wte\.weight'\]"
    with pytest.warns(UserWarning, match=untied + r"; config\.tie_word_embeddings is now False$"):
        plain = merge_and_unload(model, untie=True)
    assert not lora_layers(plain) and model.config.tie_word_embeddings is False
    assert torch.equal(plain.transformer.wte.weight, embedding)
    assert plain.lm_head.weight.data_ptr() != plain.transformer.wte.weight.data_ptr()
    assert not plain.lm_head.weight.requires_grad  # the untied copy is frozen like W0
    torch.testing.assert_close(logits(plain, ids), out, rtol=0, atol=1e-5)


def test_target_errors_describe_the_linear_layers():
    with pytest.raises(ValueError) as err:
        apply_lora(tiny_model("roberta"), targets=["q_proj"])
    assert str(err.value).endswith(
        "Linear layers by short name: dense, key, out_proj, query, value "
        "(e.g. 'roberta.encoder.layer.0.attention.self.query')."
    )
    with pytest.raises(ValueError, match=r"short name: c_attn, c_fc, c_proj, lm_head \(e.g."):
        apply_lora(tiny_model("gpt2"), targets=["q_proj"])  # lm_head: a top-level name
    no_linear = nn.Sequential(nn.Embedding(4, 4))
    with pytest.raises(ValueError, match="This model has no nn.Linear or Conv1D layers"):
        apply_lora(no_linear, targets=["0"])
    with pytest.raises(ValueError, match=r"model_type=None \(known: roberta, bert, .*llama\)"):
        apply_lora(no_linear)


def test_a_and_b_live_on_the_base_device():
    layer = LoRALayer(nn.Linear(4, 6, device="meta"), r=2, alpha=2)
    assert layer.lora_A.device.type == layer.lora_B.device.type == "meta"


@pytest.mark.parametrize(
    "frozen,percent",
    [((), "100.000%"), (("bias",), "75.000%"), (("weight", "bias"), "0.000%")],
)
def test_report_all_trainable_percent_is_of_every_parameter(frozen, percent):
    """trainable / total, whatever the model's size: one parameter included."""
    from lorabook import parameter_report

    four = nn.Linear(3, 1)  # 3 weights + 1 bias
    for name in frozen:
        getattr(four, name).requires_grad_(False)
    assert str(parameter_report(four)).endswith(f"all trainable {percent})")
    one = nn.Linear(1, 1, bias=False)
    one.weight.requires_grad_(not frozen)
    assert str(parameter_report(one)).endswith(
        f"of 1 parameters (LoRA 0.000%, all trainable {'0' if frozen else '100'}.000%)"
    )


@pytest.mark.parametrize(
    "build,kwargs,tail",
    [
        (
            lambda: tiny_model("roberta"),
            {"keep_trainable": ["score"]},
            "keep_trainable ['score']. Top-level modules: roberta, classifier.",
        ),
        (
            lambda: nn.Sequential(nn.Embedding(4, 4)),
            {"targets": ["q_proj"]},
            "No module matches target ['q_proj']. This model has no nn.Linear or Conv1D layers.",
        ),
        (
            lambda: nn.Sequential(nn.Linear(4, 4)),
            {},
            "; pass targets=[...]. Linear layers by short name: 0 (e.g. '0').",
        ),
    ],
    ids=["keep_trainable", "no_linear", "no_default"],
)
def test_target_errors_end_with_what_the_model_offers(build, kwargs, tail):
    """The fix ends the message: the modules one can name, or that there are none."""
    with pytest.raises(ValueError, match=re.escape(tail) + "$"):
        apply_lora(build(), **kwargs)


class TwoTied(nn.Module):
    """Two linear layers sharing one weight, and no ``config``: not a transformers model."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False)
        self.b.weight = self.a.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x)))


TIED_TWICE = (
    "a.base_layer.weight is also ['b.base_layer.weight']; "
    "b.base_layer.weight is also ['a.base_layer.weight']"
)


def test_merging_refuses_each_tied_weight_by_name():
    model = TwoTied()
    apply_lora(model, targets=["a", "b"], r=2)
    with pytest.raises(ValueError, match=re.escape(f"tied weights: {TIED_TWICE}. Keep")):
        merge_lora(model)


def test_a_model_without_config_is_untied_and_merged():
    model = TwoTied()
    apply_lora(model, targets=["a", "b"], r=2)
    randomize_lora(model)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
    with pytest.warns(UserWarning, match=re.escape(f"Untied before merging: {TIED_TWICE}") + "$"):
        plain = merge_and_unload(model, untie=True)
    assert not lora_layers(plain) and plain.a.weight is not plain.b.weight
    with torch.no_grad():
        torch.testing.assert_close(plain(x), out, rtol=0, atol=1e-6)
