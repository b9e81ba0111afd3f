"""The paper's own numbers, read from the transcription in ``../shared/paper/README.md``.

The chapters' code reads the paper's numbers from here instead of typing them: a chapter
asks for a table by its number and gets the rows as the transcription prints them (strings
such as ``"70.4±.1"``), then turns cells into numbers with :func:`value`. Each table names
its source (``"Table 3"``). Tables that the transcription writes as one paragraph
(``label: cells · label: cells``, Tables 4 and 5) are read with :func:`entries`, and any
section's text with :func:`section`.

Not every number of the paper in the book comes through here, and the exceptions are these:
the presets (``lorabook.glue.presets``: Table 9; ``lorabook.e2e.presets``: Table 11) and
Table 1's shapes and adapter budgets (``lorabook.profile``), which the package needs without
the transcription, and figures quoted in prose (the
introduction's table of headline claims, a few in the chapters), each naming the table or
section it comes from. ``tests/test_paper.py`` checks the Table 9 and Table 11 presets and
the introduction's table against the transcription.
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


def section(heading: int | str, path: str | Path | None = None) -> tuple[str, str]:
    """The ``## `` heading ``Table <heading>`` (an int) or the one that starts with
    ``heading`` (a str, e.g. ``"Headline claims"``), and the text under it up to the next
    ``## `` heading: ``(heading line without "## ", body)``.

    Raises ``KeyError`` when the transcription has no such heading.
    """
    lines = paper_readme(path).read_text(encoding="utf-8").splitlines()
    if isinstance(heading, int) or str(heading).isdigit():
        heading = f"Table {heading}"
        pattern = re.compile(rf"^##\s+{re.escape(heading)}\b")
    else:
        pattern = re.compile(rf"^##\s+{re.escape(heading)}")
    start = next((i for i, line in enumerate(lines) if pattern.match(line)), None)
    if start is None:
        raise KeyError(f"No '## {heading}' heading in {paper_readme(path)}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start][3:].strip(), "\n".join(lines[start + 1 : end]).strip()


def entries(number: int | str, path: str | Path | None = None) -> dict[str, str]:
    """A table that the transcription writes as one paragraph, ``label: cells · label:
    cells`` (Tables 4 and 5), as ``{label: cells}`` (stripped strings, as printed; the
    paragraph's closing full stop removed). Lines after the paragraph (Table 4's
    ``Spread: ...``) are not part of it.

    Raises ``KeyError`` when the heading is missing or has no such paragraph.
    """
    _, body = section(number, path)
    paragraph: list[str] = []
    for line in body.splitlines():
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
        if not line.rstrip().endswith("·"):
            break
    found: dict[str, str] = {}
    for part in " ".join(paragraph).split("·"):
        label, colon, cells = part.strip().partition(":")
        if colon and label:
            found[label.strip()] = re.sub(r"\.$", "", cells.strip())
    if not found:
        raise KeyError(f"No 'label: cells · ...' paragraph under Table {number}")
    return found


def printed_lora_counts(path: str | Path | None = None) -> list[dict]:
    """The LoRA parameter counts the paper prints, each with the model and rank it is for
    (W_q and W_v adapted in every layer): RoBERTa-base and -large at r = 8 (Table 2), GPT-2
    M and L at r = 4 (Table 3), GPT-3 175B at r = 1 and r = 8 (Table 4's two LoRA rows,
    ranks from Appendix D.4), and GPT-3 at r = 4, whose "18M" is Table 5's budget, not a
    count. Each: ``model``, ``r``, ``cell`` (as printed), ``source``, ``figure`` ("count"
    or "budget")."""
    table_2 = {row["model / method"]: row["params"] for row in table(2, path)}
    table_3 = {row["model / method"]: row["params"] for row in table(3, path)}
    table_4 = {label.rpartition(" ")[::2]: cell for label, cell in entries(4, path).items()}
    gpt3 = sorted((count for method, count in table_4 if method == "LoRA"), key=value)
    budget = re.search(r"budget of (\S+) parameters", section(5, path)[0])
    if len(gpt3) != 2 or budget is None:
        raise KeyError("Table 4 should have two LoRA rows and Table 5 a 'budget of ...' heading")
    rows = [
        ("roberta-base", 8, table_2["RoBERTa-base LoRA"], "Table 2", "count"),
        ("roberta-large", 8, table_2["RoBERTa-large LoRA"], "Table 2", "count"),
        ("gpt2-medium", 4, table_3["GPT-2 M LoRA"], "Table 3", "count"),
        ("gpt2-large", 4, table_3["GPT-2 L LoRA"], "Table 3", "count"),
        ("gpt3-175b", 1, gpt3[0], "Table 4 (r: App. D.4)", "count"),
        ("gpt3-175b", 4, budget.group(1), "Sec. 7.1, Table 5", "budget"),
        ("gpt3-175b", 8, gpt3[1], "Table 4 (r: App. D.4)", "count"),
    ]
    keys = ("model", "r", "cell", "source", "figure")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def rounds_to(count: float, cell: str) -> bool:
    """Whether ``count`` rounds to the cell's number at the cell's own precision, in the
    cell's unit (``rounds_to(393_216, "0.35M")`` is False: 0.39M)."""
    printed = value(cell)
    unit = {"M": 1e6, "K": 1e3, "B": 1e9}.get(cell.strip()[-1:], 1)
    digits = len(cell.strip().rstrip("MKB").partition(".")[2])
    return round(count / unit, digits) == round(printed / unit, digits)
