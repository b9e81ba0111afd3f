"""Table 3's E2E baselines on causal LMs (GPT-2, Llama): what trains, the starting point,
decoding with a prefix, the counts for GPT-2 medium, and whole tiny runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import transformers as T
from conftest import SEQ, VOCAB, logits, tiny_model
from safetensors.torch import load_file
from torch import nn
from transformers.pytorch_utils import Conv1D

from lorabook.e2e.experiment import run_e2e
from lorabook.e2e.presets import E2EPreset, e2e_preset
from lorabook.methods import (
    CAUSAL_LM_METHODS,
    Adapter,
    adapter_layers,
    adapter_param_count,
    prefix_param_count,
    prepare_causal_lm,
    prepare_model,
)

CAUSAL = ("gpt2", "llama")
ADAPTER_SIZE, PREFIX_LENGTH = 5, 3

# What each method trains, as a full-match pattern on parameter names, by architecture.
TRAINS = {
    "gpt2": {
        "ft": r".*",
        "ft_top2": r"transformer\.h\.[01]\..*",  # two blocks: both are the top 2
        "adapter_h": r".*\.(attn|mlp)\.c_proj\.(down|up)\.(weight|bias)",
        "adapter_l": r".*\.mlp\.c_proj\.(norm|down|up)\.(weight|bias)",
        "prefix": r"prompt_encoder\.default\.embedding\.weight",
        "lora": r".*\.c_attn\.lora_[AB]",
    },
    "llama": {
        "ft": r".*",
        "ft_top2": r"model\.layers\.[01]\..*",
        "adapter_h": r".*\.(self_attn\.o_proj|mlp\.down_proj)\.(down|up)\.(weight|bias)",
        "adapter_l": r".*\.mlp\.down_proj\.(norm|down|up)\.(weight|bias)",
        "prefix": r"prompt_encoder\.default\.embedding\.weight",
        "lora": r".*\.(q_proj|v_proj)\.lora_[AB]",
    },
}


def prepared(arch: str, method: str, **kw) -> tuple[nn.Module, object]:
    kw = {"lora_r": 4, "adapter_size": ADAPTER_SIZE, "prefix_length": PREFIX_LENGTH, **kw}
    return prepare_causal_lm(tiny_model(arch), method, **kw)


def train_a_little(model: nn.Module, steps: int = 3) -> set[str]:
    """AdamW (lr 1e-2, no weight decay) on random next-token data; return the parameters that
    got a non-zero gradient. Every parameter goes to the optimizer."""
    g = torch.Generator().manual_seed(1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    got_grad: set[str] = set()
    model.train()
    for _ in range(steps):
        ids = torch.randint(2, VOCAB, (4, SEQ), generator=g)
        model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss.backward()
        got_grad |= {n for n, p in model.named_parameters() if p.grad is not None and p.grad.any()}
        opt.step()
        opt.zero_grad(set_to_none=True)
    return got_grad


@pytest.mark.parametrize("arch", CAUSAL)
@pytest.mark.parametrize("method", CAUSAL_LM_METHODS)
def test_exactly_the_intended_parameters_change(arch, method):
    model, report = prepared(arch, method)
    intended = {n for n, _ in model.named_parameters() if re.fullmatch(TRAINS[arch][method], n)}
    assert intended and {n for n, p in model.named_parameters() if p.requires_grad} == intended
    params = dict(model.named_parameters())
    assert report.trainable == sum(params[n].numel() for n in intended) and report.head == 0
    assert report.total == sum(p.numel() for p in params.values())

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    got_grad = train_a_little(model)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert got_grad <= intended, f"frozen parameters got gradients: {got_grad - intended}"
    # adapters' down and LayerNorm get a zero gradient while up = 0: they move from step 2
    assert changed == got_grad == intended, f"unchanged: {sorted(intended - changed)}"


@pytest.mark.parametrize("arch", CAUSAL)
@pytest.mark.parametrize("method", [m for m in CAUSAL_LM_METHODS if m != "prefix"])
def test_prepared_model_starts_as_the_base_model(arch, method, ids):
    reference = logits(tiny_model(arch), ids)
    model, _ = prepared(arch, method)
    assert torch.equal(logits(model.eval(), ids), reference)


@pytest.mark.parametrize("arch", CAUSAL)
@pytest.mark.parametrize("method", ["adapter_h", "adapter_l"])
def test_adapter_sites_and_an_up_projection_on_the_path(arch, method, ids):
    model, report = prepared(arch, method)
    sites = sorted(adapter_layers(model))
    blocks = "transformer.h" if arch == "gpt2" else "model.layers"
    attention = "attn.c_proj" if arch == "gpt2" else "self_attn.o_proj"
    ffn = "mlp.c_proj" if arch == "gpt2" else "mlp.down_proj"
    expected = [f"{blocks}.{i}.{ffn}" for i in range(2)]
    if method == "adapter_h":
        expected += [f"{blocks}.{i}.{attention}" for i in range(2)]
    assert sites == sorted(expected)
    d = 32
    layer_norm = method == "adapter_l"
    assert report.trainable == adapter_param_count(len(sites), d, ADAPTER_SIZE, layer_norm)
    assert all((a.norm is not None) == layer_norm for a in adapter_layers(model).values())
    reference = logits(model.eval(), ids)
    with torch.no_grad():
        for adapter in adapter_layers(model).values():
            adapter.up.weight.normal_(std=0.5)
    assert not torch.allclose(logits(model, ids), reference)


def test_adapter_l_computes_layernorm_relu_bottleneck_on_a_conv1d():
    torch.manual_seed(0)
    base = Conv1D(6, 10)  # nx = 10 in, nf = 6 out: weight (10, 6)
    adapter = Adapter(base, 3, activation="relu", layer_norm=True)
    x = torch.randn(2, 4, 10)
    assert torch.equal(adapter(x), base(x))  # up = 0: exactly the base layer
    assert not any(p.requires_grad for p in base.parameters())
    with torch.no_grad():
        for p in (adapter.up.weight, adapter.up.bias, adapter.norm.weight, adapter.norm.bias):
            p.normal_()
    y = base(x)
    h = nn.functional.layer_norm(y, (6,), adapter.norm.weight, adapter.norm.bias, eps=1e-5)
    expected = y + adapter.up(torch.relu(adapter.down(h)))
    torch.testing.assert_close(adapter(x), expected)
    assert sum(p.numel() for p in adapter.adapter_parameters()) == adapter_param_count(
        1, 6, 3, layer_norm=True
    )


# --- prefix ---------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", CAUSAL)
def test_prefix_count_is_two_layers_kv_width_length(arch):
    model, report = prepared(arch, "prefix")
    base = tiny_model(arch)
    # GPT-2: d_kv = 32; the tiny Llama has one key/value head of 16 (grouped-query attention)
    d_kv = 32 if arch == "gpt2" else 16
    assert report.trainable == 2 * 2 * d_kv * PREFIX_LENGTH == prefix_param_count(base, 3)
    assert report.total == sum(p.numel() for p in base.parameters()) + report.trainable


def test_prefix_tuning_raises_no_library_warning():
    """peft's wrapper reads transformers' deprecated ``is_gradient_checkpointing``: the
    FutureWarning, with the library's path, stays out of the run's log and the book."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared("llama", "prefix")
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], caught


