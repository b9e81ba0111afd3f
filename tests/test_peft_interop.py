"""Adapters between files, precisions and peft: a refused import names the folder, the tensor
and the fix and leaves the model as it was; the same base in another precision is the same
base; long refusals stay readable. Written from mutation-testing survivors (docs/mutation.md)."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch
from conftest import (
    PAPER,
    assert_unchanged,
    logits,
    model_snapshot,
    peft_adapter,
    randomize_lora,
    tiny_model,
)
from safetensors.torch import load_file, save_file

from lorabook import add_lora, apply_lora, lora_layers
from lorabook.adapters import (
    PEFT_CONFIG,
    PEFT_PREFIX,
    PEFT_WEIGHTS,
    AdapterFileError,
    AdapterMismatchError,
    export_peft,
    import_peft,
    load_adapter,
    save_adapter,
)


def _config(edit):
    def apply(directory):
        config = json.loads((directory / PEFT_CONFIG).read_text())
        edit(config)
        (directory / PEFT_CONFIG).write_text(json.dumps(config))

    return apply


def _tensors(edit):
    def apply(directory):
        tensors = load_file(directory / PEFT_WEIGHTS)
        edit(tensors)
        save_file(tensors, directory / PEFT_WEIGHTS)

    return apply


def _truncate(directory):
    path = directory / PEFT_WEIGHTS
    path.write_bytes(path.read_bytes()[:-100])


Q0 = "roberta.encoder.layer.0.attention.self.query"
A0, B0 = f"{PEFT_PREFIX}{Q0}.lora_A.weight", f"{PEFT_PREFIX}{Q0}.lora_B.weight"
LN = "roberta.embeddings.LayerNorm"
DISAGREE = "but its config gives rank r=4: the file and its config disagree"
# How a file is broken, the error, and what the message must say after the folder's name.
REFUSED = {
    "weights missing": (
        lambda d: (d / PEFT_WEIGHTS).unlink(),
        FileNotFoundError,
        "expected adapter_config.json and adapter_model.safetensors",
    ),
    "config not JSON": (
        lambda d: (d / PEFT_CONFIG).write_text("{not json"),
        AdapterFileError,
        "adapter_config.json is not valid JSON .*save or download it again",
    ),
    "weights truncated": (
        _truncate,
        AdapterFileError,
        "adapter_model.safetensors is not a readable safetensors file .*download it again",
    ),
    "no LoRA weights": (
        _tensors(lambda t: [t.pop(k) for k in list(t) if ".lora_" in k]),
        AdapterFileError,
        "holds no lora_A/lora_B weights: the file is incomplete or not a LoRA adapter",
    ),
    "unknown LoRA tensor": (
        _tensors(lambda t: t.update({f"{PEFT_PREFIX}{Q0}.lora_X.weight": torch.zeros(4, 32)})),
        AdapterFileError,
        f"holds '{Q0}.lora_X.weight', a LoRA tensor lorabook does not implement",
    ),
    "pattern not a regex": (
        _config(lambda c: c.update(rank_pattern={"[": 2})),
        AdapterFileError,
        r"pattern key '\[' is not a regex",
    ),
    "rank_pattern key matching nothing": (
        _config(lambda c: c.update(rank_pattern={"layer.7.query": 2})),
        AdapterFileError,
        r"rank_pattern key 'layer.7.query' matches none of the adapted modules .*"
        rf"e\.g\. '{Q0}'\); fix or remove the key",
    ),
    "alpha_pattern key matching nothing": (
        _config(lambda c: c.update(alpha_pattern={"layer.7.query": 2})),
        AdapterFileError,
        r"alpha_pattern key 'layer.7.query' matches none of the adapted modules .*"
        rf"e\.g\. '{Q0}'\); fix or remove the key",
    ),
    "lora_A of another rank": (
        _tensors(lambda t: t.update({A0: torch.zeros(2, 32)})),
        AdapterFileError,
        rf"'{Q0}' has lora_A \(2, 32\) and lora_B \(32, 4\), {DISAGREE}",
    ),
    "lora_B of another rank": (
        _tensors(lambda t: t.update({B0: torch.zeros(32, 2)})),
        AdapterFileError,
        rf"'{Q0}' has lora_A \(4, 32\) and lora_B \(32, 2\), {DISAGREE}",
    ),
    "lora_B not a matrix": (
        _tensors(lambda t: t.update({B0: torch.zeros(32)})),
        AdapterFileError,
        rf"'{Q0}' has lora_A \(4, 32\) and lora_B \(32,\), {DISAGREE}",
    ),
    "dropout out of range": (
        _config(lambda c: c.update(lora_dropout=1.5)),
        AdapterMismatchError,
        rf"cannot adapt '{Q0}': dropout must be in \[0, 1\)",
    ),
    "alpha not positive": (
        _config(lambda c: c.update(lora_alpha=0)),
        AdapterMismatchError,
        rf"cannot adapt '{Q0}': LoRA alpha must be a positive number",
    ),
    "not a linear layer": (
        _tensors(
            lambda t: t.update(
                {
                    f"{PEFT_PREFIX}{LN}.lora_A.weight": torch.zeros(4, 32),
                    f"{PEFT_PREFIX}{LN}.lora_B.weight": torch.zeros(32, 4),
                }
            )
        ),
        AdapterMismatchError,
        f"cannot adapt '{LN}': LoRA adapts nn.Linear or transformers Conv1D layers",
    ),
    "lora_A of another width": (
        _tensors(lambda t: t.update({A0: torch.zeros(4, 33)})),
        AdapterMismatchError,
        rf"'{Q0}.lora_A' is \(4, 33\) in the file but \(4, 32\) in this model",
    ),
    "lora_B of another height": (
        _tensors(lambda t: t.update({B0: torch.zeros(33, 4)})),
        AdapterMismatchError,
        rf"'{Q0}.lora_B' is \(33, 4\) in the file but \(32, 4\) in this model",
    ),
    "head for another label count": (
        _tensors(
            lambda t: t.update({f"{PEFT_PREFIX}classifier.out_proj.weight": torch.zeros(2, 32)})
        ),
        AdapterMismatchError,
        r"'classifier.out_proj.weight' is \(2, 32\) in the file but \(3, 32\) in this model",
    ),
}


@pytest.mark.parametrize("how", REFUSED)
def test_refused_import_names_the_folder_and_what_to_fix_and_changes_nothing(how, tmp_path):
    folder = tmp_path / "adapter"
    peft_adapter(
        tiny_model("roberta"),
        folder,
        r=4,
        lora_alpha=8,
        target_modules=["query", "value"],
        modules_to_save=["classifier"],
    )
    damage, error, message = REFUSED[how]
    damage(folder)
    model = tiny_model("roberta")
    before = model_snapshot(model)
    with pytest.raises(
        error, match=f"(?s)^The peft adapter in {re.escape(str(folder))}.*{message}"
    ):
        import_peft(model, folder)
    assert_unchanged(before, model)


def test_rank_above_min_dk_warns_naming_the_folder_and_the_module(tmp_path):
    peft_adapter(tiny_model("bert"), tmp_path, r=40, lora_alpha=8, target_modules=["query"])
    name = "bert.encoder.layer.0.attention.self.query"
    with pytest.warns(UserWarning) as record:
        model = import_peft(tiny_model("bert"), tmp_path)
    messages = [str(w.message) for w in record if "rank" in str(w.message)]
    assert messages and all(m.startswith(f"The peft adapter in {tmp_path}: ") for m in messages)
    assert any(f"'{name}' has rank r=40 > min(d, k)=32; loaded as written" in m for m in messages)
    assert lora_layers(model)[name].r == 40


def _round_to(model, dtype):
    """The same base published in ``dtype`` and loaded back in fp32."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).float())
    return model


