"""book/_ext/book_pages.py, the book's local Sphinx extension, and the book config that
loads it: parameters cells removed, each script once, MathJax from an installed package."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
import book_pages  # noqa: E402


def code_cell(*tags: str) -> dict:
    return {"cell_type": "code", "metadata": {"tags": list(tags)}, "source": "x = 1"}


def test_both_parameters_cells_are_removed_and_nothing_else():
    notebook = {
        "cells": [
            code_cell("parameters"),
            code_cell("injected-parameters"),
            code_cell("hide-input"),
            {"cell_type": "markdown", "metadata": {}, "source": "text"},
            code_cell("parameters", "remove-cell"),
        ]
    }
    assert book_pages.remove_parameters_cells(notebook) == 2
    tags = [cell["metadata"].get("tags") for cell in notebook["cells"]]
    assert tags == [
        ["parameters", "remove-cell"],
        ["injected-parameters", "remove-cell"],
        ["hide-input"],
        [],
        ["parameters", "remove-cell"],
    ]


def test_scripts_are_kept_once_in_their_first_place():
    from sphinx.builders.html._assets import _JavaScript

    thebe = "const THEBE_JS_URL = 'x'"
    scripts = [
        _JavaScript("a.js"),
        _JavaScript(None, body=thebe),
        _JavaScript("b.js", defer="defer"),
        _JavaScript("", body=thebe),  # the same inline script, added a second way
        _JavaScript("b.js"),  # other attributes: another entry
        _JavaScript("a.js", priority=800),
    ]
    kept = book_pages.unique_scripts(scripts)
    assert kept == [scripts[0], scripts[1], scripts[2], scripts[4]]


def test_book_config_loads_the_extensions_it_needs():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]
    assert "sphinx-mathjax-offline" in sphinx["extra_extensions"]
    assert importlib.util.find_spec("sphinx-mathjax-offline") is not None, (
        "pip install sphinx-mathjax-offline (the book extra)"
    )
    assert sphinx["local_extensions"] == {"book_pages": "book/_ext"}
    assert sphinx["config"]["html_context"]["default_mode"] in ("auto", "light", "dark")


def test_every_citation_has_an_entry_in_the_bibliography():
    """Chapters cite with MyST's {cite} roles; each key must be in the .bib file that
    _config.yml names, and the bibliography page must be in the table of contents (a
    missing key is only a warning, which `jupyter-book build -W` makes an error, late)."""
    import re

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    keys = set()
    for bib in config["bibtex_bibfiles"]:
        keys |= set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / bib).read_text(), re.M))
    cited = set()
    for path in [*(ROOT / "notebooks").glob("*.py"), *(ROOT / "book").glob("*.md")]:
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", path.read_text()):
            cited |= {key.strip() for key in group.split(",")}
    assert cited, "no {cite} role found"
    assert cited <= keys, f"cited but not in the bibliography: {sorted(cited - keys)}"
    assert "book/bibliography" in (ROOT / "_toc.yml").read_text()
    assert "{bibliography}" in (ROOT / "book" / "bibliography.md").read_text()
