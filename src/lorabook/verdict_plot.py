"""The verdict figure: one dot per claim of the paper, in the column of its verdict. Chapter 7
draws it from the records; the README shows a copy, ``book/figures/verdict.png``, written by
``python -m lorabook.verdict_plot`` and held to today's records by a test (the PNG carries the
verdicts it was drawn from in its metadata).
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Sequence
from pathlib import Path

from lorabook.io import atomic_write
from lorabook.paths import REPO_ROOT
from lorabook.verdict import VERDICTS, Finding, findings

README_FIGURE = REPO_ROOT / "book" / "figures" / "verdict.png"
COLOURS = dict(zip(VERDICTS, ["#1a9850", "#91cf60", "#d73027", "#999999", "#fee08b"], strict=True))
METADATA_KEY = "Description"


def summary(found: Sequence[Finding]) -> dict[str, str]:
    """Each claim's verdict, by key: what the figure shows, and what its PNG remembers."""
    return {f.key: f.verdict for f in found}


def verdict_figure(found: Sequence[Finding]):  # -> matplotlib.figure.Figure
    """One row per claim (in the table's order), one column per verdict, a dot where they meet."""
    from matplotlib.figure import Figure  # no pyplot: no global state, works headless

    fig = Figure(figsize=(8, 0.35 * len(found) + 1.2))
    ax = fig.subplots()
    for row, f in enumerate(found):
        column = VERDICTS.index(f.verdict)
        ax.scatter(column, row, s=180, color=COLOURS[f.verdict], edgecolors="black", zorder=3)
    ax.set_yticks(range(len(found)), [f.key for f in found])
    ax.set_xticks(range(len(VERDICTS)), VERDICTS, rotation=20)
    ax.set_xlim(-0.5, len(VERDICTS) - 0.5)
    ax.set_ylim(len(found) - 0.5, -0.5)  # the first claim on top
    ax.grid(True, alpha=0.3)
    ax.set_title("The paper's claims: this book's verdicts")
    fig.tight_layout()
    return fig


def png(found: Sequence[Finding]) -> bytes:
    """The figure as PNG bytes whose metadata holds the verdicts drawn (:func:`summary`, as
    JSON): what chapter 7 displays and :func:`write` saves."""
    buffer = io.BytesIO()
    verdict_figure(found).savefig(
        buffer, format="png", dpi=100, metadata={METADATA_KEY: json.dumps(summary(found))}
    )
    return buffer.getvalue()


def write(
    path: str | Path = README_FIGURE, results_dir: str | Path = REPO_ROOT / "results"
) -> Path:
    """Draw the figure from the records in ``results_dir`` and write it to ``path``."""
    data = png(findings(results_dir))
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def drawn(path: str | Path = README_FIGURE) -> dict[str, str]:
    """The verdicts a PNG written by :func:`write` was drawn from."""
    from PIL import Image

    with Image.open(path) as image:
        text = image.text.get(METADATA_KEY)
    if text is None:
        raise ValueError(f"{path} has no {METADATA_KEY!r} metadata: write it with {__name__}")
    return json.loads(text)


def main(argv: list[str] | None = None) -> None:
    """``python -m lorabook.verdict_plot [PATH]``: write the README's figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default=str(README_FIGURE))
    parser.add_argument("--results-dir", default=str(REPO_ROOT / "results"))
    args = parser.parse_args(argv)
    print(write(args.path, args.results_dir))


if __name__ == "__main__":
    main()
