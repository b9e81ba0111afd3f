"""A real GLUE run, made tiny: MiniLM, the offline data, one short epoch, one result record."""

from __future__ import annotations

import json

import pytest

from lorabook.glue import experiment
from lorabook.glue.__main__ import main
from lorabook.glue.experiment import record_path, run_glue
from lorabook.glue.presets import PAPER_LORA_ROBERTA_BASE, glue_preset

TINY = {"epochs": 1, "train_examples": 48, "eval_examples": 40, "max_length": 32, "batch_size": 16}


@pytest.fixture(scope="module")
def lora_record(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    return results, run_glue(
        "rte", "lora", "minilm", "quick", overrides=TINY, results_dir=results, progress=False
    )


def test_record_has_what_the_issue_asks(lora_record):
    results, record = lora_record
    path = record_path(results, "quick", "minilm", "rte", "lora", 0)
    assert json.loads(path.read_text()) == record
    for key in (
        "settings",
        "epochs",
        "best",
        "best_epoch",
        "params",
        "trainable_file_bytes",
        "peak_memory",
        "wall_seconds",
        "seconds_per_step",
        "environment",
    ):
        assert key in record, key
    assert record["metric"] == "accuracy" and 0 <= record["best"]["accuracy"] <= 1
    assert record["data"] == {"train_rows": 48, "eval_rows": 40}
    env = record["environment"]
    assert env["packages"]["torch"] and env["device"].startswith(("cpu", "cuda"))
    # LoRA trains < 1% of the encoder (head excluded, as in the paper's counts)
    params = record["params"]
    assert params["trainable"] == 73_728 and params["trainable"] / params["total"] < 0.01
    assert record["settings"]["lora_r"] == 8 and record["settings"]["train"]["epochs"] == 1
    assert not list((results / "_scratch").rglob("last.pt"))  # removed once the record exists


def test_same_seed_gives_the_same_run(lora_record, tmp_path):
    _, record = lora_record
    again = run_glue(
        "rte", "lora", "minilm", "quick", overrides=TINY, results_dir=tmp_path, progress=False
    )
    strip = ("train_seconds",)
    assert [{k: v for k, v in e.items() if k not in strip} for e in again["epochs"]] == [
        {k: v for k, v in e.items() if k not in strip} for e in record["epochs"]
    ]


def test_finished_run_is_not_recomputed(lora_record, monkeypatch):
    results, record = lora_record
    monkeypatch.setattr(experiment, "fit", lambda *a, **k: pytest.fail("fit called again"))
    assert run_glue("rte", "lora", "minilm", "quick", overrides=TINY, results_dir=results) == record


def test_cli_runs_regression_task_and_prints_best(tmp_path, capsys):
    argv = [
        "--task",
        "stsb",
        "--method",
        "bitfit",
        "--results-dir",
        str(tmp_path),
        "--no-progress",
        "--epochs",
        "1",
        "--train-examples",
        "32",
        "--eval-examples",
        "32",
        "--max-length",
        "32",
        "--batch-size",
        "16",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "stsb bitfit seed 0: best epoch 1: pearson" in out
    record = json.loads(record_path(tmp_path, "quick", "minilm", "stsb", "bitfit", 0).read_text())
    assert set(record["best"]) >= {"pearson", "spearmanr"}


def test_paper_preset_is_table_9():
    for task, (batch, epochs, lr) in PAPER_LORA_ROBERTA_BASE.items():
        p = glue_preset("paper", task, "lora")
        assert (p.train.batch_size, p.train.epochs, p.train.lr) == (batch, epochs, lr)
        assert (p.lora_r, p.lora_alpha, p.max_length) == (8, 8, 512)
        assert (p.train.warmup_ratio, p.train.weight_decay) == (0.06, 0.1)
    assert glue_preset("paper", "sst2", "ft").train.lr == 2e-5


@pytest.mark.parametrize(
    "args,match",
    [
        (("paper", "wnli", "lora"), "Unknown task"),
        (("paper", "sst2", "prefix"), "Unknown method"),
        (("fast", "sst2", "lora"), "Unknown preset"),
    ],
)
def test_preset_errors(args, match):
    with pytest.raises(ValueError, match=match):
        glue_preset(*args)


def test_unknown_override_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Unknown settings \['learning_rate'\].*lr"):
        glue_preset("quick", "sst2", "lora").with_overrides(learning_rate=1e-3)
