"""E2E in the paper's form: the official CSVs transformed against the paper's own files, line
for line, and the rules on hand-made strings."""

from __future__ import annotations

import re

import pytest

from lorabook import paths
from lorabook.e2e.data import E2EFormatError, E2ERow, linearise_mr, parse_mr, read_csv
from lorabook.e2e.paper_format import (
    PAPER_KEYS,
    collapse_whitespace,
    load_paper_e2e,
    paper_file,
    paper_format_rows,
    paper_line,
    paper_rows,
    read_paper_format,
    to_paper_mr,
    to_paper_text,
    write_paper_format,
)

try:
    DATA = paths.data_dir()
except FileNotFoundError:
    DATA = None
PAPER = DATA / "e2e" / "paper-format" if DATA is not None else None
needs_data = pytest.mark.skipif(
    PAPER is None or not (PAPER / "test.txt").is_file(), reason="offline E2E data not found"
)


def paper_lines(name: str) -> list[str]:
    """The lines of one of the paper's files, without their newlines (the last line has one)."""
    text = (PAPER / name).read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text.split("\n")[:-1]


def transformed(csv_name: str) -> list[str]:
    """The lines of the paper's form of one official CSV."""
    return paper_format_rows(read_csv(DATA / "e2e" / csv_name))


@pytest.fixture(scope="module")
def dev_lines() -> list[str]:
    """``devset.csv`` in the paper's form, transformed once for the tests that need it."""
    return transformed("devset.csv")


# --- the paper's own files ------------------------------------------------------------------


@needs_data
def test_devset_becomes_valid_txt_line_for_line(dev_lines):
    ours, theirs = dev_lines, paper_lines("valid.txt")
    assert len(ours) == len(theirs) == 4_672
    for number, (a, b) in enumerate(zip(ours, theirs, strict=True), start=1):
        assert a == b, f"valid.txt line {number}"


# test.txt was tokenised by another tool than valid.txt (and, by its history, the training
# file): each kind below turns that tool's form and ours into one, so that every line of the
# test file is accounted for. A line can need more than one kind (two do).
TEST_TXT_KINDS = {
    # contractions split before n't (is n't, do n't, ca n't, wo n't); valid.txt: isn 't
    "n't": (lambda ours: ours, lambda paper: paper.replace(" n't", "n 't")),
    # a hyphen next to a digit and a letter or £ kept in the word (5-star, £ 20-£25, E20-E25,
    # 20£-25, of£20-£30); valid.txt splits 5 - star and £ 20- £ 25 as Moses -a does
    "hyphen/£": (
        lambda ours: re.sub(r" ?([-£]) ?", r"\1", ours),
        lambda paper: re.sub(r" ?([-£]) ?", r"\1", paper),
    ),
    # a full stop after a number before a lowercase word split off (5 . it); valid.txt: 5. in
    "number.": (lambda ours: re.sub(r"(\d)\. ", r"\1 . ", ours), lambda paper: paper),
    # an apostrophe inside a word kept (hors d'oeuvre); ours: d 'oeuvre
    "d'oeuvre": (lambda ours: ours.replace("d 'oeuvre", "d'oeuvre"), lambda paper: paper),
    # thats split as that s (a contraction without its apostrophe)
    "thats": (lambda ours: ours, lambda paper: paper.replace("that s ", "thats ")),
}


@needs_data
def test_testset_becomes_test_txt_but_for_its_other_tokeniser():
    ours, theirs = transformed("testset_w_refs.csv"), paper_lines("test.txt")
    assert len(ours) == len(theirs) == 4_693
    mismatched = [(a, b) for a, b in zip(ours, theirs, strict=True) if a != b]
    assert len(mismatched) == 134
    needs = dict.fromkeys(TEST_TXT_KINDS, 0)
    for a, b in mismatched:
        assert a.split("||")[0] == b.split("||")[0]  # every MR matches
        for kind in TEST_TXT_KINDS:
            x, y = a, b
            for other, (fix_ours, fix_paper) in TEST_TXT_KINDS.items():
                if other != kind:
                    x, y = fix_ours(x), fix_paper(y)
            needs[kind] += x != y
        for fix_ours, fix_paper in TEST_TXT_KINDS.values():
            a, b = fix_ours(a), fix_paper(b)
        assert a == b
    assert needs == {"n't": 91, "hyphen/£": 34, "number.": 8, "d'oeuvre": 2, "thats": 1}


@needs_data
def test_reading_the_paper_files_as_the_official_converter_does(dev_lines):
    dev = load_paper_e2e("dev")
    assert dev == read_paper_format(paper_file("validation"))
    assert dev == [E2ERow(*line.strip().split("||")) for line in dev_lines]
    assert dev[0] == E2ERow(
        "name : Alimentum | area : city centre | family friendly : no",
        "There is a place in the city centre , Alimentum , that is not family - friendly .",
    )
    test = load_paper_e2e("test")
    assert len(test) == 4_693 and len({r.mr for r in test}) == 630
    assert test[0].ref == test[0].ref.strip()  # the line's trailing space is gone
    with pytest.raises(ValueError, match="train.txt is not available"):
        paper_file("train")


def test_the_training_split_is_transformed_from_trainset_csv(tmp_path):
    (tmp_path / "e2e").mkdir()
    (tmp_path / "e2e" / "trainset.csv").write_text(
        'mr,ref\n"name[Aromi], eatType[pub], priceRange[£20-25]","Aromi\'s  a pub.\r\n Cheap."\n',
        encoding="utf-8",
    )
    assert load_paper_e2e("train", tmp_path) == [
        E2ERow("name : Aromi | Type : pub | price : £ 20 - 25", "Aromi 's a pub . Cheap .")
    ]
    with pytest.raises(FileNotFoundError, match="valid.txt"):
        load_paper_e2e("validation", tmp_path)
    with pytest.raises(ValueError, match="Unknown E2E split"):
        load_paper_e2e("training", tmp_path)


