"""E2E in the paper's form: the tokenised ``MR||reference`` lines its code trains and scores on.

**Where the form comes from.** microsoft/LoRA ``examples/NLG`` (at c4593f0) ships
``data/e2e/{train,valid,test}.txt``, one ``MR||reference`` per line, taken from Li & Liang's
prefix-tuning data. ``create_datasets.sh`` turns them into model input with
``src/format_converting_e2e.py`` (``line.strip().split('||')``: context and completion; the
strip drops each line's trailing space) and ``src/gpt2_encode.py`` (BPE of the context, then
of ``' ' + completion``). The script that made the ``.txt`` files is not in that repository;
the rules below are inferred from ``valid.txt`` and ``test.txt`` against the official CSVs,
and reproduce ``valid.txt`` line for line (``tests/test_e2e_paper_format.py``):

* **MR** (:func:`to_paper_mr`): slots in the CSV's order, ``key : value`` joined by `` | ``,
  three keys renamed (:data:`PAPER_KEYS`: ``eatType`` → ``Type``, ``familyFriendly`` →
  ``family friendly``, ``priceRange`` → ``price``), values tokenised like the text
  (``£20-25`` → ``£ 20 - 25``).
* **Text** (:func:`to_paper_text`): what the Moses tokenizer does (``tokenizer.perl -l en
  -a``, no escaping) with its aggressive hyphen token ``@-@`` written ``-``, run sentence by
  sentence (Punkt-like splitting: a full stop that ends a sentence is always split off, even
  before a lowercase word; one after a number followed by a lowercase word is no sentence
  end and stays on the number, as Moses leaves it). So ``It's`` → ``It 's``, ``isn't`` →
  ``isn 't``, ``family-friendly`` → ``family - friendly``, ``£20-£25`` → ``£ 20- £ 25``,
  ``rating..`` → ``rating ..``; runs of spaces and ``\\r\\n`` become one space.
* **Line** (:func:`paper_format_rows`): ``MR||text`` and one trailing space (each token of the
  files is followed by a space).

**test.txt was tokenised by another tool** (spaCy-like: ``is n't``, ``do n't``, ``that s``
for ``thats``, ``£ 20-£25``, ``5-star``, ``5 . it``: 134 of its 4,693 lines differ from these
rules, each kind counted in the tests). We infer that the training file follows
``valid.txt``: tokenised train and dev files circulated before the test references were
published (e.g. Wiseman et al. 2018 read ``trainset-target.tok`` and ``devset-target.tok``),
so the later test file was tokenised separately. Where the rules are unsure for training
text (a full stop after a number before a lowercase word: 32 rows), they follow Punkt. For
test, :func:`load_paper_e2e` reads the paper's own file.

**Scoring.** The official ``gpt2_decode.py`` writes as references the completions of
``test.txt``, stripped, and as hypotheses the decoded model output (cut at
``<|endoftext|>`` and ``\\n\\n``, stripped); the README's E2E step passes neither
``--tokenize`` nor ``--lower``, so ``measure_scores.py`` compares tokenised hypotheses with
tokenised references. Nothing is detokenised, so this module offers no inverse. Rows in the
paper's form (:func:`paper_rows`, :func:`load_paper_e2e`) are :class:`E2ERow` whose MR is
already linearised: ``encode_example`` and ``group_references`` take them unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from lorabook.e2e.data import (
    SPLIT_ALIASES,
    E2EFormatError,
    E2ERow,
    e2e_file,
    load_e2e,
    parse_mr,
)
from lorabook.paths import data_dir as default_data_dir

PAPER_KEYS = {"eatType": "Type", "familyFriendly": "family friendly", "priceRange": "price"}
"""MR keys that the paper's files rename; the other keys keep their CSV names."""

DATA_FORMS = ("csv", "paper")
"""``csv``: the official CSV text; ``paper``: the paper's tokenised form (this module)."""

PAPER_FILES = {"validation": "valid.txt", "test": "test.txt"}
"""The paper's own files, in ``<data>/e2e/paper-format/``; its ``train.txt`` is not there."""

