"""`make lab`, as a reader uses it: JupyterLab from the venv serves a chapter (a jupytext .py
file) as a notebook, opens it as one on a double-click, and runs its cells on the venv's
kernel with the book's environment.

One server for the module, started by the Makefile's own target on a free localhost port
(``make -o <venv>/.installed``: never installs anything) and stopped at the end."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from headless import browser, free_port

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = "notebooks/01_theory.py"
START_TIMEOUT_S = 120

pytestmark = pytest.mark.slow


class Lab:
    def __init__(self, port: int, token: str):
        self.url = f"http://127.0.0.1:{port}"
        self.token = token

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
        return json.loads(text) if text else {}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (the book extra)")
    pytest.importorskip("jupytext", reason="jupytext is not installed (the book extra)")
    if shutil.which("make") is None:
        pytest.skip("no make")
    port, token = free_port(), secrets.token_hex(16)
    venv = Path(sys.prefix)
    logs = tmp_path_factory.mktemp("lab")
    # the project's settings, with autosave off: a chapter opened here is never written back
    settings = json.loads((ROOT / "lab" / "overrides.json").read_text())
    settings["@jupyterlab/docmanager-extension:plugin"]["autosave"] = False
    (logs / "overrides.json").write_text(json.dumps(settings))
    lab_args = (
        f"--no-browser --port={port} --ServerApp.port_retries=0 --ServerApp.ip=127.0.0.1 "
        f"--IdentityProvider.token={token}"
    )
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(logs / "runtime")}
    log = (logs / "lab.log").open("w")
    server = subprocess.Popen(
        [
            *("make", "-s", "-o", f"{venv}/.installed", "lab", f"VENV={venv}"),
            *(f"LAB_SETTINGS={logs}", f"LAB_ARGS={lab_args}"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped whole at the end
    )
    lab = Lab(port, token)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"make lab exited ({server.returncode}):\n{tail(logs / 'lab.log')}")
            try:
                lab.api("/api/status")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer in {START_TIMEOUT_S} s")
                time.sleep(0.5)
        yield lab
    finally:
        try:
            lab.api("/api/shutdown", method="POST")  # stops its kernels too
        except Exception:  # noqa: BLE001 - not answering: the signals below
            pass
        stop_group(server)
        log.close()


def stop_group(leader: subprocess.Popen, grace_s: float = 30) -> None:
    """Wait for the leader's process group (make, jupyter, kernels) to end; SIGTERM then
    SIGKILL whatever is left, so that no server outlives the tests."""
    for sig, wait_s in ((None, grace_s), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if sig is not None:
            try:
                os.killpg(leader.pid, sig)
            except ProcessLookupError:
                return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            leader.poll()  # reap make once it exits: a zombie still counts in its group
            try:
                os.killpg(leader.pid, 0)  # anyone left?
            except ProcessLookupError:
                return
            time.sleep(0.2)


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text().splitlines()[-lines:])


def test_a_chapter_is_served_as_a_notebook_and_opens_as_one_by_default(lab):
    served = lab.api(f"/api/contents/{CHAPTER}?type=notebook&content=1")
    assert served["type"] == "notebook" and served["format"] == "json"
    cells = served["content"]["cells"]
    assert cells[0]["cell_type"] == "markdown" and cells[0]["source"].startswith("# 1. Theory")
    assert served["content"]["metadata"]["kernelspec"]["name"] == "python3"
    # the project's lab/overrides.json, not a user's setting: .py opens with jupytext
    docmanager = lab.api("/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    viewers = docmanager["schema"]["properties"]["defaultViewers"]["default"]
    assert viewers.get("python") == "Jupytext Notebook"


def test_its_first_cells_run_on_the_venvs_kernel(lab):
    websocket = pytest.importorskip("websocket", reason="websocket-client (the dev extra)")
    session = lab.api(
        "/api/sessions",
        method="POST",
        body={"path": CHAPTER, "name": "01_theory.py", "type": "notebook", "kernel": {}},
    )
    assert session["kernel"]["name"] == "python3"
    notebook = lab.api(f"/api/contents/{CHAPTER}?type=notebook")["content"]
    code = [c["source"] for c in notebook["cells"] if c["cell_type"] == "code"][:2]
    # the parameters cell (a comment on the modes, then the value), then the set-up cell
    assert code[0].splitlines()[-1] == 'mode = "quick"'
    assert code[0].startswith("# ")
    code.append('import os, sys\nprint(sys.prefix)\nprint(os.environ["LORABOOK_DATA"])')
    channel = f"{lab.url.replace('http', 'ws')}/api/kernels/{session['kernel']['id']}/channels"
    ws = websocket.create_connection(channel, header=[f"Authorization: token {lab.token}"])
    try:
        printed = [run_cell(ws, source) for source in code]
    finally:
        ws.close()
        lab.api(f"/api/sessions/{session['id']}", method="DELETE")
    # the set-up cell asserts that its kernel is LORABOOK_VENV's python (make lab sets it)
    assert "lorabook    0.1.0, mode = 'quick'" in printed[1], printed
    prefix, data = printed[2].splitlines()
    assert Path(prefix).resolve() == Path(sys.prefix).resolve()
    expected = os.environ.get("LORABOOK_DATA") or str(ROOT / ".." / "shared" / "data")
    assert Path(data).resolve() == Path(expected).resolve()  # as `make book` sets it


def run_cell(ws, source: str, timeout: float = 120) -> str:
    """Execute ``source`` through the server's kernel channel; return what it printed.
    Fails with the traceback if the cell raises."""
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {"code": source, "silent": False, "store_history": True},
            }
        )
    )
    printed, deadline = [], time.monotonic() + timeout
    ws.settimeout(timeout)
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            printed.append(content["text"])
        elif kind == "error":
            pytest.fail("cell raised:\n" + "\n".join(content["traceback"]))
        elif kind == "execute_reply":
            assert content["status"] == "ok", content
            return "".join(printed)
    pytest.fail(f"no reply in {timeout} s")


def test_a_double_click_opens_the_chapter_as_a_notebook(lab):
    before = (ROOT / CHAPTER).read_bytes()
    with browser(viewport=(1300, 900)) as chromium:
        page = chromium.new_page()
        errors = []
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(f"{lab.url}/lab/tree/notebooks?token={lab.token}&reset", wait_until="load")
        item = page.locator(".jp-DirListing-item", has_text="01_theory.py").first
        item.wait_for(timeout=60_000)
        item.dblclick()
        title = page.locator(".jp-NotebookPanel .jp-MarkdownOutput h1", has_text="1. Theory")
        title.first.wait_for(timeout=60_000)  # the chapter's first cell, rendered as markdown
        code_cell = page.locator(".jp-NotebookPanel .jp-CodeCell").first
        code_cell.wait_for(timeout=60_000)  # cells render one after another: wait, not count
        shots = ROOT / "_build" / "screenshots"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "lab-01_theory.png"))
        assert errors == []
    assert (ROOT / CHAPTER).read_bytes() == before
