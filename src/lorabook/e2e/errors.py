"""Find E2E output errors a reader sees: dropped slots, glued words, empty outputs, invented names.

    from lorabook.e2e.errors import output_errors, error_counts
    output_errors("name[The Vaults], eatType[pub]", "TheVaults is a restaurant.")
    # {'empty': False, 'dropped': ['eatType'], 'glued': ['TheVaults'], 'invented': []}

The rules, exactly:

- **Dropped slot**: an MR value (``lorabook.e2e.data.parse_mr``) that the text does not express.
  ``name``, ``near``, ``food``, ``area`` and ``eatType`` values must appear verbatim: their
  words in order, any letter case, with any whitespace or none between them ("TheVaults"
  counts as present, and as glued), as whole words ("The Mills" is not "The Mill"). The other
  three slots have lenient rules (``PRICE_PATTERNS``, ``RATING_PATTERNS``,
  ``FAMILY_NO_PATTERNS``): a value counts as present when the text expresses its *level*, in
  numbers or in words. ``priceRange``: low ("cheap", "less than £20": "under 20",
  "inexpensive", "affordable", "low-priced"...), mid ("moderate", "£20-25": "£20 - 25", "20 to 25",
  "moderately priced", "average price"...), high ("high", "more than £30": "over £30",
  "expensive", "high price range"...). ``customer rating``: low ("low", "1 out of 5": "1/5",
  "one star", "poorly rated"...), average ("average", "3 out of 5"), high ("high",
  "5 out of 5": "five stars", "highly rated"...); a level word counts within two words of a
  rating word ("rating", "rated", "reviews", "stars", "score"). ``familyFriendly[no]``: a
  negation within two words before a family word ("not family-friendly", "no kids",
  "isn't suitable for children"), "children are not ...", "adults only", or "adults" with no
  family word; ``familyFriendly[yes]``: a family word ("family", "kids", "children",
  "child-friendly"...) and none of the ``[no]`` phrases. A negated phrase still counts as the
  value it names ("not expensive" expresses a high price): the rules under-count drops.
  An empty output drops every slot.
- **Glued words** (spacing errors), each reported as the text's token(s): an MR value whose
  words appear with a space missing between two of them ("TheVaults", "5out of 5",
  "LochFyne"); an MR value fused to the word before or after it at a lower-case/upper-case
  seam ("calledThe Wrestlers"); and a space after "£" before a digit ("£ 30").
- **Empty output**: nothing but whitespace.
- **Invented name**: a ``name`` or ``near`` value of another MR of the corpus (verbatim rule)
  that is not a value of this MR. Other slots are not checked: their values ("pub", "high",
  "Italian") occur in correct sentences in other roles.

Calibration on the human references of the E2E test set (4,693 references of 630 MRs,
:func:`error_counts` with each reference as an output), i.e. how often people "drop" a slot by
these rules (most are real omissions: E2E references are known to leave slots out):

===============  ===============  =================================================
slot             dropped          what people write instead, mostly
===============  ===============  =================================================
name             3 / 4693, 0.1%   a misspelling ("The Mills", "The Wrestlerss")
near             11 / 4657, 0.2%  a shortened name ("Raja Cuisine"), or nothing
eatType          159 / 4693, 3%   "café", "eatery", "bistro", or nothing
area             925 / 4155, 22%  "city center", "centre of the city", "by the river"
food             656 / 4119, 16%  "sushi", "pasta", "British", or nothing
familyFriendly   611 / 4473, 14%  nothing, or the opposite of the MR
priceRange       456 / 3301, 14%  nothing, or another level
customer rating  411 / 2241, 18%  nothing, or "good service", "customers love it"
===============  ===============  =================================================

In all, 3,232 of 32,332 slots (10.0%) are dropped, and 1,848 of the 4,693 references (39%)
drop at least one. The same references have 5 glued words (4 "£ 20", 1 "5out of 5") and no
invented name. So a model's drops are errors against the MR, not necessarily against human
practice: compare a model's rates with these, slot by slot (the verbatim rule is strict for
``area``, where people rephrase).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Collection, Sequence

from lorabook.e2e.data import parse_mr

ERROR_KINDS = ("empty", "dropped", "glued", "invented")
"""The kinds of error, as keys of :func:`output_errors` and :func:`error_counts`."""

VERBATIM_SLOTS = ("name", "near", "food", "area", "eatType")
"""Slots whose value must appear verbatim (any case, any whitespace) to count as present."""

NAME_SLOTS = ("name", "near")
"""Slots whose values of other MRs count as invented when they appear."""

# A value starts and ends at a word boundary, or at a lower-case/digit -> upper-case seam
# (a value glued to its neighbour, "calledThe Wrestlers", is still found).
_LEFT = r"(?:(?<!\w)|(?<=[a-z0-9])(?=[A-Z]))"
_RIGHT = r"(?:(?!\w)|(?<=[a-z0-9])(?=[A-Z]))"


def _near(first: str, second: str, gap: int = 2) -> str:
    """A regex: a word starting with ``first`` and one starting with ``second``, in either
    order, with at most ``gap`` words between them."""
    between = rf"\w*(?:\W+\w+){{0,{gap}}}?\W+"
    return rf"\b(?:{first}){between}(?:{second})|\b(?:{second}){between}(?:{first})"


def _out_of_five(digit: str) -> str:
    """A regex for a rating of ``digit``: "3 out of 5", "3out of 5", "3 of 5", "3/5", "three
    stars", "3-star", "rated 3", "a rating of 3" (not "out of 3 stars" or "rating of 3.5")."""
    return (
        rf"\b(?:{digit})\s*(?:out\s*(?:of\s*)?|of\s*|/\s*)(?:5|five)\b"
        rf"|(?<!of )(?<!/)\b(?:{digit})[- ]?stars?\b"
        rf"|\brat(?:ed|ing|ings)\s+(?:of\s+)?(?:a\s+)?(?:{digit})\b(?![.,]\d|\s*(?:out|of|/))"
    )


