"""Run the whole book in batch: every chapter executed with papermill, a line per chapter.

    python -m lorabook.book                      # quick mode, two chapters at a time
    python -m lorabook.book --mode paper --jobs 1
    python -m lorabook.book --only 04_e2e 07_verdict
    python -m lorabook.book --html               # then build the HTML book (jupyter-book)

Each chapter (``notebooks/<name>.py``) is converted by jupytext into
``book/_executed/<name>.ipynb`` and executed there by papermill with the ``mode`` parameter,
in the kernel environment ``make book`` uses: the venv's kernel first on ``JUPYTER_PATH``,
``LORABOOK_VENV`` set to it, ``LORABOOK_DATA`` to the data folder. It prints one line per
chapter, ``name  seconds  ok``, or ``name  seconds  failed:`` with the failing cell (``In
[N]`` as Jupyter numbers it, the injected parameters counted, and its first line), the
error and its message (a cell that wrote to stderr, a warning, fails its chapter too); and
exits with status 1 when any chapter failed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MODES = ("quick", "paper")
EXECUTED = Path("book") / "_executed"


def chapters(root: Path, only: Sequence[str] = ()) -> list[str]:
    """The chapters' names (``notebooks/*.py`` stems, in order), or those of ``only``.

    Raises:
        ValueError: a name in ``only`` that is not a chapter (the message lists them).
    """
    found = sorted(p.stem for p in (root / "notebooks").glob("*.py"))
    unknown = [name for name in only if name not in found]
    if unknown:
        raise ValueError(f"no chapter {', '.join(unknown)}; the chapters: {', '.join(found)}")
    return [name for name in found if not only or name in only]


def kernel_env(data_dir: str | Path | None = None, jobs: int = 1) -> dict[str, str]:
    """The environment ``make book`` gives the kernels: this venv's kernelspec first, the
    venv named for the chapters' check, the data folder (``$LORABOOK_DATA``, else
    ``../shared/data`` beside the book), and the threads each of ``jobs`` kernels computes
    with (:func:`kernel_threads`)."""
    from lorabook.campaign import worker_env

    venv = Path(sys.prefix)
    data = data_dir or os.environ.get("LORABOOK_DATA") or Path("..") / "shared" / "data"
    base = dict(os.environ) if "OMP_NUM_THREADS" in os.environ else worker_env(kernel_threads(jobs))
    return {
        **base,
        "JUPYTER_PATH": str(venv / "share" / "jupyter"),
        "LORABOOK_VENV": str(venv),
        "LORABOOK_DATA": str(Path(data).resolve()),
    }


def kernel_threads(jobs: int) -> int:
    """The cores this process may use, shared out among ``jobs`` kernels (at least one each).

    torch computes on every core by default, so two chapters at a time on two cores would
    run four threads on two cores, and a thread that waits for its siblings waits for their
    turn on a core. A user's ``OMP_NUM_THREADS`` is left as it is (:func:`kernel_env`)."""
    from lorabook.campaign import available_cores

    return max(1, available_cores() // max(1, jobs))


def execute_one(root: Path, name: str, mode: str) -> dict:
    """Convert and execute one chapter in this process; ``{"name", "seconds", "ok",
    "error"}`` (error: the failing cell's execution count and first line, the exception's
    name and message; or what stopped the conversion)."""
    import jupytext
    import papermill
    from papermill.exceptions import PapermillExecutionError

    start = time.perf_counter()
    target = root / EXECUTED / f"{name}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    error = None
    try:
        notebook = jupytext.read(root / "notebooks" / f"{name}.py")
        notebook.metadata["kernelspec"] = {
            "display_name": "Python 3",
            "language": "python",
            "name": "python3",
        }
        jupytext.write(notebook, target)
        papermill.execute_notebook(
            str(target),
            str(target),
            parameters={"mode": mode},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(root),
        )
    except PapermillExecutionError as err:
        message = str(err.evalue).strip().splitlines()[0][:200] if err.evalue else ""
        first = next((x for x in str(err.source).splitlines() if x.strip()), "")[:80]
        error = f"cell In [{err.exec_count}] `{first}`: {err.ename}: {message}"
    except Exception as err:  # noqa: BLE001 - any other failure is the chapter's line too
        error = f"{type(err).__name__}: {str(err).strip()[:200]}"
    else:
        error = stderr_output(json.loads(target.read_text()))
    return {
        "name": name,
        "seconds": time.perf_counter() - start,
        "ok": error is None,
        "error": error,
    }


def stderr_output(notebook: dict) -> str | None:
    """The first cell of an executed notebook that wrote to stderr, as a failure line (``cell
    In [N] `first line`: wrote to stderr: <its first line>``), or ``None``. A chapter's page
    shows what a cell writes to stderr: a library's warning there (with the build machine's
    paths) is a fault of the chapter, silenced at its source, not a page for a reader."""
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                text = "".join(output.get("text", ""))
                said = next((x.strip() for x in text.splitlines() if x.strip()), "")[:200]
                source = "".join(cell.get("source", ""))
                first = next((x for x in source.splitlines() if x.strip()), "")[:80]
                return f"cell In [{cell.get('execution_count')}] `{first}`: wrote to stderr: {said}"
    return None


def line(result: dict) -> str:
    """``name  seconds  ok`` or ``name  seconds  failed: <error>``."""
    status = "ok" if result["ok"] else f"failed: {result['error']}"
    return f"{result['name']:<20} {result['seconds']:7.1f} s  {status}"


def run_book(
    root: str | Path = ".",
    mode: str = "quick",
    jobs: int = 2,
    only: Sequence[str] = (),
    data_dir: str | Path | None = None,
) -> list[dict]:
    """Execute the chapters, ``jobs`` at a time, each in its own process (its own kernel),
    printing a line as each finishes; returns the results in chapter order."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    root = Path(root).resolve()
    names = chapters(root, only)
    env = kernel_env(data_dir, jobs)

    def one(name: str) -> dict:
        command = [sys.executable, "-m", "lorabook.book", "--one", name, "--mode", mode]
        done = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, check=False
        )
        lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
        if lines:
            result = json.loads(lines[-1])
        else:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
            result = {"name": name, "seconds": 0.0, "ok": False, "error": tail}
        print(line(result), flush=True)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, names))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lorabook.book``: see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m lorabook.book",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", default="quick", choices=MODES)
    parser.add_argument("--jobs", type=int, default=2, help="chapters executed at a time")
    parser.add_argument("--only", nargs="+", default=(), help="these chapters (names)")
    parser.add_argument("--data-dir", default=None, help="default: $LORABOOK_DATA")
    parser.add_argument("--html", action="store_true", help="then build the HTML book")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a worker's chapter
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(execute_one(Path.cwd(), args.one, args.mode)), flush=True)
        return 0
    try:
        results = run_book(".", args.mode, args.jobs, args.only, args.data_dir)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = [r["name"] for r in results if not r["ok"]]
    total = sum(r["seconds"] for r in results)
    print(f"{len(results) - len(failed)} of {len(results)} chapters ok, {total:.0f} s in all")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.html:  # as `make book`: warnings are errors
        jupyter_book = Path(sys.prefix) / "bin" / "jupyter-book"
        build = [str(jupyter_book), "build", ".", "-W", "-n", "--keep-going"]
        return subprocess.run(build, check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
