"""The GLUE chapter's tables, computed from result records (and the paper's, from its README).

    from lorabook.glue.report import campaign_records, summary, lora_minus_ft
    found = campaign_records("results")          # Job -> record, for the finished runs
    summary(found)                               # median, spread, seeds per (method, task)

Scores are the paper's metric per task (accuracy, MCC, Pearson) ×100, each run at its best
epoch; over seeds, the median (the paper reports the median of 5 seeds; we run 3 for FT and
LoRA) and the range (min, max) as the spread.

A difference between two runs on one dev set is judged by a paired bootstrap over its
examples (:func:`paired_bootstrap`, :func:`bootstrap_records`): both runs are scored on the
same resamples of the dev set, and the interval holding 95% of the resampled differences says
how much of the difference the choice of dev examples alone could make. It needs each run's
per-example predictions, which records keep since issue 20 (``dev_predictions``); older
records need their runs again. It says nothing about seeds: that spread is the seeds' range.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from lorabook import paper
from lorabook.bootstrap import SAMPLES, paired_differences
from lorabook.glue import presets
from lorabook.glue.campaign import LONGER, SEEDS, TASKS, Job, campaign_jobs
from lorabook.glue.presets import ADAPTER_P_LEGACY
from lorabook.runs import DEFAULT_RESULTS, find_records

METHOD_NAMES = {
    "ft": "FT",
    "bitfit": "BitFit",
    "adapter_h": "AdapterH",
    "adapter_p": "AdapterP",
    "lora": "LoRA",
}
# adapter_p records by adapter_p_variant (a record without it is Houlsby's FFN adapter alone:
# every adapter_p record made before issue 20, and the cpu preset's)
ADAPTER_P_NAMES = {"pfeiffer": "AdapterP", "houlsby_ffn": "AdapterH (FFN only)"}
# Table 2's column of each task, and the paper's RoBERTa-base rows (its BitFit and AdptD rows
# are the baselines' own papers' numbers, marked * there)
PAPER_COLUMNS = {"sst2": "SST-2", "mrpc": "MRPC", "cola": "CoLA", "rte": "RTE", "stsb": "STS-B"}
PAPER_MODEL = "RoBERTa-base"


def method_name(method: str, settings: Mapping | None = None) -> str:
    """How a run of ``method`` with these record ``settings`` is named in tables and plots:
    ``METHOD_NAMES``, except that an ``adapter_p`` run is named by its variant, and one whose
    settings have no ``adapter_p_variant`` is Houlsby's FFN adapter, "AdapterH (FFN only)"."""
    if method != "adapter_p":
        return METHOD_NAMES.get(method, method)
    return ADAPTER_P_NAMES[(settings or {}).get("adapter_p_variant", ADAPTER_P_LEGACY)]


def score(record: Mapping, epoch: str = "best") -> float:
    """A record's dev score ×100: its task's metric at its best epoch (Table 2's reading), or
    with ``epoch="last"`` at its last one (what a run that was not selected on dev scores)."""
    if epoch == "best":
        return 100 * record["best"][record["metric"]]
    if epoch == "last":
        return 100 * record["epochs"][-1][record["metric"]]
    raise ValueError(f"score: epoch is 'best' or 'last', not {epoch!r}")


def campaign_records(results_dir: str | Path, jobs: Iterable[Job] | None = None) -> dict[Job, dict]:
    """The finished runs among ``jobs`` (default: the campaign's), by job."""
    found = {}
    for job in campaign_jobs() if jobs is None else jobs:
        record = job.plan(results_dir).paths.finished()
        if record is not None:
            found[job] = record
    return found


