"""A real GLUE run, made tiny: MiniLM, the offline data, one short epoch, one result record.

Then the issue's "runs you can trust" cases, each as a test: a record is keyed by every
setting; ``--force`` never rewrites another configuration's record; the record's path is
printed; bad settings, a missing data folder, an unknown model and malformed data files
fail in one line (exit 2) before any training; the scratch folder goes once a run is done.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file

from lorabook.glue import experiment
from lorabook.glue.__main__ import main
from lorabook.glue.experiment import (
    TRAINABLE_FILE,
    batch_tokens,
    plan_glue_run,
    record_config,
    run_glue,
)
from lorabook.glue.metrics import glue_metrics
from lorabook.glue.presets import PAPER_LORA_ROBERTA_BASE, SettingsError, glue_preset
from lorabook.heads import MeanPooling
from lorabook.runs import config_key
from lorabook.train import length_grouped_order

TINY = {"epochs": 1, "train_examples": 48, "eval_examples": 40, "max_length": 32, "batch_size": 16}
TINY_ARGS = ["--epochs", "1", "--train-examples", "48", "--eval-examples", "40"]
TINY_ARGS += ["--max-length", "32", "--batch-size", "16", "--no-progress"]


class WouldTrain(Exception):
    """Raised by a stand-in for fit(): the run got as far as training."""


def no_training(*args, **kwargs):
    raise WouldTrain


@pytest.fixture(scope="module")
def lora_record(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    lines: list[str] = []
    record = run_glue(
        "rte",
        "lora",
        "minilm",
        "quick",
        overrides=TINY,
        results_dir=results,
        progress=False,
        log=lines.append,
    )
    return results, record, lines


def tiny_run(results: Path, **overrides) -> experiment.GlueRun:
    return plan_glue_run("rte", "lora", "minilm", "quick", 0, results, {**TINY, **overrides})


def test_record_has_what_the_issue_asks(lora_record):
    results, record, lines = lora_record
    run = tiny_run(results)
    assert run.paths.record.name == f"rte-lora-seed0-{run.paths.key}.json"
    assert json.loads(run.paths.record.read_text()) == record
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
        "train_tokens",
        "environment",
    ):
        assert key in record, key
    assert record["metric"] == "accuracy" and 0 <= record["best"]["accuracy"] <= 1
    data = record["data"]
    assert (data["train_rows"], data["eval_rows"], data["source"]) == (48, 40, "local")
    assert set(data["files"]) == {"train", "validation"}
    assert data["files"]["validation"]["path"] == "glue/RTE/dev.tsv"
    assert all(len(f["sha256"]) == 64 for f in data["files"].values())
    assert Path(data["folder"], data["files"]["train"]["path"]).is_file()
    env = record["environment"]
    assert env["packages"]["torch"] and env["device"].startswith(("cpu", "cuda"))
    # LoRA trains < 1% of the encoder (head excluded, as in the paper's counts)
    params = record["params"]
    assert params["trainable"] == 73_728 and params["trainable"] / params["total"] < 0.01
    settings = record["settings"]
    assert settings["lora_r"] == 8 and settings["train"]["epochs"] == 1
    assert (settings["padding"], settings["group_by_length"]) == ("longest", False)
    # the name is the hash of the configuration the record states
    assert config_key(record_config(record)) == record["key"] == run.paths.key
    # and the log says where it went
    assert lines[-1] == f"rte-lora-seed0: record written: {run.paths.record}"
    # which arithmetic trained and evaluated (not a setting: the name stays the same)
    precision = record["precision"]
    assert precision["train"] == precision["evaluate"] == "fp32"
    assert precision["hardware"]["device"] == env["device"].split(":")[0]
    assert record["resumed_from_batch"] == 0
    # what the best epoch predicted for every dev example, in order: it gives the score again
    kept = record["dev_predictions"]
    assert kept["epoch"] == record["best_epoch"] and len(kept["predictions"]) == 40
    assert set(kept["predictions"]) <= {0, 1} and len(kept["labels"]) == 40
    again = glue_metrics("rte", kept["predictions"], kept["labels"])
    assert again["accuracy"] == record["best"]["accuracy"]


def test_checkpoint_every_goes_from_the_command_line_to_fit(tmp_path, monkeypatch):
    asked = {}

    def fit(*args, **kwargs):
        asked["every"] = kwargs["checkpoint_every"]
        raise WouldTrain

    monkeypatch.setattr(experiment, "fit", fit)
    argv = ["--task", "rte", "--preset", "quick", "--results-dir", str(tmp_path), *TINY_ARGS]
    with pytest.raises(WouldTrain):
        main([*argv, "--checkpoint-every", "7"])
    assert asked["every"] == 7
    with pytest.raises(WouldTrain):
        main(argv)
    assert asked["every"] == 200
    with pytest.raises(SystemExit):  # argparse: exit status 2
        main([*argv, "--checkpoint-every", "-1"])


def test_dynamic_padding_is_counted(lora_record):
    _, record, _ = lora_record
    tokens = record["train_tokens"]
    # RTE's pairs fill max_length 32, so here the batches' longest is max_length itself
    assert 0 < tokens["real"] <= tokens["padded"] <= 48 * 32
    assert tokens["real_per_second"] > 0


def test_lora_tensors_are_kept_with_the_record_and_scratch_is_removed(lora_record):
    results, record, _ = lora_record
    run = tiny_run(results)
    tensors = load_file(run.paths.outputs / TRAINABLE_FILE)
    assert record["trainable_file"] == f"{run.paths.outputs.name}/{TRAINABLE_FILE}"
    assert any("lora_A" in name for name in tensors) and any("lora_B" in name for name in tensors)
    assert (run.paths.outputs / TRAINABLE_FILE).stat().st_size == record["trainable_file_bytes"]
    assert not run.paths.scratch.exists()  # checkpoints removed once the record exists


def test_same_seed_gives_the_same_run(lora_record, tmp_path):
    _, record, _ = lora_record
    again = run_glue(
        "rte", "lora", "minilm", "quick", overrides=TINY, results_dir=tmp_path, progress=False
    )
    strip = ("train_seconds", "elapsed_seconds", "energy_joules")  # clocks
    assert [{k: v for k, v in e.items() if k not in strip} for e in again["epochs"]] == [
        {k: v for k, v in e.items() if k not in strip} for e in record["epochs"]
    ]


def test_finished_run_is_not_recomputed(lora_record, monkeypatch):
    results, record, _ = lora_record
    monkeypatch.setattr(experiment, "fit", no_training)
    assert run_glue("rte", "lora", "minilm", "quick", overrides=TINY, results_dir=results) == record


# --------------------------------------------------------------------------- record identity


@pytest.mark.parametrize(
    "change",
    [
        ["--epochs", "2"],
        ["--train-examples", "64"],
        ["--lr", "0.002"],
        ["--lora-alpha", "16"],
        ["--group-by-length"],
        ["--padding", "max_length"],
    ],
)
def test_changed_setting_is_a_new_run_not_the_old_record(lora_record, monkeypatch, change):
    """The issue's case: ``--epochs 1`` used to return a 3-epoch record in 4 s."""
    results, record, _ = lora_record
    monkeypatch.setattr(experiment, "fit", no_training)
    with pytest.raises(WouldTrain):
        main(["--task", "rte", "--results-dir", str(results), *TINY_ARGS, *change])


