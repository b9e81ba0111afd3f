"""One E2E run, start to finish: data, causal LM, method, training, decoding, scores, record.

    from lorabook.e2e.experiment import run_e2e
    record = run_e2e(method="lora", model="smollm2", preset="cpu")

A finished run is never recomputed: its record is returned (the record's name carries a hash
of everything that decides the run, see ``lorabook.runs``). An interrupted run resumes from
its last checkpoint, and an interrupted decode from its last finished batch. Besides
the JSON record, the run keeps (in the folder of the same name) the decoded outputs and the
references in the official e2e-metrics layout, and, for methods that train few parameters,
the trained tensors.

Runs that evaluate several times an epoch (``rounds_per_epoch``, the ``full`` preset) record
one history entry per round (``epoch`` counts rounds, ``epochs_seen`` passes over the data),
with greedy-decoded BLEU on a dev subset beside the dev loss (``dev_mrs``); with
``select_best`` the test set is decoded with the weights of the round of lowest dev loss,
kept in the run's scratch folder as training goes (``selection`` in the record says which).
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from lorabook.cli import SettingsError
from lorabook.e2e.data import (
    IGNORE_INDEX,
    E2ERow,
    E2ETrainDataset,
    collate_causal,
    group_references,
    load_e2e,
    separator_id,
    subset_rows,
)
from lorabook.e2e.decode import decoded_so_far, generate_outputs
from lorabook.e2e.metrics import (
    bleu_nist,
    e2e_scores,
    find_java,
    pymteval_bleu_nist,
    read_outputs,
    read_reference_blocks,
    write_official_layout,
)
from lorabook.e2e.paper_format import collapse_whitespace, load_paper_e2e
from lorabook.e2e.presets import (
    CPU_PRECISION_PRESETS,
    DecodeConfig,
    E2EPreset,
    dev_loss_flat,
    e2e_preset,
)
from lorabook.io import write_json, write_tensors
from lorabook.methods import prefix_token_ids, prepare_causal_lm
from lorabook.models import resolve_model
from lorabook.optimizers import official_adamw
from lorabook.precision import (
    cpu_precision,
    emulated_bf16,
    emulation_warning,
    fp32_instead,
    precision_info,
    precision_record,
)
from lorabook.quiet import quiet
from lorabook.records import environment, git_commit, peak_memory_of_processes
from lorabook.runs import DEFAULT_RESULTS, RunPaths, run_paths, scratch_of
from lorabook.train import (
    CHECKPOINT,
    CHECKPOINT_EVERY,
    LENGTH_GROUP_BATCHES,
    TrainConfig,
    effective_batch,
    fit,
    launched_processes,
    length_grouped_order,
    per_process,
    process_state,
    round_order,
    step_examples,
)

# bytes: keep trained tensors with the record below this (LoRA, the adapters, prefixes: about
# 1 MB on SmolLM2). FT's and FT-Top2's (28 MB) are weights, which the project does not commit;
# the one FT-Top2 record made under an older 50 MB limit names a file its checkout lacks.
KEEP_TENSORS_BELOW = 5_000_000
NO_TRAINING = "none"  # method name of the untuned model (decode only)


@functools.cache
def logits_mask_supported() -> bool:
    """Whether this transformers takes a boolean ``(batch, length)`` mask as
    ``logits_to_keep`` (5.23 does; older 5.x take only a count or 1-D positions)."""
    from transformers import modeling_utils

    slice_hidden = getattr(modeling_utils, "slice_logits_to_keep", None)
    if slice_hidden is None:
        return False
    mask = torch.tensor([[True, False], [False, True]])
    try:
        return tuple(slice_hidden(torch.zeros(2, 2, 3), mask).shape) == (2, 3)
    except (IndexError, RuntimeError, TypeError):
        return False


def causal_lm_loss(model: torch.nn.Module, batch: dict, label_smoothing: float = 0.0):
    """Mean cross-entropy of next-token prediction on the labelled (reference) tokens.

    ``labels`` are the inputs with -100 on the context; position t predicts token t + 1.
    With ``label_smoothing`` ε the target is (1 − ε) on the true token and ε/V spread over
    the vocabulary, as ``torch.nn.functional.cross_entropy`` defines it.

    The LM head (49,152 × 576 on SmolLM2, about a fifth of its multiply-adds per token) runs
    only where the loss is: on the positions whose next token is labelled (about a third of
    an E2E batch's positions), through transformers' ``logits_to_keep`` (a boolean mask; on
    a transformers without masks, the positions labelled in any row of the batch). The loss
    is the one of the head on every position, to float rounding (tested); peft's
    prefix-tuning model passes ``logits_to_keep`` on to the model it wraps.
    """
    labels = batch["labels"]
    target = labels[:, 1:]
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = target != IGNORE_INDEX
    positions = None if logits_mask_supported() else keep.any(0).nonzero().squeeze(1)
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        logits_to_keep=keep if positions is None else positions,
    ).logits
    if logits.dim() == 3:  # positions kept for the whole batch (or every position)
        logits = logits[keep if logits.size(1) == keep.size(1) else keep[:, positions]]
    return F.cross_entropy(logits.float(), target[keep[:, :-1]], label_smoothing=label_smoothing)


def load_trained(model: torch.nn.Module, path: str | Path) -> None:
    """Load a record's ``trainable.safetensors`` into ``model``: exactly its trainable
    parameters, by name and shape (anything else is an error that names the difference)."""
    from safetensors.torch import load_file

    copy_trainable(model, load_file(str(path)), path)


def copy_trainable(model: torch.nn.Module, tensors: dict[str, torch.Tensor], path) -> None:
    """Copy ``tensors`` (read from ``path``) into exactly ``model``'s trainable parameters, by
    name and shape (anything else is an error that names the difference)."""
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if tensors.keys() != trainable.keys():
        missing, extra = trainable.keys() - tensors.keys(), tensors.keys() - trainable.keys()
        raise ValueError(
            f"{path} does not fit this model's trainable parameters: missing "
            f"{sorted(missing)[:3]}, unexpected {sorted(extra)[:3]}"
        )
    with torch.no_grad():
        for name, p in trainable.items():
            if p.shape != tensors[name].shape:
                raise ValueError(
                    f"{path}: {name} has shape {tuple(tensors[name].shape)}, the model's "
                    f"{tuple(p.shape)}"
                )
            p.copy_(tensors[name])


def make_dev_loss(dataset: E2ETrainDataset, collate, batch_size: int):
    """``evaluate(model, accelerator)`` for ``fit``: the dev loss (no smoothing) per token."""

    def evaluate(model: torch.nn.Module, accelerator: Accelerator) -> dict[str, float]:
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
        if accelerator.num_processes == 1:
            loader = accelerator.prepare(loader)
        # Several processes: each reads the whole dev set, so that all get the same loss
        # (what stop_early and keep_best decide on) and no padded repeat is counted.
        total, tokens = 0.0, 0
        for batch in loader:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            n = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
            total += causal_lm_loss(model, batch).item() * n
            tokens += n
        loss = total / max(tokens, 1)
        return {"dev_loss": loss, "neg_dev_loss": -loss, "dev_ppl": math.exp(min(loss, 50))}

    return evaluate


@dataclass(frozen=True)
class GreedyDev:
    """What an evaluation decodes: dev MRs, their references, and the decoding (greedy)."""

    tokenizer: object
    mrs: list[str]
    references: list[list[str]]
    decode: DecodeConfig


def make_dev_eval(
    dataset: E2ETrainDataset, collate, batch_size: int, greedy: GreedyDev | None = None
):
    """``evaluate(model, accelerator)`` for ``fit``: the dev loss (:func:`make_dev_loss`) and,
    with ``greedy``, the BLEU (``bleu_nist``, the challenge's) of its MRs decoded by the
    paper's search with one beam, and how many of those outputs are empty."""
    dev_loss = make_dev_loss(dataset, collate, batch_size)

    def evaluate(model: torch.nn.Module, accelerator: Accelerator) -> dict[str, float]:
        started = time.perf_counter()
        metrics = dev_loss(model, accelerator)
        if greedy is not None:
            outputs = generate_outputs(
                accelerator.unwrap_model(model),
                greedy.tokenizer,
                greedy.mrs,
                greedy.decode,
                progress=False,
            )
            metrics["dev_bleu"] = bleu_nist(outputs, greedy.references)[0]
            metrics["dev_bleu_mrs"] = len(outputs)
            metrics["dev_empty_outputs"] = sum(not o for o in outputs)
        metrics["eval_seconds"] = time.perf_counter() - started
        return metrics

    return evaluate


def load_rows(split: str, settings: E2EPreset, data_dir: str | Path | None) -> list[E2ERow]:
    """The rows of ``split`` in the settings' data form (the CSV's, or the paper's:
    :func:`lorabook.e2e.paper_format.load_paper_e2e`)."""
    if settings.data_form == "paper":
        return load_paper_e2e(split, data_dir)
    return load_e2e(split, data_dir)


def training_rows(rows: list[E2ERow], settings: E2EPreset) -> list[E2ERow]:
    """Rows as the model trains on them (and the dev loss reads them): with
    ``collapse_whitespace``, every run of spaces, tabs and line breaks in a CSV reference as
    one space (the paper's form has that built in). Test references are never changed: the
    scorer reads them as the official files have them."""
    if not settings.collapse_whitespace or settings.data_form == "paper":
        return rows
    return [E2ERow(r.mr, collapse_whitespace(r.ref)) for r in rows]


def load_causal_lm(folder: str | Path, backbone_dropout: float | None) -> torch.nn.Module:
    """The pretrained causal LM in float32; with ``backbone_dropout`` every dropout rate of its
    config (names ending in ``pdrop`` or ``dropout``: GPT-2's attention, residual and
    embedding dropout; Llama's attention dropout) set to that value before it is built."""
    config = AutoConfig.from_pretrained(folder)
    if backbone_dropout is not None:
        for name, value in config.to_dict().items():
            if name.endswith(("pdrop", "dropout")) and isinstance(value, float):
                setattr(config, name, backbone_dropout)
    return AutoModelForCausalLM.from_pretrained(folder, config=config, dtype=torch.float32)


def paper_variant(
    outputs: list[str], references: list[list[str]], scores: dict, log=print
) -> dict | None:
    """The five metrics as the paper reports them (``measure_scores.py -p``): BLEU and NIST
    from the official scorer's Python implementation, METEOR, ROUGE-L and CIDEr as in
    ``scores`` (the challenge variant's, which both variants share). ``None`` where that
    NIST is undefined (outputs of at most one word: the official script divides by zero)."""
    try:
        bleu, nist = pymteval_bleu_nist(outputs, references)
    except ValueError as err:
        log(f"no paper-variant scores: {err}")
        return None
    return {**scores, "BLEU": bleu, "NIST": nist}


def add_scores(record_path: str | Path, log=print) -> dict:
    """Score a finished run from its official-layout files where its record lacks scores:
    ``scores`` (the challenge's scorer; e.g. a run decoded with ``--no-score``) and
    ``scores_paper`` (the paper's variant; records made before it was computed). Each
    addition names the scorer's commit (``scored``, ``scored_paper``)."""
    record_path = Path(record_path)
    record = json.loads(record_path.read_text())
    folder = record_path.with_suffix("")
    outputs = read_outputs(folder / "outputs.txt")
    references = read_reference_blocks(folder / "references.txt")
    stamp = {"git_commit": git_commit(), "at": datetime.now(UTC).isoformat(timespec="seconds")}
    if record.get("scores") is None:
        record["scores"], record["scored"] = e2e_scores(outputs, references), stamp
    if "scores_paper" not in record:
        record["scores_paper"] = paper_variant(outputs, references, record["scores"], log)
        record["scored_paper"] = stamp
    write_json(record_path, record)
    log("scores: " + ", ".join(f"{k} {v:.4f}" for k, v in record["scores"].items()))
    return record


def _differences(config: dict, source: dict, free: Sequence[str]) -> list[str]:
    """Where the record ``source`` differs from ``config`` (``settings.train.lr``), not
    counting the settings named in ``free``."""
    ours = {**config, "settings": {k: v for k, v in config["settings"].items() if k not in free}}
    theirs = {k: source.get(k) for k in config}
    theirs["settings"] = {k: v for k, v in source["settings"].items() if k not in free}
    return _paths_differing(ours, theirs)


def _paths_differing(ours: object, theirs: object, prefix: str = "") -> list[str]:
    if not (isinstance(ours, dict) and isinstance(theirs, dict)):
        return [prefix.rstrip(".")] if ours != theirs else []
    return sorted(
        path
        for key in ours.keys() | theirs.keys()
        for path in _paths_differing(ours.get(key), theirs.get(key), f"{prefix}{key}.")
    )


def trained_source(record_path: str | Path, config: dict) -> dict:
    """The finished record at ``record_path`` whose trained tensors a run decodes again.

    It must be the same run up to the decoding: same method, model, preset, seed and every
    setting but ``decode`` (else the tensors are not what this run would train), and it must
    have kept its trained tensors.

    Raises:
        ValueError: the record differs in anything but the decoding, or kept no tensors;
            the message names what differs.
    """
    record_path = Path(record_path)
    source = json.loads(record_path.read_text())
    if differ := _differences(config, source, ("decode",)):
        raise ValueError(
            f"{record_path} is not this run up to the decoding: {', '.join(differ)} differ; "
            "decode again only with the settings it was trained with"
        )
    kept = source.get("trainable_tensors")
    if not kept:
        raise ValueError(
            f"{record_path} kept no trained tensors: its {source['method']} run trained "
            f"{KEEP_TENSORS_BELOW / 1e6:.0f} MB or more, which are weights, not kept beside a "
            "record; train the run again instead"
        )
    if not (record_path.with_suffix("") / kept).is_file():
        raise ValueError(
            f"{record_path} names its trained tensors {kept!r}, but they are not in "
            f"{record_path.with_suffix('')}: copy them from the machine that trained the run "
            "(files this large are not committed), or train the run again"
        )
    return {**source, "_path": str(record_path)}


HOW_LONG = ("rounds", "stop_flat", "decode_test")
"""The settings that say only how long a run trains and whether it decodes the test set: two
runs that differ in nothing else train the same rounds, so one can continue the other."""


def continue_source(record_path: str | Path, config: dict, scratch: Path, rounds: int) -> dict:
    """The finished record at ``record_path`` whose final checkpoint a run starts from.

    The sweep's round is the first round of the pilot at the picked rate, and the pilot's
    rounds are the first of a run with a longer budget (:mod:`lorabook.e2e.campaign`): a run
    that continues such a record trains only the rounds the record did not, and ends with
    exactly the weights it would have had training from the start (resuming is bit-identical,
    ``tests/test_train.py``). The record must be this run up to :data:`HOW_LONG`, have kept
    its checkpoint (``keep_checkpoint``) in ``scratch`` (its scratch folder), and have
    trained at most the ``rounds`` this run may train.

    Raises:
        ValueError: it differs in anything else, trained more rounds, or its checkpoint is
            gone; the message says which.
    """
    record_path = Path(record_path)
    source = json.loads(record_path.read_text())
    if differ := _differences(config, source, HOW_LONG):
        raise ValueError(
            f"{record_path} is not this run up to how long it trains: {', '.join(differ)} "
            "differ; only a run of the same training can be continued"
        )
    done = len(source["epochs"])
    if done > rounds:
        raise ValueError(
            f"{record_path} trained {done} rounds and this run trains at most {rounds}: "
            "continue only a shorter run"
        )
    last = scratch / "ckpt" / CHECKPOINT
    held = torch.load(last, map_location="cpu", weights_only=False) if last.exists() else None
    if held is None or len(held["history"]) != done or held.get("in_epoch") is not None:
        raise ValueError(
            f"{record_path} kept no final checkpoint in {last.parent} (run it with "
            "keep_checkpoint, or train this run from the start)"
        )
    return {**source, "_path": str(record_path), "_checkpoint": str(last.parent)}


CONTINUED = "continued_from.json"  # in a run's scratch folder: the run it continues


def start_from(source: dict, scratch: Path, log=print) -> None:
    """Copy the checkpoint of ``source`` (:func:`continue_source`) into ``scratch/ckpt``,
    where ``fit`` resumes from it, and note where it came from. A run that already has a
    checkpoint of its own (it was interrupted after starting) keeps it."""
    ckpt = scratch / "ckpt"
    if (ckpt / CHECKPOINT).exists():
        return
    ckpt.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(source["_checkpoint"]).iterdir()):
        if path.is_file() and path.suffix == ".pt":
            shutil.copyfile(path, ckpt / f".{path.name}.part")
            (ckpt / f".{path.name}.part").replace(ckpt / path.name)  # the checkpoint last
    rounds = len(source["epochs"])
    note = {
        "record": Path(source["_path"]).name,
        "rounds": rounds,
        "git_commit": source["environment"]["git_commit"],
    }
    write_json(scratch / CONTINUED, note)
    log(f"Continuing {source['_path']} after its {rounds} round(s)")


def run_config(
    method: str,
    model: str,
    preset_name: str,
    settings: E2EPreset,
    seed: int,
    processes: int = 1,
) -> dict:
    """Everything that decides an E2E run (hashed into the record's file name).

    ``processes``: the training processes; the batch size is per process, so their number
    changes the effective batch and a run of 2 processes is another run than one of 1. It
    enters the dict only above 1, so that every one-process record keeps its name.
    """
    return {
        "kind": "e2e",
        "method": method,
        "model": model,
        "preset": preset_name,
        "seed": seed,
        "settings": settings.to_dict(),
        **({"processes": processes} if processes != 1 else {}),
    }


@dataclass(frozen=True)
class E2ERun:
    """A planned E2E run: its resolved settings, identity and paths (nothing loaded)."""

    method: str
    model: str
    preset: str
    seed: int
    settings: E2EPreset
    config: dict
    paths: RunPaths


def plan_e2e_run(
    method: str = "lora",
    model: str = "smollm2",
    preset: str | E2EPreset = "cpu",
    seed: int = 0,
    results_dir: str | Path = DEFAULT_RESULTS,
    overrides: dict | None = None,
    processes: int | None = None,
) -> E2ERun:
    """Resolve and check a run's settings and find its record; loads no data and no model.

    ``processes``: the training processes (default: what the launcher started); part of
    the run's identity above 1 (:func:`run_config`).

    Raises:
        SettingsError: an unknown method, preset or setting, a value out of range, or a
            setting the preset has no value for yet (``full`` before its sweep's pick).
    """
    preset_name = preset if isinstance(preset, str) else "custom"
    lr_method = "lora" if method == NO_TRAINING else method
    settings = e2e_preset(preset, lr_method, seed) if isinstance(preset, str) else preset
    settings = settings.with_overrides(**(overrides or {})).require_set()
    if processes is None:
        processes = launched_processes()
    try:
        per_process(settings.train, settings.batch_scope, processes)
    except ValueError as err:
        raise SettingsError(str(err)) from None
    config = run_config(method, model, preset_name, settings, seed, processes)
    paths = run_paths(results_dir, "e2e", preset_name, model, f"{method}-seed{seed}", config)
    return E2ERun(method, model, preset_name, seed, settings, config, paths)


def fit_rounds(
    settings: E2EPreset, lengths: list[int], processes: int = 1
) -> tuple[TrainConfig, Callable | None]:
    """``fit``'s config and ``order`` for the settings, the training examples' token ``lengths``
    and the run's ``processes`` (the batch each one takes: :func:`lorabook.train.per_process`):
    as they are with one round an epoch; with ``rounds_per_epoch`` > 1, one ``fit`` epoch per
    round (:func:`lorabook.train.round_order`: the rounds of a pass cover every training row
    once, each takes the same number of optimizer steps, so the schedule planned for
    ``planned_rounds`` rounds is exact). ``group_by_length``: steps of similar length
    (:func:`lorabook.train.group_by_length`, in chunks of ``LENGTH_GROUP_BATCHES`` steps).

    Both cut the order into *steps* (:func:`lorabook.train.step_examples`), so N processes
    see, step by step, the examples one process with the same global batch sees, and a round
    takes as many steps on any number of processes.

    Raises:
        SettingsError: the training rows cannot be cut into rounds of equal steps.
    """
    train = per_process(settings.train, settings.batch_scope, processes)
    step, seed = step_examples(train, processes), train.seed
    grouped = lengths if settings.group_by_length else None
    if settings.rounds_per_epoch == 1:
        if grouped is None:
            return train, None
        return train, functools.partial(
            length_grouped_order, grouped, step, seed, chunk_batches=LENGTH_GROUP_BATCHES
        )
    try:
        order, per_round = round_order(
            len(lengths), step, settings.rounds_per_epoch, seed, grouped, LENGTH_GROUP_BATCHES
        )
    except ValueError as err:
        raise SettingsError(f"{err} (set train_examples)") from None
    config = replace(train, epochs=settings.planned_rounds, max_steps_per_epoch=per_round)
    return config, order


def stop_rule(settings: E2EPreset) -> Callable[[list[dict]], bool] | None:
    """``fit``'s ``stop_early`` for the settings: after ``rounds`` rounds, or once the dev loss
    is flat (:func:`lorabook.e2e.presets.dev_loss_flat` with ``stop_flat`` over
    ``flat_window`` rounds); ``None`` when neither is set (train the whole schedule)."""
    if settings.rounds is None and settings.stop_flat is None:
        return None

    def stop(history: list[dict]) -> bool:
        if len(history) >= settings.trained_rounds:
            return True
        losses = [e["dev_loss"] for e in history]
        return settings.stop_flat is not None and dev_loss_flat(
            losses, settings.stop_flat, settings.flat_window
        )

    return stop


def why_stopped(settings: E2EPreset, rounds_done: int) -> str:
    """``"schedule end"`` (every planned round), ``"rounds"`` (the ``rounds`` asked for) or
    ``"flat"`` (the dev-loss rule, before either)."""
    if rounds_done >= settings.planned_rounds:
        return "schedule end"
    if rounds_done >= settings.trained_rounds:
        return "rounds"
    return "flat"


def selection(history: list[dict]) -> dict:
    """Which evaluation a ``select_best`` run decodes with: the lowest dev loss (ties: the
    earlier), as ``fit`` selects on ``neg_dev_loss``."""
    best = max(range(len(history)), key=lambda i: history[i]["neg_dev_loss"])
    return {
        "rule": "lowest dev loss",
        "round": history[best]["epoch"],
        "dev_loss": history[best]["dev_loss"],
        "rounds": len(history),
    }


def run_e2e(
    method: str = "lora",
    model: str = "smollm2",
    preset: str | E2EPreset = "cpu",
    seed: int = 0,
    data_dir: str | Path | None = None,
    results_dir: str | Path = DEFAULT_RESULTS,
    overrides: dict | None = None,
    progress: bool = True,
    score: bool = True,
    trained_from: str | Path | None = None,
    log=print,
    checkpoint_every: int | None = CHECKPOINT_EVERY,
    continue_from: str | Path | None = None,
    keep_checkpoint: bool = False,
) -> dict:
    """Train ``model`` on E2E with ``method``, decode the test MRs, score, write the record.

    Args:
        method: lora, ft, ft_top2, adapter_l, adapter_h, prefix
            (``lorabook.methods.CAUSAL_LM_METHODS``), or ``"none"`` for the untuned model
            (decoding and scoring only).
        model: ``smollm2`` (offline), a hub id such as ``gpt2-medium``, or a local folder.
        preset: ``cpu``, ``paper``, ``smoke``, or an ``E2EPreset``.
        overrides: settings to change, e.g. ``{"epochs": 2, "train_examples": 1000,
            "length_penalty": 0.8}`` (``E2EPreset``, ``TrainConfig``, ``DecodeConfig`` fields).
        score: compute the five metrics (needs Java for METEOR; see ``lorabook.e2e.metrics``).
        trained_from: the record of a finished run that differs from this one only in its
            decoding and kept its trained tensors: they are loaded instead of training again
            (its training history is copied, and the record says where it came from).
        checkpoint_every: write a resumable checkpoint every this many optimizer steps
            inside an epoch as well (0 or ``None``: at epoch ends only); not a setting of the
            run (see :func:`lorabook.train.fit`; SIGTERM also writes one and stops).
        continue_from: the record of a finished run that differs from this one only in how
            long it trained (:data:`HOW_LONG`) and kept its final checkpoint: this run starts
            from that checkpoint instead of from the beginning (:func:`continue_source`; the
            record says so under ``data.continued_from``).
        keep_checkpoint: keep the final checkpoint in the scratch folder after the record is
            written, so that a longer run can continue this one.
    Returns:
        the result record (also written atomically as JSON; see ``lorabook.runs``).
    """
    run = plan_e2e_run(method, model, preset, seed, results_dir, overrides)
    preset_name, settings, config, paths = run.preset, run.settings, run.config, run.paths
    ranks = process_state()  # several processes: set up before anything else uses Accelerate
    if not ranks.is_main_process:
        log = _silent  # the main process says what happens
    source = trained_source(trained_from, config) if trained_from is not None else None
    continued = None
    if continue_from is not None and method != NO_TRAINING:
        continued = continue_source(
            continue_from, config, scratch_of(Path(continue_from)), settings.trained_rounds
        )
    score = score and settings.decode_test  # a run that decodes no test set has no scores
    if (record := paths.finished()) is not None:
        log(f"Already done: {paths.record}")
        if score and (record.get("scores") is None or "scores_paper" not in record):
            record = add_scores(paths.record, log)
        return record
    if score:
        find_java()  # METEOR needs Java: fail now, not after an hour of training
    log(f"Run: {paths.record}")
    if preset_name in CPU_PRECISION_PRESETS and "mixed_precision" not in (overrides or {}):
        cpu_precision(log)  # one line where the CPU has no native bf16: the preset runs in fp32
    elif any(
        emulated_bf16(p, ranks.device)
        for p in (settings.train.mixed_precision, settings.decode.precision)
    ):
        log(
            emulation_warning(
                f"{method} ({preset_name} preset)",
                fp32_instead("--mixed-precision no --decode-precision no"),
            )
        )

    env = environment()  # now: the commit that trains, whatever the checkout says later
    set_seed(seed)  # LoRA's A and any new module are initialised here, before fit() runs
    folder = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with quiet():  # no loading bar or config notes in the run's log
        net = load_causal_lm(folder, settings.backbone_dropout)
    pad_id = separator_id(tokenizer)

    dev_seed = seed if settings.dev_seed is None else settings.dev_seed
    train_rows = subset_rows(load_rows("train", settings, data_dir), settings.train_examples, seed)
    train_rows = training_rows(train_rows, settings)
    all_dev = load_rows("validation", settings, data_dir)
    dev_rows = training_rows(subset_rows(all_dev, settings.eval_examples, dev_seed), settings)
    mrs, references = group_references(load_rows("test", settings, data_dir))
    if settings.test_mrs is not None:
        mrs, references = mrs[: settings.test_mrs], references[: settings.test_mrs]

    started = time.perf_counter()
    history: list[dict] = []
    selected: dict | None = None
    params: dict
    if method == NO_TRAINING:
        for p in net.parameters():
            p.requires_grad_(False)
        total = sum(p.numel() for p in net.parameters())
        params = {
            "method": method,
            "trainable": 0,
            "head": 0,
            "total": total,
            "trainable_percent": 0.0,
        }
        train_info: dict = {}
    else:
        net, report = prepare_causal_lm(  # prefix: net is now a peft model around it
            net,
            method,
            lora_r=settings.lora_r,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.dropout,
            adapter_size=settings.adapter_size,
            prefix_length=settings.prefix_length,
            prefix_init_ids=None
            if settings.prefix_init == "random"
            else prefix_token_ids(tokenizer, settings.prefix_init, settings.prefix_length),
        )
        params = report.to_dict()
        log(str(report))
        if source is not None:
            load_trained(net, Path(source["_path"]).with_suffix("") / source["trainable_tensors"])
            log(f"Trained tensors from {source['_path']} (no training)")
            history = source["epochs"]
            train_info = {
                **{k: v for k, v in source["data"].items() if not k.startswith("test_")},
                "trained_in": {
                    "record": Path(source["_path"]).name,
                    "git_commit": source["environment"]["git_commit"],
                },
            }
        else:
            collate = collate_causal(pad_id)
            train_ds = E2ETrainDataset(train_rows, tokenizer, settings.max_length)
            dev_ds = E2ETrainDataset(dev_rows, tokenizer, settings.max_length)
            greedy = None
            if settings.dev_mrs:
                dev_mrs, dev_refs = group_references(all_dev)
                pairs = list(zip(dev_mrs, dev_refs, strict=True))
                pairs = subset_rows(pairs, settings.dev_mrs, dev_seed)
                greedy = GreedyDev(
                    tokenizer,
                    [m for m, _ in pairs],
                    [r for _, r in pairs],
                    replace(settings.decode, num_beams=1),
                )
            fit_config, order = fit_rounds(settings, train_ds.lengths(), ranks.num_processes)
            if continued is not None:
                start_from(continued, paths.scratch, log)
            result = fit(
                net,
                train_ds,
                make_dev_eval(dev_ds, collate, settings.train.eval_batch_size, greedy),
                fit_config,
                collate_fn=collate,
                select="neg_dev_loss",
                checkpoint_dir=paths.scratch / "ckpt",
                checkpoint_every=checkpoint_every,
                progress=progress,
                log=log,
                compute_loss=lambda m, b: causal_lm_loss(m, b, settings.label_smoothing),
                order=order,
                make_optimizer=official_adamw if settings.optimizer == "official" else None,
                stop_early=stop_rule(settings),
                keep_best=settings.select_best,
            )
            history = [
                {**e, "epochs_seen": e["epoch"] / settings.rounds_per_epoch}
                if settings.rounds_per_epoch > 1
                else e
                for e in result.history
            ]
            if settings.select_best:
                assert result.best_state is not None
                state = torch.load(result.best_state, map_location="cpu", weights_only=False)
                copy_trainable(net, state["trainable"], result.best_state)
                selected = selection(history)
                log(f"selected round {selected['round']} (dev loss {selected['dev_loss']:.4f})")
            train_seconds = sum(e["train_seconds"] for e in history)
            train_steps = sum(e["steps"] for e in history)
            train_info = {
                "train_rows": len(train_ds),
                "train_tokens": train_ds.tokens(),
                "dev_rows": len(dev_ds),
                "optimizer_steps": result.optimizer_steps,
                "seconds_per_step": train_seconds / max(train_steps, 1),
                "train_seconds": train_seconds,
                "resumed_from_epoch": result.resumed_from_epoch,
                "resumed_from_batch": result.resumed_from_batch,
            }
            if stop_rule(settings) is not None:
                train_info["stopped"] = why_stopped(settings, len(history))
            if (marker := paths.scratch / CONTINUED).exists():
                train_info["continued_from"] = json.loads(marker.read_text())
    device = next(net.parameters()).device
    # the phases fit ran (decoding has its own setting: settings.decode.precision)
    phases = ("train", "evaluate") if method != NO_TRAINING else ()
    precision = precision_record(settings.train.mixed_precision, device, phases)
    decode_started = time.perf_counter()
    resumed_mrs, resumed_seconds = 0, 0.0
    outputs: list[str] = []
    if settings.decode_test:
        # what an earlier session decoded of the test set already, and its seconds
        resumed_mrs, resumed_seconds = decoded_so_far(paths.scratch / "decode.jsonl")
        outputs = generate_outputs(
            net,
            tokenizer,
            mrs,
            settings.decode,
            partial=paths.scratch / "decode.jsonl",
            progress=progress,
        )
        if ranks.is_main_process:
            write_official_layout(outputs, references, paths.outputs)
    decode_seconds = time.perf_counter() - decode_started + (resumed_seconds or 0.0)
    ranks.wait_for_everyone()  # every process has trained and decoded: one writes
    memory = peak_memory_of_processes(device, ranks.num_processes)  # on every process
    if not ranks.is_main_process:
        ranks.wait_for_everyone()  # until the main process has written the record
        return paths.finished()
    trained = {n: p for n, p in net.named_parameters() if p.requires_grad}
    tensor_bytes = sum(p.numel() * p.element_size() for p in trained.values())
    kept_tensors = None
    if trained and tensor_bytes < KEEP_TENSORS_BELOW:
        kept_tensors = write_tensors(paths.outputs / "trainable.safetensors", trained).name

    scores = scores_paper = None
    if score:
        scores = e2e_scores(outputs, references)
        scores_paper = paper_variant(outputs, references, scores, log)
        log("scores: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    record = {
        "kind": "e2e",
        "method": method,
        "model": model,
        "preset": preset_name,
        "seed": seed,
        "config_key": paths.key,
        "settings": settings.to_dict(),
        "params": params,
        "precision": precision,
        "data": {"test_mrs": len(mrs), "test_references": sum(map(len, references)), **train_info},
        "epochs": history,
        **({"processes": ranks.num_processes} if ranks.num_processes != 1 else {}),
        "effective_batch": effective_batch(
            per_process(settings.train, settings.batch_scope, ranks.num_processes),
            ranks.num_processes,
        )
        if method != NO_TRAINING
        else None,
        **({"selection": selected} if selected is not None else {}),
        "decode": {
            "seconds": decode_seconds,
            "seconds_per_mr": decode_seconds / len(mrs),
            # decoded partly in an earlier session: its seconds are counted (when its lines
            # kept them: older files did not, then "seconds" is this session's only)
            **({"resumed_mrs": resumed_mrs} if resumed_mrs else {}),
            **({"seconds_this_session_only": True} if resumed_seconds is None else {}),
            "precision": settings.decode.precision,
            "hardware": precision_info(device),
        }
        if settings.decode_test
        else None,
        "scores": scores,
        **({"scores_paper": scores_paper} if score else {}),
        "outputs": str(paths.outputs.name) if settings.decode_test else None,
        "trainable_tensors": kept_tensors,
        "trainable_bytes": tensor_bytes,
        "peak_memory": memory,
        "wall_seconds": time.perf_counter() - started,
        "environment": {**env, "device": environment(device)["device"]},
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(paths.record, record)
    paths.drop_scratch(keep=("ckpt",) if keep_checkpoint else ())
    log(f"Record: {paths.record}")
    ranks.wait_for_everyone()  # the other processes wait for the record (above)
    return record


def _silent(message: str) -> None:
    """``run_e2e``'s log on the processes other than the main one."""