def majority_class(task: str, data_dir: str | Path | None = None) -> float | None:
    """The dev score ×100 of predicting the training set's most frequent label every time:
    what a run that learned nothing scores (accuracy: that label's dev share; MCC: 0).
    None for STS-B, a regression task, where a constant has no Pearson correlation."""
    from lorabook.glue.data import get_task, load_glue
    from lorabook.glue.metrics import glue_metrics, primary_metric

    if get_task(task).is_regression:
        return None
    labels = load_glue(task, "train", data_dir)["label"]
    guess = max(set(labels), key=labels.count)
    dev = load_glue(task, "validation", data_dir)["label"]
    return 100 * glue_metrics(task, [guess] * len(dev), dev)[primary_metric(task)]


def preset_records(results_dir: str | Path, preset: str, model: str) -> dict[Job, dict]:
    """Every finished GLUE run of ``preset`` on ``model`` (e.g. ``"paper"``, ``"roberta-base"``,
    the chapter's GPU mode), by job: task, method and seed; the preset's own settings.

    Raises:
        ValueError: two records are the same task, method and seed (runs with settings
            changed from the preset's, which this table cannot tell apart).
    """
    found: dict[Job, dict] = {}
    for record in find_records(results_dir, "glue", preset=preset, model=model):
        job = Job(record["task"], record["method"], record["seed"])
        if job in found:
            raise ValueError(
                f"two {preset}/{model} records of {job}: {found[job]['_path']} and "
                f"{record['_path']}; move the one that is not the preset's run elsewhere"
            )
        found[job] = record
    return found


def summary(found: Mapping[Job, Mapping]) -> list[dict]:
    """One row per (method, task) with runs: median, min, max score, seeds, trainable params.

    And how far training got: ``epochs`` trained, the median over seeds of the last epoch's
    training loss, and how many runs scored best at their last epoch (``peaked_last``), the
    two signs of a run stopped while it was still learning. ``name`` is :func:`method_name`.

    Raises:
        ValueError: one (method, task) holds runs of two adapter_p variants.
    """
    groups: dict[tuple[str, str], list[tuple[int, Mapping]]] = {}
    for job, record in found.items():
        groups.setdefault((job.method, job.task), []).append((job.seed, record))
    rows = []
    for (method, task), runs in groups.items():
        records = [r for _, r in sorted(runs, key=lambda run: run[0])]
        names = {method_name(method, r.get("settings")) for r in records}
        if len(names) > 1:
            raise ValueError(
                f"{task} {method}: runs of different methods in one row ({sorted(names)}); "
                "pass the records of one adapter_p_variant"
            )
        scores = [score(r) for r in records]
        last_losses = [r["epochs"][-1]["train_loss"] for r in records]
        rows.append(
            {
                "method": method,
                "name": names.pop(),
                "task": task,
                "median": statistics.median(scores),
                "min": min(scores),
                "max": max(scores),
                "seeds": len(scores),
                "scores": scores,
                "trainable": records[0]["params"]["trainable"],
                "epochs": len(records[0]["epochs"]),
                "last_train_loss": statistics.median(last_losses),
                "peaked_last": sum(r["best_epoch"] == len(r["epochs"]) for r in records),
            }
        )
    return rows


def lora_minus_ft(rows: Sequence[Mapping], tolerance: float = 1.0) -> list[dict]:
    """Per task with both methods: LoRA's median − FT's and each one's seed range.

    ``holds`` is the test of the claim this project set itself: LoRA's median is no more
    than ``tolerance`` points below FT's (above it is fine: "on par or better").
    """
    by = {(r["method"], r["task"]): r for r in rows}
    out = []
    for task in TASKS:
        if ("ft", task) not in by or ("lora", task) not in by:
            continue
        ft, lora = by["ft", task], by["lora", task]
        diff = lora["median"] - ft["median"]
        out.append(
            {
                "task": task,
                "FT median": ft["median"],
                "FT range": (ft["min"], ft["max"]),
                "LoRA median": lora["median"],
                "LoRA range": (lora["min"], lora["max"]),
                "LoRA − FT": diff,
                "seeds": (ft["seeds"], lora["seeds"]),
                "holds": diff >= -tolerance,
            }
        )
    return out


