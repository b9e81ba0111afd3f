"""Atomic file writes: a reader never sees half a file, an interrupted run never leaves one."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Run ``write(tmp)`` on a temporary file beside ``path``, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result file is for everyone
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_json(path: str | Path, obj: object) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_tensors(path: str | Path, tensors: dict[str, torch.Tensor]) -> Path:
    """Write tensors as safetensors, atomically (copied to contiguous CPU memory first)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp))


def torch_save(path: str | Path, obj: object) -> Path:
    """``torch.save``, atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))
