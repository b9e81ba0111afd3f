"""Adapter files: only trained tensors, tied to the base they were made for, loaded all or
nothing; peft's own files read as peft reads them."""

from __future__ import annotations

import json
import os
import warnings

import peft
import pytest
import torch
import transformers as T
from conftest import (
    ARCHS,
    HEAD,
    PAPER,
    VOCAB,
    assert_unchanged,
    logits,
    model_snapshot,
    peft_adapter,
    randomize_lora,
    tiny_model,
)
from safetensors.torch import load_file, save_file

from lorabook import apply_lora, lora_layers, merge_and_unload, merge_lora, unmerge_lora
from lorabook.adapters import (
    CONFIG,
    PEFT_PREFIX,
    PEFT_WEIGHTS,
    WEIGHTS,
    AdapterFileError,
    AdapterMismatchError,
    export_peft,
    import_peft,
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
    assert (config["format"], config["version"]) == ("lorabook-adapter", 1)
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


# --- All or nothing: a call that raises leaves the model exactly as it was -----------------


def _damage(directory, how: str) -> None:
    path = directory / WEIGHTS
    if how == "missing file":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(b"not a safetensors file" * 10)
    else:
        tensors = load_file(path)
        b = "roberta.encoder.layer.1.attention.self.value.lora_B"
        if how == "unknown key":
            tensors["roberta.encoder.layer.9.attention.self.query.lora_A"] = torch.zeros(4, 32)
        elif how == "missing lora_B":
            del tensors[b]
        elif how == "wrong shape":
            tensors[b] = torch.zeros(33, 4)
        elif how == "integer dtype":
            tensors[b] = torch.zeros(tensors[b].shape, dtype=torch.int64)
        save_file(tensors, path)


DAMAGE = {
    "missing file": (FileNotFoundError, "is missing; save the adapter again"),
    "truncated": (AdapterFileError, "not a readable safetensors file"),
    "garbage": (AdapterFileError, "not a readable safetensors file"),
    "unknown key": (AdapterFileError, r"unexpected \['roberta.encoder.layer.9"),
    "missing lora_B": (AdapterFileError, r"missing \['roberta.encoder.layer.1.attention.self.v"),
    "wrong shape": (AdapterMismatchError, r"is \(33, 4\) in the file but \(32, 4\)"),
    "integer dtype": (AdapterFileError, "not a floating-point tensor"),
}


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_file_raises_and_leaves_model_unchanged(how, tmp_path):
    save_adapter(trained("roberta"), tmp_path)
    _damage(tmp_path, how)
    model = tiny_model("roberta")
    before = model_snapshot(model)
    error, message = DAMAGE[how]
    with pytest.raises(error, match=message):
        load_adapter(model, tmp_path)
    assert_unchanged(before, model)


def test_load_into_merged_model_is_refused_until_unmerged(ids, tmp_path):
    save_adapter(trained("gpt2"), tmp_path)
    expected = logits(trained("gpt2"), ids)
    model = tiny_model("gpt2")
    apply_lora(model, r=4, alpha=8, **PAPER["gpt2"])
    randomize_lora(model, seed=2)  # another adapter, merged
    merge_lora(model)
    before = model_snapshot(model)
    with pytest.raises(ValueError, match="merged model.*unmerge_lora.*then merge_lora"):
        load_adapter(model, tmp_path)
    assert_unchanged(before, model)
    unmerge_lora(model)
    load_adapter(model, tmp_path)
    merge_lora(model)
    torch.testing.assert_close(logits(model, ids), expected, rtol=0, atol=1e-5)


def test_load_into_lora_with_other_alpha_is_refused(tmp_path):
    save_adapter(trained("roberta"), tmp_path)  # alpha 8
    model = tiny_model("roberta")
    apply_lora(model, r=4, alpha=16, **PAPER["roberta"])
    before = model_snapshot(model)
    with pytest.raises(AdapterMismatchError, match=r"\(4, 8.0, \(True,\)\) in the file but"):
        load_adapter(model, tmp_path)
    assert_unchanged(before, model)


def test_apply_lora_checks_every_split_before_wrapping_any():
    model = tiny_model("bert", hidden=48)  # attention dense: 48 outputs, intermediate: 37
    before = model_snapshot(model)
    with pytest.raises(ValueError, match="37 outputs do not divide evenly"):
        apply_lora(model, targets=["dense"], fused={"dense": (True, False, True)}, r=4)
    assert_unchanged(before, model)


# --- Base fingerprint: same shapes, other weights -------------------------------------------


def test_refuses_base_with_same_shapes_but_other_weights(ids, tmp_path):
    model = trained("roberta")
    save_adapter(model, tmp_path)
    other = tiny_model("roberta", seed=1)
    before = model_snapshot(other)
    with pytest.raises(AdapterMismatchError, match="same shapes but other weights.*allow_other"):
        load_adapter(other, tmp_path)
    assert_unchanged(before, other)
    with pytest.warns(UserWarning, match="loading anyway"):
        load_adapter(other, tmp_path, allow_other_base=True)
    assert set(lora_layers(other)) == set(lora_layers(model))


def test_adapter_saved_before_the_content_sample_still_loads(ids, tmp_path):
    model = trained("bert")
    save_adapter(model, tmp_path)
    config = json.loads((tmp_path / CONFIG).read_text())
    del config["base"]["content"]  # the format before the content sample
    (tmp_path / CONFIG).write_text(json.dumps(config))
    assert torch.equal(logits(load_adapter(tiny_model("bert"), tmp_path), ids), logits(model, ids))


def test_content_sample_accepts_the_same_base_in_bf16(tmp_path):
    save_adapter(trained("llama"), tmp_path)
    load_adapter(tiny_model("llama").to(torch.bfloat16), tmp_path)  # no error: same weights


# --- Weight tying -----------------------------------------------------------------------------


def test_merge_refuses_tied_weight_unless_untied(ids):
    model = tiny_model("gpt2")  # lm_head.weight is the input embedding
    apply_lora(model, targets=["lm_head"], r=4)
    randomize_lora(model)
    expected = logits(model, ids)
    before = model_snapshot(model)
    tied = r"lm_head.base_layer.weight is also \['transformer.wte.weight'\].*untie=True"
    with pytest.raises(ValueError, match=tied):
        merge_lora(model)
    assert_unchanged(before, model)
    with pytest.raises(ValueError, match=tied):
        merge_and_unload(model)
    assert_unchanged(before, model)
    embedding = model.transformer.wte.weight.detach().clone()
    with pytest.warns(UserWarning, match="Untied before merging.*tie_word_embeddings is now False"):
        merge_lora(model, untie=True)
    assert torch.equal(model.transformer.wte.weight, embedding)
    torch.testing.assert_close(logits(model, ids), expected, rtol=0, atol=1e-5)


# --- peft's own adapters, as peft writes and reads them --------------------------------------


def tiny_distilbert() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = T.DistilBertConfig(
        vocab_size=VOCAB,
        dim=32,
        n_layers=2,
        n_heads=2,
        hidden_dim=37,
        max_position_embeddings=64,
        num_labels=3,
    )
    return T.DistilBertForSequenceClassification(cfg).eval()


def assert_same_as_peft(ours, theirs, ids) -> None:
    torch.testing.assert_close(logits(ours, ids), logits(theirs, ids), rtol=0, atol=0)


def test_import_peft_bert_seq_cls(ids, tmp_path):
    """task_type="SEQ_CLS" writes modules_to_save=["classifier", "score"]; BERT has no score."""
    theirs = peft_adapter(
        tiny_model("bert"),
        tmp_path,
        r=4,
        lora_alpha=8,
        target_modules=["query", "value"],
        task_type="SEQ_CLS",
    )
    ours = import_peft(tiny_model("bert"), tmp_path)
    assert_same_as_peft(ours, theirs, ids)
    trainable = {n for n, p in ours.named_parameters() if p.requires_grad}
    assert {"classifier.weight", "classifier.bias"} <= trainable


def test_import_peft_distilbert_regex_patterns(tmp_path):
    """alpha_pattern / rank_pattern keys are regexes on the end of the name; SEQ_CLS's
    "classifier" also matches pre_classifier, by name ending, as in peft."""
    ids = torch.randint(1, VOCAB, (2, 7), generator=torch.Generator().manual_seed(0))
    theirs = peft_adapter(
        tiny_distilbert(),
        tmp_path,
        r=4,
        lora_alpha=8,
        target_modules=["q_lin", "v_lin"],
        alpha_pattern={r"layer\.0\.attention\.q_lin": 32},
        rank_pattern={r"layer\.1\..*v_lin": 2},
        task_type="SEQ_CLS",
    )
    ours = import_peft(tiny_distilbert(), tmp_path)
    assert_same_as_peft(ours, theirs, ids)
    layers = lora_layers(ours)
    assert layers["distilbert.transformer.layer.0.attention.q_lin"].alpha == 32
    assert layers["distilbert.transformer.layer.1.attention.v_lin"].r == 2
    assert ours.lora_kept_modules == ["pre_classifier", "classifier"]


def test_import_peft_gpt2_c_attn_and_tied_lm_head(ids, tmp_path):
    """An adapter on lm_head carries lm_head.base_layer.weight (the tied embedding)."""
    theirs = peft_adapter(
        tiny_model("gpt2"),
        tmp_path,
        r=4,
        lora_alpha=8,
        target_modules=["c_attn", "lm_head"],
        fan_in_fan_out=True,
    )
    assert f"{PEFT_PREFIX}lm_head.base_layer.weight" in load_file(tmp_path / PEFT_WEIGHTS)
    ours = import_peft(tiny_model("gpt2"), tmp_path)
    assert_same_as_peft(ours, theirs, ids)


def test_import_peft_pattern_key_matching_nothing_is_an_error(tmp_path):
    peft_adapter(
        tiny_model("roberta"),
        tmp_path,
        r=4,
        lora_alpha=8,
        target_modules=["query", "value"],
        alpha_pattern={r"layer\.7\.attention\.self\.query": 32},
    )
    model = tiny_model("roberta")
    before = model_snapshot(model)
    with pytest.raises(AdapterFileError, match=r"alpha_pattern key 'layer\\\\.7.*matches none"):
        import_peft(model, tmp_path)
    assert_unchanged(before, model)


def test_import_peft_rank_above_min_dk_loads_with_a_warning(ids, tmp_path):
    theirs = peft_adapter(
        tiny_model("bert"), tmp_path, r=40, lora_alpha=8, target_modules=["query"]
    )
    with pytest.warns(UserWarning, match=r"rank r=40 > min\(d, k\)=32"):
        ours = import_peft(tiny_model("bert"), tmp_path)
    assert_same_as_peft(ours, theirs, ids)
    save_adapter(ours, tmp_path / "ours")  # and our own format carries it too
    with pytest.warns(UserWarning, match="r=40"):
        back = load_adapter(tiny_model("bert"), tmp_path / "ours")
    assert torch.equal(logits(back, ids), logits(ours, ids))
    with pytest.raises(ValueError, match="exceeds min"):
        apply_lora(tiny_model("bert"), targets=["query"], r=40)  # new adapters: still refused


def test_import_peft_onto_wrong_width_changes_nothing_so_a_retry_works(ids, tmp_path):
    peft_adapter(
        tiny_model("roberta"),
        tmp_path / "narrow",
        r=4,
        lora_alpha=8,
        target_modules=["query", "value"],
    )
    model = tiny_model("roberta", hidden=48)
    before = model_snapshot(model)
    with pytest.raises(AdapterMismatchError, match=r"\(4, 32\) in the file but \(4, 48\)"):
        import_peft(model, tmp_path / "narrow")
    assert_unchanged(before, model)
    theirs = peft_adapter(
        tiny_model("roberta", hidden=48),
        tmp_path / "wide",
        r=4,
        lora_alpha=8,
        target_modules=["query", "value"],
    )
    assert_same_as_peft(import_peft(model, tmp_path / "wide"), theirs, ids)


@pytest.mark.parametrize("how", ["missing lora_B", "truncated"])
def test_damaged_peft_file_raises_and_leaves_model_unchanged(how, tmp_path):
    peft_adapter(
        tiny_model("roberta"), tmp_path, r=4, lora_alpha=8, target_modules=["query", "value"]
    )
    path = tmp_path / PEFT_WEIGHTS
    if how == "truncated":
        path.write_bytes(path.read_bytes()[:-100])
        message = "not a readable safetensors file"
    else:
        tensors = load_file(path)
        del tensors[f"{PEFT_PREFIX}roberta.encoder.layer.1.attention.self.value.lora_B.weight"]
        save_file(tensors, path)
        message = "has lora_A but no lora_B: the file is incomplete"
    model = tiny_model("roberta")
    before = model_snapshot(model)
    with pytest.raises(AdapterFileError, match=message):
        import_peft(model, tmp_path)
    assert_unchanged(before, model)


# --- What travels with an adapter (found by mutation testing, docs/mutation.md) --------------


def _settings(model) -> dict:
    return {
        n: (m.r, m.alpha, m.split, m.init, getattr(m.dropout, "p", 0.0))
        for n, m in lora_layers(model).items()
    }


def test_dropout_init_and_kept_modules_survive_save_and_load(tmp_path):
    model = tiny_model("roberta")
    apply_lora(
        model,
        targets=["query", "value"],
        r=2,
        alpha=6,
        dropout=0.2,
        init="gaussian",
        keep_trainable=["classifier"],
    )
    save_adapter(model, tmp_path)
    loaded = load_adapter(tiny_model("roberta"), tmp_path)
    assert _settings(loaded) == _settings(model)
    assert loaded.lora_kept_modules == ["classifier"]
    trainable = {n for n, p in loaded.named_parameters() if p.requires_grad}
    assert trainable == {n for n, p in model.named_parameters() if p.requires_grad}


def test_dropout_and_kept_modules_survive_export_and_import(ids, tmp_path):
    model = trained("roberta")
    for layer in lora_layers(model).values():
        layer.dropout = torch.nn.Dropout(0.3)
    export_peft(model, tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["lora_dropout"] == 0.3 and config["modules_to_save"] == ["classifier"]
    back = import_peft(tiny_model("roberta"), tmp_path)
    assert {n: s[4] for n, s in _settings(back).items()} == dict.fromkeys(lora_layers(model), 0.3)
    assert back.lora_kept_modules == ["classifier"]
    assert all(p.requires_grad for p in back.classifier.parameters())
    assert torch.equal(logits(back.eval(), ids), logits(model.eval(), ids))


def test_export_writes_the_config_peft_reads(tmp_path):
    """GPT-2's q,v split: one rank-2r LoRA with alpha 2α per c_attn, no modules to save."""
    model = trained("gpt2")
    model.config._name_or_path = "gpt2-medium"
    export_peft(model, tmp_path / "new" / "folder")
    config = json.loads((tmp_path / "new" / "folder" / "adapter_config.json").read_text())
    assert config == {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": "gpt2-medium",
        "r": 8,
        "lora_alpha": 16.0,
        "rank_pattern": {},
        "alpha_pattern": {},
        "target_modules": ["transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"],
        "lora_dropout": 0.0,
        "fan_in_fan_out": True,
        "bias": "none",
        "modules_to_save": None,
        "init_lora_weights": True,
        "inference_mode": True,
        "use_rslora": False,
        "use_dora": False,
    }


def test_export_of_mixed_ranks_writes_rank_and_alpha_patterns(ids, tmp_path):
    """Layers with their own rank or alpha are listed in rank_pattern / alpha_pattern, and
    peft, reading them, computes the same function."""
    theirs = peft_adapter(
        tiny_model("roberta"),
        tmp_path / "theirs",
        r=4,
        lora_alpha=8,
        target_modules=["query", "value"],
        rank_pattern={r"layer\.1\.attention\.self\.value": 2},
        alpha_pattern={r"layer\.0\.attention\.self\.query": 32},
    )
    ours = import_peft(tiny_model("roberta"), tmp_path / "theirs")
    export_peft(ours, tmp_path / "ours")
    config = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
    prefix = "roberta.encoder.layer."
    assert (config["r"], config["lora_alpha"]) == (4, 8)
    assert config["rank_pattern"] == {prefix + "1.attention.self.value": 2}
    assert config["alpha_pattern"] == {prefix + "0.attention.self.query": 32}
    again = peft.PeftModel.from_pretrained(tiny_model("roberta"), tmp_path / "ours").eval()
    torch.testing.assert_close(logits(again, ids), logits(theirs, ids), rtol=0, atol=1e-6)


def test_content_sample_spans_the_base(tmp_path):
    """8 frozen matrices, 16 values each, from the first (embeddings) to the last layer."""
    save_adapter(trained("roberta"), tmp_path)
    config = json.loads((tmp_path / CONFIG).read_text())
    content, shapes = config["base"]["content"], config["base"]["shapes"]
    assert len(content) == 8 and all(len(e["values"]) == 16 for e in content.values())
    assert all(len(shapes[name]) == 2 for name in content)  # matrices only
    assert all(e["dtype"] == "float32" for e in content.values())
    assert "roberta.embeddings.word_embeddings.weight" in content
    assert any(".layer.1." in name for name in content)
    assert not any(name.startswith("classifier") or ".query" in name for name in content)


@pytest.mark.parametrize("place", [0, -1], ids=["first value", "last value"])
def test_a_changed_first_or_last_weight_value_is_noticed(place, tmp_path):
    """The sample reads values spread over each matrix, from its first to its last."""
    save_adapter(trained("llama"), tmp_path)
    other = tiny_model("llama")
    with torch.no_grad():
        other.model.embed_tokens.weight[place, place] += 1.0
    with pytest.raises(AdapterMismatchError, match="embed_tokens.weight' differs"):
        load_adapter(other, tmp_path)


def _edit_config(directory, edit) -> None:
    config = json.loads((directory / CONFIG).read_text())
    edit(config)
    (directory / CONFIG).write_text(json.dumps(config))


@pytest.mark.parametrize(
    "edit,error,message",
    [
        (
            lambda c: c["base"]["shapes"].update({"extra.weight": [2, 2]}),
            AdapterMismatchError,
            "expects a parameter 'extra.weight' this model lacks",
        ),
        (
            lambda c: c["layers"].update({"roberta.pooler.dense": c["layers"].popitem()[1]}),
            AdapterMismatchError,
            "adapts 'roberta.pooler.dense', which this model lacks",
        ),
        (
            lambda c: c.update(kept_modules=["head"]),
            AdapterMismatchError,
            "keeps module 'head', which this model lacks",
        ),
        (
            lambda c: c.update(kept_tensors=["head.weight"]),
            AdapterMismatchError,
            "holds 'head.weight', which this model lacks",
        ),
        (lambda c: c.pop("kept_tensors"), AdapterFileError, r"lacks \['kept_tensors'\]"),
    ],
    ids=["base parameter", "layer", "kept module", "kept tensor", "config key"],
)
def test_adapter_naming_what_the_model_lacks_is_refused(edit, error, message, tmp_path):
    save_adapter(trained("roberta"), tmp_path)
    _edit_config(tmp_path, edit)
    model = tiny_model("roberta")
    before = model_snapshot(model)
    with pytest.raises(error, match=message):
        load_adapter(model, tmp_path)
    assert_unchanged(before, model)


def test_invalid_json_config_is_a_file_error(tmp_path):
    save_adapter(trained("roberta"), tmp_path)
    (tmp_path / CONFIG).write_text("{not json")
    with pytest.raises(AdapterFileError, match="is not valid JSON"):
        load_adapter(tiny_model("roberta"), tmp_path)


def _peft_files(tmp_path, edit_config=None, edit_tensors=None):
    peft_adapter(
        tiny_model("roberta"), tmp_path, r=4, lora_alpha=8, target_modules=["query", "value"]
    )
    if edit_config:
        config = json.loads((tmp_path / "adapter_config.json").read_text())
        edit_config(config)
        (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    if edit_tensors:
        tensors = load_file(tmp_path / PEFT_WEIGHTS)
        edit_tensors(tensors)
        save_file(tensors, tmp_path / PEFT_WEIGHTS)


Q0 = PEFT_PREFIX + "roberta.encoder.layer.0.attention.self.query"
PEFT_DAMAGE = {
    "not lora": (lambda c: c.update(peft_type="IA3"), None, ValueError, "IA3 adapter, not LORA"),
    "bias": (lambda c: c.update(bias="all"), None, ValueError, r"uses \[\"bias='all'\"\]"),
    "rank": (lambda c: c.update(r=2), None, AdapterFileError, "config gives rank r=2"),
    "no prefix": (
        None,
        lambda t: t.update({"roberta.x": t.pop(Q0 + ".lora_A.weight")}),
        AdapterFileError,
        "'roberta.x' lacks peft's prefix",
    ),
    "embedding lora": (
        None,
        lambda t: t.update({Q0 + ".lora_embedding_A": torch.zeros(2)}),
        AdapterFileError,
        "a LoRA tensor lorabook does not implement",
    ),
    "unknown module": (
        None,
        lambda t: t.update({PEFT_PREFIX + "roberta.pooler.dense.weight": torch.zeros(2)}),
        AdapterMismatchError,
        "holds 'roberta.pooler.dense.weight', which this model does not have",
    ),
    "unknown adapted module": (
        None,
        lambda t: t.update(
            {
                PEFT_PREFIX + "head.lora_A.weight": torch.zeros(4, 32),
                PEFT_PREFIX + "head.lora_B.weight": torch.zeros(32, 4),
            }
        ),
        AdapterMismatchError,
        "adapts 'head', which this model does not have",
    ),
    "pattern not a regex": (
        lambda c: c.update(rank_pattern={"[": 2}),
        None,
        AdapterFileError,
        r"pattern key '\[' is not a regex",
    ),
    "integer tensor": (
        None,
        lambda t: t.update({Q0 + ".lora_A.weight": torch.zeros(4, 32, dtype=torch.int32)}),
        AdapterFileError,
        "not a floating-point tensor",
    ),
}


@pytest.mark.parametrize("how", PEFT_DAMAGE)
def test_peft_file_lorabook_cannot_read_is_refused_without_change(how, tmp_path):
    edit_config, edit_tensors, error, message = PEFT_DAMAGE[how]
    _peft_files(tmp_path, edit_config, edit_tensors)
    model = tiny_model("roberta")
    before = model_snapshot(model)
    with pytest.raises(error, match=message):
        import_peft(model, tmp_path)
    assert_unchanged(before, model)


def test_import_peft_needs_a_plain_model(tmp_path):
    _peft_files(tmp_path)
    model = tiny_model("roberta")
    apply_lora(model, targets=["query", "value"], r=4)
    with pytest.raises(ValueError, match="needs the plain base model"):
        import_peft(model, tmp_path)


def test_import_peft_partial_kept_module_is_refused(tmp_path):
    peft_adapter(
        tiny_model("bert"),
        tmp_path,
        r=4,
        lora_alpha=8,
        target_modules=["query"],
        modules_to_save=["classifier"],
    )
    tensors = load_file(tmp_path / PEFT_WEIGHTS)
    del tensors[PEFT_PREFIX + "classifier.bias"]
    save_file(tensors, tmp_path / PEFT_WEIGHTS)
    with pytest.raises(AdapterFileError, match=r"not \['classifier.bias'\] of the kept module"):
        import_peft(tiny_model("bert"), tmp_path)


def test_import_peft_warns_only_when_a_carried_base_weight_differs(ids, tmp_path):
    """A file may carry a base weight (an adapted lm_head's): loaded as peft does, with a
    warning when it is not this model's."""
    peft_adapter(tiny_model("gpt2"), tmp_path, r=4, lora_alpha=8, target_modules=["lm_head"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import_peft(tiny_model("gpt2"), tmp_path)  # the same base: silent
    other = tiny_model("gpt2", seed=1)
    with pytest.warns(UserWarning, match="carries its own 'lm_head.base_layer.weight'"):
        import_peft(other, tmp_path)
    torch.testing.assert_close(
        other.transformer.wte.weight, tiny_model("gpt2").transformer.wte.weight
    )


def test_a_trained_bias_of_an_adapted_layer_travels_with_the_adapter(ids, tmp_path):
    """Every trained tensor is saved, also one inside a LoRA-wrapped layer (by its base name),
    and it is trainable again after loading."""
    model = trained("roberta")
    bias = model.roberta.encoder.layer[0].attention.self.query.base_layer.bias
    bias.requires_grad_(True)
    with torch.no_grad():
        bias.add_(1.0)
    save_adapter(model, tmp_path / "nested" / "adapter")
    assert "roberta.encoder.layer.0.attention.self.query.bias" in load_file(
        tmp_path / "nested" / "adapter" / WEIGHTS
    )
    loaded = load_adapter(tiny_model("roberta"), tmp_path / "nested" / "adapter")
    assert torch.equal(logits(loaded, ids), logits(model, ids))
    assert {n for n, p in loaded.named_parameters() if p.requires_grad} == {
        n for n, p in model.named_parameters() if p.requires_grad
    }


@pytest.mark.skipif(
    "MUTANT_UNDER_TEST" in os.environ, reason="mutmut's trampolines add stack frames"
)
def test_warnings_point_at_the_callers_line(tmp_path):
    """A warning names the line that called lorabook, not a line inside it."""
    peft_adapter(tiny_model("bert"), tmp_path / "r40", r=40, lora_alpha=8, target_modules=["query"])
    with pytest.warns(UserWarning, match="r=40") as rank:
        import_peft(tiny_model("bert"), tmp_path / "r40")
    save_adapter(trained("roberta"), tmp_path / "ours")
    with pytest.warns(UserWarning, match="loading anyway") as other_base:
        load_adapter(tiny_model("roberta", seed=1), tmp_path / "ours", allow_other_base=True)
    peft_adapter(
        tiny_model("gpt2"), tmp_path / "head", r=4, lora_alpha=8, target_modules=["lm_head"]
    )
    with pytest.warns(UserWarning, match="carries its own") as carried:
        import_peft(tiny_model("gpt2", seed=1), tmp_path / "head")
    model = tiny_model("gpt2")
    apply_lora(model, targets=["lm_head"], r=4)
    with pytest.warns(UserWarning, match="Untied before merging") as untied:
        merge_lora(model, untie=True)
    for record in (rank, other_base, carried, untied):
        assert {w.filename for w in record} == {__file__}


def test_import_of_a_trained_head_is_silent(tmp_path):
    """modules_to_save tensors differ from the base's by design: no warning for them."""
    peft_adapter(
        tiny_model("bert"),
        tmp_path,
        r=4,
        lora_alpha=8,
        target_modules=["query", "value"],
        task_type="SEQ_CLS",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = import_peft(tiny_model("bert"), tmp_path)
    assert model.lora_kept_modules == ["classifier"]


def test_content_sample_holds_only_weights_lora_never_changes(tmp_path):
    """With LoRA on every linear layer, only the embeddings are left to sample, and merging
    (which changes the adapted weights) leaves the sample as it was."""
    model = tiny_model("roberta")
    apply_lora(model, targets=["query", "key", "value", "dense", "out_proj"], r=2)
    randomize_lora(model)
    save_adapter(model, tmp_path / "unmerged")
    merge_lora(model)
    save_adapter(model, tmp_path / "merged")
    content = [
        json.loads((tmp_path / d / CONFIG).read_text())["base"]["content"]
        for d in ("unmerged", "merged")
    ]
    assert content[0] == content[1]
    assert sorted(content[0]) == [
        "roberta.embeddings.position_embeddings.weight",
        "roberta.embeddings.token_type_embeddings.weight",
        "roberta.embeddings.word_embeddings.weight",
    ]


def test_a_model_adapted_by_add_lora_alone_saves_and_exports(ids, tmp_path):
    """No apply_lora (so no record of kept modules), not even a transformers model."""
    from lorabook import add_lora

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    add_lora(model, "0", r=2, alpha=4)  # freezes layer 0's W0 only
    model[2].requires_grad_(False)
    save_adapter(model, tmp_path / "ours")
    assert json.loads((tmp_path / "ours" / CONFIG).read_text())["kept_modules"] == []
    export_peft(model, tmp_path / "peft")
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] is None and config["modules_to_save"] is None
    assert (config["target_modules"], config["fan_in_fan_out"]) == (["0"], False)


def test_peft_hint_only_when_peft_files_are_there(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_adapter(tiny_model("roberta"), tmp_path)
    assert "use import_peft" not in str(err.value)


def test_import_peft_needs_both_files(tmp_path):
    _peft_files(tmp_path)
    (tmp_path / PEFT_WEIGHTS).unlink()
    with pytest.raises(FileNotFoundError, match="expected adapter_config.json and adapter_model"):
        import_peft(tiny_model("roberta"), tmp_path)


def test_import_peft_reads_a_minimal_config(ids, tmp_path):
    """Only peft_type, r, lora_alpha and target_modules: no bias, dropout or patterns."""
    theirs = peft_adapter(
        tiny_model("roberta"), tmp_path, r=4, lora_alpha=8, target_modules=["query", "value"]
    )
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    minimal = {k: config[k] for k in ("peft_type", "r", "lora_alpha", "target_modules")}
    (tmp_path / "adapter_config.json").write_text(json.dumps(minimal))
    ours = import_peft(tiny_model("roberta"), tmp_path)
    assert_same_as_peft(ours, theirs, ids)
    assert all(isinstance(m.dropout, torch.nn.Identity) for m in lora_layers(ours).values())


def test_import_peft_kept_module_the_file_does_not_hold_starts_from_the_base(tmp_path):
    """peft's modules_to_save copy starts as the base module: a file without its tensors
    leaves the base's values, trainable."""
    peft_adapter(
        tiny_model("bert"),
        tmp_path,
        r=4,
        lora_alpha=8,
        target_modules=["query"],
        modules_to_save=["classifier"],
    )
    tensors = load_file(tmp_path / PEFT_WEIGHTS)
    save_file(
        {k: v for k, v in tensors.items() if ".classifier." not in k}, tmp_path / PEFT_WEIGHTS
    )
    model = import_peft(tiny_model("bert"), tmp_path)
    assert torch.equal(model.classifier.weight, tiny_model("bert").classifier.weight)
    assert model.lora_kept_modules == ["classifier"] and model.classifier.weight.requires_grad


def test_import_peft_rank_equal_to_min_dk_is_silent(tmp_path):
    peft_adapter(tiny_model("bert"), tmp_path, r=32, lora_alpha=8, target_modules=["query"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import_peft(tiny_model("bert"), tmp_path)
