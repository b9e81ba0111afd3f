"""Run bookkeeping shared by every experiment: a record's identity, its paths, reuse and resume.

A result record is keyed by *everything that decides the run*: the experiment writes its
fully resolved configuration (task, method, model, preset settings, seed, data) into a
dict, and :func:`run_paths` derives the file name from a short hash of that dict::

    results/<kind>/<preset>/<model>/<stem>-<hash>.json      the record (JSON)
    results/<kind>/<preset>/<model>/<stem>-<hash>/          its large outputs (optional)
    results/_scratch/<kind>-<preset>-<model>-<stem>-<hash>/  checkpoints while it runs
    results/_resume/<kind>-<preset>-<model>-<stem>-<hash>/   a copy of them, carried in git

``_scratch`` stays on the machine that wrote it (git ignores it). A campaign's ``stash``
copies the scratch folder of every unfinished run whose checkpoints are small (LoRA's: a few
megabytes) into ``_resume``, to be committed, and a campaign on a new machine puts it back
before running the job (:meth:`RunPaths.stash_scratch`, :meth:`RunPaths.restore_scratch`):
a run then resumes where the last session stopped it even on another machine.

So changing any setting (epochs, examples, learning rate, ...) gives a new record instead of
silently returning an old one, and an interrupted run resumes only into the same settings.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_RESULTS = Path("results")
HASH_CHARS = 8
STASH_LIMIT = 32 * 2**20  # bytes: a scratch folder larger than this is not carried in git


def model_slug(model: str) -> str:
    """A file-name-safe name for a model id or path (``gpt2-medium``, ``org--name``)."""
    return Path(model).name if Path(model).exists() else model.replace("/", "--")


def config_key(config: dict) -> str:
    """A short, stable hash of a JSON-ready configuration (key order does not matter)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


@dataclass(frozen=True)
class RunPaths:
    """Where one run keeps its record, its outputs and its scratch (checkpoints)."""

    record: Path
    outputs: Path
    scratch: Path
    key: str

    def finished(self) -> dict | None:
        """The run's record if it was written (the run finished), else ``None``."""
        if self.record.exists():
            return json.loads(self.record.read_text())
        return None

    @property
    def stash(self) -> Path:
        """Where :meth:`stash_scratch` copies the scratch folder: ``<results>/_resume/<name>``."""
        return self.scratch.parent.parent / "_resume" / self.scratch.name

    def stash_scratch(self, limit: int = STASH_LIMIT) -> str:
        """Copy the scratch folder into :attr:`stash` (replacing an older copy; the new one is
        written beside it first, so a failure leaves the old one whole), or drop the copy once
        the run has finished. Returns what it did: ``stashed``, ``dropped``, ``too big`` (the
        folder is over ``limit`` bytes: FT's whole model and its Adam moments) or
        ``nothing`` (no finished run's copy, no checkpoint to copy)."""
        if self.record.exists():
            if not self.stash.exists():
                return "nothing"
            shutil.rmtree(self.stash)
            return "dropped"
        if not _holds_checkpoint(self.scratch):
            return "nothing"
        if folder_bytes(self.scratch) > limit:
            return "too big"
        fresh = self.stash.with_name(self.stash.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(self.scratch, fresh)
        shutil.rmtree(self.stash, ignore_errors=True)
        fresh.rename(self.stash)
        return "stashed"

    def restore_scratch(self) -> bool:
        """Put the stashed copy back when the scratch folder holds no checkpoint (a machine
        that did not run this job before) and the run has not finished; True if it did."""
        if self.record.exists() or _holds_checkpoint(self.scratch):
            return False
        if not _holds_checkpoint(self.stash):
            return False
        shutil.rmtree(self.scratch, ignore_errors=True)
        shutil.copytree(self.stash, self.scratch)
        return True

    def drop_scratch(self, keep: Sequence[str] = ()) -> None:
        """Remove the scratch folder (checkpoints) once the record is safely written, all but
        the entries named in ``keep`` (e.g. ``"ckpt"``, for a run that continues this one)."""
        if not keep:
            shutil.rmtree(self.scratch, ignore_errors=True)
            return
        for entry in self.scratch.iterdir() if self.scratch.exists() else ():
            if entry.name in keep:
                continue
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def folder_bytes(folder: Path) -> int:
    """The bytes of every file under ``folder`` (0 if it does not exist)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _holds_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` (a scratch folder or its stash) holds a training checkpoint:
    ``ckpt/`` + :data:`CHECKPOINT`, where the experiments have :func:`lorabook.train.fit`
    write it."""
    return (folder / "ckpt" / CHECKPOINT).exists()


def run_paths(
    results_dir: str | Path, kind: str, preset: str, model: str, stem: str, config: dict
) -> RunPaths:
    """The paths of the run ``stem`` (e.g. ``sst2-lora-seed0``) with configuration ``config``.

    Args:
        results_dir: the results root (``results/`` in the repository).
        kind: the experiment family, ``glue`` or ``e2e``.
        preset: the preset's name (a folder level, so people can browse by it).
        model: the model name as the user gave it.
        stem: the human part of the file name.
        config: everything that decides the run, JSON-ready; hashed into the name.
    """
    key = config_key(config)
    record = Path(results_dir) / kind / preset / model_slug(model) / f"{stem}-{key}.json"
    return RunPaths(
        record=record, outputs=record.with_suffix(""), scratch=scratch_of(record), key=key
    )


def scratch_of(record: str | Path) -> Path:
    """The scratch folder of the run whose record is (or will be) at ``record``:
    ``<results>/_scratch/<kind>-<preset>-<model>-<name>``."""
    record = Path(record)
    model, preset, kind = record.parent, record.parent.parent, record.parent.parent.parent
    name = f"{kind.name}-{preset.name}-{model.name}-{record.stem}"
    return kind.parent / "_scratch" / name


def find_records(results_dir: str | Path, kind: str, **fields: object) -> list[dict]:
    """Every record under ``results/<kind>/`` whose top-level fields equal ``fields``.

    ``find_records("results", "e2e", preset="cpu", model="smollm2", method="lora")``; each
    record gets its file path under ``"_path"``. Sorted by path, so the order is stable.
    """
    out = []
    for path in sorted((Path(results_dir) / kind).rglob("*.json")):
        record = json.loads(path.read_text())
        if all(record.get(k) == v for k, v in fields.items()):
            out.append({**record, "_path": str(path)})
    return out


CHECKPOINT = "last.pt"  # lorabook.train.fit's checkpoint file in its checkpoint_dir
PROGRESS = "progress.json"  # beside a checkpoint: how far it got (lorabook.train.fit writes it)


def read_progress(checkpoint_dir: str | Path) -> dict | None:
    """What the latest checkpoint in ``checkpoint_dir`` holds, from the :data:`PROGRESS` file
    ``lorabook.train.fit`` writes beside it: ``epochs_done`` (finished epochs plus the
    fraction of the next one its batches make) and ``elapsed_seconds`` (training and
    evaluation, across resumes); ``None`` without one (no checkpoint yet, or one written
    before this file existed). An "epoch" is ``fit``'s: one evaluation period, which is a
    *round* for a run that evaluates several times a pass over the data
    (:func:`lorabook.train.round_sizes`; E2E's ``full`` preset, a quarter of a pass), so a
    one-round run halfway through says 0.5."""
    path = Path(checkpoint_dir) / PROGRESS
    if not path.exists():
        return None
    return json.loads(path.read_text())
