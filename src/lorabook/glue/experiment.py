"""One GLUE run, start to finish: data, model, method, training, one JSON result record.

    from lorabook.glue.experiment import run_glue
    record = run_glue("sst2", method="lora", model="minilm", preset="quick")

A run's identity is everything that decides it (:func:`glue_config`); its record is
``results/glue/<preset>/<model>/<task>-<method>-seed<seed>-<hash of that config>.json``
(see :mod:`lorabook.runs`). So a finished run is returned, not recomputed, only when every
setting is the same; any change (epochs, examples, lr, ...) is a new record beside it, and
``force=True`` reruns only the record of the same settings. Settings are checked
(:func:`plan_glue_run`) before any data or model is loaded. An interrupted run resumes from
its last epoch checkpoint under ``<results>/_scratch``, which is removed once the record is
written (``keep_scratch=True`` keeps it).

The record keeps what the best epoch predicted for every dev example (``dev_predictions``:
class ids, or STS-B's scores, with the labels, in the dev set's order), so that two runs can
be compared example by example (:func:`lorabook.glue.report.paired_bootstrap`); each epoch's
predictions wait in the scratch folder until the best epoch is known. Records made before
this field have none.

LoRA's, BitFit's and the adapters' trained tensors are kept beside the record
(``<record name>/trainable.safetensors``); full fine-tuning's are the whole model (~90 MB for
MiniLM) and are not kept.

Several processes (``accelerate launch`` on GPUs, ``torchrun --nproc_per_node 2`` on CPUs): the
preset's ``batch_size`` is a step's (``batch_scope = "global"``: each of N processes takes batch
/ N; ``"process"``: each takes the whole batch, :func:`lorabook.train.per_process`), the
effective batch (``effective_batch`` in the record) is ``per-process batch × processes ×
grad_accum``, and a run of 2 processes is another run than one of 1 (the process count joins the
identity, above 1 only, so the records of one process keep their names). Every process trains on
its shard and evaluates its part of the dev set (each example counted once); the main process
alone writes the record, the trained tensors and the kept predictions, and removes the scratch
folder, once all are done."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from lorabook.glue.data import (
    GLUE_TASKS,
    HUB_DATASET,
    file_sha256,
    load_glue,
    local_folder,
    subset,
    tokenize_glue,
)
from lorabook.glue.metrics import glue_metrics, primary_metric
from lorabook.glue.presets import (
    CPU_PRECISION_PRESETS,
    LENGTH_GROUP_BATCHES,
    PAPER_LORA_TARGETS,
    GluePreset,
    SettingsError,
    glue_preset,
)
from lorabook.heads import use_mean_pooling
from lorabook.inject import attention_targets
from lorabook.io import write_json, write_tensors
from lorabook.methods import METHODS, prepare_model
from lorabook.models import resolve_model
from lorabook.precision import (
    cpu_precision,
    emulated_bf16,
    emulation_warning,
    fp32_instead,
    precision_record,
)
from lorabook.quiet import quiet
from lorabook.records import environment, peak_memory_of_processes
from lorabook.runs import DEFAULT_RESULTS, RunPaths, run_paths
from lorabook.train import (
    CHECKPOINT_EVERY,
    effective_batch,
    epoch_order,
    fit,
    launched_processes,
    length_grouped_order,
    per_process,
    process_state,
    step_examples,
)

TRAINABLE_FILE = "trainable.safetensors"
FT_TENSORS_NOT_KEPT = (
    "not kept: full fine-tuning trains the whole model, so its tensors are a full checkpoint "
    "(~90 MB for MiniLM); only the file size is recorded"
)


def glue_config(
    task: str,
    method: str,
    model: str,
    preset: str,
    seed: int,
    settings: dict,
    processes: int = 1,
) -> dict:
    """Everything that decides a GLUE run: hashed into its record's file name.

    ``settings`` is :meth:`GluePreset.resolved` (or a record's ``settings``); its ``notes``
    are prose and left out. The data folder is not part of it (records stay portable);
    the record states the folder and the SHA-256 of each file read instead.

    ``processes``: the training processes. The batch size is per process, so their number
    changes the effective batch: a run of 2 processes is a different run from one of 1.
    It enters the dict only above 1, so that every one-process record keeps its name.
    """
    extra = {"processes": processes} if processes != 1 else {}
    return {
        "kind": "glue",
        "task": task,
        "method": method,
        "model": model,
        "preset": preset,
        "seed": seed,
        "settings": {k: v for k, v in settings.items() if k != "notes"},
        **extra,
    }


def record_config(record: dict) -> dict:
    """The configuration a GLUE record was made with (its name holds this dict's hash)."""
    return glue_config(
        record["task"],
        record["method"],
        record["model"],
        record["preset"],
        record["seed"],
        record["settings"],
        record.get("processes", 1),  # records made before the field: one process
    )


@dataclass(frozen=True)
class GlueRun:
    """One planned GLUE run: checked settings, identity (``config``) and paths."""

    task: str
    method: str
    model: str
    preset: str
    seed: int
    settings: GluePreset
    config: dict
    paths: RunPaths

    @property
    def stem(self) -> str:
        """The human part of the record's name, ``rte-lora-seed0``."""
        return f"{self.task}-{self.method}-seed{self.seed}"


def plan_glue_run(
    task: str,
    method: str = "lora",
    model: str = "minilm",
    preset: str | GluePreset = "quick",
    seed: int = 0,
    results_dir: str | Path = DEFAULT_RESULTS,
    overrides: dict | None = None,
    processes: int | None = None,
) -> GlueRun:
    """Resolve and check a run's settings and find its record; loads no data and no model.

    ``processes``: the training processes (default: what the launcher started,
    :func:`lorabook.train.launched_processes`); part of the run's identity above 1.

    Raises:
        SettingsError: an unknown task, method, preset or setting, or a value out of range
            (r < 1, α <= 0, epochs < 1, train_examples < 1, lr <= 0, ...).
    """
    if task not in GLUE_TASKS:
        raise SettingsError(f"Unknown task {task!r}; choose one of {sorted(GLUE_TASKS)}")
    if method not in METHODS:
        raise SettingsError(f"Unknown method {method!r}; choose one of {list(METHODS)}")
    if not isinstance(seed, int) or seed < 0:
        raise SettingsError(f"seed must be a whole number >= 0, got {seed!r}")
    preset_name = preset if isinstance(preset, str) else "custom"
    settings = glue_preset(preset, task, method, seed) if isinstance(preset, str) else preset
    settings = settings.with_overrides(**(overrides or {})).check()
    if processes is None:
        processes = launched_processes()
    try:
        per_process(settings.train, settings.batch_scope, processes)
    except ValueError as err:
        raise SettingsError(str(err)) from None
    config = glue_config(
        task, method, model, preset_name, seed, settings.resolved(method), processes
    )
    stem = f"{task}-{method}-seed{seed}"
    paths = run_paths(results_dir, "glue", preset_name, model, stem, config)
    return GlueRun(task, method, model, preset_name, seed, settings, config, paths)


def lora_modules(net: torch.nn.Module, settings: GluePreset) -> list[str] | None:
    """The module patterns of ``settings.lora_targets`` in ``net``; ``None`` (the paper's
    targets, as before the setting existed) for q and v.

    Raises:
        SettingsError: the model type has no table of short names, or lacks one of them.
    """
    names = settings.lora_target_names()
    if names == PAPER_LORA_TARGETS:
        return None
    try:
        return attention_targets(net, names)
    except ValueError as err:
        raise SettingsError(f"--lora-targets {' '.join(names)}: {err}") from None


def make_evaluate(task: str, eval_dataset, collate, batch_size: int, keep: dict | None = None):
    """``evaluate(model, accelerator)`` for ``fit``: predictions on the dev set → GLUE metrics.

    With ``keep``, each call also leaves ``keep["predictions"]`` (class ids, or STS-B's
    scores) and ``keep["labels"]``, in the dev set's order."""

    def evaluate(model: torch.nn.Module, accelerator: Accelerator) -> dict[str, float]:
        loader = accelerator.prepare(
            DataLoader(eval_dataset, batch_size=batch_size, collate_fn=collate)
        )
        predictions, references = [], []
        for batch in loader:
            logits = model(**batch).logits
            logits, labels = accelerator.gather_for_metrics((logits, batch["labels"]))
            predictions.append(logits.float().cpu().numpy())
            references.append(labels.float().cpu().numpy())
        predictions, references = np.concatenate(predictions), np.concatenate(references)
        if keep is not None:
            keep.update(dev_predictions(task, predictions, references))
        return glue_metrics(task, predictions, references)

    return evaluate


def dev_predictions(task: str, logits: np.ndarray, labels: np.ndarray) -> dict[str, list]:
    """What a record keeps of one evaluation: ``predictions`` (class ids: the argmax of the
    logits; STS-B: the float32 scores, exactly) and ``labels`` (ids; STS-B: scores)."""
    if GLUE_TASKS[task].is_regression:
        return {"predictions": logits.reshape(-1).tolist(), "labels": labels.tolist()}
    return {
        "predictions": logits.argmax(axis=-1).astype(int).tolist(),
        "labels": labels.astype(int).tolist(),
    }


def keep_predictions(folder: Path, latest: dict) -> Callable[[int], None]:
    """``on_evaluated`` for ``fit``: write ``latest`` (``make_evaluate``'s ``keep``) to
    ``folder/epoch<N>.json``, so the best epoch's are there when the run ends (or resumes)."""

    def on_evaluated(epoch: int) -> None:
        if process_state().is_main_process:  # fit calls it on every process
            write_json(folder / f"epoch{epoch}.json", latest)

    return on_evaluated


def best_predictions(folder: Path, epoch: int) -> dict | None:
    """The record's ``dev_predictions``: epoch ``epoch``'s predictions and labels, or ``None``
    when that epoch ran under code that kept none (a run resumed across the change)."""
    path = folder / f"epoch{epoch}.json"
    if not path.is_file():
        return None
    return {"epoch": epoch, **json.loads(path.read_text())}


def batch_tokens(
    lengths: list[int], indices: list[int], batch_size: int, pad_to: int | None = None
) -> tuple[int, int]:
    """``(real, padded)`` tokens of the batches ``indices`` makes: padded to each batch's
    longest example, or to ``pad_to`` tokens when given."""
    real = padded = 0
    for start in range(0, len(indices), batch_size):
        batch = [lengths[i] for i in indices[start : start + batch_size]]
        real += sum(batch)
        padded += len(batch) * (pad_to or max(batch))
    return real, padded


def shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (shorter to print)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _data_provenance(task: str, folder: Path | None) -> dict:
    """Where the data came from: the local folder and each file's SHA-256, or the hub."""
    if folder is None:
        return {"source": "hub", "dataset": HUB_DATASET, "config": task}
    spec = GLUE_TASKS[task]
    root = folder.parent.parent
    files = {}
    for split, name in spec.local.files.items():
        path = folder / name
        files[split] = {
            "path": str(path.relative_to(root)),
            "sha256": file_sha256(path),
            "bytes": path.stat().st_size,
        }
    return {"source": "local", "folder": str(root.resolve()), "files": files}


def run_glue(
    task: str,
    method: str = "lora",
    model: str = "minilm",
    preset: str | GluePreset = "quick",
    seed: int = 0,
    data_dir: str | Path | None = None,
    results_dir: str | Path = DEFAULT_RESULTS,
    overrides: dict | None = None,
    force: bool = False,
    progress: bool = True,
    keep_scratch: bool = False,
    log: Callable[[str], None] = print,
    checkpoint_every: int | None = CHECKPOINT_EVERY,
) -> dict:
    """Train ``model`` on GLUE ``task`` with ``method`` and write its result record.

    Args:
        task: sst2, mrpc, cola, rte, stsb (offline), or mnli, qnli, qqp (hub).
        method: ft, bitfit, adapter_h, adapter_p or lora.
        model: ``minilm`` (offline), a hub id such as ``roberta-base``, or a local folder.
        preset: ``quick``, ``paper``, or a ``GluePreset``.
        data_dir: the data folder (default ``$LORABOOK_DATA``, else ``../shared/data``).
        overrides: settings to change, e.g. ``{"epochs": 1, "lr": 1e-3, "train_examples": 64}``.
        force: rerun even if a record of exactly these settings exists (it is replaced;
            records of other settings are never touched).
        keep_scratch: keep the checkpoint folder after the record is written.
        checkpoint_every: write a resumable checkpoint every this many optimizer steps
            inside an epoch as well (0 or ``None``: at epoch ends only); not a setting of the
            run (see :func:`lorabook.train.fit`; SIGTERM also writes one and stops).
        log: where progress lines go (the record's path included).
    Returns:
        the result record, also written atomically as JSON at ``plan_glue_run(...).paths``.
    Raises:
        SettingsError: a bad setting (before anything is loaded).
        FileNotFoundError: the data folder or a file is missing.
        GlueFormatError: a malformed data file (file and line named), before training.
        lorabook.models.ModelNotAvailableError: the model cannot be had (offline).
    """
    run = plan_glue_run(task, method, model, preset, seed, results_dir, overrides)
    settings, paths = run.settings, run.paths
    state = process_state()  # several processes: set up before anything else uses Accelerate
    if not state.is_main_process:
        log = _silent  # the main process says what happens
    done = paths.finished()
    if done is not None and not force:
        log(f"{run.stem}: same settings finished earlier; record: {shown(paths.record)}")
        return done
    others = sorted(p for p in paths.record.parent.glob(f"{run.stem}-*.json") if p != paths.record)
    if others:
        log(
            f"{run.stem}: {len(others)} record(s) with other settings exist beside it "
            f"(e.g. {others[0].name}); this run gets its own record"
        )
    if run.preset in CPU_PRECISION_PRESETS and "mixed_precision" not in (overrides or {}):
        cpu_precision(log)  # one line where the CPU has no native bf16: the preset runs in fp32
    elif emulated_bf16(settings.train.mixed_precision, state.device):
        log(emulation_warning(f"{run.stem} ({run.preset} preset)", fp32_instead()))
    if force and state.is_main_process:
        paths.drop_scratch()  # a rerun starts over, not from an old checkpoint
    state.wait_for_everyone()

    # Fail early, before any training: the data folder, the model, then the data files.
    spec = GLUE_TASKS[task]
    folder = local_folder(task, data_dir)
    model_path = resolve_model(model)
    source = ("local", folder.parent.parent) if folder is not None else ("hub", None)
    train_rows = load_glue(task, "train", source[1], source=source[0])
    eval_rows = load_glue(task, "validation", source[1], source=source[0])
    data_info = _data_provenance(task, folder)
    if settings.train_examples:
        train_rows = subset(train_rows, settings.train_examples, seed)
    if settings.eval_examples:
        eval_rows = subset(eval_rows, settings.eval_examples, seed)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_ds = tokenize_glue(train_rows, tokenizer, task, settings.max_length)
    eval_ds = tokenize_glue(eval_rows, tokenizer, task, settings.max_length)
    pad_to = settings.max_length if settings.padding == "max_length" else None
    collate = DataCollatorWithPadding(tokenizer, padding=settings.padding, max_length=pad_to)
    train = per_process(settings.train, settings.batch_scope, state.num_processes)
    lengths = [len(ids) for ids in train_ds["input_ids"]]
    step = step_examples(train, state.num_processes)

    def order(epoch: int) -> list[int]:
        if settings.group_by_length:  # steps of similar length: one process's steps on N
            return length_grouped_order(lengths, step, train.seed, epoch, LENGTH_GROUP_BATCHES)
        return epoch_order(len(lengths), train.seed, epoch)

    set_seed(seed)  # the new head and LoRA's A are initialised here, before fit() runs
    with quiet():  # no loading bar or config notes in the run's log
        net = AutoModelForSequenceClassification.from_pretrained(
            model_path, num_labels=spec.num_labels
        )
    if settings.pooling == "mean":
        use_mean_pooling(net)  # the classifier reads the masked mean of the tokens, not [CLS]
    report = prepare_model(
        net,
        settings.model_method(method),  # adapter_p: Pfeiffer's, or Houlsby's FFN adapter
        lora_r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_targets=lora_modules(net, settings) if method == "lora" else None,
        adapter_size=settings.adapter_size,
    )

    latest: dict = {}  # the last evaluation's predictions, kept per epoch in the scratch folder
    predictions_dir = paths.scratch / "predictions"
    started = time.perf_counter()
    result = fit(
        net,
        train_ds,
        make_evaluate(task, eval_ds, collate, train.eval_batch_size, keep=latest),
        train,
        collate_fn=collate,
        select=primary_metric(task),
        checkpoint_dir=paths.scratch / "ckpt",
        checkpoint_every=checkpoint_every,
        progress=progress,
        log=log,
        order=order,
        on_evaluated=keep_predictions(predictions_dir, latest),
    )
    wall = time.perf_counter() - started
    device = next(net.parameters()).device
    tensors = {n: p for n, p in net.named_parameters() if p.requires_grad}
    keep = method != "ft"
    trained = (paths.outputs if keep else paths.scratch) / TRAINABLE_FILE
    state.wait_for_everyone()  # every process has finished training and evaluating
    if state.is_main_process:
        write_tensors(trained, tensors)
    state.wait_for_everyone()  # the file's size is read below, on every process

    train_seconds = sum(e["train_seconds"] for e in result.history)
    train_steps = sum(e["steps"] for e in result.history)
    real = padded = 0  # the tokens of the batches fit() drew, epoch by epoch
    for epoch, entry in enumerate(result.history):
        seen = order(epoch)[: entry["steps"] * train.batch_size * state.num_processes]
        r, p = batch_tokens(lengths, seen, train.batch_size, pad_to)
        real, padded = real + r, padded + p
    record = {
        "kind": "glue",
        "task": task,
        "method": method,
        "model": model,
        "preset": run.preset,
        "seed": seed,
        "key": paths.key,
        "settings": settings.resolved(method),
        **({"processes": state.num_processes} if state.num_processes != 1 else {}),
        "effective_batch": effective_batch(train, state.num_processes),
        "data": {"train_rows": len(train_ds), "eval_rows": len(eval_ds), **data_info},
        "params": report.to_dict(),
        "metric": primary_metric(task),
        "best_epoch": result.best_epoch,
        "best": {k: v for k, v in result.best.items() if k not in ("epoch", "steps")},
        "epochs": result.history,
        "dev_predictions": best_predictions(predictions_dir, result.best_epoch),
        "train_tokens": {
            "real": real,
            "padded": padded,
            "padding_share": 1 - real / padded if padded else 0.0,
            "real_per_second": real / train_seconds if train_seconds else None,
        },
        "trainable_file": f"{paths.outputs.name}/{TRAINABLE_FILE}" if keep else None,
        "trainable_file_bytes": trained.stat().st_size,
        **({} if keep else {"trainable_file_note": FT_TENSORS_NOT_KEPT}),
        "peak_memory": peak_memory_of_processes(device, state.num_processes),
        "seconds_per_step": train_seconds / max(train_steps, 1),
        "wall_seconds": wall,
        "resumed_from_epoch": result.resumed_from_epoch,
        "resumed_from_batch": result.resumed_from_batch,
        "precision": precision_record(train.mixed_precision, device, ("train", "evaluate")),
        "environment": environment(device),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if state.is_main_process:
        write_json(paths.record, record)
        if not keep_scratch:
            paths.drop_scratch()
    state.wait_for_everyone()  # no process returns before the record is there
    log(f"{run.stem}: record written: {shown(paths.record)}")
    return record


def _silent(message: str) -> None:
    """``run_glue``'s log on the processes other than the main one."""
