"""lorabook.e2e.report on the committed E2E records: which decoding made each record and
which records the chapter shows."""

from __future__ import annotations

import pytest

from lorabook import paper
from lorabook.e2e import report
from lorabook.e2e.presets import LEGACY_DECODE
from lorabook.paths import REPO_ROOT

RESULTS = REPO_ROOT / "results"


def test_records_made_before_the_decoding_settings_read_as_the_legacy_decoding():
    old = {"settings": {"decode": {"num_beams": 10}}}
    assert report.decoding(old) == {"num_beams": 10, **LEGACY_DECODE}
    assert report.decoding_label(old) == ("generate(), n-gram ban on prompt + continuation, fp32")
    new = {
        "settings": {
            "decode": {"algorithm": "official", "ngram_scope": "continuation", "precision": "bf16"}
        }
    }
    assert report.decoding_label(new) == (
        "the paper's beam search, n-gram ban on the continuation, bf16"
    )


def test_the_chapter_shows_the_records_decoded_as_the_preset_decodes_today():
    shown = report.preset_records(RESULTS, "cpu", "smollm2", ["lora", "ft", "none"])
    assert "lora" in shown, "the LoRA record decoded with the paper's beam search is committed"
    for record in shown.values():
        assert report.decoding(record)["algorithm"] == "official"
        assert report.decoding(record)["ngram_scope"] == "continuation"
        assert record["data"]["test_mrs"] == 630  # the whole test set: no check run (8 MRs)
        assert report.trained_by_preset(record)
    checks = [
        r
        for r in report.find_records(RESULTS, "e2e", preset="cpu", method="lora")
        if r["settings"].get("test_mrs") == report.BF16_CHECK["test_mrs"]
    ]
    assert checks and not any(report.trained_by_preset(r) for r in checks)


def test_the_same_lora_tensors_decoded_other_ways_are_found_and_the_fix_removes_glued_words():
    lora = report.preset_records(RESULTS, "cpu", "smollm2", ["lora"])["lora"]
    ways = report.decoded_other_ways(RESULTS, lora)
    scopes = {report.decoding(r)["ngram_scope"]: r for r in ways}
    assert set(scopes) >= {"prompt+continuation", "continuation"}
    mrs = report.unique_test_mrs()
    before = report.error_row(mrs, report.outputs_of(scopes["prompt+continuation"], REPO_ROOT))
    after = report.error_row(mrs, report.outputs_of(scopes["continuation"], REPO_ROOT))
    assert before["outputs with a glued word"] >= 200 > 10 > after["outputs with a glued word"]
    assert (
        report.paper_scores(scopes["continuation"])["BLEU"]
        > report.paper_scores(scopes["prompt+continuation"])["BLEU"]
    )


@pytest.mark.parametrize("method", ["lora", "ft", "none"])
def test_every_cpu_record_has_both_scoring_variants(method):
    from lorabook.runs import find_records

    for record in find_records(RESULTS, "e2e", preset="cpu", method=method):
        if record.get("scores") is None:
            continue
        paper = record["scores_paper"]
        assert paper is not None and paper["METEOR"] == record["scores"]["METEOR"]
        assert paper["BLEU"] == pytest.approx(record["scores"]["BLEU"], abs=1e-3)


# ------------------------------------------------------------ issue 17: bf16 by default on cpu


def copy_record(record: dict, results, **train) -> dict:
    """A copy of ``record`` under ``results`` (its name, the same folder levels), with its
    training settings changed by ``train`` and, if they change, a later finish and a new name."""
    import json
    from pathlib import Path

    copy = {k: v for k, v in record.items() if k != "_path"}
    name = Path(record["_path"]).name
    if train:
        copy["settings"] = {**copy["settings"], "train": {**copy["settings"]["train"], **train}}
        copy["finished_at"] = "2999-01-01T00:00:00+00:00"
        name = name.replace("seed0-", "seed0-later")
    path = Path(results) / "e2e" / record["preset"] / record["model"] / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(copy))
    return {**copy, "_path": str(path)}


def test_a_newer_bf16_cpu_run_does_not_take_the_chapter_s_fp32_record_s_place(tmp_path):
    assert report.CPU_RECORDED_IN == {"mixed_precision": "no"}
    assert report.recorded_in("cpu") == report.CPU_RECORDED_IN and report.recorded_in("full") == {}
    lora = report.preset_records(RESULTS, "cpu", "smollm2", ["lora"])["lora"]
    fp32 = copy_record(lora, tmp_path)
    copy_record(lora, tmp_path, mixed_precision="bf16")
    shown = report.preset_records(tmp_path, "cpu", "smollm2", ["lora"])["lora"]
    assert shown["_path"] == fp32["_path"]
    assert len(report.decoded_other_ways(tmp_path, shown)) == 1  # not the bf16 training