def test_same_settings_from_the_cli_reuse_the_record_and_print_its_path(lora_record, capsys):
    results, record, _ = lora_record
    assert main(["--task", "rte", "--results-dir", str(results), *TINY_ARGS]) == 0
    out = capsys.readouterr().out
    assert str(tiny_run(results).paths.record) in out and "same settings" in out
    assert "best epoch 1 of 1" in out
    # the values a person types are the values the preset holds: alpha 8 == 8.0
    assert tiny_run(results, lora_alpha=8.0).paths == tiny_run(results).paths


def test_force_never_rewrites_a_record_of_other_settings(lora_record, monkeypatch):
    results, record, _ = lora_record
    path = tiny_run(results).paths.record
    before = path.read_bytes()
    monkeypatch.setattr(experiment, "fit", no_training)
    with pytest.raises(WouldTrain):  # other settings: a run of its own, not a rewrite
        main(
            ["--task", "rte", "--results-dir", str(results), *TINY_ARGS, "--epochs", "2", "--force"]
        )
    assert path.read_bytes() == before
    assert not tiny_run(results, epochs=2).paths.record.exists()
    with pytest.raises(WouldTrain):  # same settings: --force reruns that one
        main(["--task", "rte", "--results-dir", str(results), *TINY_ARGS, "--force"])
    assert path.read_bytes() == before  # untouched until a rerun finishes