PRICE_LEVELS = {
    "cheap": "low",
    "less than £20": "low",
    "moderate": "mid",
    "£20-25": "mid",
    "high": "high",
    "more than £30": "high",
}
"""The price level that each ``priceRange`` value expresses."""

PRICE_PATTERNS = {
    "low": (
        r"\b(?:(?:less|lower|cheaper) than|under|below|up to)\s*£?\s*20\b",
        r"£\s*20 or (?:less|under)",
        r"\bcheap",
        r"\binexpensive",
        r"\blow[- ]?(?:price|cost|budget)",
        r"\baffordabl",
        r"\bbudget",
    ),
    "mid": (
        r"£?\s*\b20\s*(?:-|–|to)\s*£?\s*25\b",
        r"\bmoderate",
        r"\bmid[- ]?(?:range|price)",
        r"\breasonabl",
        r"\baffordabl",
        _near("average|medium|fair|decent", "pric"),
    ),
    "high": (
        r"\b(?:(?:more|higher) than|over|above)\s*£?\s*30\b",
        r"£\s*30\s*(?:or more|\+|and (?:over|above|up))",
        r"\bexpensive",
        r"\bpricey",
        r"\bcostly",
        r"\bhigh[- ]?(?:end|class|cost)",
        r"\bupscale",
        r"\bluxur",
        _near("high|above average", "pric"),
    ),
}
"""Regexes (case-insensitive) that express each price level."""

_RATED = r"rat(?:e|ed|es|ing|ings)\b|review|stars?\b|score|feedback"

RATING_LEVELS = {
    "low": "low",
    "1 out of 5": "low",
    "average": "average",
    "3 out of 5": "average",
    "high": "high",
    "5 out of 5": "high",
}
"""The rating level that each ``customer rating`` value expresses."""

RATING_PATTERNS = {
    "low": (_out_of_five("1|one"), _near(r"low|poor|bad|terrible|awful|negative", _RATED)),
    "average": (
        _out_of_five("3|three"),
        _near(r"average|mediocre|middling|moderate|ok\b|okay|decent|fair\b|good", _RATED),
    ),
    "high": (
        _out_of_five("5|five"),
        _near(r"high|excellent|great|top\b|outstanding|very good|positive|best", _RATED),
    ),
}
"""Regexes (case-insensitive) that express each rating level."""

_FAMILY = r"famil(?:y|ies)|kids?\b|kiddie|child|youngster|toddler|bab(?:y|ies)"
_NOT = r"not|no|non|never|without|\w+n't"

FAMILY_NO_PATTERNS = (
    rf"\b(?:{_NOT})\b(?:\W+\w+){{0,2}}?\W+(?:{_FAMILY})",
    rf"\b(?:{_FAMILY})\w*[- ]?(?:unfriendly|free\b)",
    rf"\b(?:{_FAMILY})\w*\W+(?:are|is|should)(?:\W+not\b|n't)",
    r"\badults?[- ]only|\bonly (?:for )?adults",
)
"""Regexes (case-insensitive) that say "not family-friendly"; "adults" without any family
word says it too."""