def lora_vs_others(rows: Sequence[Mapping]) -> list[dict]:
    """Per task with LoRA and all of BitFit, AdapterH and AdapterP: the best of those three
    (by median) and whether LoRA's median is at or above it (the paper's second claim:
    LoRA beats the other parameter-efficient methods)."""
    by = {(r["method"], r["task"]): r for r in rows}
    others = ("bitfit", "adapter_h", "adapter_p")
    out = []
    for task in TASKS:
        if ("lora", task) not in by or any((m, task) not in by for m in others):
            continue
        best = max(others, key=lambda m: by[m, task]["median"])
        lora = by["lora", task]["median"]
        out.append(
            {
                "task": task,
                "LoRA median": lora,
                "best other": by[best, task].get("name", METHOD_NAMES[best]),
                "its score": by[best, task]["median"],
                "LoRA ahead": lora >= by[best, task]["median"],
            }
        )
    return out


def paper_rows(model: str = PAPER_MODEL) -> list[dict]:
    """Table 2's rows for ``model``: method, params and the five offline tasks' scores.

    Scores are the paper's cells as numbers (``paper.value``); ``spread`` keeps the ± part.
    """
    rows = []
    for row in paper.table(2):
        name = row["model / method"]
        if not name.startswith(model + " "):
            continue
        method = name[len(model) + 1 :]
        rows.append(
            {
                "method": method,
                "params": paper.value(row["params"]),
                **{task: paper.value(row[col]) for task, col in PAPER_COLUMNS.items()},
                "spread": {task: paper.spread(row[col]) for task, col in PAPER_COLUMNS.items()},
                "source": "paper, Table 2",
            }
        )
    return rows


def outcomes(results_dir: str | Path, tolerance: float = 1.0) -> dict[str, dict[str, bool]]:
    """The yes/no findings the chapter's prose is written for, computed from the records.

    ``"LoRA within a point of FT"``: per task with both, :func:`lora_minus_ft`'s ``holds``.
    ``"LoRA at or above BitFit and the adapters"``: :func:`lora_vs_others`' ``LoRA ahead``.
    ``"LoRA trained longer within a point of FT"``: per finished follow-up
    (:func:`follow_up_jobs`), whether that longer LoRA run scores no
    more than ``tolerance`` below FT's median.
    """
    rows = summary(campaign_records(results_dir))
    diffs = {d["task"]: d for d in lora_minus_ft(rows, tolerance)}
    longer = campaign_records(results_dir, follow_up_jobs(results_dir))
    return {
        "LoRA within a point of FT": {task: d["holds"] for task, d in diffs.items()},
        "LoRA at or above BitFit and the adapters": {
            d["task"]: d["LoRA ahead"] for d in lora_vs_others(rows)
        },
        "LoRA trained longer within a point of FT": {
            job.task: score(r) >= diffs[job.task]["FT median"] - tolerance
            for job, r in longer.items()
        },
    }


def follow_up_jobs(results_dir: str | Path = DEFAULT_RESULTS) -> list[Job]:
    """Where the claim fails on the finished runs, LoRA once more, trained longer.

    For each task on which LoRA's median is more than a point below FT's
    (:func:`lora_minus_ft`), once every seed of both has finished, seed 0 of LoRA at the
    picked learning rate and :data:`~lorabook.glue.campaign.LONGER` times the picked epochs
    (``python -m lorabook.glue.campaign follow-ups`` runs them).
    It tests one explanation, under-training: the paper trains LoRA on RoBERTa-base for 30
    to 80 epochs (Table 9), the sweep's rule picked far fewer. These runs are not part of
    the table, which keeps the rule's settings.
    """
    if "lora" not in presets.CPU_CHOSEN:
        return []
    lr, epochs = presets.CPU_CHOSEN["lora"]
    rows = summary(campaign_records(results_dir))
    complete = (len(SEEDS["ft"]), len(SEEDS["lora"]))
    failing = [d["task"] for d in lora_minus_ft(rows) if d["seeds"] == complete and not d["holds"]]
    return [Job(task, "lora", 0, lr, LONGER * epochs) for task in failing]