@pytest.mark.parametrize("arch", CAUSAL)
def test_prefix_is_used_by_batched_left_padded_beam_search(arch):
    """peft's generate with left padding, attention mask and beams: one prompt at a time and
    a batch decode the same tokens, and the (trained-looking) prefix changes them."""
    model, _ = prepared(arch, "prefix")
    with torch.no_grad():
        model.prompt_encoder.default.embedding.weight.normal_(std=2.0)
    model.eval()
    prompts = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14]]
    width = max(map(len, prompts))
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :], mask[row, width - len(p) :] = torch.tensor(p), 1
    kw = dict(
        num_beams=3,
        max_new_tokens=6,
        no_repeat_ngram_size=4,
        length_penalty=0.9,
        early_stopping=False,
        do_sample=False,
        eos_token_id=0,
        pad_token_id=0,
    )

    def until_eos(tokens: torch.Tensor) -> list[int]:
        tokens = tokens.tolist()
        return tokens[: tokens.index(0)] if 0 in tokens else tokens

    def alone(m, p):
        one = torch.tensor([p])
        out = m.generate(input_ids=one, attention_mask=torch.ones_like(one), **kw)
        return until_eos(out[0, len(p) :])

    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, **kw)
        batched = [until_eos(out[row, width:]) for row in range(len(prompts))]
        assert batched == [alone(model, p) for p in prompts]
        assert any(batched)
        base = tiny_model(arch)
        assert batched != [alone(base, p) for p in prompts]


