"""The paper's numbers are read from the transcription, never typed."""

import pytest

from lorabook import paper


def test_table_3_rows_and_values():
    rows = paper.table(3)
    lora = next(r for r in rows if r["model / method"] == "GPT-2 M LoRA")
    assert paper.value(lora["BLEU"]) == pytest.approx(70.4)
    assert paper.spread(lora["BLEU"]) == pytest.approx(0.1)
    assert paper.value(lora["params"]) == pytest.approx(0.35e6)
    assert len(rows) == 12


def test_tables_1_2_18_parse():
    assert paper.value(paper.table(1)[1]["1 / 128 / 11M"]) == pytest.approx(23.9)
    assert len(paper.table(2)) == 14
    assert paper.value(paper.table(18)[0]["METEOR"]) == pytest.approx(0.4565)


def test_cells_and_errors(tmp_path):
    assert paper.value("1482.0±1.0 (+2.2%)") == 1482.0
    assert paper.spread("68.2") is None
    with pytest.raises(ValueError, match="No number"):
        paper.value("n/a")
    with pytest.raises(KeyError, match="Table 99"):
        paper.table(99)
    with pytest.raises(FileNotFoundError, match="LORABOOK_PAPER"):
        paper.table(3, path=tmp_path / "missing.md")
    text = "## Table 5: x\n\nno table here\n## Table 6\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    (tmp_path / "p.md").write_text(text)
    assert paper.table(6, path=tmp_path / "p.md") == [{"a": "1", "b": "2"}]
    with pytest.raises(KeyError, match="No markdown table"):
        paper.table(5, path=tmp_path / "p.md")