def bf16_quality(
    results_dir: str | Path, task: str = "mrpc", methods: Sequence[str] = ("ft", "lora")
) -> list[dict]:
    """What bf16 autocast costs a GLUE run: per method, the seed-0 run with the campaign's
    settings trained in bf16, beside the campaign's fp32 runs of every seed (their spread is
    the yardstick). A missing bf16 run gives ``None`` in its columns. Speed is not compared
    here (the runs ran months of commits apart under other loads): the bench's paired steps
    measure it (``benchmarks/precision.py``).

    The fp32 runs are the campaign's jobs (fp32 by :data:`~lorabook.glue.campaign.RECORDED_IN`);
    the bf16 run is the ``cpu`` preset asked for bf16 by name, which is the preset's own
    default on a CPU with native bf16 (the same settings, so the same record as ``python -m
    lorabook.glue --preset cpu`` there) and still bf16 on a CPU without it."""
    from lorabook.glue.campaign import MODEL, PRESET
    from lorabook.glue.experiment import plan_glue_run

    rows = []
    for method in methods:
        fp32 = campaign_records(results_dir, [Job(task, method, s) for s in SEEDS[method]])
        scores = [score(r) for r in fp32.values()]
        bf16_run = plan_glue_run(
            task, method, MODEL, PRESET, 0, results_dir, {"mixed_precision": "bf16"}
        )
        bf16 = bf16_run.paths.finished()
        value = score(bf16) if bf16 is not None else None
        rows.append(
            {
                "task": task,
                "method": method,
                "fp32 scores (seeds)": sorted(scores),
                "bf16 score (seed 0)": value,
                "bf16 − fp32 median": None
                if value is None or not scores
                else value - statistics.median(scores),
                "within the fp32 seeds' range": None
                if value is None or not scores
                else min(scores) <= value <= max(scores),
            }
        )
    return rows


# --------------------------------------------------------------------------- paired bootstrap


def _resampled_metric(metric: str, pred: np.ndarray, gold: np.ndarray, idx: np.ndarray):
    """``metric`` on each row of ``idx`` (resamples × examples), vectorised; binary labels for
    MCC and F1 (0 where undefined, as :func:`~lorabook.glue.metrics.glue_metrics` gives)."""
    if metric == "accuracy":
        return (pred == gold)[idx].mean(axis=1)
    if metric == "pearson":
        x, y, n = pred[idx], gold[idx], idx.shape[1]
        sx, sy = x.sum(1), y.sum(1)
        cov = n * (x * y).sum(1) - sx * sy
        var = (n * (x * x).sum(1) - sx**2) * (n * (y * y).sum(1) - sy**2)
        with np.errstate(invalid="ignore", divide="ignore"):
            return cov / np.sqrt(var)
    p, g = pred == 1, gold == 1
    tp, fp, fn = (p & g)[idx].sum(1), (p & ~g)[idx].sum(1), (~p & g)[idx].sum(1)
    tn = idx.shape[1] - tp - fp - fn
    if metric == "f1":
        denominator = 2 * tp + fp + fn
        return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)
    if metric == "matthews_correlation":
        tp, fp, fn, tn = (c.astype(np.float64) for c in (tp, fp, fn, tn))
        denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return np.where(denominator > 0, (tp * tn - fp * fn) / np.maximum(denominator, 1e-300), 0.0)
    raise ValueError(
        f"paired_bootstrap: no resampled form of {metric!r}; use accuracy, f1, "
        "matthews_correlation or pearson"
    )


