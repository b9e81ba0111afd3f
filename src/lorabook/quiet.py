"""Keep the libraries' chatter out of what a reader sees: the book's pages, a run's log.

transformers, huggingface_hub and peft report on their own work: a "Loading weights"
progress bar per model load, log lines about a model's config, ``FutureWarning`` about
their own deprecations, each with the path of the library's file. None of it is about the
experiment, and in a built page it is a build log. Two ways to silence it, at its source:

* :func:`quiet`, a context manager: the block runs with transformers logging errors only,
  no transformers or huggingface_hub progress bars, and no ``FutureWarning`` or
  ``DeprecationWarning`` raised from those libraries; everything is restored on exit.
  lorabook's own model loaders run under it.
* :func:`silence_libraries`, the same for the rest of the process, for a notebook that
  calls the libraries itself (one call in its set-up cell).

lorabook's own warnings (a second ``merge``, an untied embedding, ...) are never silenced:
they are about the experiment. Errors are never silenced either.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LIBRARY_MODULES = r"(transformers|peft|huggingface_hub|accelerate|datasets)(\.|$)"
"""The modules whose deprecation warnings are silenced (a regular expression, as
:func:`warnings.filterwarnings` takes it: the module the warning is attributed to)."""

_CATEGORIES = (FutureWarning, DeprecationWarning)


def _silence_logs_and_bars() -> Callable[[], None]:
    """Set transformers' verbosity to errors and turn off both libraries' progress bars;
    return the function that puts back what was there."""
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as tlog

    verbosity = tlog.get_verbosity()
    bars = tlog.is_progress_bar_enabled()
    hub_bars_off = hub_utils.are_progress_bars_disabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    hub_utils.disable_progress_bars()

    def restore() -> None:
        tlog.set_verbosity(verbosity)
        if bars:
            tlog.enable_progress_bar()
        if not hub_bars_off:
            hub_utils.enable_progress_bars()

    return restore


def _filter_library_warnings() -> None:
    for category in _CATEGORIES:
        warnings.filterwarnings("ignore", category=category, module=LIBRARY_MODULES)


@contextmanager
def quiet() -> Iterator[None]:
    """Run the block without the libraries' progress bars, info logs and deprecation
    warnings (see the module's docstring); restore them afterwards, even on an error."""
    restore = _silence_logs_and_bars()
    try:
        with warnings.catch_warnings():
            _filter_library_warnings()
            yield
    finally:
        restore()


def silence_libraries() -> None:
    """:func:`quiet` for the rest of the process: a notebook's set-up cell calls it once
    when the notebook itself calls transformers or peft."""
    _silence_logs_and_bars()
    _filter_library_warnings()
