"""The paper's numbers are read from the transcription; what the package types (the presets,
the introduction's table) is held to it."""

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


def test_sections_and_paragraph_tables():
    heading, body = paper.section(5)
    assert heading.startswith("Table 5:") and "budget" in heading
    assert paper.section("Headline claims")[1].startswith("Against GPT-3 175B")
    table_4 = paper.entries(4)
    assert paper.value(table_4["LoRA 4.7M"].split(",")[0]) == pytest.approx(73.4)
    assert paper.value("FT 175,255.8M".split()[-1]) == pytest.approx(175_255.8e6)
    assert not any(label.startswith("Spread") for label in table_4)  # the line after
    assert paper.entries(5)["W_q,W_v r=4"] == "73.7 / 91.3"
    with pytest.raises(KeyError, match="No '## Table 99'"):
        paper.section(99)


def test_paragraph_tables_from_a_file(tmp_path):
    text = (
        "## Table 4: x\nA 1M: 2, 3 · B 4M: 5 ·\nC 6M: 7.\nSpread: ±1.\n"
        "## Table 5\nno paragraph table\n"
    )
    (tmp_path / "p.md").write_text(text)
    assert paper.entries(4, path=tmp_path / "p.md") == {"A 1M": "2, 3", "B 4M": "5", "C 6M": "7"}
    with pytest.raises(KeyError, match="paragraph"):
        paper.entries(5, path=tmp_path / "p.md")


def table_9_row(label: str) -> dict[str, list[str]]:
    """One bullet of the transcription's Table 9 as {setting: [values in task order]}."""
    _, body = paper.section(9)
    bullets = body.replace("\n  ", " ").splitlines()  # a bullet's wrapped lines, joined
    line = next(li for li in bullets if li.startswith(f"- {label}:"))
    settings = {}
    for part in line.partition(":")[2].split(";"):
        name, _, values = part.strip().partition(" ")
        settings[name] = values.rstrip(".").split()
    return settings


def test_the_glue_paper_preset_is_table_9():
    """presets.py types Table 9 (the package needs it without the transcription): it must
    say what the transcription says, task by task."""
    import re

    from lorabook.glue import presets

    heading, _ = paper.section(9)
    order = re.search(r"order ([^)]*)\)", heading).group(1).split(", ")
    names = {"MNLI": "mnli", "SST-2": "sst2", "MRPC": "mrpc", "CoLA": "cola", "QNLI": "qnli"}
    names |= {"QQP": "qqp", "RTE": "rte", "STS-B": "stsb"}
    row = table_9_row("RoBERTa-base LoRA")
    for i, task in enumerate(order):
        batch, epochs, lr = presets.PAPER_LORA_ROBERTA_BASE[names[task]]
        assert (batch, epochs, lr) == (
            int(row["batch"][i]),
            int(row["epochs"][i]),
            float(row["lr"][i]),
        ), task
    assert row["α"] == ["=", str(presets.PAPER_LORA_ALPHA)]
    assert row["max"] == ["length", str(presets.PAPER_MAX_LENGTH)]
    assert f"warm-up ratio {presets.PAPER_WARMUP_RATIO}" in paper.section(9)[1]


def test_the_e2e_paper_preset_is_table_11():
    import re

    from lorabook.e2e.presets import e2e_preset

    text = " ".join(paper.section(11)[1].split())

    def first(pattern: str) -> float:  # the E2E value: the first of "E2E / WebNLG / DART"
        return float(re.search(pattern, text).group(1))

    preset = e2e_preset("paper", "lora")
    assert preset.train.weight_decay == first(r"weight decay ([\d.]+)")
    assert preset.dropout == first(r"dropout ([\d.]+)")
    assert preset.label_smoothing == first(r"label smoothing ([\d.]+)")
    assert preset.train.batch_size == first(r"batch (\d+)")
    assert preset.train.epochs == first(r"(\d+) epochs")
    assert preset.train.warmup_steps == first(r"warm-up (\d+) steps")
    assert preset.train.lr == first(r"lr ([\d.e-]+)")
    assert preset.lora_r == first(r"r_q = r_v = (\d+)")
    assert preset.lora_alpha == first(r"α = (\d+)")
    assert preset.decode.num_beams == first(r"beam (\d+)")
    assert preset.decode.length_penalty == first(r"length penalty ([\d.]+)")
    assert preset.decode.no_repeat_ngram_size == first(r"no-repeat n-gram (\d+)")


def test_the_introductions_paper_figures_are_the_transcriptions():
    """book/intro.md types the paper's headline figures in a table (markdown runs no code):
    every number in its 'Reported in the paper' column must be in the transcription."""
    import re
    from pathlib import Path

    intro = (Path(__file__).resolve().parents[1] / "book" / "intro.md").read_text()
    table = intro.split("| Claim | Reported in the paper |", 1)[1].split("\n\n", 1)[0]
    transcription = paper.paper_readme().read_text()
    claims = [row.split("|")[2] for row in table.strip().splitlines()[1:]]
    assert len(claims) >= 6
    numbers = [n for claim in claims for n in re.findall(r"\d[\d,.]*(?:\s?[A-Z]+|×)?", claim)]
    assert numbers
    for number in numbers:
        assert number.strip() in transcription, number


def test_printed_lora_counts_name_model_rank_and_source():
    counts = paper.printed_lora_counts()
    assert [(c["model"], c["r"]) for c in counts] == [
        ("roberta-base", 8),
        ("roberta-large", 8),
        ("gpt2-medium", 4),
        ("gpt2-large", 4),
        ("gpt3-175b", 1),
        ("gpt3-175b", 4),
        ("gpt3-175b", 8),
    ]
    assert [c["figure"] for c in counts].count("budget") == 1
    assert all(paper.value(c["cell"]) > 0 for c in counts)


@pytest.mark.parametrize(
    ("count", "cell", "expected"),
    [
        (294_912, "0.3M", True),
        (393_216, "0.35M", False),
        (4_718_592, "4.7M", True),
        (18_874_368, "18M", False),
        (17_600_000, "18M", True),
        (1234, "1234", True),
    ],
)
def test_rounds_to_uses_the_cells_own_precision(count, cell, expected):
    assert paper.rounds_to(count, cell) is expected
