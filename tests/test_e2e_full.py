"""The ``full`` preset and what it added to a run: rounds, dev BLEU, selection, the recipe."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lorabook.cli import SettingsError
from lorabook.e2e import experiment, presets
from lorabook.e2e.data import E2ERow, group_references, load_e2e
from lorabook.e2e.experiment import (
    load_causal_lm,
    load_rows,
    plan_e2e_run,
    run_e2e,
    training_rows,
)
from lorabook.e2e.paper_format import read_paper_format, write_paper_format
from lorabook.e2e.presets import ADDED_LATER, DecodeConfig, dev_loss_flat, e2e_preset
from lorabook.precision import CAMPAIGN_PRECISION

FAST = {"lr": 1e-3, "num_beams": 2, "max_new_tokens": 8}  # the tiny model's test decoding


def test_full_is_the_whole_set_with_the_official_recipe_and_quarter_epoch_rounds():
    full, cpu = e2e_preset("full", "lora").with_overrides(lr=2e-4), e2e_preset("cpu", "lora")
    t = full.train
    assert full.train_examples is None and full.max_length == 128
    assert (t.batch_size, t.weight_decay, t.warmup_steps, t.max_grad_norm) == (8, 0.01, 500, None)
    assert (full.label_smoothing, full.dropout, full.lora_r, full.lora_alpha) == (0.1, 0.1, 4, 32)
    assert t.mixed_precision == full.decode.precision == CAMPAIGN_PRECISION  # on any CPU
    assert full.decode == replace(cpu.decode, precision=CAMPAIGN_PRECISION)
    assert (full.optimizer, full.collapse_whitespace, full.data_form) == ("official", True, "csv")
    assert full.backbone_dropout is None and full.decode.stop_strings == ()
    assert (full.rounds_per_epoch, full.eval_examples, full.dev_mrs, full.dev_seed) == (
        4,
        500,
        100,
        0,
    )
    assert full.select_best and full.adapter_size == 6 and full.group_by_length
    assert not cpu.group_by_length and "group_by_length" not in cpu.to_dict()
    assert full.planned_rounds == 4 * presets.FULL_MAX_EPOCHS == full.trained_rounds
    assert full.with_overrides(rounds=1).trained_rounds == 1
    with pytest.raises(SettingsError, match="rounds must be between 1 and"):
        full.with_overrides(rounds=4 * presets.FULL_MAX_EPOCHS + 1)


def test_full_has_no_learning_rate_until_the_sweep_picks_one(monkeypatch, tmp_path):
    monkeypatch.setattr(presets, "FULL_CHOSEN", {})
    assert e2e_preset("full", "adapter_l").unset == ("lr",)
    with pytest.raises(SettingsError, match="no lr for this method yet .*campaign sweep.*--lr"):
        plan_e2e_run("lora", "smollm2", "full", 0, tmp_path)
    run = plan_e2e_run("lora", "smollm2", "full", 0, tmp_path, {"lr": 5e-4})
    assert run.settings.train.lr == 5e-4 and "unset" not in run.config["settings"]
    monkeypatch.setattr(presets, "FULL_CHOSEN", {"lora": 5e-4, "ft": 5e-5})
    assert e2e_preset("full", "adapter_l").train.lr == 5e-4  # LoRA's pick
    assert e2e_preset("full", "ft_top2").train.lr == 5e-5  # FT's pick
    same = plan_e2e_run("lora", "smollm2", "full", 0, tmp_path)
    assert same.paths.record == run.paths.record  # identity is the settings, not the route


def test_settings_added_later_leave_the_older_presets_names_alone():
    for name in ("cpu", "smoke"):
        settings = e2e_preset(name, "lora").to_dict()
        assert not set(ADDED_LATER) - {"prefix_length"} & set(settings)
        assert "stop_strings" not in settings["decode"] and "unset" not in settings


def test_the_flat_rule_compares_with_the_evaluation_two_rounds_back():
    assert not dev_loss_flat([2.0, 1.0], 0.01)  # nothing two rounds back yet
    assert not dev_loss_flat([2.0, 1.5, 1.0], 0.01)
    assert dev_loss_flat([2.0, 1.0, 0.999, 0.995], 0.01)  # 0.5% below 1.0
    assert dev_loss_flat([2.0, 1.0, 1.1, 1.2], 0.01)  # rising counts as flat
    assert not dev_loss_flat([2.0, 1.0, 0.999, 0.985], 0.01)  # 1.5%
    assert not dev_loss_flat([3.0, 2.0, 1.0], 0.4, window=1)  # 50% over one round


def test_training_text_collapses_whitespace_and_test_references_stay(small_data):
    settings = e2e_preset("full", "lora").with_overrides(lr=1e-3)
    rows = [E2ERow("name[A]", "A  is\r\n nice . "), E2ERow("name[B]", "B")]
    assert [r.ref for r in training_rows(rows, settings)] == ["A is nice .", "B"]
    cpu = e2e_preset("cpu", "lora")
    assert training_rows(rows, cpu) == rows
    assert load_rows("test", settings, small_data) == load_e2e("test", small_data)
    spaced = sum("  " in r.ref or "\n" in r.ref for r in load_e2e("train"))
    assert spaced > 5_000  # the issue counts 5,796 of 42,061


def test_the_paper_form_reads_the_papers_files(small_data, tmp_path):
    data = tmp_path / "data"
    for split, name in (("validation", "valid.txt"), ("test", "test.txt")):
        write_paper_format(load_e2e(split, small_data), data / "e2e" / "paper-format" / name)
    settings = e2e_preset("cpu", "lora").with_overrides(data_form="paper")
    rows = load_rows("test", settings, data)
    assert rows == read_paper_format(data / "e2e" / "paper-format" / "test.txt")
    assert rows[0].mr.startswith("name : ") and " | Type : " in rows[0].mr
    assert training_rows(rows, settings.with_overrides(collapse_whitespace=True)) == rows


def test_backbone_dropout_sets_every_dropout_of_the_pretrained_model(model_folder):
    kept = load_causal_lm(model_folder, None)
    assert {m.p for m in kept.modules() if isinstance(m, torch.nn.Dropout)} == {0.1}
    none = load_causal_lm(model_folder, 0.0)
    assert {m.p for m in none.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    assert none.config.attn_pdrop == none.config.resid_pdrop == none.config.embd_pdrop == 0.0


def test_stop_strings_must_be_one_token_and_reach_the_beam_search(
    model_folder, tokenizer, monkeypatch
):
    from lorabook.e2e import decode

    [newline] = tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert decode.stop_token_ids(tokenizer, ("\n",)) == [newline]
    with pytest.raises(ValueError, match=r"is \d+ tokens .* must be one token"):
        decode.stop_token_ids(tokenizer, ("name :",))
    seen = {}

    def search(model, ids, mask, **kw):
        seen["eos"] = kw["eos_token_ids"]
        return [[] for _ in range(len(ids))]

    monkeypatch.setattr(decode, "official_beam_search", search)
    config = DecodeConfig(num_beams=2, stop_strings=["\n"])  # a list, as JSON gives it
    assert config.stop_strings == ("\n",)
    decode.generate_outputs(load_causal_lm(model_folder, None), tokenizer, ["name[A]"], config)
    assert seen["eos"] == [tokenizer.eos_token_id, newline]


def scripted_dev_loss(losses: list[float]):
    """A stand-in for make_dev_loss whose evaluations return ``losses`` in turn."""

    def make(dataset, collate, batch_size):
        calls = []

        def evaluate(model, accelerator):
            calls.append(1)
            loss = losses[len(calls) - 1]
            return {"dev_loss": loss, "neg_dev_loss": -loss, "dev_ppl": 1.0}

        return evaluate

    return make


def trained(record: dict, results: Path) -> dict[str, torch.Tensor]:
    folder = next(results.rglob(f"*-{record['config_key']}.json")).with_suffix("")
    return load_file(str(folder / record["trainable_tensors"]))


def outputs_of(record: dict, results: Path) -> str:
    return next(results.rglob(f"*-{record['config_key']}/outputs.txt")).read_text()


@pytest.mark.parametrize("rounds_per_epoch", [1, 4])
@pytest.mark.parametrize("scope", ["global", "process"])
def test_several_processes_take_one_process_steps_in_the_same_rounds(rounds_per_epoch, scope):
    """``fit`` deals each optimizer step's examples out to the processes, so N processes with
    a global batch see step by step what one process sees, and a round takes as many steps:
    the order is cut into steps of every process's examples, not one process's batch."""
    lengths = [20 + (i * 7919) % 100 for i in range(42_061)]  # E2E's spread of lengths
    settings = e2e_preset("full", "lora").with_overrides(
        lr=2e-4, rounds_per_epoch=rounds_per_epoch, batch_scope=scope
    )
    one, one_order = experiment.fit_rounds(settings, lengths, processes=1)
    two, two_order = experiment.fit_rounds(settings, lengths, processes=2)
    each = 4 if scope == "global" else 8  # a process's batch: half the step's, or all of it
    assert (one.batch_size, two.batch_size) == (8, each)
    if scope == "global":  # the same steps, the same examples in each, in the same order
        assert two.max_steps_per_epoch == one.max_steps_per_epoch
        assert two_order(1) == one_order(1)
        if rounds_per_epoch > 1:
            assert two.max_steps_per_epoch == 1_315  # 10,516 rows of the round, 8 a step
        return
    steps = two.max_steps_per_epoch or -(-len(lengths) // 16)
    order = two_order(1)[: steps * 16]
    spread = [
        max(lengths[i] for i in order[k : k + 16]) - min(lengths[i] for i in order[k : k + 16])
        for k in range(0, len(order), 16)
    ]
    assert sorted(spread)[len(spread) // 2] < 5  # each step of 16 grouped by length


def test_a_full_run_evaluates_each_round_and_decodes_with_its_best_weights(
    model_folder, small_data, tmp_path, monkeypatch
):
    kw = dict(model=str(model_folder), preset="full", data_dir=small_data, results_dir=tmp_path)
    kw |= dict(progress=False, score=False, log=lambda s: None)
    monkeypatch.setattr(experiment, "make_dev_loss", scripted_dev_loss([3.0, 2.0, 2.5, 2.6]))
    record = run_e2e("lora", overrides=FAST, **kw)
    rounds = record["epochs"]
    assert [e["epoch"] for e in rounds] == [1, 2, 3, 4]
    assert [e["epochs_seen"] for e in rounds] == [0.25, 0.5, 0.75, 1.0]
    assert {e["steps"] for e in rounds} == {2}  # 40 rows: 4 rounds of 10, batches of 8
    dev_mrs = len(group_references(load_e2e("validation", small_data))[0])
    assert all(0 <= e["dev_bleu"] <= 1 and e["dev_bleu_mrs"] == dev_mrs for e in rounds)
    assert record["selection"] == {
        "rule": "lowest dev loss",
        "round": 2,
        "dev_loss": 2.0,
        "rounds": 4,
    }
    assert record["data"]["optimizer_steps"] == 8
    # the weights it decoded are those of round 2: a run of the same schedule's first two
    # rounds ends with them (the same batches, the same schedule, planned for 4 rounds)
    monkeypatch.setattr(experiment, "make_dev_loss", scripted_dev_loss([3.0, 2.0]))
    two = run_e2e("lora", overrides={**FAST, "rounds": 2, "select_best": False}, **kw)
    assert two["data"]["stopped"] == "rounds" and len(two["epochs"]) == 2
    for name, value in trained(two, tmp_path).items():
        assert torch.equal(trained(record, tmp_path)[name], value), name
    assert outputs_of(record, tmp_path) == outputs_of(two, tmp_path)


def test_the_pilot_rule_stops_a_run_once_its_dev_loss_is_flat(
    model_folder, small_data, tmp_path, monkeypatch
):
    kw = dict(model=str(model_folder), preset="full", data_dir=small_data, results_dir=tmp_path)
    kw |= dict(progress=False, score=False, log=lambda s: None)
    losses = [3.0, 2.0, 1.99, 1.985, 1.9, 1.8, 1.7, 1.6]  # flat after round 4: 0.75% < 1%
    monkeypatch.setattr(experiment, "make_dev_loss", scripted_dev_loss(losses))
    overrides = {**FAST, "epochs": 2, "stop_flat": 0.01, "decode_test": False}
    record = run_e2e("lora", overrides=overrides, **kw)
    assert len(record["epochs"]) == 4 and record["data"]["stopped"] == "flat"
    assert record["selection"]["round"] == 4 and record["data"]["optimizer_steps"] == 8
    assert record["scores"] is None and record["outputs"] is None and record["decode"] is None
    path = next((tmp_path / "e2e").rglob("*.json"))
    assert run_e2e("lora", overrides=overrides, **{**kw, "score": True}) == json.loads(
        path.read_text()
    )  # finished: returned as it is, nothing to score


def test_a_run_continues_a_shorter_one_and_ends_where_training_from_the_start_ends(
    model_folder, small_data, tmp_path
):
    kw = dict(model=str(model_folder), preset="full", data_dir=small_data)
    kw |= dict(progress=False, score=False, log=lambda s: None)
    sweep = {**FAST, "rounds": 1, "decode_test": False}
    first = run_e2e("lora", overrides=sweep, results_dir=tmp_path, keep_checkpoint=True, **kw)
    first_path = next((tmp_path / "e2e").rglob(f"*-{first['config_key']}.json"))
    longer = {**FAST, "rounds": 2}
    went_on = run_e2e(
        "lora", overrides=longer, results_dir=tmp_path, continue_from=first_path, **kw
    )
    whole = run_e2e("lora", overrides=longer, results_dir=tmp_path / "whole", **kw)
    assert went_on["config_key"] == whole["config_key"]  # the same run
    assert went_on["data"]["continued_from"]["record"] == first_path.name
    assert (
        went_on["data"]["continued_from"]["rounds"] == 1 and "continued_from" not in whole["data"]
    )
    assert went_on["epochs"][0] == first["epochs"][0]  # round 1 is the first run's
    assert [e["dev_loss"] for e in went_on["epochs"]] == [e["dev_loss"] for e in whole["epochs"]]
    for name, value in trained(whole, tmp_path / "whole").items():
        assert torch.equal(trained(went_on, tmp_path)[name], value), name
    assert outputs_of(went_on, tmp_path) == outputs_of(whole, tmp_path / "whole")

    with pytest.raises(ValueError, match=r"settings\.train\.lr differ"):
        run_e2e(
            "lora",
            overrides={**longer, "lr": 5e-4},
            results_dir=tmp_path / "lr",
            continue_from=first_path,
            **kw,
        )
    went_on_path = next((tmp_path / "e2e").rglob(f"*-{went_on['config_key']}.json"))
    with pytest.raises(ValueError, match="kept no final checkpoint"):  # no keep_checkpoint
        run_e2e(
            "lora",
            overrides={**FAST, "rounds": 3},
            results_dir=tmp_path / "3",
            continue_from=went_on_path,
            **kw,
        )
    with pytest.raises(ValueError, match="trained 2 rounds and this run trains at most 1"):
        run_e2e(
            "lora",
            overrides={**sweep, "decode_test": True},
            results_dir=tmp_path / "1",
            continue_from=went_on_path,
            **kw,
        )


def test_the_command_line_plans_the_campaigns_settings(monkeypatch, tmp_path):
    from lorabook.e2e.__main__ import main

    planned = {}

    def run(method, model, preset, seed, data_dir, results_dir, overrides, **kw):
        planned["run"] = plan_e2e_run(method, model, preset, seed, results_dir, overrides)
        raise SystemExit(0)

    monkeypatch.setattr(experiment, "run_e2e", run)
    argv = ["--preset", "full", "--lr", "5e-4", "--rounds", "1", "--decode-test", "False"]
    with pytest.raises(SystemExit):
        main([*argv, "--stop-flat", "0.01", "--results-dir", str(tmp_path)])
    settings = planned["run"].settings
    assert (settings.rounds, settings.decode_test, settings.stop_flat) == (1, False, 0.01)
    monkeypatch.setattr(presets, "FULL_CHOSEN", {})
    assert main(["--preset", "full", "--results-dir", str(tmp_path)]) == 2  # no lr yet
