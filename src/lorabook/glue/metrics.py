"""GLUE metrics, named as ``evaluate.load("glue", task)`` names them, without the hub.

=========  ==============================  ==============================================
task       returned keys                   what the LoRA paper reports (Table 2 caption)
=========  ==============================  ==============================================
sst2       accuracy                        accuracy
mrpc       accuracy, f1                    accuracy
cola       matthews_correlation            Matthews correlation
rte        accuracy                        accuracy
stsb       pearson, spearmanr              Pearson correlation
mnli       accuracy                        accuracy (matched and mismatched)
qnli       accuracy                        accuracy
qqp        accuracy, f1                    accuracy
=========  ==============================  ==============================================

F1 is the binary F1 of class 1 (MRPC "equivalent", QQP "duplicate"), as in GLUE. Pearson and
Spearman of a constant prediction are undefined and returned as ``nan``; Matthews correlation
is then 0.0 (scikit-learn's convention).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lorabook.glue.data import get_task


def primary_metric(task: str) -> str:
    """The metric the LoRA paper reports for ``task`` (a key of :func:`glue_metrics`).

    ``accuracy`` for SST-2, MRPC, RTE, MNLI, QNLI, QQP; ``matthews_correlation`` for CoLA;
    ``pearson`` for STS-B.
    """
    return get_task(task).primary_metric


def _class_ids(values: Any, name: str) -> np.ndarray:
    """Class ids from ids (any numeric dtype, integral values) or a 2-D array of logits."""
    arr = np.asarray(values)
    if arr.ndim == 2:
        arr = arr[:, 0] if arr.shape[1] == 1 else arr.argmax(axis=-1)
    elif arr.ndim != 1:
        raise ValueError(f"{name}: expected class ids (n,) or logits (n, classes), got {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(
                f"{name}: classification expects class ids or 2-D logits, got non-integer floats"
            )
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{name}: expected numeric class ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _scores(values: Any, name: str) -> np.ndarray:
    """Regression scores from (n,) or (n, 1)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected scores of shape (n,) or (n, 1), got {arr.shape}")
    return arr


def glue_metrics(task: str, predictions: Any, references: Any) -> dict[str, float]:
    """The GLUE metrics of ``task`` for ``predictions`` against ``references``.

    Args:
        task: a GLUE task name (``sst2``, ``mrpc``, ``cola``, ``rte``, ``stsb``, ``mnli``,
            ``qnli``, ``qqp``).
        predictions: classification: class ids ``(n,)`` or logits ``(n, classes)`` (argmax
            taken); STS-B: scores ``(n,)`` or ``(n, 1)``. Lists, numpy arrays or CPU tensors.
        references: the gold labels ``(n,)`` (class ids may be given as integral floats).
    Returns:
        ``{metric: value}`` with plain Python floats: ``accuracy`` (sst2, rte, qnli, mnli),
        ``accuracy`` and ``f1`` (mrpc, qqp), ``matthews_correlation`` (cola), ``pearson`` and
        ``spearmanr`` (stsb).
    Raises:
        ValueError: unknown task, mismatched lengths, no examples, or malformed inputs.
    """
    spec = get_task(task)
    if spec.is_regression:
        preds, refs = _scores(predictions, "predictions"), _scores(references, "references")
    else:
        preds = _class_ids(predictions, "predictions")
        refs = _class_ids(references, "references")
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    if len(preds) == 0:
        raise ValueError("no examples to score")

    out: dict[str, float] = {}
    if spec.is_regression:
        from scipy.stats import pearsonr, spearmanr

        constant = np.ptp(preds) == 0 or np.ptp(refs) == 0
        if constant or len(preds) < 2:
            out["pearson"] = out["spearmanr"] = math.nan
        else:
            out["pearson"] = float(pearsonr(preds, refs)[0])
            out["spearmanr"] = float(spearmanr(preds, refs)[0])
        return out
    if "accuracy" in spec.metrics:
        out["accuracy"] = float(np.mean(preds == refs))
    if "f1" in spec.metrics:
        from sklearn.metrics import f1_score

        out["f1"] = float(f1_score(refs, preds, pos_label=1, average="binary", zero_division=0))
    if "matthews_correlation" in spec.metrics:
        from sklearn.metrics import matthews_corrcoef

        out["matthews_correlation"] = float(matthews_corrcoef(refs, preds))
    return out
