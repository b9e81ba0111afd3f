"""lorabook.e2e.report on the committed E2E records: which decoding made each record and
which records the chapter shows."""

from __future__ import annotations

import pytest

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