@pytest.mark.parametrize("arch", CAUSAL)
def test_a_prefix_started_from_real_words_is_those_words_before_the_input(arch):
    """Li & Liang's start: the prefix holds the model's own keys and values of real tokens,
    so the prefixed model's next-token logits on x are the plain model's on (words, x)."""
    words, x = [21, 22, 23], torch.tensor([[5, 6, 7, 8, 9]])
    model, _ = prepared(arch, "prefix", prefix_init_ids=words)
    base = tiny_model(arch)
    with torch.no_grad():
        ours = model(input_ids=x, attention_mask=torch.ones_like(x)).logits
        theirs = base(input_ids=torch.cat([torch.tensor([words]), x], 1)).logits[:, len(words) :]
        random_start = prepared(arch, "prefix")[0](input_ids=x).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(random_start, theirs, atol=1e-3)


def test_prefix_words_repeat_to_the_length_and_a_wrong_count_names_the_helper(tokenizer):
    from lorabook.methods import prefix_token_ids

    once = tokenizer("Describe", add_special_tokens=False)["input_ids"]
    ids = prefix_token_ids(tokenizer, "Describe", len(once) * 2 + 1)
    assert ids == once * 2 + once[:1]
    assert prefix_token_ids(tokenizer, "Describe the food.", 1) == once[:1]
    with pytest.raises(ValueError, match="no tokens"):
        prefix_token_ids(tokenizer, "", 3)
    with pytest.raises(ValueError, match="prefix_token_ids"):
        prepared("gpt2", "prefix", prefix_init_ids=[1, 2])


# --- counts at GPT-2 medium's shape ---------------------------------------------------------

GPT2_MEDIUM = {"n_embd": 1024, "n_layer": 24, "n_head": 16}
# Table 3, GPT-2 M, "# Trainable Parameters"
PAPER_GPT2_M = {
    "ft": "354.92M",
    "adapter_l m=6": "0.37M",
    "adapter_l m=224": "11.09M",
    "adapter_h m=112": "11.09M",
    "ft_top2": "25.19M",
    "prefix l_p=7": "0.35M",
    "prefix l_p=8": "0.35M",
    "lora": "0.35M",
}


def test_gpt2_medium_counts_match_the_formulas_and_table_3():
    L, d = 24, 1024
    expected = {
        "ft": 354_823_168,  # the paper prints 354.92M: 0.1M more, not explained here
        "adapter_l m=6": L * (2 * d * 6 + 6 + d + 2 * d),  # 368,784: 0.37M
        "adapter_l m=224": L * (2 * d * 224 + 224 + d + 2 * d),  # 11,089,152: 11.09M
        "adapter_h m=112": 2 * L * (2 * d * 112 + 112 + d),  # 11,064,576: 11.06M, not 11.09M
        "ft_top2": 2 * (3 * d * d + 3 * d + d * d + d + 2 * 4 * d * d + 4 * d + d + 4 * d),
        "prefix l_p=7": 2 * L * d * 7,  # 344,064
        "prefix l_p=8": 2 * L * d * 8,  # 393,216
        "lora": 2 * L * d * 4 * 2,  # r = 4 on W_q and W_v: 393,216
    }
    assert expected["ft_top2"] == 25_192_448  # the paper's 25.19M, exactly
    got = {}
    for key in expected:
        method, _, setting = key.partition(" ")
        kw = {}
        if setting.startswith("m="):
            kw["adapter_size"] = int(setting[2:])
        if setting.startswith("l_p="):
            kw["prefix_length"] = int(setting[4:])
        with torch.device("meta"):
            model = T.GPT2LMHeadModel(T.GPT2Config(**GPT2_MEDIUM))
        _, report = prepare_causal_lm(model, method, **kw)
        got[key] = report.trainable
    print("\nGPT-2 medium: ours vs. Table 3")
    for key, n in got.items():
        print(f"  {key:<16} {n:>12,}  ({n / 1e6:6.2f}M)  paper: {PAPER_GPT2_M[key]}")
    assert got == expected


# --- errors ---------------------------------------------------------------------------------


def test_prefix_through_prepare_model_points_to_prepare_causal_lm():
    with pytest.raises(ValueError, match="Unknown method 'prefix'.*use prepare_causal_lm"):
        prepare_model(tiny_model("gpt2"), "prefix", head=[])


def test_prefix_needs_a_causal_lm_and_a_positive_length():
    with pytest.raises(ValueError, match="prefix: needs a causal LM.*BertForSequence"):
        prepare_causal_lm(tiny_model("bert"), "prefix")
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="prefix_length must be a positive integer"):
            prepare_causal_lm(tiny_model("gpt2"), "prefix", prefix_length=bad)


