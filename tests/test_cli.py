"""The shared command-line helper: a user's mistake is one line and exit status 2."""

from __future__ import annotations

import pytest

from lorabook.cli import EXIT_USER_ERROR, UserError, cli_main, one_line
from lorabook.models import ModelNotAvailableError


def raising(err: BaseException):
    def run(argv):
        raise err

    return run


@pytest.mark.parametrize(
    "err",
    [
        UserError("lora_r must be at least 1, got 0"),
        FileNotFoundError("data folder /x does not exist: set LORABOOK_DATA"),
        ModelNotAvailableError("Cannot get model 'x'\nOffline choices:\n  'minilm': ..."),
    ],
)
def test_user_error_is_one_line_on_stderr_and_exit_2(capsys, err):
    assert cli_main(raising(err), []) == EXIT_USER_ERROR
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_debug_re_raises():
    with pytest.raises(UserError):
        cli_main(raising(UserError("bad")), ["--debug"])


def test_a_bug_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        cli_main(raising(ZeroDivisionError("bug")), [])


def test_success_passes_the_status_through():
    assert cli_main(lambda argv: 0, []) == 0


def test_one_line_forms():
    assert one_line(UserError("just this")) == "just this"
    assert one_line(UserError("first\nsecond")) == "first (run with --debug for the details)"
    model = one_line(ModelNotAvailableError("Cannot get 'x': offline\nOffline choices:\n  a"))
    assert model.startswith("Cannot get 'x': offline; offline choices: minilm, smollm2")
