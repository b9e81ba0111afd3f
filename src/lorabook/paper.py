"""The paper's own numbers, read from the transcription in ``../shared/paper/README.md``.

The book never types a number of the paper: a chapter asks for a table by its number and
gets the rows as the transcription prints them (strings such as ``"70.4±.1"``), then turns
cells into numbers with :func:`value`. Each table names its source (``"Table 3"``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lorabook.paths import REPO_ROOT

ENV_VAR = "LORABOOK_PAPER"
DEFAULT_README = REPO_ROOT.parent / "shared" / "paper" / "README.md"


def paper_readme(path: str | Path | None = None) -> Path:
    """The transcription: ``path``, else ``$LORABOOK_PAPER``, else ``../shared/paper/README.md``."""
    chosen = Path(path or os.environ.get(ENV_VAR) or DEFAULT_README).expanduser()
    if not chosen.is_file():
        raise FileNotFoundError(
            f"The paper's numbers are not at {chosen}: set {ENV_VAR} to the README.md of "
            "shared/paper (the transcription of the LoRA paper's tables)"
        )
    return chosen


def table(number: int | str, path: str | Path | None = None) -> list[dict[str, str]]:
    """The first markdown table under the heading ``## Table <number>``, as a list of rows.

    Each row maps the header's cells to the row's cells (stripped strings, as printed).
    Raises ``KeyError`` when the transcription has no such heading or no table below it.
    """
    lines = paper_readme(path).read_text(encoding="utf-8").splitlines()
    heading = re.compile(rf"^##\s+Table\s+{re.escape(str(number))}\b")
    start = next((i for i, line in enumerate(lines) if heading.match(line)), None)
    if start is None:
        raise KeyError(f"No '## Table {number}' in {paper_readme(path)}")
    return markdown_table(lines, start + 1, f"'## Table {number}' in {paper_readme(path)}")


def markdown_table(lines: list[str], start: int = 0, where: str = "") -> list[dict[str, str]]:
    """The first markdown table at or after line ``start``, before the next ``## `` heading,
    as a list of rows mapping header cells to row cells (stripped strings)."""
    rows: list[list[str]] = []
    for line in lines[start:]:
        if line.startswith("## ") and rows == []:
            break
        if line.startswith("|"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif rows:
            break
    if len(rows) < 3:
        raise KeyError(f"No markdown table in {where or 'the text'}")
    header, body = rows[0], rows[2:]  # rows[1] is the |---| line
    return [dict(zip(header, row, strict=True)) for row in body]


def value(cell: str) -> float:
    """The number in a cell: ``"70.4±.1"`` → 70.4, ``"354.92M"`` → 354.92e6, ``".4565"`` →
    0.4565, ``"1482.0±1.0 (+2.2%)"`` → 1482.0."""
    match = re.match(r"\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*([MKB]?)", cell.replace(",", ""))
    if match is None:
        raise ValueError(f"No number in the cell {cell!r}")
    scale = {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[match.group(2)]
    return float(match.group(1)) * scale


def spread(cell: str) -> float | None:
    """The ± part of a cell (``"70.4±.1"`` → 0.1), or ``None`` when it has none."""
    match = re.search(r"±\s*(\d*\.?\d+)", cell)
    return float(match.group(1)) if match else None