# Moses' English non-breaking prefixes (nonbreaking_prefix.en): a full stop after one of these
# stays on the word; after those of NUMERIC_ONLY, only when a number follows ("No. 5").
_NONBREAKING = frozenset(
    [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    + "Adj Adm Adv Asst Bart Bldg Brig Bros Capt Cmdr Col Comdr Con Corp Cpl DR Dr Drs Ens Gen "
    "Gov Hon Hr Hosp Insp Lt MM MR MRS MS Maj Messrs Mlle Mme Mr Mrs Ms Msgr Op Ord Pfc Ph Prof "
    "Pvt Rep Reps Res Rev Rt Sen Sens Sfc Sgt Sr St Supt Surg v vs i.e rev e.g".split()
)
_NUMERIC_ONLY = frozenset("No Nos Art Nr pp Jan Feb Mar Apr Jun Jul Aug Sep Oct Nov Dec".split())

_LETTER = r"[^\W\d_]"
_NOT_LETTER = r"[\W\d_]"
_MOSES_STEPS = (
    # every character other than letters, digits, whitespace and . ' ` , - is a token
    (re.compile(r"([^\w\s.'`,\-]|_)"), r" \1 "),
    # aggressive hyphen splitting (-a), the @-@ token written as a plain hyphen
    (re.compile(r"([^\W_])-(?=[^\W_])"), r"\1 - "),
    # a run of two or more dots is a token of its own
    (re.compile(r"(\.{2,})"), r" \1 "),
    # commas, except between digits (5,300)
    (re.compile(r"(\D),"), r"\1 , "),
    (re.compile(r",(\D)"), r" , \1"),
    # English apostrophes, in Moses' order: It's -> It 's, isn't -> isn 't, 'Raja' -> ' Raja '
    (re.compile(rf"({_NOT_LETTER})'({_NOT_LETTER})"), r"\1 ' \2"),
    (re.compile(rf"([\W_])'({_LETTER})"), r"\1 ' \2"),
    (re.compile(rf"({_LETTER})'({_NOT_LETTER})"), r"\1 ' \2"),
    (re.compile(rf"({_LETTER})'({_LETTER})"), r"\1 '\2"),
    (re.compile(r"(\d)'(s)"), r"\1 '\2"),
)
_CONTROL = re.compile(r"[\x00-\x1f]")
_FULL_STOP_WORD = re.compile(r"(\S+)\.")
_DOTS = re.compile(r"\.+")
# Punkt's number type (nltk.tokenize.punkt: ``^-?[\.,]?\d[\d,\.-]*\.?$``).
_PUNKT_NUMBER = re.compile(r"-?[.,]?\d[\d,.-]*")


def collapse_whitespace(text: str) -> str:
    """Runs of spaces, tabs and line breaks (``\\r\\n`` too) as one space, ends stripped.

    The paper's form has this built in (:func:`to_paper_text`); for the CSV form it is the
    one change of the official recipe's training text.
    """
    return " ".join(text.split())


def to_paper_mr(mr: str) -> str:
    """An official MR in the paper's form.

    ``name[Cocum], eatType[coffee shop], priceRange[£20-25]`` →
    ``name : Cocum | Type : coffee shop | price : £ 20 - 25``. Raises ``ValueError`` quoting
    ``mr`` if it is not a comma-separated list of ``slot[value]``.
    """
    slots = parse_mr(mr)
    if not slots:
        raise ValueError(f"not an E2E MR (a comma-separated list of slot[value]): {mr!r}")
    return " | ".join(
        f"{PAPER_KEYS.get(key, key)} : {to_paper_text(value)}" for key, value in slots
    )


def to_paper_text(text: str) -> str:
    """A reference (or MR value) tokenised as in the paper's files: tokens joined by one space.

    ``It's family-friendly, £20-25.`` → ``It 's family - friendly , £ 20 - 25 .``. The files
    add a space after the last token as well (:func:`paper_line`).
    """
    text = _CONTROL.sub("", collapse_whitespace(text))
    return " ".join(token for sentence in _sentences(text) for token in _moses_tokens(sentence))


def paper_line(row: E2ERow) -> str:
    """One line of the paper's files, without the newline: ``MR||text `` (note the final space)."""
    return f"{to_paper_mr(row.mr)}||{to_paper_text(row.ref)} "


def paper_format_rows(rows: Iterable[E2ERow]) -> list[str]:
    """The lines of the paper's file for official CSV ``rows``, in their order (no newlines).

    Raises ``ValueError`` naming the row (1-based, header excluded) whose MR is malformed.
    """
    lines = []
    for i, row in enumerate(rows, start=1):
        try:
            lines.append(paper_line(row))
        except ValueError as err:
            raise ValueError(f"row {i}: {err}") from err
    return lines


def paper_rows(rows: Iterable[E2ERow]) -> list[E2ERow]:
    """Official CSV rows in the paper's form, as the official code reads its files.

    Each MR becomes :func:`to_paper_mr`, each reference :func:`to_paper_text` (no trailing
    space: ``format_converting_e2e.py`` strips the line).
    """
    return [E2ERow(*line.removesuffix(" ").split("||")) for line in paper_format_rows(rows)]


def write_paper_format(rows: Iterable[E2ERow], path: str | Path) -> Path:
    """Write official CSV ``rows`` as the paper's file: one ``MR||text `` line each, UTF-8."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.writelines(line + "\n" for line in paper_format_rows(rows))
    return path


def read_paper_format(path: str | Path) -> list[E2ERow]:
    """Read a file in the paper's form as ``format_converting_e2e.py`` does.

    Each line is stripped and split at ``||`` into the MR (``mr``, already linearised) and
    the reference (``ref``). Raises ``E2EFormatError`` naming the file and line for a line
    without exactly one ``||`` or with an empty side (a blank line too, which the official
    script cannot read either), bytes that are not UTF-8, or a file with no lines;
    ``FileNotFoundError`` with the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"E2E file in the paper's form not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise E2EFormatError(f"{path}, line {line}: not UTF-8 ({err.reason})") from err
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    rows = []
    for number, line in enumerate(lines, start=1):
        fields = line.strip().split("||")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            raise E2EFormatError(
                f"{path}, line {number}: expected 'MR||reference' (one '||', both sides "
                f"non-empty), got {line.strip()[:80]!r}"
            )
        rows.append(E2ERow(fields[0], fields[1]))
    if not rows:
        raise E2EFormatError(f"{path}: no 'MR||reference' lines")
    return rows


def paper_file(split: str, data_dir: str | Path | None = None) -> Path:
    """``<data>/e2e/paper-format/<file>`` of the paper's ``split`` (validation/dev or test)."""
    if SPLIT_ALIASES.get(split) not in PAPER_FILES:
        raise ValueError(
            f"The paper's own E2E files are {', '.join(PAPER_FILES)} (dev for validation), "
            f"not {split!r}: its train.txt is not available (use load_paper_e2e)"
        )
    folder = Path(default_data_dir(data_dir)) / "e2e" / "paper-format"
    return folder / PAPER_FILES[SPLIT_ALIASES[split]]


def load_paper_e2e(split: str, data_dir: str | Path | None = None) -> list[E2ERow]:
    """The rows of one split in the paper's form.

    Validation and test: the paper's own files (:func:`paper_file`); train: ``trainset.csv``
    transformed by :func:`paper_rows`, since the paper's ``train.txt`` is not available.
    """
    if split not in SPLIT_ALIASES:
        raise ValueError(f"Unknown E2E split {split!r}: choose one of {', '.join(SPLIT_ALIASES)}")
    if SPLIT_ALIASES[split] in PAPER_FILES:
        return read_paper_format(paper_file(split, data_dir))
    try:
        return paper_rows(load_e2e(split, data_dir))
    except ValueError as err:
        raise ValueError(f"{e2e_file(split, data_dir)}: {err}") from err


def _sentences(text: str) -> list[str]:
    """``text`` (whitespace collapsed) cut after each word whose full stop ends a sentence.

    A Punkt-like rule: a word ending in one full stop ends its sentence unless a lowercase
    word follows and the word is a number (Punkt's ``##number##``: ``5.``, ``20-25.``, not
    ``£20.``) or a single letter, or the word is one of Moses' non-breaking prefixes
    (``St. John's``) or holds another full stop and a letter (``e.g.``).
    """
    words = text.split(" ")
    sentences, start = [], 0
    for i, word in enumerate(words[:-1]):
        full_stop = word.endswith(".") and not word.endswith("..")
        if full_stop and _ends_sentence(word[:-1], words[i + 1]):
            sentences.append(" ".join(words[start : i + 1]))
            start = i + 1
    sentences.append(" ".join(words[start:]))
    return [s for s in sentences if s]


def _ends_sentence(before: str, following: str) -> bool:
    """Whether a full stop after ``before`` ends a sentence when ``following`` comes next."""
    if following[:1].islower() and (
        _PUNKT_NUMBER.fullmatch(before) or re.fullmatch(_LETTER, before)
    ):
        return False
    return not (before in _NONBREAKING or ("." in before and re.search(_LETTER, before)))


def _moses_tokens(sentence: str) -> list[str]:
    """The Moses tokens (English, ``-a``, hyphen token ``-``) of one sentence."""
    text = f" {sentence} "
    for pattern, replacement in _MOSES_STEPS:
        text = pattern.sub(replacement, text)
    words = text.split()
    tokens = []
    for i, word in enumerate(words):
        match = _FULL_STOP_WORD.fullmatch(word)
        if match and not _DOTS.fullmatch(word) and not _keeps_full_stop(match[1], words[i + 1 :]):
            tokens += [match[1], "."]
        else:
            tokens.append(word)
    return tokens


def _keeps_full_stop(before: str, rest: list[str]) -> bool:
    """Moses' rule: does the full stop after ``before`` stay on it, given the words after it?"""
    if not rest:  # the last word of a sentence always loses its full stop
        return False
    return bool(
        ("." in before and re.search(_LETTER, before))
        or before in _NONBREAKING
        or rest[0][:1].islower()
        or (before in _NUMERIC_ONLY and re.match(r"\d", rest[0]))
    )
