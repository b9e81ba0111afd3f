"""What every ``python -m lorabook...`` command line shares: a user's mistake is one line.

    def main(argv=None) -> int:
        return cli_main(_main, argv)      # _main parses argv and runs

A mistake in what was asked for (a bad setting, a missing data folder, a model that is not
available offline, a malformed data file) prints ``error: <one line>`` on stderr and exits
with status 2, like argparse's own errors; ``--debug`` shows the full traceback instead.
Anything else is a bug and keeps its traceback.

This module imports nothing heavy, so library code can raise :class:`UserError` freely.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

EXIT_USER_ERROR = 2
DEBUG_FLAG = "--debug"


class UserError(Exception):
    """A mistake in what the user asked for; the message says what would work."""


class SettingsError(UserError, ValueError):
    """A setting is out of range or unknown; the message names it and what would work."""


def steps_or_zero(text: str) -> int:
    """A ``--checkpoint-every`` value: a whole number of optimizer steps >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of optimizer steps >= 0 (0: at epoch ends only), got {text!r}"
        )
    return value


def add_checkpoint_flag(parser: argparse.ArgumentParser, default: int) -> None:
    """Add ``--checkpoint-every N`` (checkpoints inside an epoch; not a setting of the run)."""
    parser.add_argument(
        "--checkpoint-every",
        type=steps_or_zero,
        default=default,
        metavar="N",
        help=f"also write a resumable checkpoint every N optimizer steps inside an epoch "
        f"(default {default}; 0: at epoch ends only). Not part of the run's settings. "
        f"SIGTERM writes one at the next step and stops (exit 143); rerun to resume",
    )


Override = tuple[str, Callable[[str], object], str]  # a flag's (setting, type, help)

TRAINING_OVERRIDES: dict[str, Override] = {
    "--epochs": ("epochs", int, "training epochs"),
    "--lr": ("lr", float, "peak learning rate"),
    "--batch-size": ("batch_size", int, "training batch size (see --batch-scope)"),
    "--batch-scope": (
        "batch_scope",
        str,
        "global: the batch size is a step's, shared by the processes (default); process: "
        "each process takes it (the official scripts' per-device batch)",
    ),
    "--grad-accum": ("grad_accum", int, "gradient accumulation steps"),
    "--lora-r": ("lora_r", int, "LoRA rank"),
}
"""The preset settings that both ``lorabook.glue`` and ``lorabook.e2e`` let a flag change."""


def add_overrides(parser: argparse.ArgumentParser, overrides: dict[str, Override]) -> None:
    """Add one flag per entry of ``overrides``; a flag not given leaves the preset's value."""
    for flag, (dest, kind, help_text) in overrides.items():
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=help_text)


def given_overrides(args: argparse.Namespace, overrides: dict[str, Override]) -> dict:
    """The settings of ``overrides`` that the command line gave, by setting name."""
    return {
        dest: getattr(args, dest)
        for dest, _, _ in overrides.values()
        if getattr(args, dest) is not None
    }


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug`` (show the traceback of an error) to ``parser``."""
    parser.add_argument(
        DEBUG_FLAG, action="store_true", help="on an error, show the full traceback"
    )


def user_error_types() -> tuple[type[BaseException], ...]:
    """The exception types that are reported in one line: the user can fix them."""
    from lorabook.models import ModelNotAvailableError  # imported late: it pulls transformers

    return (UserError, FileNotFoundError, ModelNotAvailableError)


def one_line(err: BaseException) -> str:
    """The first line of an error's message, with a pointer to ``--debug`` if there is more.

    A :class:`~lorabook.models.ModelNotAvailableError` also lists the offline model names.
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    first = lines[0] if lines else type(err).__name__
    from lorabook.models import OFFLINE_MODELS, ModelNotAvailableError

    if isinstance(err, ModelNotAvailableError) and len(lines) > 1:
        choices = ", ".join(OFFLINE_MODELS)
        return f"{first}; offline choices: {choices}, or a local folder with config.json"
    if len(lines) > 1:
        return f"{first} (run with {DEBUG_FLAG} for the details)"
    return first


def cli_main(
    run: Callable[[Sequence[str] | None], int],
    argv: Sequence[str] | None = None,
    extra_errors: tuple[type[BaseException], ...] = (),
) -> int:
    """Call ``run(argv)``; report a user error in one line on stderr and return 2.

    Args:
        run: parses ``argv`` (``None``: ``sys.argv[1:]``) and does the work; returns the
            exit status.
        argv: the arguments.
        extra_errors: more exception types to treat as user errors.
    Returns:
        ``run``'s status, or 2 after a user error (re-raised instead with ``--debug``).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(argv)
    except user_error_types() + extra_errors as err:
        if DEBUG_FLAG in args:
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_USER_ERROR
