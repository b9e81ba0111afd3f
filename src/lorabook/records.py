"""What every result record says about where and how it was made."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("lorabook", "torch", "transformers", "accelerate", "peft", "datasets", "safetensors")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on (None if not installed)."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(repo: str | Path | None = None) -> str | None:
    """The checkout's commit, with ``-dirty`` if files differ from it; None outside git."""
    repo = Path(repo) if repo else Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "-uno"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def device_description(device: torch.device | str | None = None) -> str:
    """A person-readable name of the device that ran the computation."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {cpu_model()}, {os.cpu_count()} cores"


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The processor's name (Linux: ``model name`` in ``cpuinfo``; elsewhere what ``platform``
    says). Two machines of this project's size, both with native bf16 (the record's
    ``precision`` names those flags), trained SmolLM2 at 3.4 and 1.6 s a step: the name says
    which machine a record's timings come from."""
    try:
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_memory(device: torch.device | str) -> dict[str, int | str]:
    """Peak memory so far: the CUDA allocator's peak on a GPU, else the process's peak RSS."""
    device = torch.device(device)
    if device.type == "cuda":
        return {
            "bytes": int(torch.cuda.max_memory_allocated(device)),
            "kind": "torch.cuda.max_memory_allocated",
        }
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"bytes": int(rss_kib) * 1024, "kind": "process peak RSS (whole process)"}


def peak_memory_of_processes(device: torch.device | str, processes: int) -> dict:
    """:func:`peak_memory` of this process; with several processes, each one's too, gathered
    (a collective: every process must call it) under ``per_process`` (bytes, rank order) and
    summed under ``bytes_all_processes``. ``bytes`` stays this (the main) process's, as a
    one-process record has it."""
    mine = peak_memory(device)
    if processes == 1:
        return mine
    from accelerate.utils import gather_object

    every = [int(b) for b in gather_object([mine["bytes"]])]
    return {**mine, "per_process": every, "bytes_all_processes": sum(every)}


def environment(device: torch.device | str | None = None) -> dict:
    """Device, versions, commit and interpreter: enough to say where a number came from."""
    return {
        "device": device_description(device),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": git_commit(),
    }