def test_cli_runs_regression_task_and_keeps_scratch_on_request(tmp_path, capsys):
    argv = ["--task", "stsb", "--method", "bitfit", "--results-dir", str(tmp_path)]
    argv += ["--epochs", "1", "--train-examples", "32", "--eval-examples", "32"]
    argv += ["--max-length", "32", "--batch-size", "16", "--no-progress", "--keep-scratch"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "stsb bitfit seed 0: best epoch 1 of 1: pearson" in out
    overrides = {"epochs": 1, "train_examples": 32, "eval_examples": 32, "max_length": 32}
    run = plan_glue_run("stsb", "bitfit", results_dir=tmp_path, overrides=overrides)
    assert f"record written: {run.paths.record}" in out
    record = json.loads(run.paths.record.read_text())
    assert set(record["best"]) >= {"pearson", "spearmanr"}
    assert (run.paths.scratch / "ckpt" / "last.pt").is_file()  # --keep-scratch
    assert (run.paths.outputs / TRAINABLE_FILE).is_file()
    kept = record["dev_predictions"]  # STS-B: the scores themselves, exactly
    assert all(isinstance(x, float) for x in kept["predictions"]) and len(kept["labels"]) == 32
    assert glue_metrics("stsb", kept["predictions"], kept["labels"]) == {
        k: record["best"][k] for k in ("pearson", "spearmanr")
    }
    assert (run.paths.scratch / "predictions" / "epoch1.json").is_file()


# --------------------------------------------------------------------------- user errors


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a model is resolved or loaded."""

    def forbidden(*args, **kwargs):
        pytest.fail("a model was loaded before the settings were checked")

    monkeypatch.setattr(experiment, "resolve_model", forbidden)
    monkeypatch.setattr(experiment.AutoModelForSequenceClassification, "from_pretrained", forbidden)
    monkeypatch.setattr(experiment, "fit", no_training)


@pytest.mark.parametrize(
    "bad,named",
    [
        (["--lora-r", "0"], "lora_r"),
        (["--lora-alpha", "0"], "lora_alpha"),
        (["--lora-alpha", "nan"], "lora_alpha"),
        (["--epochs", "0"], "epochs"),
        (["--train-examples", "0"], "train_examples"),
        (["--eval-examples", "-3"], "eval_examples"),
        (["--lr", "0"], "lr"),
        (["--batch-size", "0"], "batch_size"),
        (["--max-length", "2"], "max_length"),
        (["--padding", "left"], "padding"),
        (["--mixed-precision", "fp8"], "mixed_precision"),
        (["--seed", "-1"], "seed"),
        (["--lora-targets", "q", "w"], "lora_targets must be one or more of q, k, v, o"),
        (["--adapter-p-variant", "houlsby"], "adapter_p_variant must be one of pfeiffer"),
        (["--pooling", "max"], "pooling must be one of cls, mean"),
    ],
)
def test_bad_setting_is_one_line_and_exit_2_before_any_model_loads(
    tmp_path, capsys, no_model, bad, named
):
    argv = ["--task", "rte", "sst2", "--method", "ft", "lora", "--results-dir", str(tmp_path)]
    assert main(argv + bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and named in err
    assert "Traceback" not in err
    assert not (tmp_path / "glue").exists()


def test_lora_targets_train_exactly_those_modules(tmp_path, capsys):
    argv = ["--task", "rte", "--results-dir", str(tmp_path), *TINY_ARGS]
    assert main(argv + ["--lora-targets", "o", "v", "k", "q", "--lora-r", "2"]) == 0
    overrides = {**TINY, "lora_targets": ("q", "k", "v", "o"), "lora_r": 2}
    run = plan_glue_run("rte", results_dir=tmp_path, overrides=overrides)
    record = json.loads(run.paths.record.read_text())
    assert record["settings"]["lora_targets"] == ["q", "k", "v", "o"]  # canonical order
    tensors = load_file(run.paths.outputs / TRAINABLE_FILE)
    adapted = {name.rsplit(".", 1)[0] for name in tensors if ".lora_" in name}
    modules = ("attention.self.query", "attention.self.key", "attention.self.value")
    modules += ("attention.output.dense",)  # W_o; not the FFN's output.dense
    assert adapted == {f"bert.encoder.layer.{i}.{m}" for i in range(6) for m in modules}
    assert all(t.shape == (2, 384) for n, t in tensors.items() if n.endswith("lora_A"))
    assert record["params"]["trainable"] == 4 * 6 * 2 * (384 + 384)


def test_lora_targets_are_a_set_and_the_paper_s_keep_every_earlier_name(tmp_path):
    default = tiny_run(tmp_path)
    assert "lora_targets" not in default.config["settings"]  # as before the setting existed
    assert tiny_run(tmp_path, lora_targets=("v", "q")).paths.key == default.paths.key
    qk = tiny_run(tmp_path, lora_targets=("k", "q"))
    assert qk.paths.key != default.paths.key and qk.config["settings"]["lora_targets"] == ["q", "k"]
    ft = plan_glue_run("rte", "ft", "minilm", "quick", 0, tmp_path, TINY)
    ft_qk = plan_glue_run(
        "rte", "ft", "minilm", "quick", 0, tmp_path, {**TINY, "lora_targets": ("q",)}
    )
    assert ft.paths.key == ft_qk.paths.key  # LoRA's settings do not split other methods' runs


def test_adapter_p_variant_is_in_a_run_s_name_only_for_pfeiffer(tmp_path):
    """adapter_p was Houlsby's FFN adapter until issue 20: the cpu preset keeps that meaning
    and its records' names; Pfeiffer's adapter is a new name; other methods are untouched."""
    cpu = plan_glue_run("rte", "adapter_p", "minilm", "cpu", 0, tmp_path)
    assert "adapter_p_variant" not in cpu.config["settings"]  # as the records made before it
    assert cpu.settings.model_method("adapter_p") == "adapter_h_ffn"
    pfeiffer = {"adapter_p_variant": "pfeiffer"}
    new = plan_glue_run("rte", "adapter_p", "minilm", "cpu", 0, tmp_path, pfeiffer)
    assert new.config["settings"]["adapter_p_variant"] == "pfeiffer"
    assert new.paths.key != cpu.paths.key and new.settings.model_method("adapter_p") == "adapter_p"
    for preset in ("quick", "paper"):  # the paper's AdapterP
        run = plan_glue_run("rte", "adapter_p", "minilm", preset, 0, tmp_path)
        assert run.config["settings"]["adapter_p_variant"] == "pfeiffer"
    h = plan_glue_run("rte", "adapter_h", "minilm", "cpu", 0, tmp_path)
    assert (
        plan_glue_run("rte", "adapter_h", "minilm", "cpu", 0, tmp_path, pfeiffer).paths == h.paths
    )
    assert h.settings.model_method("adapter_h") == "adapter_h"


@pytest.mark.parametrize(
    ("variant", "trained"), [("pfeiffer", "adapter_p"), (None, "adapter_h_ffn")]
)
def test_run_glue_trains_the_adapter_p_variant(tmp_path, monkeypatch, variant, trained):
    asked = []

    def prepare_model(net, method, **kwargs):
        asked.append(method)
        raise WouldTrain

    monkeypatch.setattr(experiment, "prepare_model", prepare_model)
    overrides = {**TINY, **({"adapter_p_variant": variant} if variant else {})}
    with pytest.raises(WouldTrain):
        run_glue("rte", "adapter_p", "minilm", "cpu", 0, results_dir=tmp_path, overrides=overrides)
    assert asked == [trained]


def test_mean_pooling_is_a_new_name_and_reaches_the_model(tmp_path, monkeypatch, capsys):
    cls = tiny_run(tmp_path)
    assert "pooling" not in cls.config["settings"]  # [CLS]: as every record before it
    assert tiny_run(tmp_path, pooling="cls").paths == cls.paths
    mean = tiny_run(tmp_path, pooling="mean")
    assert mean.config["settings"]["pooling"] == "mean" and mean.paths.key != cls.paths.key
    seen = []

    def prepare_model(net, method, **kwargs):
        seen.append(net)
        raise WouldTrain

    monkeypatch.setattr(experiment, "prepare_model", prepare_model)
    argv = ["--task", "rte", "--preset", "quick", "--results-dir", str(tmp_path), *TINY_ARGS]
    with pytest.raises(WouldTrain):
        main([*argv, "--pooling", "mean"])
    assert isinstance(seen[0].bert.pooler, MeanPooling)
    with pytest.raises(WouldTrain):
        main(argv)
    assert not isinstance(seen[1].bert.pooler, MeanPooling)


def test_debug_shows_the_traceback(tmp_path, no_model):
    with pytest.raises(SettingsError, match="lora_r"):
        main(["--task", "rte", "--lora-r", "0", "--results-dir", str(tmp_path), "--debug"])


def test_train_examples_all_means_the_whole_set(tmp_path):
    run = plan_glue_run("rte", overrides={"train_examples": None}, results_dir=tmp_path)
    assert run.settings.train_examples is None
    with pytest.raises(SettingsError, match="train_examples must be at least 1"):
        plan_glue_run("rte", overrides={"train_examples": 0}, results_dir=tmp_path)


@pytest.mark.parametrize("model", ["roberta-bse", "./no-such-model"])
def test_unknown_model_offline_is_one_line(tmp_path, capsys, monkeypatch, model):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(experiment, "fit", no_training)
    assert main(["--task", "rte", "--model", model, "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and model.lstrip("./") in err
    if model == "roberta-bse":
        assert "minilm" in err  # what would work offline


def test_missing_lorabook_data_is_an_error_not_a_fallback(tmp_path, capsys, monkeypatch):
    missing = tmp_path / "no-such-data"
    monkeypatch.setenv("LORABOOK_DATA", str(missing))
    monkeypatch.setattr(experiment, "fit", no_training)
    assert main(["--task", "rte", "--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(missing) in err and "LORABOOK_DATA" in err


RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"
RTE_ROWS = "".join(f"{i}\tA man sleeps {i}.\tA man is awake.\tnot_entailment\n" for i in range(8))


@pytest.mark.parametrize(
    "dev,expected",
    [
        (RTE_HEADER.encode(), "no data rows after its header"),
        (
            (RTE_HEADER + RTE_ROWS).encode() + b"8\tCaf\xe9 au lait.\tA drink.\tentailment\n",
            "line 10",
        ),
    ],
    ids=["header-only", "latin-1 byte"],
)
def test_bad_dev_file_fails_before_training_naming_the_file(
    tmp_path, capsys, monkeypatch, dev, expected
):
    folder = tmp_path / "data" / "glue" / "RTE"
    folder.mkdir(parents=True)
    (folder / "train.tsv").write_text(RTE_HEADER + RTE_ROWS)
    (folder / "dev.tsv").write_bytes(dev)
    monkeypatch.setattr(experiment, "fit", no_training)
    monkeypatch.setattr(
        experiment.AutoModelForSequenceClassification,
        "from_pretrained",
        lambda *a, **k: pytest.fail("the model was loaded before the data was read"),
    )
    argv = ["--task", "rte", "--data-dir", str(tmp_path / "data")]
    assert main(argv + ["--results-dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(folder / "dev.tsv") in err and expected in err


# --------------------------------------------------------------------------- batching


def test_length_grouped_batches_are_whole_seeded_and_less_padded():
    lengths = [5 + (i * 37) % 60 for i in range(330)]  # 20 full batches of 16 and one of 10
    order = length_grouped_order(lengths, 16, seed=0, epoch=0, chunk_batches=4)
    assert sorted(order) == list(range(330))
    assert order == length_grouped_order(lengths, 16, seed=0, epoch=0, chunk_batches=4)
    assert order != length_grouped_order(lengths, 16, seed=0, epoch=1, chunk_batches=4)
    assert len(set(order[-10:])) == 10  # the short batch last: every other batch is whole
    chunks = [order[i : i + 64] for i in range(0, 320, 64)]
    assert all(len(c) == 64 for c in chunks)
    grouped = batch_tokens(lengths, order, 16)
    shuffled = batch_tokens(lengths, list(range(330)), 16)
    assert grouped[0] == shuffled[0] == sum(lengths)  # the same text...
    assert grouped[1] < shuffled[1]  # ...with less padding
    assert batch_tokens(lengths, order, 16, pad_to=80) == (sum(lengths), 330 * 80)


# --------------------------------------------------------------------------- presets


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


def test_resolved_settings_are_canonical():
    p = glue_preset("quick", "sst2", "lora").with_overrides(lora_alpha=16)
    resolved = p.resolved("lora")
    assert resolved["lora_alpha"] == 16.0 and isinstance(resolved["lora_alpha"], float)
    assert p.resolved("ft")["lora_r"] is None  # unused settings do not split FT's records
    assert not math.isnan(resolved["train"]["lr"])


@pytest.mark.parametrize("flags", [("avx512_bf16",), ()], ids=["native-bf16", "no-bf16"])
def test_the_cpu_preset_trains_in_bf16_where_native_else_fp32_saying_so(
    tmp_path, monkeypatch, flags
):
    """Issue 17: the cpu preset's arithmetic is cpu_precision(): bf16 on a CPU with native
    bf16, else fp32 with one line saying so; pinning it (the campaign's jobs) says nothing."""
    from lorabook import precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    asked = []

    def fit(net, train_ds, evaluate, config, **kwargs):
        asked.append(config.mixed_precision)
        raise WouldTrain

    monkeypatch.setattr(experiment, "fit", fit)
    expected = "bf16" if flags else "no"
    lines: list[str] = []
    with pytest.raises(WouldTrain):
        run_glue(
            "rte", "lora", "minilm", "cpu", results_dir=tmp_path, overrides=TINY, log=lines.append
        )
    fallback = [line for line in lines if "no native bf16" in line]
    assert asked == [expected] and len(fallback) == (0 if flags else 1)
    assert all("fp32" in line for line in fallback)
    lines.clear()
    with pytest.raises(WouldTrain):
        run_glue(
            "rte",
            "lora",
            "minilm",
            "cpu",
            results_dir=tmp_path,
            overrides={**TINY, "mixed_precision": "no"},
            log=lines.append,
        )
    assert asked[-1] == "no" and not [line for line in lines if "no native bf16" in line]


@pytest.mark.parametrize("flags", [("avx512_bf16",), ()], ids=["native-bf16", "no-bf16"])
def test_the_full_preset_trains_in_bf16_on_any_cpu_saying_where_it_is_emulated(
    tmp_path, monkeypatch, flags
):
    """The ``full`` preset's bf16 is pinned (CAMPAIGN_PRECISION), so its runs keep their
    names, and the book its records, on a CPU without native bf16. There a run says in one
    line that bf16 is emulated and which flag trains in fp32 instead; asked for fp32, nothing."""
    from lorabook import precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    assert glue_preset("full", "rte", "lora").train.mixed_precision == "bf16"
    asked = []

    def fit(net, train_ds, evaluate, config, **kwargs):
        asked.append(config.mixed_precision)
        raise WouldTrain

    monkeypatch.setattr(experiment, "fit", fit)
    for overrides, says in ((TINY, not flags), ({**TINY, "mixed_precision": "no"}, False)):
        lines: list[str] = []
        with pytest.raises(WouldTrain):
            run_glue(
                "rte",
                "lora",
                "minilm",
                "full",
                results_dir=tmp_path,
                overrides=overrides,
                log=lines.append,
            )
        warned = [line for line in lines if "emulates" in line]
        assert len(warned) == says and all("--mixed-precision no" in line for line in warned)
    assert asked == ["bf16", "no"]