def test_import_into_the_bf16_copy_of_the_base_is_silent(tmp_path):
    """A file that carries a base weight (an adapted lm_head's), written from the fp32 base, is
    the bf16 model's own weight once in bf16: no 'carries its own' warning."""
    peft_adapter(tiny_model("gpt2"), tmp_path, r=4, lora_alpha=8, target_modules=["lm_head"])
    assert load_file(tmp_path / PEFT_WEIGHTS)[
        "base_model.model.lm_head.base_layer.weight"
    ].dtype == (torch.float32)
    model = tiny_model("gpt2").to(torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import_peft(model, tmp_path)
    expected = tiny_model("gpt2").lm_head.weight.to(torch.bfloat16)
    assert torch.equal(model.lm_head.base_layer.weight, expected)


@pytest.mark.parametrize(
    "saved,loaded",
    [(torch.bfloat16, torch.float32), (torch.float32, torch.bfloat16)],
    ids=["bf16 to fp32", "fp32 to bf16"],
)
def test_an_adapter_moves_between_precisions_of_one_base(saved, loaded, tmp_path):
    """Trained on the bf16 copy of a base and loaded onto the fp32 base (or the other way): the
    same base, compared in the coarser precision, so neither an error nor a warning."""
    model = tiny_model("roberta").to(saved)
    apply_lora(model, r=4, alpha=8, keep_trainable=["classifier"], **PAPER["roberta"])
    randomize_lora(model)
    save_adapter(model, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = load_adapter(tiny_model("roberta").to(loaded), tmp_path)
    for name, layer in lora_layers(model).items():
        assert torch.equal(lora_layers(back)[name].lora_B, layer.lora_B.to(loaded))


def test_load_into_a_model_with_one_merged_layer_names_it(tmp_path):
    model = tiny_model("gpt2")
    apply_lora(model, r=4, alpha=8, **PAPER["gpt2"])
    save_adapter(model, tmp_path)
    lora_layers(model)["transformer.h.1.attn.c_attn"].merge()
    before = model_snapshot(model)
    with pytest.raises(ValueError, match=r"\('transformer.h.1.attn.c_attn' is merged\): call"):
        load_adapter(model, tmp_path)
    assert_unchanged(before, model)


def _listed(message: str, before: str) -> list[str]:
    """The names in the first bracketed list after ``before`` in ``message``."""
    listed = re.search(re.escape(before) + r"\[([^\]]*)\]", message)
    assert listed, message
    return re.findall(r"'([^']+)'", listed.group(1))


def test_long_refusals_list_only_the_first_few_names(tmp_path):
    """However many layers or tensors are involved, the message names a few and stays short."""
    adapter = tiny_model("roberta")
    apply_lora(adapter, targets=["query", "value"], r=4)  # 4 layers
    save_adapter(adapter, tmp_path)
    model = tiny_model("roberta")
    apply_lora(model, targets=["key", "dense"], r=4)  # 8 other layers
    with pytest.raises(AdapterMismatchError, match="load into the plain base model") as err:
        load_adapter(model, tmp_path)
    message = str(err.value)
    assert _listed(message, "has LoRA on ") == sorted(lora_layers(model))[:3]
    assert _listed(message, "the adapter on ") == sorted(lora_layers(adapter))[:3]

    trained = tiny_model("roberta")
    apply_lora(trained, targets=["query"], r=4)
    for module in trained.modules():
        if isinstance(module, torch.nn.LayerNorm):
            module.requires_grad_(True)  # 10 trained tensors peft cannot hold
    with pytest.raises(ValueError, match="cannot hold these trained tensors") as err:
        export_peft(trained, tmp_path / "peft")
    stray = [n for n, p in trained.named_parameters() if p.requires_grad and "LayerNorm" in n]
    assert len(stray) == 10
    assert _listed(str(err.value), "trained tensors: ") == stray[:5]


def test_loading_does_not_depend_on_torchs_default_dtype(tmp_path, ids):
    """An fp32 adapter loads onto its fp32 base while the default dtype is bf16."""
    model = tiny_model("roberta")
    apply_lora(model, r=4, alpha=8, **PAPER["roberta"])
    randomize_lora(model)
    save_adapter(model, tmp_path)
    base, default = tiny_model("roberta"), torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            load_adapter(base, tmp_path)
    finally:
        torch.set_default_dtype(default)
    assert torch.equal(logits(base, ids), logits(model, ids))


def _big_base():
    """A base with a frozen matrix of 2**24 + 4 values, more than fp32 counts exactly: the
    size of real word embeddings (GPT-2's, RoBERTa's: 50k × 768)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(2**22 + 1, 4), torch.nn.Linear(4, 4))
    model[0].requires_grad_(False)
    return model


def test_a_base_with_a_matrix_beyond_fp32_counting_saves_and_loads(tmp_path):
    """Saving samples up to the very last value (no index past the end), and a change there is
    noticed when loading."""
    model = _big_base()
    add_lora(model, "1", r=2, alpha=4)
    save_adapter(model, tmp_path)
    load_adapter(_big_base(), tmp_path)
    other = _big_base()
    with torch.no_grad():
        other[0].weight[-1, -1] += 1.0
    with pytest.raises(AdapterMismatchError, match="'0.weight' differs"):
        load_adapter(other, tmp_path)


def test_content_sample_places_are_part_of_the_file_format_and_never_move():
    """An adapter file records a few of the base's values at fixed places and loading samples
    the same places: evenly spaced from the first value to the last, in every version, or
    adapters saved before would stop loading."""
    from lorabook.adapters import CONTENT_VALUES, _sample

    for n in (5, 16, 1000, 12345):
        m = min(CONTENT_VALUES, n)
        expected = [round(i * (n - 1) / (m - 1)) for i in range(m)]
        assert _sample(torch.arange(n, dtype=torch.float64)).tolist() == expected