def paired_bootstrap(
    task: str,
    a: Sequence,
    b: Sequence,
    labels: Sequence,
    *,
    metric: str | None = None,
    samples: int = SAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """How sure a dev-set difference is: resample the dev examples with replacement, score
    both runs on the *same* resample, and read the spread of ``metric(a) − metric(b)``.

    Args:
        task: the GLUE task (its primary metric unless ``metric`` says otherwise).
        a, b: the two runs' predictions per dev example, same order (class ids; STS-B scores).
        labels: the dev labels, same order.
        metric: ``accuracy``, ``f1``, ``matthews_correlation`` (binary) or ``pearson``.
        samples, seed: resamples drawn, and the seed that draws them.
        level: the central share of the resampled differences that the interval holds.
    Returns:
        Points (×100, as :func:`score`): ``difference`` (on the dev set itself), ``low`` and
        ``high`` (the percentile interval), ``share_above_zero`` (resamples where a beats
        b), with ``metric``, ``samples``, ``seed``, ``level`` and ``examples``.
    Raises:
        ValueError: lengths differ, or a metric without a resampled form.
    """
    from lorabook.glue.metrics import primary_metric

    metric = metric or primary_metric(task)
    kind = np.float64 if metric == "pearson" else np.int64
    a, b, gold = (np.asarray(x, dtype=kind).reshape(-1) for x in (a, b, labels))
    if not len(a) == len(b) == len(gold) > 0:
        raise ValueError(
            f"paired_bootstrap needs both runs' predictions on the same dev examples: got "
            f"{len(a)} and {len(b)} predictions for {len(gold)} labels"
        )
    result = paired_differences(
        lambda idx: (
            _resampled_metric(metric, a, gold, idx) - _resampled_metric(metric, b, gold, idx)
        ),
        len(gold),
        samples=samples,
        seed=seed,
        level=level,
        scale=100,
    )
    return {"metric": metric, **result}


def bootstrap_records(a: Mapping, b: Mapping, **kwargs: object) -> dict:
    """:func:`paired_bootstrap` of two records' kept dev predictions (``dev_predictions``),
    ``a − b`` on the record's metric; ``kwargs`` go to it (``samples``, ``seed``, ...).

    Raises:
        ValueError: a record without dev predictions (made before records kept them: the
            comparison needs the run again), other tasks, or other dev examples.
    """
    for name, record in (("a", a), ("b", b)):
        if not record.get("dev_predictions"):
            raise ValueError(
                f"record {name} ({record.get('task')} {record.get('method')} seed "
                f"{record.get('seed')}) keeps no per-example dev predictions (records made "
                "before the full campaign's code do not): run it again with today's code to "
                "compare by bootstrap"
            )
    if a["task"] != b["task"] or a["dev_predictions"]["labels"] != b["dev_predictions"]["labels"]:
        raise ValueError(
            f"a paired bootstrap compares runs on the same dev examples: {a['task']} and "
            f"{b['task']} records with {'the same' if a['task'] == b['task'] else 'other'} task "
            "but other labels (another eval_examples subset?)"
        )
    kwargs.setdefault("metric", a["metric"])
    return paired_bootstrap(
        a["task"],
        a["dev_predictions"]["predictions"],
        b["dev_predictions"]["predictions"],
        a["dev_predictions"]["labels"],
        **kwargs,
    )


def lora_runs(results_dir: str | Path) -> dict:
    """The ``cpu`` campaign's LoRA runs with their trained factors, ``{(task, seed):
    TrainedLoRA}`` (:func:`lorabook.analysis.read_lora_record`): what chapter 6 and the
    verdict read for Section 7's questions until the Section 7 runs exist."""
    from lorabook.analysis import read_lora_record

    jobs = [job for job in campaign_jobs() if job.method == "lora"]
    return {
        (job.task, job.seed): read_lora_record(job.plan(results_dir).paths.record)
        for job in campaign_records(results_dir, jobs)
    }
