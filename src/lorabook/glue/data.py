"""GLUE data: task specs, loading (offline TSVs or the hub) and tokenisation.

Every task loads into the same four columns, whatever its source::

    sentence1  str    the (first) sentence
    sentence2  str    the second sentence; "" for the single-sentence tasks (SST-2, CoLA)
    label      int    class id (ClassLabel, names as on the hub); float in [0, 5] for STS-B
    idx        int    0-based row number in the file / hub split

The offline copies (``<data>/glue/<Folder>/{train,dev}.tsv``, see ``shared/data/README.md``)
are parsed with ``csv.QUOTE_NONE``: quote characters inside sentences are literal text. Any row
with the wrong number of fields or an unknown label raises :class:`GlueFormatError` naming the
file and line; nothing is dropped silently. The official files need no special handling (every
row of all ten files has the expected field count); only MRPC's UTF-8 byte-order mark is
stripped (by reading with ``utf-8-sig``). A byte that is not UTF-8, or a file with no rows,
is a :class:`GlueFormatError` too, naming the file (and the line).
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lorabook.cli import UserError
from lorabook.paths import ENV_VAR, data_dir_is_explicit, data_source
from lorabook.paths import data_dir as default_data_dir

if TYPE_CHECKING:
    import datasets

SPLITS = ("train", "validation")
SPLIT_ALIASES = {"train": "train", "validation": "validation", "dev": "validation"}
SOURCES = ("auto", "local", "hub")
HUB_DATASET = "nyu-mll/glue"
COLUMNS = ("sentence1", "sentence2", "label", "idx")

BINARY = {"0": 0, "1": 1}
ENTAILMENT = {"entailment": 0, "not_entailment": 1}
NLI3 = {"entailment": 0, "neutral": 1, "contradiction": 2}


class GlueFormatError(UserError, ValueError):
    """A GLUE TSV does not have the expected layout (message names the file and line)."""


@dataclass(frozen=True)
class LocalFormat:
    """How one task's GLUE TSVs are laid out.

    Attributes:
        files: file name per split.
        has_header: whether line 1 is a header; then ``sentence1``/``sentence2``/``label``
            are column names and every row must have as many fields as the header.
        sentence1, sentence2, label: column names (with a header) or 0-based indices.
        n_fields: fields per row for files without a header.
        label_map: label text -> class id (classification).
        score_range: allowed (min, max) of a regression score.
    """

    files: dict[str, str]
    has_header: bool
    sentence1: str | int
    sentence2: str | int | None
    label: str | int
    n_fields: int | None = None
    label_map: dict[str, int] | None = None
    score_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class GlueTask:
    """One GLUE task.

    Attributes:
        name: the task's short name (``sst2``, ``mrpc``, ...), as on the hub.
        folder: its folder under ``<data>/glue/`` in the GLUE distribution.
        hub_columns: the hub's text columns, mapped to ``sentence1`` (and ``sentence2``).
        num_labels: classes; 1 for the regression task STS-B.
        label_names: class names in id order (hub ``ClassLabel`` names); () for STS-B.
        metrics: the keys :func:`lorabook.glue.metrics.glue_metrics` returns.
        primary_metric: the metric the LoRA paper reports (Table 2).
        offline: whether the task is in the offline data folder.
        local: the TSV layout.
        hub_validation: the hub split used for ``validation``.
        rows: expected (train, validation) row counts of the official files.
    """

    name: str
    folder: str
    hub_columns: tuple[str, ...]
    num_labels: int
    label_names: tuple[str, ...]
    metrics: tuple[str, ...]
    primary_metric: str
    offline: bool
    local: LocalFormat
    hub_validation: str = "validation"
    rows: tuple[int, int] | None = None

    @property
    def is_regression(self) -> bool:
        """True for STS-B (one output, float labels)."""
        return self.num_labels == 1

    @property
    def is_pair(self) -> bool:
        """True for sentence-pair tasks (``sentence2`` is used)."""
        return len(self.hub_columns) == 2


_TRAIN_DEV = {"train": "train.tsv", "validation": "dev.tsv"}

GLUE_TASKS: dict[str, GlueTask] = {
    "sst2": GlueTask(
        name="sst2",
        folder="SST-2",
        hub_columns=("sentence",),
        num_labels=2,
        label_names=("negative", "positive"),
        metrics=("accuracy",),
        primary_metric="accuracy",
        offline=True,
        local=LocalFormat(_TRAIN_DEV, True, "sentence", None, "label", label_map=BINARY),
        rows=(67_349, 872),
    ),
    "mrpc": GlueTask(
        name="mrpc",
        folder="MRPC",
        hub_columns=("sentence1", "sentence2"),
        num_labels=2,
        label_names=("not_equivalent", "equivalent"),
        metrics=("accuracy", "f1"),
        primary_metric="accuracy",
        offline=True,
        local=LocalFormat(_TRAIN_DEV, True, "#1 String", "#2 String", "Quality", label_map=BINARY),
        rows=(3_668, 408),
    ),
    "cola": GlueTask(
        name="cola",
        folder="CoLA",
        hub_columns=("sentence",),
        num_labels=2,
        label_names=("unacceptable", "acceptable"),
        metrics=("matthews_correlation",),
        primary_metric="matthews_correlation",
        offline=True,
        # source, label, original author's judgement mark ("", "*", "?", ...), sentence
        local=LocalFormat(_TRAIN_DEV, False, 3, None, 1, n_fields=4, label_map=BINARY),
        rows=(8_551, 1_043),
    ),
    "rte": GlueTask(
        name="rte",
        folder="RTE",
        hub_columns=("sentence1", "sentence2"),
        num_labels=2,
        label_names=("entailment", "not_entailment"),
        metrics=("accuracy",),
        primary_metric="accuracy",
        offline=True,
        local=LocalFormat(
            _TRAIN_DEV, True, "sentence1", "sentence2", "label", label_map=ENTAILMENT
        ),
        rows=(2_490, 277),
    ),
    "stsb": GlueTask(
        name="stsb",
        folder="STS-B",
        hub_columns=("sentence1", "sentence2"),
        num_labels=1,
        label_names=(),
        metrics=("pearson", "spearmanr"),
        primary_metric="pearson",
        offline=True,
        local=LocalFormat(
            _TRAIN_DEV, True, "sentence1", "sentence2", "score", score_range=(0.0, 5.0)
        ),
        rows=(5_749, 1_500),
    ),
    # Hub only: not in the offline folder (too large). Local GLUE TSVs are read if present.
    "mnli": GlueTask(
        name="mnli",
        folder="MNLI",
        hub_columns=("premise", "hypothesis"),
        num_labels=3,
        label_names=("entailment", "neutral", "contradiction"),
        metrics=("accuracy",),
        primary_metric="accuracy",
        offline=False,
        local=LocalFormat(
            {"train": "train.tsv", "validation": "dev_matched.tsv"},
            True,
            "sentence1",
            "sentence2",
            "gold_label",
            label_map=NLI3,
        ),
        hub_validation="validation_matched",
        rows=(392_702, 9_815),
    ),
    "qnli": GlueTask(
        name="qnli",
        folder="QNLI",
        hub_columns=("question", "sentence"),
        num_labels=2,
        label_names=("entailment", "not_entailment"),
        metrics=("accuracy",),
        primary_metric="accuracy",
        offline=False,
        local=LocalFormat(_TRAIN_DEV, True, "question", "sentence", "label", label_map=ENTAILMENT),
        rows=(104_743, 5_463),
    ),
    "qqp": GlueTask(
        name="qqp",
        folder="QQP",
        hub_columns=("question1", "question2"),
        num_labels=2,
        label_names=("not_duplicate", "duplicate"),
        metrics=("accuracy", "f1"),
        primary_metric="accuracy",
        offline=False,
        local=LocalFormat(
            _TRAIN_DEV, True, "question1", "question2", "is_duplicate", label_map=BINARY
        ),
        rows=(363_846, 40_430),
    ),
}
"""The GLUE tasks by hub name. The first five are in the offline data folder."""

OFFLINE_TASKS = tuple(name for name, spec in GLUE_TASKS.items() if spec.offline)


def get_task(task: str) -> GlueTask:
    """The :class:`GlueTask` for ``task`` (case-insensitive; ``sst-2``/``sts-b`` accepted).

    Raises:
        ValueError: unknown task; the message lists the known ones.
    """
    key = task.lower().replace("-", "") if isinstance(task, str) else task
    if key not in GLUE_TASKS:
        raise ValueError(
            f"unknown GLUE task {task!r}; known tasks: {', '.join(GLUE_TASKS)} "
            f"(offline: {', '.join(OFFLINE_TASKS)})"
        )
    return GLUE_TASKS[key]


def _split(split: str) -> str:
    if split not in SPLIT_ALIASES:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLIT_ALIASES)}")
    return SPLIT_ALIASES[split]


def features(task: str) -> datasets.Features:
    """The ``datasets.Features`` of a loaded task (same for local and hub)."""
    import datasets

    spec = get_task(task)
    label = (
        datasets.Value("float32")
        if spec.is_regression
        else datasets.ClassLabel(names=list(spec.label_names))
    )
    return datasets.Features(
        {
            "sentence1": datasets.Value("string"),
            "sentence2": datasets.Value("string"),
            "label": label,
            "idx": datasets.Value("int32"),
        }
    )


def task_file(task: str, split: str = "train", data_dir: str | Path | None = None) -> Path:
    """The path of a task's TSV: ``<data_dir>/glue/<Folder>/<train.tsv|dev.tsv>``.

    ``data_dir`` defaults to :func:`lorabook.paths.data_dir` (argument, ``$LORABOOK_DATA``,
    ``<repo>/../shared/data``). The file need not exist.
    """
    spec = get_task(task)
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return root / "glue" / spec.folder / spec.local.files[_split(split)]


def _missing_message(spec: GlueTask, path: Path, what: str) -> str:
    """One line: what is missing, where it was expected, and the two ways out."""
    offline = (
        ""
        if spec.offline
        else f" ({spec.name} is not in the offline data folder: its files are too large;"
        f" only {', '.join(OFFLINE_TASKS)} are)"
    )
    return (
        f"GLUE {spec.name} {what} not found: expected {path}{offline}; point {ENV_VAR} "
        f"(or data_dir=... / --data-dir) at the folder that contains glue/{spec.folder}/, "
        f"or load it from the Hugging Face hub: load_glue({spec.name!r}, ..., source='hub') "
        f"(needs internet; {HUB_DATASET!r})"
    )


def _parse_label(spec: GlueTask, text: str, path: Path, line: int) -> int | float:
    fmt = spec.local
    if fmt.label_map is not None:
        try:
            return fmt.label_map[text]
        except KeyError:
            raise GlueFormatError(
                f"{path}, line {line}: unknown {spec.name} label {text!r}; "
                f"expected one of {sorted(fmt.label_map)}"
            ) from None
    try:
        value = float(text)
    except ValueError:
        raise GlueFormatError(f"{path}, line {line}: score {text!r} is not a number") from None
    lo, hi = fmt.score_range or (float("-inf"), float("inf"))
    if not lo <= value <= hi:
        raise GlueFormatError(f"{path}, line {line}: score {value} outside [{lo}, {hi}]")
    return value


def read_tsv(task: str, path: str | Path) -> dict[str, list[Any]]:
    """Parse one GLUE TSV of ``task`` into the uniform columns (as lists).

    Args:
        task: a task name.
        path: the TSV (UTF-8, optional BOM; tab-separated; no CSV quoting).
    Returns:
        ``{"sentence1": [...], "sentence2": [...], "label": [...], "idx": [...]}``.
    Raises:
        FileNotFoundError: the file does not exist.
        GlueFormatError: a byte that is not UTF-8, a missing header column, a row with the
            wrong number of fields (blank lines included), an unknown label, or no rows at
            all; the message names the file and the line.
    """
    spec = get_task(task)
    fmt = spec.local
    path = Path(path)
    s1: list[str] = []
    s2: list[str] = []
    labels: list[int | float] = []
    # newline="" + QUOTE_NONE: split on "\n" and "\t" only, quotes are text.
    with io.StringIO(_decode(path), newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE, strict=True)
        if fmt.has_header:
            header = next(reader, None)
            if header is None:
                raise GlueFormatError(f"{path}, line 1: empty file, expected a header")
            wanted = [c for c in (fmt.sentence1, fmt.sentence2, fmt.label) if c is not None]
            missing = [c for c in wanted if c not in header]
            if missing:
                raise GlueFormatError(
                    f"{path}, line 1: header {header} lacks column(s) {missing} "
                    f"expected for GLUE {spec.name}"
                )
            n_fields = len(header)
            i1 = header.index(str(fmt.sentence1))
            i2 = header.index(str(fmt.sentence2)) if fmt.sentence2 is not None else None
            il = header.index(str(fmt.label))
        else:
            assert fmt.n_fields is not None
            n_fields = fmt.n_fields
            i1, il = int(fmt.sentence1), int(fmt.label)
            i2 = int(fmt.sentence2) if fmt.sentence2 is not None else None
        try:
            for row in reader:
                line = reader.line_num
                if len(row) != n_fields:
                    raise GlueFormatError(
                        f"{path}, line {line}: expected {n_fields} tab-separated fields for "
                        f"GLUE {spec.name}, found {len(row)}: {row!r:.200}"
                    )
                s1.append(row[i1])
                s2.append(row[i2] if i2 is not None else "")
                labels.append(_parse_label(spec, row[il], path, line))
        except csv.Error as err:
            raise GlueFormatError(f"{path}, line {reader.line_num}: {err}") from err
    if not s1:
        where = "after its header" if fmt.has_header else "in it"
        raise GlueFormatError(f"{path}: no data rows {where}; expected GLUE {spec.name} rows")
    return {"sentence1": s1, "sentence2": s2, "label": labels, "idx": list(range(len(s1)))}


def _decode(path: Path) -> str:
    """The file's text (UTF-8, a BOM dropped); a non-UTF-8 byte names the file and line."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise GlueFormatError(
            f"{path}, line {line}: byte {raw[err.start : err.start + 1]!r} at column {column} "
            "is not UTF-8; the GLUE files are UTF-8 text (re-save it as UTF-8)"
        ) from None


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), to record exactly which data a run read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def local_folder(task: str, data_dir: str | Path | None = None) -> Path | None:
    """The folder of ``task``'s TSVs if the data folder has it, else ``None`` (use the hub).

    Raises:
        FileNotFoundError: a data folder that was asked for (``data_dir`` or
            ``$LORABOOK_DATA``) does not exist: that is an error, not a reason to use the hub.
    """
    spec = get_task(task)
    try:
        root = default_data_dir(data_dir)
    except FileNotFoundError:
        if data_dir_is_explicit(data_dir):
            raise
        return None
    folder = root / "glue" / spec.folder
    return folder if folder.is_dir() else None


