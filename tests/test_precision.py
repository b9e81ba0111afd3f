"""lorabook.precision: native-bf16 detection and the autocast context."""

import pytest
import torch

from lorabook import precision


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse avx512f avx512_bf16", ("avx512_bf16",)),
        ("fpu amx_bf16 amx_tile avx512_bf16", ("avx512_bf16", "amx_bf16")),
        ("fpu sse avx2 avx512f", ()),
    ],
)
def test_cpu_bf16_flags_reads_the_flags_line(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n\n")
    assert precision.cpu_bf16_flags(str(cpuinfo)) == expected


def test_no_cpuinfo_means_no_native_bf16(tmp_path):
    assert precision.cpu_bf16_flags(str(tmp_path / "missing")) == ()


def test_cpu_precision_falls_back_to_fp32_and_says_so(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    said = []
    assert precision.cpu_precision(log=said.append) == "no"
    assert len(said) == 1 and "fp32" in said[0]
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert precision.cpu_precision(log=said.append) == "bf16"
    assert len(said) == 1


def test_autocast_runs_matmuls_in_bf16_only_when_asked():
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with precision.autocast("cpu", "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with precision.autocast("cpu", "no"):
        assert (a @ b).dtype == torch.float32
    with pytest.raises(ValueError, match="precision must be one of"):
        with precision.autocast("cpu", "fp8"):
            pass


def test_precision_record_names_each_phase_and_the_hardware(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert precision.precision_record("bf16", "cpu") == {
        "train": "bf16",
        "evaluate": "bf16",
        "weights_and_optimizer": "fp32",
        "hardware": {"device": "cpu", "native_bf16_flags": ["avx512_bf16"]},
    }
    record = precision.precision_record("no", "cpu", phases=("decode",))
    assert record["decode"] == "fp32" and "train" not in record
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.precision_record("fp8")