def test_the_bf16_check_finds_fp32_by_the_pin_and_bf16_as_the_cpu_preset_s_default(
    tmp_path, monkeypatch
):
    import json

    from lorabook import precision
    from lorabook.e2e.experiment import plan_e2e_run

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    check = report.BF16_CHECK
    runs = {
        "no": plan_e2e_run(
            "lora", "smollm2", "cpu", 0, tmp_path, {**check, "mixed_precision": "no"}
        ),
        "bf16": plan_e2e_run("lora", "smollm2", "cpu", 0, tmp_path, check),  # the default
    }
    assert runs["bf16"].settings.train.mixed_precision == "bf16"
    assert report.bf16_dev_losses(tmp_path) == {"no": None, "bf16": None}
    for loss, run in enumerate(runs.values(), start=1):
        run.paths.record.parent.mkdir(parents=True, exist_ok=True)
        fake = {
            **run.config,
            "config_key": run.paths.key,
            "epochs": [{"dev_loss": float(loss)}],
            "data": {"seconds_per_step": 2.0 / loss},
        }
        run.paths.record.write_text(json.dumps(fake))
    found = report.bf16_dev_losses(tmp_path)
    assert (found["no"]["dev_loss"], found["bf16"]["dev_loss"]) == (1.0, 2.0)
    assert found["bf16"]["record"] == runs["bf16"].paths.record.name


def test_the_error_table_counts_each_system_and_the_references_by_one_rule():
    mrs = ["name[Aromi], food[Chinese]", "name[Bibimbap House], area[riverside]"]
    references = [
        ["Aromi serves Chinese food.", "Aromi is Chinese."],
        ["Bibimbap House is by the riverside."],
    ]
    outputs = {"A": ["Aromi serves Chinese food.", ""], "B": ["Aromi.", "Bibimbap House."]}
    table = report.error_table(mrs, references, outputs)
    assert list(table) == ["A", "B", "human references"]
    assert table["A"]["empty outputs"] == 1 and table["B"]["empty outputs"] == 0
    assert table["B"]["outputs dropping a slot"] == 2
    assert table["human references"]["outputs dropping a slot"] == 0
    assert table["A"]["mean words"] == 2.0  # 4 words and 0
    assert table["B"]["distinct texts (%)"] == 100.0
    same = report.error_table(mrs, references, {"C": ["Aromi.", "Aromi."]})
    assert same["C"]["distinct texts (%)"] == 50.0  # one text for two MRs
    shown = report.generations(mrs, references, outputs, indices=(1,))
    assert shown.splitlines()[0] == "**MR 1**: `name[Bibimbap House], area[riverside]`"
    assert "- *A*: (empty)" in shown
    assert "- *reference*: Bibimbap House is by the riverside." in shown
    drops = report.slot_drop_table(mrs, references, outputs)
    assert drops["B"] == {"name": 0.0, "food": 100.0, "area": 100.0}
    assert set(drops["human references"].values()) == {0.0}
    training = [("name[Cotto], food[Thai]", "Cotto serves Thai food.")]
    frames = report.frame_table(mrs, references, outputs, training)
    assert list(frames) == ["A", "B", "human references", "training references"]
    assert frames["A"]["most frequent opening"] == "NAME serves FOOD food."  # ties: first seen
    uniform = report.most_uniform(mrs, references, outputs, training)
    # B opens both outputs with "NAME.", which no training text does; it drops food and area
    assert (uniform["system"], uniform["opening"], uniform["in_training"]) == ("B", 2, 0)
    assert (uniform["slot"], uniform["dropped"], uniform["dropped_when_opening"]) == ("food", 1, 1)
    assert frames["training references"] == {
        "most frequent opening": "NAME serves FOOD food.",
        "texts": 1,
        "share %": 100.0,
    }


def test_the_two_data_forms_score_the_same_outputs_differently_and_the_csv_one_as_recorded():
    from lorabook.e2e.data import e2e_file, group_references, load_e2e
    from lorabook.e2e.score import read_outputs

    mrs, references = group_references(load_e2e("test"))
    vector = e2e_file("test").parent / "reference-scores"
    outputs = read_outputs(vector / "tgen-std.run0.txt")
    both = report.bleu_in_both_forms(outputs, mrs, references)
    official = {
        r["metric"]: float(r["official score"])
        for r in paper.markdown_table((vector / "README.md").read_text().splitlines())
    }
    assert both["csv"] == pytest.approx(100 * official["BLEU"], abs=0.01)  # the test vector
    assert both["paper"] > both["csv"]  # the tokenised form scores the same content higher
    with pytest.raises(ValueError, match="no counterpart in the paper's test file"):
        report.bleu_in_both_forms(outputs[:1], ["name[Nowhere]"], references[:1])