# --- the rules ------------------------------------------------------------------------------


def test_mr_keys_renamed_values_tokenised_order_kept():
    mr = (
        "name[Cocum], eatType[coffee shop], priceRange[£20-25], customer rating[high], "
        "familyFriendly[no], near[Café Brazil], area[city centre], food[Fast food]"
    )
    assert to_paper_mr(mr) == (
        "name : Cocum | Type : coffee shop | price : £ 20 - 25 | customer rating : high | "
        "family friendly : no | near : Café Brazil | area : city centre | food : Fast food"
    )
    assert to_paper_mr("priceRange[less than £20]") == "price : less than £ 20"
    assert set(PAPER_KEYS) == {"eatType", "familyFriendly", "priceRange"}
    # the paper's MR is already linearised: the prompt code leaves it as it is
    assert linearise_mr(to_paper_mr(mr)) == to_paper_mr(mr)


def test_a_malformed_mr_is_named():
    assert parse_mr("name[A], food[B]") == [("name", "A"), ("food", "B")]
    with pytest.raises(ValueError, match=r"not an E2E MR.*'name : A'"):
        to_paper_mr("name : A")
    with pytest.raises(ValueError, match=r"row 2: not an E2E MR"):
        paper_format_rows([E2ERow("name[A]", "x"), E2ERow("name[B", "y")])


@pytest.mark.parametrize(
    ("text", "paper"),
    [
        # punctuation and currency are tokens; decimals and thousands stay whole
        ("Cheap, at £9.50 or 1,500 yen!", "Cheap , at £ 9.50 or 1,500 yen !"),
        ("Rated 3/5; fast+cheap: yes? $5", "Rated 3 / 5 ; fast + cheap : yes ? $ 5"),
        ('a "great" place', 'a " great " place'),
        # hyphens between letters or digits split; not next to other characters
        ("family-friendly, £20-25", "family - friendly , £ 20 - 25"),
        ("£20-£25, 5-star, -ish", "£ 20- £ 25 , 5 - star , -ish"),
        # English apostrophes as Moses: clitics keep the apostrophe, quotes stand alone
        ("It's near, isn't it? You'll see.", "It 's near , isn 't it ? You 'll see ."),
        ("the 1990's at 'Raja' and the Wrestlers'", "the 1990 's at ' Raja ' and the Wrestlers '"),
        # runs of dots are one token, on both sides
        ("rated low...but fine..", "rated low ... but fine .."),
        # a full stop that ends a sentence is split off, also before a lowercase word
        ("It is cheap. it is near.", "It is cheap . it is near ."),
        ("Prices near £20. it is by the river", "Prices near £ 20 . it is by the river"),
        # ...but not after a number followed by a lowercase word (not a sentence end)
        ("rated 5 out of 5. in the centre", "rated 5 out of 5. in the centre"),
        ("rated 5 out of 5. It is cheap", "rated 5 out of 5 . It is cheap"),
        # non-breaking prefixes and dotted abbreviations keep their full stop
        ("near St. John's College.", "near St. John 's College ."),
        ("food, e.g. pizza. Cheap", "food , e.g. pizza . Cheap"),
        # whitespace runs, line breaks and control characters go
        ("  A pub.\r\n  Cheap\x07 ", "A pub . Cheap"),
        ("", ""),
    ],
)
def test_text_tokenisation(text, paper):
    assert to_paper_text(text) == paper


def test_lines_end_with_a_space_and_rows_without():
    row = E2ERow("name[Aromi], familyFriendly[yes]", "Aromi is kid-friendly.")
    line = "name : Aromi | family friendly : yes||Aromi is kid - friendly . "
    assert paper_line(row) == line
    assert paper_format_rows([row]) == [line]
    assert paper_rows([row]) == [E2ERow(*line.strip().split("||"))]


def test_collapse_whitespace():
    assert collapse_whitespace("  a  pub.\r\n\tCheap  ") == "a pub. Cheap"
    assert collapse_whitespace("a pub") == "a pub"
    assert collapse_whitespace(" \r\n ") == ""


# --- the file layout ------------------------------------------------------------------------


def test_write_then_read(tmp_path):
    rows = [E2ERow("name[A], eatType[pub]", "A pub."), E2ERow("name[B]", "It's B.")]
    path = write_paper_format(rows, tmp_path / "sub" / "train.txt")
    assert path.read_bytes() == b"name : A | Type : pub||A pub . \nname : B||It 's B . \n"
    assert read_paper_format(path) == paper_rows(rows)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"name : A||x \nname : B \n", r"line 2: expected 'MR\|\|reference'"),
        (b"name : A||x||y\n", r"line 1: expected 'MR\|\|reference'"),
        (b"name : A||x\n\nname : B||y\n", r"line 2: expected"),
        (b" ||x\n", r"line 1: expected"),
        (b"name : A||x\nname : \xe9||y\n", r"line 2: not UTF-8"),
        (b"", r"no 'MR\|\|reference' lines"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(E2EFormatError, match=message) as err:
        read_paper_format(path)
    assert str(path) in str(err.value)


def test_reader_needs_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.txt"):
        read_paper_format(tmp_path / "nothere.txt")
