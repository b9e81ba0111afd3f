"""Where the offline data sets live.

The data (GLUE TSVs, E2E CSVs) is kept outside the repository, in ``../shared/data`` beside
the checkout. :func:`data_dir` finds it; set ``LORABOOK_DATA`` to point somewhere else.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ENV_VAR = "LORABOOK_DATA"
"""Environment variable naming the data folder (the one that holds ``glue/`` and ``e2e/``)."""

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout's root when running from a source tree (``src/lorabook/paths.py`` -> ``../..``)."""

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
"""The default data folder: ``<repo root>/../shared/data``."""


def data_candidates(override: str | Path | None = None) -> list[tuple[str, Path]]:
    """The places :func:`data_dir` looks, in order, each with where it came from.

    Args:
        override: an explicit folder (e.g. a ``--data-dir`` argument); ``None`` to skip.
    Returns:
        ``[(origin, path), ...]``: the override, then ``$LORABOOK_DATA``, then
        ``<repo root>/../shared/data``; the first two only when given/set.
    """
    candidates: list[tuple[str, Path]] = []
    if override is not None and str(override) != "":
        candidates.append(("argument", Path(override).expanduser()))
    env = os.environ.get(ENV_VAR)
    if env:
        candidates.append((f"${ENV_VAR}", Path(env).expanduser()))
    candidates.append(("default <repo>/../shared/data", DEFAULT_DATA))
    return candidates


def data_dir(override: str | Path | None = None) -> Path:
    """The folder holding the offline data sets (the parent of ``glue/`` and ``e2e/``).

    Looks, in this order, at ``override``, then the ``LORABOOK_DATA`` environment variable,
    then ``<repo root>/../shared/data``, and returns the first folder that exists. An
    explicit ``override`` or ``LORABOOK_DATA`` that does not exist is skipped with a warning.

    Args:
        override: a folder to use in preference to everything else.
    Returns:
        the data folder, as given (not resolved).
    Raises:
        FileNotFoundError: none of the candidates exists; the message lists every path tried
            and how to set ``LORABOOK_DATA``.
    """
    candidates = data_candidates(override)
    for origin, path in candidates:
        if path.is_dir():
            return path
        if origin != candidates[-1][0]:
            warnings.warn(
                f"data folder from {origin} does not exist: {path}; trying the next candidate",
                stacklevel=2,
            )
    tried = "\n".join(f"  - {path} (from {origin})" for origin, path in candidates)
    raise FileNotFoundError(
        "No data folder found. Tried, in order:\n"
        f"{tried}\n"
        f"Pass the folder explicitly (data_dir=... / --data-dir) or set {ENV_VAR}, e.g.\n"
        f"  export {ENV_VAR}=/path/to/shared/data\n"
        "(the folder that contains glue/ and e2e/)."
    )
