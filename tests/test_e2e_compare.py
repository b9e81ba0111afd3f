"""The paired bootstrap of E2E BLEU: per-MR counters that sum to the corpus score, and
resamples that read a difference's spread."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lorabook import paths
from lorabook.e2e import metrics
from lorabook.e2e.compare import paired_bootstrap_bleu, paired_bootstrap_mean

try:
    E2E = paths.data_dir() / "e2e"
except FileNotFoundError:
    E2E = None
TEST_VECTOR = E2E / "reference-scores" / "tgen-std.run0.txt" if E2E else None
needs_data = pytest.mark.skipif(
    TEST_VECTOR is None or not TEST_VECTOR.is_file(), reason="offline E2E data not found"
)

REFS = [
    ["the eagle is a cheap pub near the river", "eagle is a pub near the river , cheap"],
    ["blue spice serves french food in the city centre", "blue spice is a french restaurant"],
    ["the mill is a family friendly coffee shop", "the mill coffee shop is family friendly"],
    ["zizzi is an expensive italian restaurant", "zizzi serves italian food , high price"],
]
GOOD = [
    "the eagle is a cheap pub near the river",
    "blue spice serves french food",
    "the mill is a family friendly coffee shop",
    "zizzi is an expensive italian restaurant",
]
WORSE = ["a pub", "blue spice serves french food", "a coffee shop", "zizzi is an italian place"]


def test_the_rows_sum_to_the_corpus_bleu_of_any_set_of_mrs():
    stats = metrics.pymteval_bleu_statistics(GOOD, REFS)
    assert stats.shape == (4, 9)
    bleu, _ = metrics.pymteval_bleu_nist(GOOD * 2, REFS * 2)
    assert float(metrics.pymteval_bleu(stats.sum(axis=0))) == pytest.approx(bleu, abs=1e-12)
    pick = [0, 0, 3, 2]  # a resample: MR 0 twice, no MR 1
    again, _ = metrics.pymteval_bleu_nist([GOOD[i] for i in pick], [REFS[i] for i in pick])
    assert float(metrics.pymteval_bleu(stats[pick].sum(axis=0))) == pytest.approx(again, abs=1e-12)
    rows = metrics.pymteval_bleu(np.stack([stats[pick].sum(axis=0), stats.sum(axis=0)]))
    assert rows.shape == (2,) and rows[0] == pytest.approx(again, abs=1e-12)


def test_the_kept_rows_answer_only_the_same_outputs_and_cannot_be_changed():
    stats = metrics.pymteval_bleu_statistics(GOOD, REFS)
    assert metrics.pymteval_bleu_statistics(list(GOOD), [list(r) for r in REFS]) is stats
    with pytest.raises(ValueError, match="read-only"):
        stats[0, 0] = 99.0
    other = metrics.pymteval_bleu_statistics(WORSE, REFS)  # the same references, kept
    assert other is not stats and other[:, :4].sum() < stats[:, :4].sum()
    one_by_one = [
        metrics._pymteval_bleu_counts(
            metrics.pymteval_tokenize(h), [metrics.pymteval_tokenize(r) for r in refs]
        )
        for h, refs in zip(WORSE, REFS, strict=True)
    ]
    np.testing.assert_array_equal(other, np.stack(one_by_one))


@needs_data
def test_the_test_vectors_rows_give_its_official_bleu():
    _, refs = metrics.load_references(E2E / "testset_w_refs.csv")
    outputs = metrics.read_outputs(TEST_VECTOR)
    stats = metrics.pymteval_bleu_statistics(outputs, refs)
    bleu, _ = metrics.pymteval_bleu_nist(outputs, refs)
    assert float(metrics.pymteval_bleu(stats.sum(axis=0))) == pytest.approx(bleu, abs=1e-12)
    assert bleu == pytest.approx(0.6616, abs=1e-4)  # the official script's (reference-scores)


def test_identical_systems_differ_by_exactly_zero():
    result = paired_bootstrap_bleu(GOOD, GOOD, REFS, samples=200)
    assert result["difference"] == result["low"] == result["high"] == 0.0
    assert result["share_above_zero"] == 0.0 and result["examples"] == 4


def test_a_better_system_is_above_zero_and_swapping_negates():
    ab = paired_bootstrap_bleu(GOOD * 10, WORSE * 10, REFS * 10, samples=500, seed=1)
    ba = paired_bootstrap_bleu(WORSE * 10, GOOD * 10, REFS * 10, samples=500, seed=1)
    assert ab["bleu_a"] - ab["bleu_b"] == pytest.approx(ab["difference"])
    assert ab["difference"] > 0 and ab["low"] > 0 and ab["share_above_zero"] > 0.99
    assert ba["difference"] == pytest.approx(-ab["difference"])
    assert ba["high"] == pytest.approx(-ab["low"]) and ba["low"] == pytest.approx(-ab["high"])
    assert ab == paired_bootstrap_bleu(GOOD * 10, WORSE * 10, REFS * 10, samples=500, seed=1)
    assert json.dumps(ab)  # plain numbers, ready for a record


def test_the_same_pair_is_resampled_once_and_a_callers_change_stays_its_own(monkeypatch):
    import lorabook.e2e.compare as compare

    calls = []
    real = compare.paired_differences
    monkeypatch.setattr(
        compare, "paired_differences", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    good, worse, refs = GOOD * 3, WORSE * 3, [list(r) for r in REFS * 3]  # lists, as callers pass
    first = paired_bootstrap_bleu(good, worse, refs, samples=300, seed=7)
    first["difference"] = 99.0  # the caller's copy
    again = paired_bootstrap_bleu(list(good), list(worse), refs, samples=300, seed=7)
    assert len(calls) == 1 and again["difference"] != 99.0
    paired_bootstrap_bleu(good, worse, refs, samples=300, seed=8)  # another draw: computed
    paired_bootstrap_bleu(good, worse[:-1] + [good[-1]], refs, samples=300, seed=7)  # other outputs
    assert len(calls) == 3


def test_outputs_of_other_mrs_are_refused():
    with pytest.raises(ValueError, match="4 and 3 outputs"):
        paired_bootstrap_bleu(GOOD, WORSE[:3], REFS)
    with pytest.raises(ValueError):
        paired_bootstrap_bleu(GOOD[:3], WORSE[:3], REFS)


# --------------------------------------------------------------- per-MR metrics (ROUGE-L, CIDEr)


def test_per_mr_scores_average_to_the_corpus_rouge_l_and_cider():
    per_mr = metrics.per_mr_scores(GOOD * 3, REFS * 3, tokenize=False)
    assert per_mr["ROUGE_L"].shape == per_mr["CIDEr"].shape == (12,)
    rouge, cider = (f(GOOD * 3, REFS * 3, tokenize=False) for f in (metrics.rouge_l, metrics.cider))
    assert per_mr["ROUGE_L"].mean() == pytest.approx(rouge)
    assert per_mr["CIDEr"].mean() == pytest.approx(cider)
    assert per_mr["ROUGE_L"][0] == 1.0 and per_mr["ROUGE_L"][1] < 1.0  # a reference; a stub


@pytest.mark.parametrize(
    "a, b",
    [
        ("", ""),
        ("the eagle", ""),
        ("a b c b d a b", "b d c a b a"),
        ("the eagle is a pub the eagle", "eagle the pub is a the eagle near"),
        ("x y z", "p q"),
    ],
)
def test_the_bit_parallel_lcs_is_pycocoevalcaps(a: str, b: str):
    from pycocoevalcap.rouge.rouge import my_lcs

    a_tokens, b_tokens = a.split(" "), b.split(" ")
    assert metrics.lcs_length(a_tokens, b_tokens) == my_lcs(a_tokens, b_tokens)
    assert metrics.lcs_length(b_tokens, a_tokens) == my_lcs(a_tokens, b_tokens)
    assert metrics.lcs_length([], b_tokens) == 0


def test_the_bit_parallel_lcs_on_random_token_lists():
    from pycocoevalcap.rouge.rouge import my_lcs

    rng = np.random.default_rng(0)
    for _ in range(200):  # few symbols, so long common subsequences; lengths past 64 bits
        a, b = ([f"w{i}" for i in rng.integers(0, 5, rng.integers(0, 90))] for _ in range(2))
        assert metrics.lcs_length(a, b) == my_lcs(a, b)


@needs_data
def test_per_mr_scores_are_pycocoevalcaps_to_the_last_bit():
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from lorabook.e2e.data import group_references, load_e2e

    _, references = group_references(load_e2e("test"))
    outputs = metrics.read_outputs(TEST_VECTOR)
    n = 150  # a slice: CIDEr's document frequencies are this slice's, alike on both sides
    hyps = [o.lower() for o in outputs[:n]]
    refs = [[r.lower() for r in rs] for rs in references[:n]]
    ours = metrics.per_mr_scores(hyps, refs, tokenize=False)
    gts, res = {i: rs for i, rs in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}
    assert np.array_equal(ours["ROUGE_L"], Rouge().compute_score(gts, res)[1])
    assert np.array_equal(ours["CIDEr"], np.asarray(Cider().compute_score(gts, res)[1], float))
    again = metrics.per_mr_scores(hyps[::-1], refs[::-1], tokenize=False)  # other references
    assert np.array_equal(again["ROUGE_L"], ours["ROUGE_L"][::-1])


def test_the_mean_bootstrap_is_exact_on_constant_gaps_and_brackets_a_noisy_one():
    a = np.linspace(0.2, 0.9, 50)
    same = paired_bootstrap_mean(a, a, samples=200)
    assert same["difference"] == same["low"] == same["high"] == 0.0
    shifted = paired_bootstrap_mean(a + 0.1, a, samples=200, scale=100)
    assert shifted["difference"] == shifted["low"] == pytest.approx(10.0)
    assert shifted["high"] == pytest.approx(10.0) and shifted["share_above_zero"] == 1.0
    assert shifted["a"] - shifted["b"] == pytest.approx(shifted["difference"])
    noise = np.random.default_rng(0).normal(0.0, 0.3, 50)
    noisy = paired_bootstrap_mean(a + noise, a, samples=4000)
    assert noisy["difference"] == pytest.approx(noise.mean())
    assert noisy["low"] < noisy["difference"] < noisy["high"]
    standard_error = noise.std() / np.sqrt(50)  # the interval: about ±1.96 of them
    assert noisy["high"] - noisy["low"] == pytest.approx(2 * 1.96 * standard_error, rel=0.15)
    with pytest.raises(ValueError, match="not the same MRs"):
        paired_bootstrap_mean(a, a[:49])


def test_times_drawn_counts_each_example_in_each_resample():
    from lorabook.bootstrap import times_drawn

    idx = np.array([[0, 0, 3, 2], [1, 1, 1, 1]])
    np.testing.assert_array_equal(times_drawn(idx, 4), [[2, 0, 1, 1], [0, 4, 0, 0]])
    per_example = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(times_drawn(idx, 4) @ per_example, per_example[idx].sum(axis=1))