def _load_local(spec: GlueTask, split: str, data_dir: str | Path | None) -> datasets.Dataset:
    import datasets

    root = Path(data_dir) if data_dir is not None else default_data_dir()
    folder = root / "glue" / spec.folder
    path = folder / spec.local.files[split]
    if not folder.is_dir():
        raise FileNotFoundError(_missing_message(spec, folder, "folder"))
    if not path.is_file():
        raise FileNotFoundError(_missing_message(spec, path, f"{split} file"))
    columns = read_tsv(spec.name, path)
    return datasets.Dataset.from_dict(columns, features=features(spec.name))


def _load_hub(spec: GlueTask, split: str) -> datasets.Dataset:
    import datasets

    hub_split = spec.hub_validation if split == "validation" else split
    ds = datasets.load_dataset(HUB_DATASET, spec.name, split=hub_split)
    first = spec.hub_columns[0]
    ds = ds.rename_column(first, "sentence1") if first != "sentence1" else ds
    if spec.is_pair:
        second = spec.hub_columns[1]
        ds = ds.rename_column(second, "sentence2") if second != "sentence2" else ds
    else:
        ds = ds.add_column("sentence2", [""] * len(ds))
    ds = ds.select_columns(list(COLUMNS))
    return ds.cast(features(spec.name))


