"""Loading our own adapter files: every refusal (and every warning) names the adapter's folder
and what is at fault in it (the layer, the tensor, the listed names), and leaves the model
exactly as it was; a folder without our config says where it looked and, only when peft's
files are there, to use import_peft."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import PAPER, assert_unchanged, model_snapshot, randomize_lora, tiny_model
from safetensors.torch import load_file, save_file

from lorabook import add_lora, apply_lora, merge_lora
from lorabook.adapters import (
    CONFIG,
    WEIGHTS,
    AdapterFileError,
    AdapterMismatchError,
    export_peft,
    load_adapter,
    save_adapter,
)

LAYER = "roberta.encoder.layer.0.attention.self.query"
B1 = "roberta.encoder.layer.1.attention.self.value.lora_B"


def trained_roberta(**kw) -> torch.nn.Module:
    model = tiny_model("roberta", **kw)
    apply_lora(model, r=4, alpha=8, keep_trainable=["classifier"], **PAPER["roberta"])
    randomize_lora(model)
    return model


def _edit_config(directory, edit) -> None:
    config = json.loads((directory / CONFIG).read_text())
    edit(config)
    (directory / CONFIG).write_text(json.dumps(config))


def _edit_tensors(directory, edit) -> None:
    tensors = load_file(directory / WEIGHTS)
    edit(tensors)
    save_file(tensors, directory / WEIGHTS)


# --- A folder without our config ---------------------------------------------------------------


@pytest.mark.parametrize("peft_files", [False, True], ids=["empty folder", "peft's files"])
def test_missing_config_names_the_folder_and_hints_import_peft_for_peft_files(peft_files, tmp_path):
    if peft_files:
        export_peft(trained_roberta(), tmp_path)
    hint = " (it looks like peft's format: use import_peft)" if peft_files else ""
    message = f"No {CONFIG} in {tmp_path}{hint}"
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(message)}$"):
        load_adapter(tiny_model("roberta"), tmp_path)


# --- Every refusal names the folder and what is wrong in it ----------------------------------


def _merged(directory):
    model = tiny_model("roberta")
    apply_lora(model, r=4, alpha=8, **PAPER["roberta"])
    merge_lora(model)
    return model


def _other_alpha(directory):
    model = tiny_model("roberta")
    apply_lora(model, r=4, alpha=16, **PAPER["roberta"])
    return model


def _broken(edit_config=None, edit_tensors=None):
    def prepare(directory):
        if edit_config:
            _edit_config(directory, edit_config)
        if edit_tensors:
            _edit_tensors(directory, edit_tensors)
        return tiny_model("roberta")

    return prepare


def _lacking_weights(directory):
    (directory / WEIGHTS).unlink()
    return tiny_model("roberta")


def _bad_json(directory):
    (directory / CONFIG).write_text("{not json")
    return tiny_model("roberta")


# name: (prepare(directory) -> the model to load into, error, what the message says after
# "The adapter in <folder>")
REFUSALS = {
    "invalid json": (_bad_json, AdapterFileError, f"{CONFIG} is not valid JSON"),
    "config lacks a key": (
        _broken(edit_config=lambda c: c.pop("base")),
        AdapterFileError,
        rf"{CONFIG} lacks \['base'\]; save the adapter again",
    ),
    "weights file missing": (
        _lacking_weights,
        FileNotFoundError,
        f"{WEIGHTS} is missing; save the adapter again",
    ),
    "merged model": (_merged, ValueError, "cannot be loaded into a merged model"),
    "LoRA with other alpha": (_other_alpha, AdapterMismatchError, f"'{LAYER}' has .* in the file"),
    "other architecture": (
        lambda d: tiny_model("bert"),
        AdapterMismatchError,
        "was saved for a RobertaForSequenceClassification, not a BertForSequenceClassification",
    ),
    "other shapes": (
        lambda d: tiny_model("roberta", hidden=48),
        AdapterMismatchError,
        "was saved for another base model",
    ),
    "other weights": (
        lambda d: tiny_model("roberta", seed=1),
        AdapterMismatchError,
        "same shapes but other weights",
    ),
    "layer setting": (
        _broken(edit_config=lambda c: c["layers"][LAYER].update(init="bogus")),
        AdapterMismatchError,
        f"cannot adapt '{LAYER}': init must be one of",
    ),
    "wrong shape": (
        _broken(edit_tensors=lambda t: t.update({B1: torch.zeros(33, 4)})),
        AdapterMismatchError,
        rf"'{B1}' is \(33, 4\) in the file but \(32, 4\) in this model",
    ),
    "integer dtype": (
        _broken(edit_tensors=lambda t: t.update({B1: torch.zeros(32, 4, dtype=torch.int64)})),
        AdapterFileError,
        f"'{B1}' is torch.int64 in the file, not a floating-point tensor",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_every_refusal_names_the_folder_and_what_is_wrong(case, tmp_path):
    """A user with several adapters must learn which folder (and which of its layers or
    tensors) a load refused, and the model must stay as it was."""
    prepare, error, message = REFUSALS[case]
    save_adapter(trained_roberta(), tmp_path)
    model = prepare(tmp_path)
    before = model_snapshot(model)
    with pytest.raises(error, match=rf"^{re.escape(f'The adapter in {tmp_path}')}[: ].*{message}"):
        load_adapter(model, tmp_path)
    assert_unchanged(before, model)


def test_warnings_name_the_folder_and_the_layer(tmp_path):
    """Loads that go ahead with a warning say which adapter, and which layer, it is about."""
    model = tiny_model("bert").requires_grad_(False)
    add_lora(model, "bert.encoder.layer.0.attention.self.query", r=40, alpha=8, check_rank=False)
    save_adapter(model, tmp_path)
    folder = re.escape(f"The adapter in {tmp_path}")
    rank = rf"^{folder}: 'bert.encoder.layer.0.attention.self.query' has rank r=40 > min\(d, k\)"
    with pytest.warns(UserWarning, match=rank):
        load_adapter(tiny_model("bert"), tmp_path)
    other_base = rf"^{folder} was saved for a base .* loading anyway"
    with pytest.warns(UserWarning, match=rank), pytest.warns(UserWarning, match=other_base):
        load_adapter(tiny_model("bert", seed=1), tmp_path, allow_other_base=True)


# --- A weights file that does not hold what the config says ------------------------------------


def _extra(tensors: dict) -> list[str]:
    names = [f"roberta.encoder.layer.{i}.attention.self.key.lora_A" for i in range(6)]
    tensors.update({n: torch.zeros(4, 32) for n in names})
    return names


def _gone(tensors: dict) -> list[str]:
    names = [n for n in tensors if n.endswith((".lora_A", ".lora_B"))]  # 8 of them
    for n in names:
        del tensors[n]
    return names


@pytest.mark.parametrize(
    "missing,unexpected",
    [(True, False), (False, True), (True, True)],
    ids=["missing only", "unexpected only", "both"],
)
def test_mismatched_weights_list_the_first_five_of_what_is_wrong_and_nothing_else(
    missing, unexpected, tmp_path
):
    """The message lists (sorted, at most five) the names missing and the names unexpected,
    and mentions neither kind when there is none of it."""
    save_adapter(trained_roberta(), tmp_path)
    tensors = load_file(tmp_path / WEIGHTS)
    gone = _gone(tensors) if missing else []
    extra = _extra(tensors) if unexpected else []
    save_file(tensors, tmp_path / WEIGHTS)
    listed = (f"; missing {sorted(gone)[:5]}" if gone else "") + (
        f"; unexpected {sorted(extra)[:5]}" if extra else ""
    )
    message = (
        f"The adapter in {tmp_path}: {WEIGHTS} does not match {CONFIG}{listed}: the files are "
        "damaged or from two different adapters; save the adapter again"
    )
    model = tiny_model("roberta")
    before = model_snapshot(model)
    with pytest.raises(AdapterFileError, match=f"^{re.escape(message)}$"):
        load_adapter(model, tmp_path)
    assert_unchanged(before, model)
