"""lorabook.precision: native-bf16 detection and the autocast context."""

import json
from pathlib import Path

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


class CastCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the float32 → bf16 copies of 2-D tensors (weights) that reach the dispatcher."""

    def __init__(self):
        super().__init__()
        self.casts = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default and args[0].dim() == 2:
            self.casts += kwargs.get("dtype") == torch.bfloat16
        return func(*args, **kwargs)


def frozen_mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4))
    net[2].weight.requires_grad_(False)  # frozen, as a LoRA backbone's
    net[0].weight.requires_grad_(False)
    return net


def test_cached_weight_casts_cast_frozen_weights_once_a_region_with_the_same_results():
    net, x = frozen_mlp(), torch.randn(1, 3, 8)  # 3-D: only the weights are 2-D casts
    results, casts = {}, {}
    for cached in (False, True):
        counter = CastCounter()
        context = (
            precision.cached_weight_casts(net) if cached else precision.contextlib.nullcontext()
        )
        with torch.no_grad(), context, precision.autocast("cpu", "bf16"), counter:
            results[cached] = [net(x), net(x), net(x)]  # three steps of one decoding
        casts[cached] = counter.casts
    assert casts == {False: 6, True: 2}  # two frozen weights: each step, or once
    for before, after in zip(results[False], results[True], strict=True):
        assert torch.equal(before, after)


def test_cached_weight_casts_restore_what_was_frozen_even_after_an_error():
    net = frozen_mlp()
    flags = [p.requires_grad for p in net.parameters()]
    with pytest.raises(RuntimeError, match="boom"), precision.cached_weight_casts(net):
        assert all(p.requires_grad for p in net.parameters())
        raise RuntimeError("boom")
    assert [p.requires_grad for p in net.parameters()] == flags == [False, True, False, True]


@pytest.mark.parametrize(
    ("flags", "mixed_precision", "device", "emulated"),
    [
        ((), "bf16", "cpu", True),
        (("amx_bf16",), "bf16", "cpu", False),
        ((), "no", "cpu", False),
        ((), "bf16", "meta", False),  # not a CPU: its own support, not the CPU's flags
    ],
)
def test_emulated_bf16_is_bf16_on_a_cpu_without_the_flags(
    monkeypatch, flags, mixed_precision, device, emulated
):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    assert precision.emulated_bf16(mixed_precision, device) == emulated


def test_campaigns_refuse_to_start_where_bf16_is_emulated(monkeypatch, tmp_path, capsys):
    """Their runs are bf16 (CAMPAIGN_PRECISION, part of each run's name): on a CPU that only
    emulates it both campaigns stop before any job, saying why and what to do; ``plan``,
    which trains nothing, still works."""
    from lorabook.cli import UserError
    from lorabook.e2e import campaign as e2e_campaign
    from lorabook.glue import full_campaign

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    precision.require_native_bf16("The campaign")  # native: nothing to say
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    with pytest.raises(UserError, match="no native bf16.*avx512_bf16.*other runs than its records"):
        precision.require_native_bf16("The campaign")
    where = ["--results-dir", str(tmp_path)]
    for main, command in ((full_campaign.main, "section7"), (e2e_campaign.main, "ranks")):
        # --only names no job: without the refusal, that would be the error (and no run starts)
        assert main([command, "--workers", "1", "--only", "no-such-job", *where]) == 2
        said = capsys.readouterr().err
        assert "emulates it" in said and "Run it on a CPU that has one of those flags" in said
        assert not list(tmp_path.rglob("*.json"))  # nothing ran
    assert e2e_campaign.main(["plan", *where]) == 0


def test_the_emulation_slowdown_the_package_warns_with_is_the_benchs():
    """EMULATED_BF16_SLOWDOWN, the round figure of the warnings, against the committed bench
    on a CPU without native bf16 (chapter 5.7): within the range of its methods' median
    slowdowns, a factor of 1.5 either side."""
    path = Path(__file__).resolve().parents[1] / "results/bench/precision-cpu-emulated-minilm.json"
    record = json.loads(path.read_text())
    assert record["hardware"]["native_bf16_flags"] == [] and record["settings"]["threads"] == 1
    slowdowns = [1 / row["speedups"]["bf16_vs_fp32"]["median"] for row in record["rows"]]
    assert min(slowdowns) / 1.5 <= precision.EMULATED_BF16_SLOWDOWN <= max(slowdowns) * 1.5
