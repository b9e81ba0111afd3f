"""lorabook.quiet: the libraries' bars, logs and deprecation warnings are silenced at their
source, lorabook's own warnings are not, and everything comes back afterwards."""

from __future__ import annotations

import warnings
from pathlib import Path

import huggingface_hub.utils as hub_utils
import pytest
from transformers.utils import logging as tlog

from lorabook import models
from lorabook.quiet import quiet, silence_libraries


def library_warning(category=FutureWarning, module="transformers.modeling_utils") -> None:
    """A warning attributed to a library module, as transformers' own ``warnings.warn``."""
    warnings.warn_explicit("old name", category, "modeling_utils.py", 1, module=module)


def state() -> tuple:
    return (
        tlog.get_verbosity(),
        tlog.is_progress_bar_enabled(),
        hub_utils.are_progress_bars_disabled(),
    )


def test_quiet_silences_the_libraries_and_restores_them():
    before = state()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet():
            assert tlog.get_verbosity() == tlog.ERROR
            assert not tlog.is_progress_bar_enabled()
            assert hub_utils.are_progress_bars_disabled()
            library_warning()
            library_warning(DeprecationWarning, module="peft.tuners")
            warnings.warn("LoRA layer is already merged", UserWarning, stacklevel=1)
            library_warning(UserWarning)  # not a deprecation: kept
        library_warning()  # after the block: shown again
    assert state() == before
    assert [(w.category, str(w.message)) for w in caught] == [
        (UserWarning, "LoRA layer is already merged"),
        (UserWarning, "old name"),
        (FutureWarning, "old name"),
    ]


def test_quiet_restores_after_an_error():
    before = state()
    with pytest.raises(KeyError), quiet():
        raise KeyError("boom")
    assert state() == before


def test_silence_libraries_lasts_until_undone():
    before = state()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            silence_libraries()
            library_warning()
            assert tlog.get_verbosity() == tlog.ERROR and not tlog.is_progress_bar_enabled()
        assert caught == []
    finally:
        tlog.set_verbosity(before[0])
        if before[1]:
            tlog.enable_progress_bar()
        if not before[2]:
            hub_utils.enable_progress_bars()


def test_load_pretrained_prints_nothing(capfd):
    models.load_pretrained("minilm")
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)


def test_gguf_export_runs_apart_and_reports_its_failure(tmp_path: Path):
    """The conversion runs in a child process (its bars never reach the caller); when it
    fails, the error carries the end of the child's stderr."""
    missing = tmp_path / "missing.gguf"
    with pytest.raises(RuntimeError, match=r"dequantizing .*missing\.gguf failed \(exit 1\)"):
        models._export_gguf(missing, tmp_path / "out")
