"""Sphinx extension (local to this book, loaded by _config.yml): how the pages are put
together, where jupyter-book's own settings cannot say it.

* **Parameters cells are not shown.** papermill leaves two in every executed chapter: the
  notebook's own (tag ``parameters``, the defaults) and the one it injects (tag
  ``injected-parameters``, the values of this build). The chapter's prose and the book's
  introduction document ``mode``, so both get jupyter-book's ``remove-cell`` tag as the
  notebook is read. papermill cannot tag the cell it injects, and myst-nb removes cells by
  their tags only, so the tag is added here rather than in each notebook's source.
* **Each script once.** sphinx-thebe's configuration script is added to a page twice
  (jupyter-book 1 registers it after the builder has read the registry), and its
  ``const THEBE_JS_URL`` then fails on the second declaration, an error in the browser's
  console of every page. Identical script entries are kept once.
"""

from __future__ import annotations

import json

HIDDEN_TAGS = ("parameters", "injected-parameters")
REMOVE = "remove-cell"


def remove_parameters_cells(notebook: dict) -> int:
    """Tag the parameters cells of ``notebook`` (nbformat 4 as a dict) ``remove-cell``;
    return how many cells were tagged."""
    tagged = 0
    for cell in notebook.get("cells", []):
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if any(tag in tags for tag in HIDDEN_TAGS) and REMOVE not in tags:
            tags.append(REMOVE)
            tagged += 1
    return tagged


def _source_read(app, docname: str, source: list[str]) -> None:
    if not app.env.doc2path(docname).endswith(".ipynb"):
        return
    notebook = json.loads(source[0])
    if remove_parameters_cells(notebook):
        source[0] = json.dumps(notebook)


def unique_scripts(scripts: list) -> list:
    """``scripts`` without repeats (same file or inline body, same attributes), each kept
    at its first place whatever its priority."""
    seen, kept = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        filename = getattr(script, "filename", script) or ""  # an inline script: None or ""
        key = (str(filename), tuple(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    return kept


def _page_context(app, pagename, templatename, context, doctree) -> None:
    if "script_files" in context:  # in place: the builder's list, which others may hold
        context["script_files"][:] = unique_scripts(context["script_files"])


def setup(app):
    app.connect("source-read", _source_read)
    app.connect("html-page-context", _page_context, priority=900)  # after the others
    return {"parallel_read_safe": True, "parallel_write_safe": True}
