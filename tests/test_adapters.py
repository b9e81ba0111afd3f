"""lorabook's own adapter files: only trained tensors, tied to the base they were made for."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import ARCHS, HEAD, PAPER, logits, randomize_lora, tiny_model
from safetensors.torch import load_file

from lorabook import apply_lora, lora_layers
from lorabook.adapters import (
    CONFIG,
    WEIGHTS,
    AdapterMismatchError,
    export_peft,
    load_adapter,
    save_adapter,
)


def trained(arch: str, **kw):
    model = tiny_model(arch, **kw)
    keep = [HEAD[arch]] if HEAD[arch] else []
    apply_lora(model, r=4, alpha=8, keep_trainable=keep, **PAPER[arch])
    randomize_lora(model)
    return model


@pytest.mark.parametrize("arch", ARCHS)
def test_round_trip_into_fresh_base(arch, ids, tmp_path):
    model = trained(arch)
    if HEAD[arch]:
        with torch.no_grad():
            for p in model.get_submodule(HEAD[arch]).parameters():
                p.add_(0.5)  # a trained head must travel with the adapter
    save_adapter(model, tmp_path)
    loaded = load_adapter(tiny_model(arch), tmp_path)
    assert torch.equal(logits(loaded, ids), logits(model, ids))
    assert {n for n, p in loaded.named_parameters() if p.requires_grad} == {
        n for n, p in model.named_parameters() if p.requires_grad
    }


def test_file_holds_only_lora_and_kept_tensors(tmp_path):
    model = trained("roberta")
    save_adapter(model, tmp_path)
    tensors = load_file(tmp_path / WEIGHTS)
    assert all(k.endswith((".lora_A", ".lora_B")) or k.startswith("classifier.") for k in tensors)
    n_saved = sum(t.numel() for t in tensors.values())
    assert n_saved == sum(p.numel() for p in model.parameters() if p.requires_grad)
    config = json.loads((tmp_path / CONFIG).read_text())
    assert config["layers"]["roberta.encoder.layer.0.attention.self.query"]["r"] == 4
    assert config["base"]["architecture"] == "RobertaForSequenceClassification"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CONFIG, WEIGHTS])  # no temp files


def test_load_into_loaded_lora_model_overwrites_weights(ids, tmp_path):
    model = trained("gpt2")
    save_adapter(model, tmp_path)
    other = tiny_model("gpt2")
    apply_lora(other, r=4, alpha=8, **PAPER["gpt2"])  # same layers, B = 0
    load_adapter(other, tmp_path)
    assert torch.equal(logits(other, ids), logits(model, ids))


def test_refuses_base_with_other_shapes_naming_both(tmp_path):
    save_adapter(trained("roberta"), tmp_path)
    with pytest.raises(AdapterMismatchError, match=r"is \(99, 32\) there but \(99, 48\) here"):
        load_adapter(tiny_model("roberta", hidden=48), tmp_path)


def test_refuses_head_with_other_label_count(tmp_path):
    save_adapter(trained("roberta", num_labels=3), tmp_path)
    with pytest.raises(
        AdapterMismatchError,
        match=r"'classifier.out_proj.weight' is \(3, 32\) there but \(2, 32\) here",
    ):
        load_adapter(tiny_model("roberta", num_labels=2), tmp_path)


def test_refuses_other_architecture(tmp_path):
    save_adapter(trained("bert"), tmp_path)
    with pytest.raises(
        AdapterMismatchError,
        match="saved for a BertForSequenceClassification, not a RobertaForSequenceClassification",
    ):
        load_adapter(tiny_model("roberta"), tmp_path)


def test_refuses_model_with_other_lora_layers(tmp_path):
    save_adapter(trained("roberta"), tmp_path)
    model = tiny_model("roberta")
    apply_lora(model, targets=["key"], r=4)
    with pytest.raises(AdapterMismatchError, match="load into the plain base model"):
        load_adapter(model, tmp_path)


def test_save_without_lora_and_load_missing_are_clear(tmp_path):
    with pytest.raises(ValueError, match="no LoRA layers: call lorabook.apply_lora first"):
        save_adapter(tiny_model("roberta"), tmp_path)
    with pytest.raises(ValueError, match="no LoRA layers"):
        export_peft(tiny_model("roberta"), tmp_path)
    with pytest.raises(FileNotFoundError, match=f"No {CONFIG}"):
        load_adapter(tiny_model("roberta"), tmp_path)
    export_peft(trained("roberta"), tmp_path)
    with pytest.raises(FileNotFoundError, match="use import_peft"):
        load_adapter(tiny_model("roberta"), tmp_path)


def test_peft_export_refuses_tensors_it_cannot_hold(tmp_path):
    model = trained("roberta")
    model.roberta.embeddings.LayerNorm.bias.requires_grad_(True)  # trained, but not a kept module
    with pytest.raises(ValueError, match="cannot hold these trained tensors.*LayerNorm.bias"):
        export_peft(model, tmp_path)


def test_merged_model_saves_the_same_adapter(ids, tmp_path):
    model = trained("llama")
    out = logits(model, ids)
    for layer in lora_layers(model).values():
        layer.merge()
    save_adapter(model, tmp_path)
    assert torch.equal(logits(load_adapter(tiny_model("llama"), tmp_path), ids), out)