def load_glue(
    task: str,
    split: str = "train",
    data_dir: str | Path | None = None,
    source: str = "auto",
) -> datasets.Dataset:
    """Load a GLUE task's train or dev split with uniform columns.

    Args:
        task: sst2, mrpc, cola, rte, stsb (offline), or mnli, qnli, qqp (hub).
        split: ``train`` or ``validation`` (alias ``dev``; MNLI: matched).
        data_dir: the data folder holding ``glue/<Folder>/``; default
            :func:`lorabook.paths.data_dir`, which refuses a ``$LORABOOK_DATA`` that does
            not exist. An explicit folder is used as given.
        source: ``local`` reads the TSVs; ``hub`` calls
            ``datasets.load_dataset("nyu-mll/glue", task)``; ``auto`` reads the TSVs when
            the task's folder exists and otherwise tries the hub (a data folder that was
            asked for and does not exist is an error, not a reason to try the hub).
    Returns:
        a ``datasets.Dataset`` with columns ``sentence1``, ``sentence2`` ("" for SST-2 and
        CoLA), ``label`` (ClassLabel id; float32 score for STS-B) and ``idx`` (row number).
        Labels follow the hub: RTE/QNLI entailment=0, not_entailment=1; MRPC 1=equivalent.
    Raises:
        ValueError: unknown task, split or source.
        FileNotFoundError: (local) the folder or file is missing; the message names the
            expected path, the hub alternative and ``LORABOOK_DATA``.
        GlueFormatError: a malformed TSV row (file and line in the message).
    """
    spec = get_task(task)
    split = _split(split)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if source == "local":
        return _load_local(spec, split, data_dir)
    if source == "hub":
        return _load_hub(spec, split)
    # auto
    folder = local_folder(spec.name, data_dir)
    if folder is not None:
        return _load_local(spec, split, folder.parent.parent)
    try:
        return _load_hub(spec, split)
    except Exception as err:  # no internet, no `datasets` hub access, ...
        root = data_source(data_dir)[1]
        raise FileNotFoundError(
            _missing_message(spec, root / "glue" / spec.folder, "folder")
            + f" (source='auto' tried the hub too and failed: {type(err).__name__}: {err})"
        ) from err