@pytest.mark.parametrize("first", ["prefix", "adapter_l", "lora"])
def test_prepare_causal_lm_twice_is_refused(first):
    model, _ = prepared("gpt2", first)
    with pytest.raises(ValueError, match="already has"):
        prepare_causal_lm(model, "prefix")
    with pytest.raises(ValueError, match="already has"):
        prepare_causal_lm(model, "adapter_h")


def test_adapters_on_an_unknown_model_type_list_known_types_and_linear_layers():
    cfg = T.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=37)
    with pytest.raises(ValueError, match=r"model_type='distilbert'.*gpt2, llama.*lin2, out_lin"):
        prepare_model(T.DistilBertForSequenceClassification(cfg), "adapter_l", head=[])


# --- presets and whole runs -------------------------------------------------------------------


def test_prefix_length_setting_keeps_earlier_run_hashes():
    cpu = e2e_preset("cpu", "lora")
    assert "prefix_length" not in cpu.to_dict()  # the default: records keep their names
    assert cpu.with_overrides(prefix_length=10).to_dict()["prefix_length"] == 10
    with pytest.raises(ValueError, match="prefix_length must be at least 1"):
        cpu.with_overrides(prefix_length=0)
    with pytest.raises(ValueError, match="No E2E learning rate for method 'bitfit'"):
        e2e_preset("cpu", "bitfit")
    assert all(e2e_preset(p, m) for p in ("paper", "cpu") for m in CAUSAL_LM_METHODS)
    assert isinstance(cpu, E2EPreset)


@pytest.mark.parametrize("method", ["adapter_l", "prefix"])
def test_run_e2e_with_adapter_l_and_prefix(method, model_folder, small_data, tmp_path):
    record = run_e2e(
        method,
        model=str(model_folder),
        preset="smoke",
        data_dir=small_data,
        results_dir=tmp_path,
        overrides={"adapter_size": 4, "prefix_length": 2},
        progress=False,
        score=False,
        log=lambda s: None,
    )
    d, layers = 32, 2
    expected = (
        adapter_param_count(layers, d, 4, layer_norm=True)
        if method == "adapter_l"
        else 2 * layers * d * 2
    )
    assert record["params"]["trainable"] == expected
    assert record["settings"]["adapter_size"] == 4 and record["settings"]["prefix_length"] == 2
    assert record["epochs"] and record["data"]["optimizer_steps"] > 0
    out_dir = Path(next((tmp_path / "e2e" / "smoke").rglob("*.json"))).with_suffix("")
    outputs = (out_dir / "outputs.txt").read_text(encoding="utf-8").splitlines()
    assert len(outputs) == record["data"]["test_mrs"] == 6
    tensors = load_file(out_dir / "trainable.safetensors")
    assert sum(t.numel() for t in tensors.values()) == expected
    if method == "prefix":
        assert list(tensors) == ["prompt_encoder.default.embedding.weight"]


def test_a_run_starts_its_prefix_from_the_presets_words(model_folder, small_data, monkeypatch):
    """``prefix_init`` reaches the method as the text's token ids, cut to l_p; "random" (the
    default, and every other method's) passes none. ``full`` starts PreLayer from words."""
    from lorabook.e2e import experiment
    from lorabook.e2e.presets import PREFIX_INIT

    seen = {}

    def spy(net, method, **kw):
        seen[method] = kw["prefix_init_ids"]
        raise WouldTrain

    monkeypatch.setattr(experiment, "prepare_causal_lm", spy)
    for method, init in (("prefix", "the food is good"), ("prefix", "random"), ("lora", None)):
        overrides = {"prefix_length": 3} | ({"prefix_init": init} if init else {})
        with pytest.raises(WouldTrain):
            run_e2e(
                method,
                model=str(model_folder),
                preset="smoke",
                data_dir=small_data,
                results_dir=small_data / "runs",
                overrides=overrides,
                progress=False,
                score=False,
                log=lambda s: None,
            )
        if init == "the food is good":
            assert len(seen.pop("prefix")) == 3
    tokenizer = T.AutoTokenizer.from_pretrained(model_folder)
    assert len(tokenizer("the food is good", add_special_tokens=False)["input_ids"]) != 3
    assert seen == {"prefix": None, "lora": None}
    assert e2e_preset("full", "prefix").prefix_init == PREFIX_INIT
    assert e2e_preset("paper", "prefix").prefix_init == PREFIX_INIT
    assert "prefix_init" not in e2e_preset("full", "lora").to_dict()


class WouldTrain(Exception):
    """Raised by a stand-in for prepare_causal_lm: the run got as far as the method."""
