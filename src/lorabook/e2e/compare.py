"""How a difference between two E2E systems is judged: a paired bootstrap over the test MRs.

Table 3's BLEU is a corpus statistic: n-gram hits, n-gram counts and reference lengths are
summed over the MRs, then combined (:func:`lorabook.e2e.metrics.pymteval_bleu`). Each MR's
share of those sums is computed once (:func:`~lorabook.e2e.metrics.pymteval_bleu_statistics`);
a resample of the MRs (with replacement) sums the rows it drew, for both systems on the same
draw (:func:`lorabook.bootstrap.paired_differences`). So 10,000 resamples of 630 MRs cost
seconds, and the BLEU of the whole set is exactly the one the record reports (the paper's
variant, ``scores_paper``).

Only BLEU is resampled: NIST's information weights and CIDEr's document frequencies are
computed from the whole reference set, and METEOR runs in Java; a verdict on those metrics
compares the seeds' means and spreads instead (:mod:`lorabook.e2e.verdict`). ROUGE-L, and
CIDEr with its document frequencies held fixed, do give a score per MR and could be
resampled the same way; that is not done here.
"""

from __future__ import annotations

from collections.abc import Sequence

from lorabook.bootstrap import SAMPLES, paired_differences
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
    stats_a = pymteval_bleu_statistics(a, references)
    stats_b = pymteval_bleu_statistics(b, references)

    def difference(idx):
        return pymteval_bleu(stats_a[idx].sum(axis=1)) - pymteval_bleu(stats_b[idx].sum(axis=1))

    result = paired_differences(
        difference, len(a), samples=samples, seed=seed, level=level, scale=100
    )
    return {
        "bleu_a": 100 * float(pymteval_bleu(stats_a.sum(axis=0))),
        "bleu_b": 100 * float(pymteval_bleu(stats_b.sum(axis=0))),
        **result,
    }