def tokenize_glue(
    ds: datasets.Dataset,
    tokenizer: Any,
    task: str,
    max_length: int = 128,
) -> datasets.Dataset:
    """Tokenise a loaded GLUE split for a sequence-classification model.

    Single-sentence tasks encode ``sentence1``; pair tasks encode ``(sentence1, sentence2)``.
    Sequences are truncated to ``max_length`` but not padded (pad per batch with
    ``transformers.DataCollatorWithPadding``).

    Args:
        ds: a dataset from :func:`load_glue` (or a :func:`subset` of one).
        tokenizer: a Hugging Face tokenizer.
        task: the task ``ds`` belongs to.
        max_length: maximum tokens per example, special tokens included.
    Returns:
        a dataset with the tokenizer's outputs (``input_ids``, ``attention_mask``, ...) and
        ``labels``; the text columns and ``idx`` are removed so that every column is a model
        input.
    """
    spec = get_task(task)
    missing = [c for c in ("sentence1", "sentence2", "label") if c not in ds.column_names]
    if missing:
        raise ValueError(f"dataset lacks column(s) {missing}; load it with load_glue()")

    def encode(batch: dict[str, list]) -> dict[str, list]:
        if spec.is_pair:
            return tokenizer(
                batch["sentence1"], batch["sentence2"], truncation=True, max_length=max_length
            )
        return tokenizer(batch["sentence1"], truncation=True, max_length=max_length)

    drop = [c for c in ds.column_names if c != "label"]
    out = ds.map(encode, batched=True, remove_columns=drop, desc=f"tokenize {spec.name}")
    return out.rename_column("label", "labels")


def subset(ds: datasets.Dataset, n: int | None, seed: int = 0) -> datasets.Dataset:
    """A deterministic random sample of ``n`` rows (shuffle with ``seed``, take the first n).

    ``n`` of ``None`` or ``>= len(ds)`` returns ``ds`` unchanged.
    """
    if n is None or n >= len(ds):
        return ds
    if n < 0:
        raise ValueError(f"subset size must be >= 0, got {n}")
    return ds.shuffle(seed=seed).select(range(n))
