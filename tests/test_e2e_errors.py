"""E2E output errors: each kind found in hand-made sentences and not in correct ones, and the
counts of the committed LoRA outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lorabook import paths
from lorabook.e2e import errors
from lorabook.e2e.data import group_references, load_e2e, parse_mr
from lorabook.e2e.errors import error_counts, family_friendly, output_errors, slot_present

MR = (
    "name[The Vaults], eatType[pub], priceRange[more than £30], customer rating[5 out of 5], "
    "near[Café Adriatic], familyFriendly[yes]"
)
CORRECT = (
    "The Vaults is a family-friendly pub near Café Adriatic with a customer rating of 5 out of "
    "5 and prices of more than £30."
)
LORA_OUTPUTS = (
    Path(__file__).resolve().parents[1] / "results/e2e/cpu/smollm2/lora-seed0-0f2cf6ef/outputs.txt"
)

try:
    TEST_CSV = paths.data_dir() / "e2e" / "testset_w_refs.csv"
except FileNotFoundError:
    TEST_CSV = None
needs_data = pytest.mark.skipif(
    TEST_CSV is None or not TEST_CSV.is_file(), reason="offline E2E data not found"
)


def test_parse_mr_splits_slots_and_refuses_other_text():
    assert parse_mr("name[The Vaults], customer rating[5 out of 5]") == [
        ("name", "The Vaults"),
        ("customer rating", "5 out of 5"),
    ]
    assert parse_mr("not an MR") == []


def test_a_correct_sentence_has_no_error():
    assert output_errors(MR, CORRECT, known_names={"The Vaults", "Café Adriatic", "Zizzi"}) == {
        "empty": False,
        "dropped": [],
        "glued": [],
        "invented": [],
    }


def test_each_error_kind_is_found():
    text = "TheVaults is a pub near Zizzi with a rating of 5out of 5 and prices over £ 30."
    found = output_errors(MR, text, known_names={"Zizzi", "Café Adriatic"})
    assert found == {
        "empty": False,
        "dropped": ["near", "familyFriendly"],
        "glued": ["TheVaults", "5out of 5", "£ 30"],
        "invented": ["Zizzi"],
    }
    empty = output_errors(MR, "  ")
    assert empty["empty"] and empty["dropped"] == [slot for slot, _ in parse_mr(MR)]


def test_verbatim_slots_ignore_case_and_spaces_but_need_whole_words():
    assert slot_present("near", "Café Adriatic", "near the café  adriatic.")
    assert slot_present("name", "The Vaults", "TheVaults is a pub")  # present, and glued
    assert not slot_present("name", "The Mill", "The Mills is a pub")
    assert not slot_present("eatType", "pub", "a public house")
    assert not slot_present("area", "city centre", "in the city center")  # strict: a drop


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("£20-25", "prices of £20 - 25"),
        ("£20-25", "from 20 to 25 pounds"),
        ("£20-25", "a moderately priced pub"),
        ("less than £20", "for less than 20 pounds"),
        ("less than £20", "a cheap pub"),
        ("cheap", "prices under £20"),
        ("more than £30", "an expensive pub"),
        ("high", "the price range is high"),
        ("moderate", "an average priced pub"),
    ],
)
def test_price_range_counts_any_expression_of_its_level(value, text):
    assert slot_present("priceRange", value, text)


@pytest.mark.parametrize(
    ("value", "text"),
    [("£20-25", "a cheap pub"), ("high", "a high customer rating"), ("cheap", "a pub")],
)
def test_price_range_of_another_level_or_none_is_a_drop(value, text):
    assert not slot_present("priceRange", value, text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("5 out of 5", "rated 5out of 5"),
        ("5 out of 5", "a five star pub"),
        ("5 out of 5", "a customer rating of 5."),
        ("high", "it is highly rated"),
        ("1 out of 5", "it has a low customer rating"),
        ("3 out of 5", "a rating of 3/5"),
        ("average", "customers rate it average"),
    ],
)
def test_customer_rating_counts_any_expression_of_its_level(value, text):
    assert slot_present("customer rating", value, text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("5 out of 5", "rated 3 out of 5 stars"),
        ("high", "a high price range"),
        ("1 out of 5", "a customer rating of 1.5"),
        ("average", "an average price and a rating of 5 out of 5"),
    ],
)
def test_customer_rating_of_another_level_or_none_is_a_drop(value, text):
    assert not slot_present("customer rating", value, text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a family-friendly pub", "yes"),
        ("kids are welcome", "yes"),
        ("good for children as well as adults", "yes"),
        ("it is not family friendly", "no"),
        ("it isn't suitable for children", "no"),
        ("children are not allowed", "no"),
        ("a non kid-friendly pub", "no"),
        ("an adults only pub", "no"),
        ("a pub for adults", "no"),
        ("a pub in the city centre", None),
    ],
)
def test_family_friendly(text, says):
    assert family_friendly(text) == says


def test_glued_words_inside_a_value_at_a_case_seam_and_after_pound():
    values = ["The Wrestlers", "Express by Holiday Inn", "3 out of 5", "£20-25"]
    text = "It is calledThe Wrestlers, near Expressby Holiday Inn, 3 outof 5, £ 20-25."
    assert errors.glued_words(values, text) == [
        "calledThe Wrestlers",
        "Expressby Holiday Inn",
        "3 outof 5",
        "£ 20",
    ]
    spaced = "It is called The Wrestlers, near Express by Holiday Inn, 3 out of 5, £20-25."
    assert errors.glued_words(values, spaced) == []


def test_invented_names_skip_the_mr_own_values():
    mr = "name[The Rice Boat], near[Café Rouge]"
    known = {"The Rice Boat", "Café Rouge", "Rouge", "Giraffe"}  # "Rouge" is inside an own value
    assert output_errors(mr, "The Rice Boat is near Café Rouge.", known)["invented"] == []
    assert output_errors(mr, "Giraffe is near Café Rouge.", known)["invented"] == ["Giraffe"]


def test_error_counts_totals_and_shares():
    counts = error_counts([MR, MR, "name[Zizzi], eatType[pub]"], [CORRECT, "", "Zizzi pub"])
    assert counts["outputs"] == 3 and counts["slots"] == 14
    assert counts["empty"] == {"count": 1, "outputs": 1, "share": pytest.approx(1 / 3)}
    assert counts["dropped"] == {"count": 6, "outputs": 1, "share": pytest.approx(1 / 3)}
    assert counts["glued"]["count"] == counts["invented"]["count"] == 0
    assert counts["dropped_by_slot"]["name"] == [1, 3]
    with pytest.raises(ValueError, match="2 MRs but 1 outputs"):
        error_counts([MR, MR], [CORRECT])
    with pytest.raises(ValueError, match="not an E2E MR.*raw MR string"):
        output_errors("The Vaults, a pub", CORRECT)


@needs_data
def test_committed_lora_outputs_glue_words_as_read_by_hand():
    mrs, _ = group_references(load_e2e("test", TEST_CSV.parent.parent))
    outputs = LORA_OUTPUTS.read_text(encoding="utf-8").splitlines()
    assert len(outputs) == len(mrs) == 630
    glued = [output_errors(mr, text)["glued"] for mr, text in zip(mrs, outputs, strict=True)]

    def lines(test) -> int:
        return sum(any(test(tokens) for tokens in found) for found in glued)

    # read by hand: 120 lines write "5out of 5" (any digit), 96 "TheVaults"/"TheWrestlers",
    # 28 "£ 30" (or "£ 20")
    assert lines(lambda t: re.fullmatch(r"\dout of 5", t)) >= 120
    assert lines(lambda t: t in ("TheVaults", "TheWrestlers")) >= 96
    assert lines(lambda t: t.startswith("£ ")) >= 28
    counts = error_counts(mrs, outputs)
    assert counts["empty"]["count"] == 0
    assert counts["glued"]["outputs"] >= 223
    # a drop the rules must see: "Rainbow Vegetarians Café" is not near[Rainbow Vegetarian Café]
    assert counts["dropped_by_slot"]["near"][0] > 0


@needs_data
def test_human_references_drop_slots_as_the_module_docstring_says():
    mrs, refs = group_references(load_e2e("test", TEST_CSV.parent.parent))
    counts = error_counts(
        [m for m, rs in zip(mrs, refs, strict=True) for _ in rs], [r for rs in refs for r in rs]
    )
    assert counts["dropped_by_slot"] == {
        "name": [3, 4693],
        "eatType": [159, 4693],
        "area": [925, 4155],
        "customer rating": [411, 2241],
        "near": [11, 4657],
        "food": [656, 4119],
        "familyFriendly": [611, 4473],
        "priceRange": [456, 3301],
    }  # the calibration table in lorabook.e2e.errors: update both together
    assert (counts["dropped"]["count"], counts["slots"]) == (3232, 32332)
    assert counts["dropped"]["outputs"] == 1848
    assert counts["glued_tokens"] == {"£ 20": 4, "5out of 5": 1}
    assert counts["invented"]["count"] == 0


def test_delexicalise_replaces_the_verbatim_values_by_their_slots():
    mr = "name[The Mill], eatType[pub], food[Fast food], near[Café Adriatic], priceRange[cheap]"
    text = "The Mill is a cheap fast food pub near Café Adriatic. The Mills is not it."
    assert errors.delexicalise(mr, text) == (
        "NAME is a PRICERANGE FOOD EATTYPE near NEAR. The Mills is not it."  # whole words
    )
    assert errors.first_sentence("NAME is a EATTYPE. It is cheap.") == "NAME is a EATTYPE."
    assert errors.first_sentence("no full stop") == "no full stop"


def test_frame_counts_counts_one_phrasing_across_mrs():
    mrs = ["name[Aromi], eatType[pub]", "name[Bibimbap], eatType[restaurant]", "name[Cotto]"]
    texts = ["Aromi is a pub. Cheap.", "Bibimbap is a restaurant.", "There is a pub called Cotto."]
    (top, n), (other, m) = errors.frame_counts(mrs, texts).most_common()
    assert (top, n) == ("NAME is a EATTYPE.", 2)
    assert (other, m) == ("There is a pub called NAME.", 1)
    with pytest.raises(ValueError, match="one each"):
        errors.frame_counts(mrs, texts[:2])
