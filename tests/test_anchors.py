"""Our layer against the two anchors: Hugging Face peft and Microsoft's loralib.

With the same A and B, the adapted models must give the same logits to 1e-6 (fp32).
"""

from __future__ import annotations

import copy

import loralib
import peft
import pytest
import torch
from conftest import ARCHS, HEAD, PAPER, logits, randomize_lora, tiny_model
from torch import nn

from lorabook import apply_lora, lora_layers
from lorabook.adapters import export_peft, import_peft

R, ALPHA = 4, 8
# peft cannot adapt only q and v inside GPT-2's fused c_attn, so the direct comparison with
# peft adapts the whole c_attn; the q,v split is compared with loralib's MergedLinear below
# and with peft through our exact rank-2r export (test_peft_round_trip).
PEFT_TARGETS = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "gpt2": ["c_attn"],
    "llama": ["q_proj", "v_proj"],
}


def peft_model(arch: str) -> nn.Module:
    cfg = peft.LoraConfig(
        r=R,
        lora_alpha=ALPHA,
        target_modules=PEFT_TARGETS[arch],
        fan_in_fan_out=arch == "gpt2",
        lora_dropout=0.0,
    )
    model = peft.get_peft_model(tiny_model(arch), cfg)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_same_logits_as_peft(arch, ids):
    theirs = peft_model(arch)
    ours = tiny_model(arch)
    apply_lora(ours, targets=PEFT_TARGETS[arch], r=R, alpha=ALPHA)
    peft_weights = dict(theirs.named_parameters())
    with torch.no_grad():
        for name, layer in lora_layers(ours).items():
            layer.lora_A.copy_(peft_weights[f"base_model.model.{name}.lora_A.default.weight"])
            layer.lora_B.copy_(peft_weights[f"base_model.model.{name}.lora_B.default.weight"])
    expected = logits(theirs, ids)
    assert not torch.allclose(expected, logits(tiny_model(arch), ids))
    torch.testing.assert_close(logits(ours, ids), expected, rtol=0, atol=1e-6)


def loralib_model(arch: str) -> nn.Module:
    """The tiny model with loralib's layers swapped in where the paper puts LoRA."""
    model = tiny_model(arch)
    names = [
        n
        for n, m in model.named_modules()
        if any(n.endswith("." + t) for t in PAPER[arch]["targets"])
    ]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        base = model.get_submodule(name)
        if arch == "gpt2":  # fused q,k,v: adapt q and v, as the paper's official code does
            layer = loralib.MergedLinear(
                base.nx,
                base.nf,
                r=R,
                lora_alpha=ALPHA,
                enable_lora=[True, False, True],
                fan_in_fan_out=True,
                merge_weights=False,
            )
        else:
            layer = loralib.Linear(
                base.in_features,
                base.out_features,
                r=R,
                lora_alpha=ALPHA,
                bias=base.bias is not None,
                merge_weights=False,
            )
        with torch.no_grad():
            layer.weight.copy_(base.weight)  # loralib also stores GPT-2's weight as (in, out)
            if base.bias is not None:
                layer.bias.copy_(base.bias)
            g = torch.Generator().manual_seed(len(name))
            layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=g) * 0.1)
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.1)
        setattr(model.get_submodule(parent_name), child, layer)
    return model.eval()


