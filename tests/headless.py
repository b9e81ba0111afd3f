"""Headless Chromium for the tests that look at a page as a reader does (the built book,
JupyterLab): the Debian package ``chromium`` driven by playwright, with no browser download.
``.ci/run`` installs chromium where it is missing; elsewhere the tests skip with the reason."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from contextlib import contextmanager

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """``$LORABOOK_CHROMIUM``, else ``chromium`` (or ``chromium-browser``) on the PATH."""
    env = os.environ.get("LORABOOK_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def browser(viewport: tuple[int, int] = (1280, 900)):
    """A headless Chromium (playwright's ``Browser``) with a new, empty profile; skips the
    test, saying why, where there is no browser or no playwright."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (the dev extra)"
    )
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium: apt-get install chromium (or set LORABOOK_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="lorabook-chromium-") as profile:
        with sync_api.sync_playwright() as p:
            try:
                context = p.chromium.launch_persistent_context(
                    profile,
                    executable_path=path,
                    headless=True,
                    args=CHROMIUM_ARGS,
                    viewport={"width": viewport[0], "height": viewport[1]},
                )
            except Exception as err:  # noqa: BLE001 - any failure to start: no browser here
                pytest.skip(f"Chromium ({path}) did not start: {str(err).splitlines()[0]}")
            try:
                yield context
            finally:
                context.close()


def free_port() -> int:
    """A free TCP port on 127.0.0.1; skips the test where no local socket can be opened."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]
    except OSError as err:
        pytest.skip(f"cannot open a local socket: {err}")
