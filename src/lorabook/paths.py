"""Where the offline data sets live.

The data (GLUE TSVs, E2E CSVs) is kept outside the repository, in ``../shared/data`` beside
the checkout. :func:`data_dir` finds it; set ``LORABOOK_DATA`` to point somewhere else.
A folder that is asked for explicitly and does not exist is an error: never a quiet
fallback to another folder, whose data might differ.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "LORABOOK_DATA"
"""Environment variable naming the data folder (the one that holds ``glue/`` and ``e2e/``)."""

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout's root when running from a source tree (``src/lorabook/paths.py`` -> ``../..``)."""

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
"""The default data folder: ``<repo root>/../shared/data``."""


def data_source(override: str | Path | None = None) -> tuple[str, Path]:
    """The data folder asked for, and where the request came from; not checked.

    Args:
        override: an explicit folder (e.g. a ``--data-dir`` argument); ``None`` or ``""``
            to skip.
    Returns:
        ``("argument", override)`` if given, else ``("$LORABOOK_DATA", ...)`` if set, else
        ``("default <repo>/../shared/data", DEFAULT_DATA)``.
    """
    if override is not None and str(override) != "":
        return "argument", Path(override).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return f"${ENV_VAR}", Path(env).expanduser()
    return "default <repo>/../shared/data", DEFAULT_DATA


def data_dir_is_explicit(override: str | Path | None = None) -> bool:
    """Whether the data folder was asked for (an argument or ``LORABOOK_DATA``)."""
    return not data_source(override)[0].startswith("default")


def data_dir(override: str | Path | None = None) -> Path:
    """The folder holding the offline data sets (the parent of ``glue/`` and ``e2e/``).

    ``override`` if given, else the ``LORABOOK_DATA`` environment variable if set, else
    ``<repo root>/../shared/data``. Only one of them is looked at: a folder that is asked
    for and does not exist is an error, not a reason to read another one.

    Args:
        override: a folder to use in preference to everything else.
    Returns:
        the data folder, as given (not resolved).
    Raises:
        FileNotFoundError: the folder does not exist; the (one-line) message names it,
            where it came from and how to point elsewhere.
    """
    origin, path = data_source(override)
    if path.is_dir():
        return path
    fix = (
        f"pass an existing folder (data_dir=... / --data-dir) or set {ENV_VAR} to one"
        if origin == "argument"
        else f"set {ENV_VAR} to an existing folder, or unset it to use {DEFAULT_DATA}"
        if origin.startswith("$")
        else f"set {ENV_VAR} (or pass data_dir=... / --data-dir)"
    )
    raise FileNotFoundError(
        f"data folder {path} (from {origin}) does not exist: {fix}; "
        "it is the folder that contains glue/ and e2e/"
    )
