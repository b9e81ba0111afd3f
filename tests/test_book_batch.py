"""`python -m lorabook.book`: the whole book in batch, a line per chapter, failures named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lorabook import book

CHAPTER = """# %% [markdown]
# # A chapter

# %% tags=["parameters"]
mode = "quick"

# %%
value = {body}
print(mode, value)
"""


def write_chapter(root: Path, name: str, body: str) -> None:
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    (root / "notebooks" / f"{name}.py").write_text(CHAPTER.format(body=body))


def test_chapters_are_the_notebooks_in_order_and_unknown_names_are_refused(tmp_path):
    for name in ("02_b", "01_a"):
        write_chapter(tmp_path, name, "1")
    assert book.chapters(tmp_path) == ["01_a", "02_b"]
    assert book.chapters(tmp_path, ["02_b"]) == ["02_b"]
    with pytest.raises(ValueError, match="no chapter 03_c; the chapters: 01_a, 02_b"):
        book.chapters(tmp_path, ["03_c"])


@pytest.mark.slow  # `make check` (CI) runs it; `make test` leaves it out
def test_a_line_per_chapter_and_a_failure_names_its_cell(tmp_path):
    write_chapter(tmp_path, "01_fine", "6 * 7")
    write_chapter(tmp_path, "02_broken", "1 / 0")
    done = subprocess.run(
        [sys.executable, "-m", "lorabook.book", "--jobs", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line[:2].isdigit()}
    assert lines["01_fine"].endswith(" s  ok")
    expected = "failed: cell In [3] `value = 1 / 0`: ZeroDivisionError: division by zero"
    assert expected in lines["02_broken"]  # In [2] is the parameters papermill injects
    assert "1 of 2 chapters ok" in done.stdout and "failed: 02_broken" in done.stderr
    executed = tmp_path / "book" / "_executed" / "01_fine.ipynb"
    assert "quick 42" in executed.read_text()  # executed, with the mode parameter injected


def test_a_cell_that_writes_to_stderr_fails_its_chapter_naming_the_cell():
    def notebook(*outputs: dict) -> dict:
        cell = {"cell_type": "code", "execution_count": 4, "source": "\nshow(table)\n"}
        return {"cells": [{"cell_type": "markdown", "source": "# A"}, {**cell, "outputs": outputs}]}

    printed = {"output_type": "stream", "name": "stdout", "text": "a caption\n"}
    shown = {"output_type": "display_data", "data": {"text/plain": "a table"}}
    assert book.stderr_output(notebook(printed, shown)) is None
    warned = {
        "output_type": "stream",
        "name": "stderr",
        "text": ["/tmp/ipykernel_1/2.py:35: Pandas4Warning: 'str' is not supported\n", "  x\n"],
    }
    assert book.stderr_output(notebook(printed, warned)) == (
        "cell In [4] `show(table)`: wrote to stderr: /tmp/ipykernel_1/2.py:35: Pandas4Warning: "
        "'str' is not supported"
    )


def test_the_line_format():
    ok = {"name": "01_theory", "seconds": 12.34, "ok": True, "error": None}
    assert book.line(ok) == "01_theory               12.3 s  ok"
    bad = {**ok, "ok": False, "error": "cell 3: KeyError: 'x'"}
    assert book.line(bad).endswith("failed: cell 3: KeyError: 'x'")


def test_each_kernel_computes_on_its_share_of_the_cores_unless_the_user_said(monkeypatch):
    monkeypatch.setattr(book.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert [book.kernel_threads(jobs) for jobs in (1, 2, 3)] == [2, 1, 1]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = book.kernel_env(jobs=2)
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert book.kernel_env(jobs=1)["OMP_NUM_THREADS"] == "2"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's choice stands
    assert book.kernel_env(jobs=2)["OMP_NUM_THREADS"] == "3"


def test_a_chapter_runs_with_the_threads_it_was_given(tmp_path):
    write_chapter(tmp_path, "01_threads", "__import__('torch').get_num_threads()")
    env = {k: v for k, v in book.os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run(
        [sys.executable, "-m", "lorabook.book", "--jobs", "64"],  # more jobs than cores: 1 each
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    executed = tmp_path / "book" / "_executed" / "01_threads.ipynb"
    assert "quick 1" in executed.read_text()