@functools.lru_cache(maxsize=1024)
def _value_regex(value: str) -> re.Pattern[str]:
    """The verbatim rule: the value's words in order, any case, any whitespace or none between
    them (each gap a group), as whole words or at a lower/upper-case seam."""
    words = (f"(?i:{re.escape(word)})" for word in value.split())
    return re.compile(_LEFT + r"(\s*)".join(words) + _RIGHT)


def _any(patterns: Sequence[str], text: str) -> bool:
    """Whether any of the case-insensitive ``patterns`` occurs in ``text``."""
    return any(re.search(pattern, text, re.IGNORECASE) for pattern in patterns)


def family_friendly(text: str) -> str | None:
    """What ``text`` says about children: ``"no"``, ``"yes"``, or ``None`` (nothing).

    ``"no"``: one of ``FAMILY_NO_PATTERNS``, or "adult(s)" and no family word. ``"yes"``: a
    family word ("family", "kids", "children"...) and no ``"no"`` phrase.
    """
    if _any(FAMILY_NO_PATTERNS, text):
        return "no"
    mentions_family = re.search(rf"\b(?:{_FAMILY})", text, re.IGNORECASE)
    if mentions_family:
        return "yes"
    if re.search(r"\badults?\b", text, re.IGNORECASE):
        return "no"
    return None


def slot_present(slot: str, value: str, text: str) -> bool:
    """Whether ``text`` expresses ``slot[value]`` (the rules in this module's docstring).

    Args:
        slot: an E2E slot name, e.g. ``"priceRange"``.
        value: its value in the MR, e.g. ``"£20-25"``.
        text: one output.
    Returns:
        True if the value is found (verbatim for ``VERBATIM_SLOTS``, by level for price and
        rating, by ``family_friendly`` for ``familyFriendly``); unknown slots and values use
        the verbatim rule.
    """
    if slot in VERBATIM_SLOTS:
        return _value_regex(value).search(text) is not None
    if slot == "priceRange" and value in PRICE_LEVELS:
        return _any(PRICE_PATTERNS[PRICE_LEVELS[value]], text)
    if slot == "customer rating" and value in RATING_LEVELS:
        return _any(RATING_PATTERNS[RATING_LEVELS[value]], text)
    if slot == "familyFriendly" and value in ("yes", "no"):
        return family_friendly(text) == value
    return _value_regex(value).search(text) is not None


