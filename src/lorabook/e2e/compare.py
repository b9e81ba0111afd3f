"""How a difference between two E2E systems is judged: a paired bootstrap over the test MRs.

Table 3's BLEU is a corpus statistic: n-gram hits, n-gram counts and reference lengths are
summed over the MRs, then combined (:func:`lorabook.e2e.metrics.pymteval_bleu`). Each MR's
share of those sums is computed once (:func:`~lorabook.e2e.metrics.pymteval_bleu_statistics`);
a resample of the MRs (with replacement) sums the rows it drew, for both systems on the same
draw (:func:`lorabook.bootstrap.paired_differences`). So 10,000 resamples of 630 MRs cost
seconds, and the BLEU of the whole set is exactly the one the record reports (the paper's
variant, ``scores_paper``).

ROUGE-L and CIDEr are means of per-MR scores (CIDEr's document frequencies come from the
references alone, so they stay fixed while the MRs are resampled): :func:`paired_bootstrap_mean`
resamples those (:func:`~lorabook.e2e.metrics.per_mr_scores`). NIST's information weights are
computed from the whole reference set and METEOR runs in Java on the whole corpus: they are
not resampled. The verdict rule committed before the campaign ran judges every metric but
BLEU by the seeds' means and spreads (:mod:`lorabook.e2e.verdict`); the resampled ROUGE-L and
CIDEr are shown beside it as a supplement, not as the rule.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from lorabook.bootstrap import SAMPLES, paired_differences, times_drawn
from lorabook.e2e.metrics import pymteval_bleu, pymteval_bleu_statistics


def paired_bootstrap_bleu(
    a: Sequence[str],
    b: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    samples: int = SAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """BLEU(a) − BLEU(b) on the test MRs, and its spread over resamples of the MRs.

    Args:
        a, b: the two systems' outputs, one per MR, in the same MR order.
        references: each MR's references, same order.
        samples, seed, level: as :func:`lorabook.bootstrap.paired_differences`.
    Returns:
        In BLEU points (×100): ``bleu_a``, ``bleu_b``, ``difference``, ``low`` and ``high``
        (the percentile interval), ``share_above_zero`` (resamples where a scores higher),
        with ``level``, ``samples``, ``seed`` and ``examples`` (MRs).
    Raises:
        ValueError: the outputs and references differ in length, or an MR has no reference.
    """
    if len(a) != len(b):
        raise ValueError(f"the two systems have {len(a)} and {len(b)} outputs: not the same MRs")
    refs = tuple(tuple(r) for r in references)
    return dict(_paired_bootstrap_bleu(tuple(a), tuple(b), refs, samples, seed, level))


@functools.lru_cache(maxsize=64)
def _paired_bootstrap_bleu(
    a: tuple[str, ...],
    b: tuple[str, ...],
    references: tuple[tuple[str, ...], ...],
    samples: int,
    seed: int,
    level: float,
) -> dict:
    """:func:`paired_bootstrap_bleu`, kept for the same inputs: chapter 7 asks for the pairs
    chapter 4 does, twice (LoRA against FT, then against every method)."""
    stats_a = pymteval_bleu_statistics(a, references)
    stats_b = pymteval_bleu_statistics(b, references)

    def difference(idx):  # the rows are counts, so summing a resample's rows is a product
        drawn = times_drawn(idx, len(a))
        return pymteval_bleu(drawn @ stats_a) - pymteval_bleu(drawn @ stats_b)

    result = paired_differences(
        difference, len(a), samples=samples, seed=seed, level=level, scale=100
    )
    return {
        "bleu_a": 100 * float(pymteval_bleu(stats_a.sum(axis=0))),
        "bleu_b": 100 * float(pymteval_bleu(stats_b.sum(axis=0))),
        **result,
    }


def paired_bootstrap_mean(
    a: Sequence[float],
    b: Sequence[float],
    *,
    samples: int = SAMPLES,
    seed: int = 0,
    level: float = 0.95,
    scale: float = 1.0,
) -> dict:
    """mean(a) − mean(b) of two systems' per-MR scores, and its spread over resamples of the
    MRs (the same draw for both, as :func:`paired_bootstrap_bleu`).

    Args:
        a, b: each MR's score under the two systems, same MR order (ROUGE-L, CIDEr:
            :func:`lorabook.e2e.metrics.per_mr_scores`).
        samples, seed, level, scale: as :func:`lorabook.bootstrap.paired_differences`
            (``scale`` 100 puts ROUGE-L in Table 3's units).
    Returns:
        ``a`` and ``b`` (the two means, scaled), ``difference``, ``low``, ``high``,
        ``share_above_zero``, ``level``, ``samples``, ``seed`` and ``examples``.
    Raises:
        ValueError: the two systems scored different numbers of MRs.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"per-MR scores of shapes {a.shape} and {b.shape}: not the same MRs")
    gap = a - b
    result = paired_differences(
        lambda idx: gap[idx].mean(axis=1),
        len(gap),
        samples=samples,
        seed=seed,
        level=level,
        scale=scale,
    )
    return {"a": scale * float(a.mean()), "b": scale * float(b.mean()), **result}
