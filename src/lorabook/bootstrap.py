"""The paired bootstrap: how sure a difference between two systems on one test set is.

Both systems are scored on the *same* resample of the examples (drawn with replacement), many
times; the spread of the resampled differences says how much of the difference the choice of
examples could explain (Koehn 2004, "Statistical significance tests for machine translation
evaluation"). GLUE resamples dev examples (:func:`lorabook.glue.report.paired_bootstrap`),
E2E resamples test MRs (:func:`lorabook.e2e.compare.paired_bootstrap_bleu`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

SAMPLES = 10_000
CHUNK = 500  # resamples drawn at once (a chunk holds CHUNK × examples indices)


def paired_differences(
    difference: Callable[[np.ndarray], np.ndarray],
    examples: int,
    *,
    samples: int = SAMPLES,
    seed: int = 0,
    level: float = 0.95,
    scale: float = 1.0,
) -> dict:
    """Resample ``examples`` indices ``samples`` times and summarise ``difference`` over them.

    Args:
        difference: maps index arrays of shape ``(k, examples)`` (each row one resample) to
            the ``k`` differences ``score(a) − score(b)`` on those resamples.
        examples: how many examples the test set has.
        samples, seed: resamples drawn, and the seed that draws them.
        level: the central share of the resampled differences the interval holds.
        scale: multiplies every difference (100: points).
    Returns:
        ``difference`` (on the whole set), ``low`` and ``high`` (the percentile interval),
        ``share_above_zero`` (resamples where a beats b), ``level``, ``samples``, ``seed``
        and ``examples``.
    """
    if examples < 1:
        raise ValueError("a paired bootstrap needs at least one example")
    whole = float(difference(np.arange(examples)[None, :])[0]) * scale
    rng = np.random.default_rng(seed)
    drawn = []
    for start in range(0, samples, CHUNK):
        idx = rng.integers(0, examples, size=(min(CHUNK, samples - start), examples))
        drawn.append(difference(idx))
    diffs = scale * np.concatenate(drawn)
    tail = 100 * (1 - level) / 2
    low, high = np.nanpercentile(diffs, [tail, 100 - tail])
    return {
        "difference": whole,
        "low": float(low),
        "high": float(high),
        "share_above_zero": float(np.mean(diffs > 0)),
        "level": level,
        "samples": samples,
        "seed": seed,
        "examples": examples,
    }


def times_drawn(idx: np.ndarray, examples: int) -> np.ndarray:
    """How many times each example is in each resample: ``(k, examples)`` counts for index
    rows ``idx`` of shape ``(k, m)``. A score that sums per-example counts over a resample is
    then ``times_drawn(idx, n) @ per_example`` (exact for integer counts, and without the
    ``(k, m, columns)`` array that ``per_example[idx].sum(axis=1)`` builds)."""
    k = idx.shape[0]
    flat = (idx + examples * np.arange(k)[:, None]).ravel()
    return np.bincount(flat, minlength=k * examples).reshape(k, examples).astype(np.float64)