def _token_span(text: str, start: int, end: int) -> str:
    """The whitespace-delimited tokens that cover ``text[start:end]``, end punctuation removed."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return text[start:end].strip(".,;:!?\"'()")


def glued_words(values: Sequence[str], text: str) -> list[str]:
    """The spacing errors in ``text``, each as the token(s) that show it.

    Args:
        values: the MR's slot values.
        text: one output.
    Returns:
        in order of position: each occurrence of a value with a space missing between two of
        its words or fused to a neighbouring word at a lower/upper-case seam, and each "£"
        followed by a space and a digit (e.g. ``["TheVaults", "5out of 5", "£ 30"]``).
    """
    found: list[tuple[int, str]] = []
    for value in set(values):
        for match in _value_regex(value).finditer(text):
            start, end = match.span()
            missing_space = any(gap == "" for gap in match.groups())
            fused = (start > 0 and text[start - 1].isalnum()) or (
                end < len(text) and text[end].isalnum()
            )
            if missing_space or fused:
                found.append((start, _token_span(text, start, end)))
    found += [(m.start(), m.group()) for m in re.finditer(r"£\s+\d+", text)]
    return [span for _, span in sorted(found)]


def output_errors(mr: str, text: str, known_names: Collection[str] = ()) -> dict:
    """The errors of one output.

    Args:
        mr: the raw E2E MR, e.g. ``"name[The Vaults], eatType[pub], near[Café Adriatic]"``.
        text: the output for it.
        known_names: ``name``/``near`` values of the other MRs of the corpus, to find invented
            ones (:func:`error_counts` passes them; default: none are looked for).
    Returns:
        ``{"empty": bool, "dropped": [slot, ...], "glued": [tokens, ...], "invented":
        [value, ...]}``, slots in MR order.
    Raises:
        ValueError: ``mr`` is not a comma-separated list of ``slot[value]``.
    """
    slots = parse_mr(mr)
    if not slots:
        raise ValueError(
            f"not an E2E MR: {mr!r}; give the raw MR string, e.g. 'name[The Vaults], eatType[pub]'"
        )
    own = {value.lower() for _, value in slots}
    own_spans = [m.span() for _, v in slots for m in _value_regex(v).finditer(text)]
    invented = []
    for name in sorted(set(known_names)):
        if name.lower() in own:
            continue
        for match in _value_regex(name).finditer(text):
            inside_own = any(s <= match.start() and match.end() <= e for s, e in own_spans)
            if not inside_own:
                invented.append(name)
                break
    return {
        "empty": not text.strip(),
        "dropped": [slot for slot, value in slots if not slot_present(slot, value, text)],
        "glued": glued_words([value for _, value in slots], text),
        "invented": invented,
    }


def error_counts(mrs: Sequence[str], outputs: Sequence[str]) -> dict:
    """The errors of a corpus: totals, outputs affected, and the share of outputs affected.

    Args:
        mrs: the raw MR of each output (repeat an MR to score several outputs for it).
        outputs: one text per MR, same order.
    Returns:
        ``{"outputs": n, "slots": total MR slots, kind: {"count", "outputs", "share"} for each
        of ERROR_KINDS, "dropped_by_slot": {slot: [dropped, of]}, "glued_tokens": {tokens:
        count}}``. ``count`` is the number of errors (an empty output counts 1; each dropped
        slot, glued occurrence and invented name 1), ``outputs`` the outputs with at least
        one, ``share`` that over n. ``glued_tokens`` is sorted by count.
    Raises:
        ValueError: the lengths differ, there are no outputs, or an MR does not parse.
    """
    if len(mrs) != len(outputs):
        raise ValueError(
            f"{len(mrs)} MRs but {len(outputs)} outputs: give one MR per output, in order "
            "(e.g. group_references(load_e2e('test'))[0] for the test outputs)"
        )
    if not outputs:
        raise ValueError("no outputs to count errors in")
    known_names = {value for mr in mrs for slot, value in parse_mr(mr) if slot in NAME_SLOTS}
    counts = {kind: {"count": 0, "outputs": 0} for kind in ERROR_KINDS}
    by_slot: dict[str, list[int]] = {}
    glued: Counter[str] = Counter()
    slots = 0
    for mr, text in zip(mrs, outputs, strict=True):
        errors = output_errors(mr, text, known_names)
        for kind in ERROR_KINDS:
            found = int(errors[kind]) if kind == "empty" else len(errors[kind])
            counts[kind]["count"] += found
            counts[kind]["outputs"] += found > 0
        for slot, _ in parse_mr(mr):
            slots += 1
            by_slot.setdefault(slot, [0, 0])[1] += 1
        for slot in errors["dropped"]:
            by_slot[slot][0] += 1
        glued.update(errors["glued"])
    for kind in ERROR_KINDS:
        counts[kind]["share"] = counts[kind]["outputs"] / len(outputs)
    return {
        "outputs": len(outputs),
        "slots": slots,
        **counts,
        "dropped_by_slot": by_slot,
        "glued_tokens": dict(glued.most_common()),
    }


# --------------------------------------------------------------------------- what a system repeats
def delexicalise(mr: str, text: str) -> str:
    """``text`` with each value of its MR replaced where it is written verbatim (by the
    dropped-slot rule's matching) by the slot's name in capitals: ``"The Vaults is a cheap
    pub."`` for ``name[The Vaults], eatType[pub], priceRange[cheap]`` gives ``"NAME is a
    PRICERANGE EATTYPE."``. Values worded freely ("affordable" for cheap) stay as written, and
    so does familyFriendly (its values, yes and no, are never the words). Where two slots
    share a value (``priceRange[high], customer rating[high]``), the first in the MR takes
    every occurrence."""
    for slot, value in parse_mr(mr):
        if slot != "familyFriendly":
            text = _value_regex(value).sub(slot.upper().replace(" ", "_"), text)
    return text


def first_sentence(text: str) -> str:
    """The text up to and including its first full stop followed by a space (all of it when
    it has none)."""
    return re.split(r"(?<=\.)\s+", text.strip(), maxsplit=1)[0]


def frame_counts(mrs: Sequence[str], texts: Sequence[str]) -> Counter[str]:
    """How many texts open with each delexicalised first sentence (:func:`delexicalise`,
    :func:`first_sentence`), one MR per text."""
    if len(mrs) != len(texts) or not texts:
        raise ValueError(f"opening frames: {len(mrs)} MRs for {len(texts)} texts (one each)")
    return Counter(first_sentence(delexicalise(mr, t)) for mr, t in zip(mrs, texts, strict=True))