@pytest.mark.parametrize("arch", ARCHS)
def test_same_logits_as_loralib(arch, ids):
    theirs = loralib_model(arch)
    ours = tiny_model(arch)
    apply_lora(ours, r=R, alpha=ALPHA, **PAPER[arch])
    with torch.no_grad():
        for name, layer in lora_layers(ours).items():
            layer.lora_A.copy_(theirs.get_submodule(name).lora_A)
            layer.lora_B.copy_(theirs.get_submodule(name).lora_B)
    expected = logits(theirs, ids)
    assert not torch.allclose(expected, logits(tiny_model(arch), ids))
    torch.testing.assert_close(logits(ours, ids), expected, rtol=0, atol=1e-6)
    # and the merged weights agree with loralib's merge (its eval() merges in place)
    for name, layer in lora_layers(ours).items():
        theirs_layer = theirs.get_submodule(name)
        theirs_layer.merge_weights = True
        theirs_layer.eval()
        layer.merge()
        torch.testing.assert_close(layer.base_layer.weight, theirs_layer.weight, rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_peft_round_trip(arch, ids, tmp_path):
    """Export → peft loads it → same logits; peft saves it → we import it → same logits."""
    ours = tiny_model(arch)
    keep = [HEAD[arch]] if HEAD[arch] else []
    apply_lora(ours, r=R, alpha=ALPHA, keep_trainable=keep, **PAPER[arch])
    randomize_lora(ours)
    if keep:
        with torch.no_grad():
            for p in ours.get_submodule(keep[0]).parameters():
                p.add_(0.5)  # a trained head must travel too
    expected = logits(ours, ids)

    export_peft(ours, tmp_path / "ours")
    theirs = peft.PeftModel.from_pretrained(tiny_model(arch), tmp_path / "ours").eval()
    torch.testing.assert_close(logits(theirs, ids), expected, rtol=0, atol=1e-6)

    theirs.save_pretrained(tmp_path / "theirs")
    back = import_peft(tiny_model(arch), tmp_path / "theirs")
    torch.testing.assert_close(logits(back, ids), expected, rtol=0, atol=1e-6)
    trainable = {n.split(".lora_")[0] for n, p in back.named_parameters() if p.requires_grad}
    assert trainable >= set(lora_layers(back))


def test_peft_export_of_gpt2_split_is_block_structured(tmp_path):
    from safetensors.torch import load_file

    model = tiny_model("gpt2")
    apply_lora(model, r=R, alpha=ALPHA, **PAPER["gpt2"])
    randomize_lora(model)
    export_peft(model, tmp_path)
    b = load_file(tmp_path / "adapter_model.safetensors")[
        "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"
    ]
    d = model.config.n_embd
    assert b.shape == (3 * d, 2 * R)
    assert torch.count_nonzero(b[d : 2 * d]) == 0  # W_k gets no update
    assert torch.count_nonzero(b[:d, R:]) == 0 and torch.count_nonzero(b[2 * d :, :R]) == 0


def test_import_peft_rejects_what_it_cannot_represent(tmp_path):
    theirs = peft.get_peft_model(
        tiny_model("roberta"),
        peft.LoraConfig(r=R, lora_alpha=ALPHA, target_modules=["query"], use_dora=True),
    )
    theirs.save_pretrained(tmp_path / "dora")
    with pytest.raises(ValueError, match=r"uses \['use_dora'\]"):
        import_peft(tiny_model("roberta"), tmp_path / "dora")
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        import_peft(tiny_model("roberta"), tmp_path / "nothing-here")


def test_import_peft_refuses_other_base(tmp_path, ids):
    theirs = peft_model("roberta")
    theirs.save_pretrained(tmp_path)
    with pytest.raises(
        ValueError, match=r"\(4, 48\) in the file but \(4, 32\)|\(4, 32\) in the file but \(4, 48\)"
    ):
        import_peft(tiny_model("roberta", hidden=48), tmp_path)


def test_rslora_import_keeps_the_function(tmp_path, ids):
    cfg = peft.LoraConfig(r=R, lora_alpha=ALPHA, target_modules=["query", "value"], use_rslora=True)
    theirs = peft.get_peft_model(tiny_model("roberta"), cfg)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    theirs.eval().save_pretrained(tmp_path)
    ours = import_peft(copy.deepcopy(tiny_model("roberta")), tmp_path)
    torch.testing.assert_close(logits(ours, ids), logits(theirs, ids), rtol=0, atol=1e-6)
