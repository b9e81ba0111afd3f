"""GLUE metrics against values computed by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from lorabook.glue.data import GLUE_TASKS
from lorabook.glue.metrics import glue_metrics, primary_metric

# A binary case used for F1 and Matthews:
#   refs  1 1 1 0 0 1 0 1
#   preds 1 0 1 1 0 1 0 0
#   TP = 3 (positions 0, 2, 5), FN = 2 (1, 7), FP = 1 (3), TN = 2 (4, 6)
#   accuracy  = (TP + TN) / 8            = 5/8
#   precision = 3/4, recall = 3/5, F1 = 2 TP / (2 TP + FP + FN) = 6/9 = 2/3
#   MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))
#       = (6 - 2) / sqrt(4 * 5 * 3 * 4) = 4 / sqrt(240)
REFS = [1, 1, 1, 0, 0, 1, 0, 1]
PREDS = [1, 0, 1, 1, 0, 1, 0, 0]


def test_accuracy_three_of_four():
    for task in ("sst2", "rte", "qnli"):
        out = glue_metrics(task, [0, 1, 1, 0], [0, 1, 0, 0])
        assert out == {"accuracy": 0.75}
        assert type(out["accuracy"]) is float


def test_mnli_three_classes():
    assert glue_metrics("mnli", [0, 1, 2, 2, 1], [0, 1, 2, 1, 0]) == {"accuracy": 3 / 5}


@pytest.mark.parametrize("task", ["mrpc", "qqp"])
def test_accuracy_and_f1(task):
    out = glue_metrics(task, PREDS, REFS)
    assert set(out) == {"accuracy", "f1"}
    assert out["accuracy"] == pytest.approx(5 / 8)
    assert out["f1"] == pytest.approx(2 / 3)


def test_matthews_by_hand():
    out = glue_metrics("cola", PREDS, REFS)
    assert set(out) == {"matthews_correlation"}
    assert out["matthews_correlation"] == pytest.approx(4 / math.sqrt(240))
    assert glue_metrics("cola", REFS, REFS)["matthews_correlation"] == pytest.approx(1.0)
    flipped = [1 - r for r in REFS]
    assert glue_metrics("cola", flipped, REFS)["matthews_correlation"] == pytest.approx(-1.0)
    # a constant prediction: MCC is 0 by convention
    assert glue_metrics("cola", [1] * 8, REFS)["matthews_correlation"] == 0.0


def test_pearson_spearman():
    x = np.array([0.0, 1.0, 2.5, 4.0, 5.0])
    linear = glue_metrics("stsb", 2 * x + 1, x)
    assert set(linear) == {"pearson", "spearmanr"}
    assert linear["pearson"] == pytest.approx(1.0)
    assert linear["spearmanr"] == pytest.approx(1.0)
    # x = 1 2 3, y = 1 3 2: deviations (-1 0 1), (-1 1 0); sum of products 1,
    # sums of squares 2 and 2 -> r = 1 / sqrt(2 * 2) = 1/2 (ranks are the values: rho = 1/2)
    hand = glue_metrics("stsb", [1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert hand["pearson"] == pytest.approx(0.5)
    assert hand["spearmanr"] == pytest.approx(0.5)
    # monotone but not linear: Spearman 1, Pearson below 1
    cubic = glue_metrics("stsb", x**3, x)
    assert cubic["spearmanr"] == pytest.approx(1.0)
    assert cubic["pearson"] < 0.99
    assert all(type(v) is float for v in cubic.values())


def test_stsb_column_predictions_and_constant():
    x = np.array([0.5, 1.0, 3.0, 4.5])
    assert glue_metrics("stsb", x[:, None], x) == glue_metrics("stsb", x, x)
    constant = glue_metrics("stsb", np.full(4, 2.0), x)
    assert math.isnan(constant["pearson"]) and math.isnan(constant["spearmanr"])


def test_logits_and_ids_agree():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 2))
    ids = logits.argmax(axis=1)
    for task in ("sst2", "mrpc", "cola"):
        expected = glue_metrics(task, ids, REFS)
        assert glue_metrics(task, logits, REFS) == expected
        assert glue_metrics(task, torch.tensor(logits), torch.tensor(REFS)) == expected
        # the training loop gathers references as float arrays
        assert glue_metrics(task, logits.astype(np.float32), np.array(REFS, float)) == expected
    three = rng.normal(size=(5, 3))
    assert glue_metrics("mnli", three, three.argmax(1)) == {"accuracy": 1.0}


def test_bad_inputs():
    with pytest.raises(ValueError) as err:
        glue_metrics("glue", [0], [0])
    assert all(task in str(err.value) for task in GLUE_TASKS)
    with pytest.raises(ValueError, match="2 predictions but 3"):
        glue_metrics("sst2", [0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="non-integer"):
        glue_metrics("sst2", [0.2, 0.9], [0, 1])
    with pytest.raises(ValueError, match="no examples"):
        glue_metrics("rte", [], [])


def test_primary_metric_is_what_the_paper_reports():
    assert primary_metric("sst2") == "accuracy"
    assert primary_metric("mrpc") == "accuracy"
    assert primary_metric("cola") == "matthews_correlation"
    assert primary_metric("rte") == "accuracy"
    assert primary_metric("stsb") == "pearson"
    assert primary_metric("mnli") == "accuracy"
    for task in GLUE_TASKS:  # always one of the keys glue_metrics returns
        assert primary_metric(task) in GLUE_TASKS[task].metrics
    with pytest.raises(ValueError):
        primary_metric("squad")


# --- Edges (found by mutation testing, docs/mutation.md) -------------------------------------


def test_stsb_two_examples_and_one():
    """Two points always lie on a line: Pearson and Spearman are ±1; one point: undefined."""
    up = glue_metrics("stsb", [1.0, 2.0], [0.0, 5.0])
    assert up == {"pearson": pytest.approx(1.0), "spearmanr": pytest.approx(1.0)}
    down = glue_metrics("stsb", [1.0, 2.0], [5.0, 0.0])
    assert down["pearson"] == pytest.approx(-1.0) and down["spearmanr"] == pytest.approx(-1.0)
    one = glue_metrics("stsb", [1.0], [2.0])
    assert math.isnan(one["pearson"]) and math.isnan(one["spearmanr"])


def test_stsb_constant_references_or_predictions_give_nan_without_warnings():
    x = [0.5, 1.0, 3.0, 4.5]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for preds, refs in ((x, [2.0] * 4), ([2.0] * 4, x)):
            out = glue_metrics("stsb", preds, refs)
            assert math.isnan(out["pearson"]) and math.isnan(out["spearmanr"])


def test_f1_without_positives_is_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none_at_all = glue_metrics("mrpc", [0, 0, 0], [0, 0, 0])
        none_predicted = glue_metrics("qqp", [0, 0, 0], [1, 0, 1])
    assert none_at_all == {"accuracy": 1.0, "f1": 0.0}
    assert none_predicted == {"accuracy": pytest.approx(1 / 3), "f1": 0.0}
    assert glue_metrics("mrpc", [1, 1, 1], [1, 0, 1])["f1"] == pytest.approx(0.8)  # 2·2/(4+1)


def test_column_inputs_are_ids_or_scores_not_logits():
    """A (n, 1) column holds class ids (or STS-B scores), never one logit to argmax."""
    assert glue_metrics("sst2", [[1], [0], [1]], [1, 0, 0]) == {"accuracy": pytest.approx(2 / 3)}
    assert glue_metrics("sst2", [1, 0, 1], [[1], [0], [0]]) == {"accuracy": pytest.approx(2 / 3)}
    x = np.array([0.5, 1.0, 3.0, 4.5])
    assert glue_metrics("stsb", x, x[:, None]) == glue_metrics("stsb", x, x)


def test_ids_of_any_integer_or_bool_dtype():
    refs = np.array([1, 0, 1, 1])
    for preds in (np.array([1, 0, 0, 1], np.uint8), np.array([True, False, False, True])):
        assert glue_metrics("cola", preds, refs) == glue_metrics("cola", [1, 0, 0, 1], refs)


@pytest.mark.parametrize(
    "task,predictions,references,match",
    [
        ("sst2", np.zeros((2, 2, 2)), [0, 1], r"predictions: expected class ids \(n,\) or logits"),
        ("sst2", [0, 1], np.zeros((2, 1, 1)), r"references: expected class ids"),
        ("sst2", ["a", "b"], [0, 1], "predictions: expected numeric class ids, got dtype <U1"),
        ("sst2", [0.0, float("nan")], [0, 1], "predictions: classification expects class ids"),
        ("stsb", np.zeros((2, 2)), [0.0, 1.0], r"predictions: expected scores of shape \(n,\)"),
        ("stsb", [0.0, 1.0], np.zeros((2, 2)), r"references: expected scores of shape"),
        ("stsb", [1.0], [1.0, 2.0], "1 predictions but 2 references"),
        ("stsb", [], [], "no examples to score"),
    ],
)
def test_malformed_inputs_name_the_argument(task, predictions, references, match):
    with pytest.raises(ValueError, match=match):
        glue_metrics(task, predictions, references)


def test_every_metric_is_a_plain_float():
    for task in GLUE_TASKS:
        preds = [0.0, 1.0, 2.5] if task == "stsb" else [0, 1, 1]
        refs = [0.5, 1.5, 2.0] if task == "stsb" else [0, 1, 0]
        out = glue_metrics(task, preds, refs)
        assert set(out) == set(GLUE_TASKS[task].metrics)
        assert all(type(v) is float for v in out.values())
