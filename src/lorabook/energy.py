"""Energy of a run: a power sampler on a background thread, and NVML's energy counter.

    meter = energy_meter("cuda")          # NullMeter off NVIDIA GPUs: "not measurable here"
    meter.start(); train(); meter.stop()
    meter.report()   # {"measurable": True, "joules": ..., "source": ..., "samples": ...}

Two ways to the joules of a run, both read through NVML on an NVIDIA GPU:

* the total-energy counter (``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the
  driver loaded; Volta and newer): the difference between two readings, exact up to the
  counter's resolution;
* the power draw (``nvmlDeviceGetPowerUsage``, milliwatts) sampled every ``interval_s``
  seconds and integrated with the trapezoidal rule: what older GPUs allow, kept beside the
  counter as a cross-check.

The reading source is injectable (a callable returning watts, and optionally one returning
a cumulative millijoule counter), so the arithmetic is tested with a fake source. A CPU
machine like the one the book is written on exposes no power counter: the meter then says
``"energy: not measurable here"`` and gives ``None``, never a made-up figure.

This module imports nothing from the rest of the package, so the training loop can use it.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence

NOT_MEASURABLE = "energy: not measurable here"


def trapezoid(samples: Sequence[tuple[float, float]]) -> float:
    """∫ P dt over ``[(t_seconds, watts), ...]`` (sorted by time) by the trapezoidal rule, J."""
    return sum(
        (t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(samples, samples[1:], strict=False)
    )


def _sample_loop(ref: weakref.ref, stop: threading.Event, interval_s: float) -> None:
    """The thread's body: take a sample every ``interval_s`` until stopped or the meter is
    gone (the thread holds only a weak reference, so a meter dropped without ``stop()``,
    e.g. when training raised, does not sample forever)."""
    while not stop.wait(interval_s):
        meter = ref()
        if meter is None:
            return
        meter.sample()
        del meter


class EnergyMeter:
    """Joules of a stretch of work, from a power reading and optionally an energy counter.

    Args:
        power_w: returns the power draw now, in watts.
        energy_mj: returns a cumulative energy counter in millijoules (optional); when
            given, ``joules()`` is the counter's difference, else the power integral.
        interval_s: seconds between power samples (the thread's period).
        clock: monotonic seconds (injectable for tests).
        device: a description kept in the report.
    """

    measurable = True

    def __init__(
        self,
        power_w: Callable[[], float],
        energy_mj: Callable[[], float] | None = None,
        interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        device: str = "",
    ) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.power_w, self.energy_mj, self.interval_s = power_w, energy_mj, interval_s
        self.clock, self.device = clock, device
        self.samples: list[tuple[float, float]] = []
        self._counter_start: float | None = None
        self._counter_end: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        """Take one power sample now (the thread calls this every ``interval_s``)."""
        watts = float(self.power_w())
        with self._lock:
            self.samples.append((self.clock(), watts))

    def start(self, thread: bool = True) -> EnergyMeter:
        """Read the counter, take the first sample and (``thread``) start sampling."""
        if self.energy_mj is not None:
            self._counter_start = float(self.energy_mj())
        self.sample()
        if thread:
            self._thread = threading.Thread(
                target=_sample_loop,
                args=(weakref.ref(self), self._stop, self.interval_s),
                daemon=True,
                name="lorabook-energy",
            )
            weakref.finalize(self, self._stop.set)
            self._thread.start()
        return self

    def stop(self) -> EnergyMeter:
        """Stop sampling; take the last sample and counter reading."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.sample()
        if self.energy_mj is not None:
            self._counter_end = float(self.energy_mj())
        return self

    def __enter__(self) -> EnergyMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def seconds(self) -> float:
        """Seconds between the first and the last sample."""
        with self._lock:
            return self.samples[-1][0] - self.samples[0][0] if self.samples else 0.0

    def trapezoid_joules(self) -> float:
        """The power samples integrated (trapezoidal rule), J."""
        with self._lock:
            return trapezoid(list(self.samples))

    def joules(self) -> float:
        """Energy since ``start()``: the counter's difference when there is a counter (read
        now if still running), else the power integral up to now (a sample is taken now
        while the thread runs, so a reading between two samples misses nothing)."""
        if self.energy_mj is not None and self._counter_start is not None:
            end = self._counter_end if self._counter_end is not None else float(self.energy_mj())
            return (end - self._counter_start) / 1000.0
        if self._thread is not None:
            self.sample()
        return self.trapezoid_joules()

    def report(self, steps: int | None = None) -> dict:
        """JSON-ready: joules (and per step), their source, the cross-check and the samples."""
        joules, seconds = self.joules(), self.seconds()
        out = {
            "measurable": True,
            "device": self.device,
            "joules": joules,
            "source": "NVML total-energy counter"
            if self.energy_mj is not None
            else f"power samples every {self.interval_s:g} s, trapezoidal rule",
            "joules_trapezoid": self.trapezoid_joules(),
            "samples": len(self.samples),
            "interval_s": self.interval_s,
            "seconds": seconds,
            "mean_watts": joules / seconds if seconds > 0 else None,
        }
        if steps:
            out["joules_per_step"] = joules / steps
        return out


class NullMeter:
    """The meter where nothing can be measured: every figure is ``None``, with the reason."""

    measurable = False

    def __init__(self, reason: str = "") -> None:
        self.reason = f"{NOT_MEASURABLE} ({reason})" if reason else NOT_MEASURABLE

    def start(self, thread: bool = True) -> NullMeter:
        return self

    def stop(self) -> NullMeter:
        return self

    def __enter__(self) -> NullMeter:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def joules(self) -> None:
        return None

    def report(self, steps: int | None = None) -> dict:
        return {"measurable": False, "joules": None, "reason": self.reason}


def nvml_source(
    index: int = 0, uuid: str | None = None
) -> tuple[Callable[[], float], Callable[[], float] | None, str]:
    """``(watts, millijoule counter or None, device name)`` of an NVIDIA GPU via NVML, found
    by ``uuid`` when given (NVML ignores ``CUDA_VISIBLE_DEVICES``), else by NVML ``index``.

    Raises ``RuntimeError`` with the reason when NVML or the power reading is unavailable.
    """
    try:
        import pynvml

        pynvml.nvmlInit()
        if uuid:
            handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
        else:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(handle)
        pynvml.nvmlDeviceGetPowerUsage(handle)
    except Exception as err:  # noqa: BLE001 - any failure means: not measurable
        raise RuntimeError(f"NVML unavailable: {type(err).__name__}: {err}") from err

    def watts() -> float:
        return pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0

    counter: Callable[[], float] | None
    try:
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)

        def counter() -> float:
            return float(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle))
    except Exception:  # noqa: BLE001 - pre-Volta GPUs: power samples only
        counter = None
    return watts, counter, name if isinstance(name, str) else name.decode()


def energy_meter(device: object = None, interval_s: float = 0.1) -> EnergyMeter | NullMeter:
    """An ``EnergyMeter`` for a CUDA ``device`` (a torch device or string), else a
    ``NullMeter`` saying why energy is not measurable here."""
    kind = getattr(device, "type", None) or str(device or "cpu").split(":")[0]
    if kind != "cuda":
        return NullMeter(f"{kind} device: no power counter is read")
    index = getattr(device, "index", None)
    if index is None and ":" in str(device):
        index = int(str(device).split(":")[1])
    try:
        watts, counter, name = nvml_source(index or 0, _cuda_uuid(index or 0))
    except RuntimeError as err:
        return NullMeter(str(err))
    return EnergyMeter(watts, counter, interval_s=interval_s, device=name)


def _cuda_uuid(index: int) -> str | None:
    """NVML's name (``GPU-<uuid>``) of torch's CUDA device ``index``, or None."""
    try:
        import torch

        return f"GPU-{torch.cuda.get_device_properties(index).uuid}"
    except Exception:  # noqa: BLE001 - fall back to the NVML index
        return None
