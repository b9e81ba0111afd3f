"""One GLUE run, start to finish: data, model, method, training, one JSON result record.

    from lorabook.glue.experiment import run_glue
    record = run_glue("sst2", method="lora", model="minilm", preset="quick")

A finished run's record is never recomputed: calling again returns it (``force=True`` reruns).
An interrupted run resumes from its last epoch checkpoint under ``<results>/_scratch``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

from lorabook.glue.data import GLUE_TASKS, load_glue, subset, tokenize_glue
from lorabook.glue.metrics import glue_metrics, primary_metric
from lorabook.glue.presets import GluePreset, glue_preset
from lorabook.io import write_json, write_tensors
from lorabook.methods import prepare_model
from lorabook.models import resolve_model
from lorabook.records import environment, peak_memory
from lorabook.train import fit

DEFAULT_RESULTS = Path("results")


def model_slug(model: str) -> str:
    """A file-name-safe name for a model id or path."""
    return Path(model).name if Path(model).exists() else model.replace("/", "--")


def record_path(
    results_dir: str | Path, preset: str, model: str, task: str, method: str, seed: int
) -> Path:
    """``<results>/glue/<preset>/<model>/<task>-<method>-seed<seed>.json``."""
    name = f"{task}-{method}-seed{seed}.json"
    return Path(results_dir) / "glue" / preset / model_slug(model) / name


def make_evaluate(task: str, eval_dataset, collate, batch_size: int):
    """``evaluate(model, accelerator)`` for ``fit``: predictions on the dev set → GLUE metrics."""

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
        return glue_metrics(task, np.concatenate(predictions), np.concatenate(references))

    return evaluate


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
) -> dict:
    """Train ``model`` on GLUE ``task`` with ``method`` and write its result record.

    Args:
        task: sst2, mrpc, cola, rte, stsb (offline), or mnli, qnli, qqp (hub).
        method: ft, bitfit, adapter_h, adapter_p or lora.
        model: ``minilm`` (offline), a hub id such as ``roberta-base``, or a local folder.
        preset: ``quick``, ``paper``, or a ``GluePreset``.
        overrides: settings to change, e.g. ``{"epochs": 1, "lr": 1e-3, "train_examples": 64}``.
        force: rerun even if a record exists.
    Returns:
        the result record (also written atomically as JSON; see ``record_path``).
    """
    preset_name = preset if isinstance(preset, str) else "custom"
    settings = glue_preset(preset, task, method, seed) if isinstance(preset, str) else preset
    settings = settings.with_overrides(**(overrides or {}))
    out = record_path(results_dir, preset_name, model, task, method, seed)
    if out.exists() and not force:
        return json.loads(out.read_text())
    run_id = out.stem + f"-{preset_name}-{model_slug(model)}"
    scratch = Path(results_dir) / "_scratch" / run_id

    spec = GLUE_TASKS[task]
    set_seed(seed)  # the new head and LoRA's A are initialised here, before fit() runs
    path = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    net = AutoModelForSequenceClassification.from_pretrained(path, num_labels=spec.num_labels)
    report = prepare_model(
        net,
        method,
        lora_r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        adapter_size=settings.adapter_size,
    )

    train_rows = load_glue(task, "train", data_dir)
    eval_rows = load_glue(task, "validation", data_dir)
    if settings.train_examples:
        train_rows = subset(train_rows, settings.train_examples, seed)
    if settings.eval_examples:
        eval_rows = subset(eval_rows, settings.eval_examples, seed)
    train_ds = tokenize_glue(train_rows, tokenizer, task, settings.max_length)
    eval_ds = tokenize_glue(eval_rows, tokenizer, task, settings.max_length)
    collate = DataCollatorWithPadding(tokenizer)
    select = primary_metric(task)

    started = time.perf_counter()
    evaluate = make_evaluate(task, eval_ds, collate, settings.train.eval_batch_size)
    result = fit(
        net,
        train_ds,
        evaluate,
        settings.train,
        collate_fn=collate,
        select=select,
        checkpoint_dir=scratch / "ckpt",
        progress=progress,
    )
    wall = time.perf_counter() - started
    device = next(net.parameters()).device
    trained = write_tensors(
        scratch / "trainable.safetensors",
        {n: p for n, p in net.named_parameters() if p.requires_grad},
    )
    train_seconds = sum(e["train_seconds"] for e in result.history)
    train_steps = sum(e["steps"] for e in result.history)
    record = {
        "kind": "glue",
        "task": task,
        "method": method,
        "model": model,
        "preset": preset_name,
        "seed": seed,
        "settings": {
            "train": asdict(settings.train),
            "max_length": settings.max_length,
            "train_examples": settings.train_examples,
            "eval_examples": settings.eval_examples,
            "lora_r": settings.lora_r if method == "lora" else None,
            "lora_alpha": settings.lora_alpha if method == "lora" else None,
            "adapter_size": settings.adapter_size if method.startswith("adapter") else None,
            "notes": settings.notes,
        },
        "data": {"train_rows": len(train_ds), "eval_rows": len(eval_ds)},
        "params": report.to_dict(),
        "metric": select,
        "best_epoch": result.best_epoch,
        "best": {k: v for k, v in result.best.items() if k not in ("epoch", "steps")},
        "epochs": result.history,
        "trainable_file_bytes": trained.stat().st_size,
        "peak_memory": peak_memory(device),
        "seconds_per_step": train_seconds / max(train_steps, 1),
        "wall_seconds": wall,
        "resumed_from_epoch": result.resumed_from_epoch,
        "environment": environment(device),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(out, record)
    shutil.rmtree(scratch / "ckpt", ignore_errors=True)
    return record
