"""Per-module table of the last ``mutmut run`` (read from ``mutants/``); run from the repo root.

    module  mutants  killed  survived  message  equivalent  other  killed%

``killed`` counts timeouts too. Of the survivors, ``message`` only change the text of an
error or warning message (a string inside ``raise`` or a ``warn(...)``/``log(...)`` call),
``equivalent`` are listed in mutation_equivalents.toml (the same behaviour, with why), and
``other`` are printed by name (``mutmut show NAME`` gives the diff): tests to write, or
entries to add to mutation_equivalents.toml with a reason. Exit status 1 if a module kills
fewer than TARGET percent of its mutants. See docs/mutation.md.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import libcst as cst
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import (
    read_functions_from_index,
    read_mutant_function,
    read_mutants_module,
    read_original_function,
)
from mutmut.stats import status_by_exit_code

MODULES = [
    "src/lorabook/layers.py",
    "src/lorabook/inject.py",
    "src/lorabook/adapters.py",
    "src/lorabook/glue/metrics.py",
    "src/lorabook/train.py",
]
TARGET = 90.0

# Survivors that compute the same thing, each with why: see the file's header.
EQUIVALENT = tomllib.loads((Path(__file__).parent / "mutation_equivalents.toml").read_text())[
    "equivalent"
]


def _strings_blanked(tree: ast.AST) -> str:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)


def _in_message(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Raise):
            return True
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("warn", "log"):
                return True
    return False


def _functions(name: str, path: str) -> tuple[str, str]:
    """The original and the mutated function's source."""
    functions = read_functions_from_index(name, path)
    if functions is None:
        module = read_mutants_module(path)
        functions = (read_original_function(module, name), read_mutant_function(module, name))
    return tuple(cst.Module([f]).code for f in functions)


def is_equivalent(name: str, path: str) -> bool:
    """The mutant is one of EQUIVALENT (same module, function and mutated text)."""
    orig, mutant = (code.splitlines() for code in _functions(name, path))
    added = " | ".join(line.strip() for line in mutant if line not in orig)
    if not added:  # the mutant only deletes lines: named by them, each with a leading "-"
        added = " | ".join("-" + line.strip() for line in orig if line not in mutant)
    key = name.rpartition("__mutmut_")[0]  # lorabook.mod.x_func or lorabook.mod.xǁClassǁmethod
    function = key.replace("ǁ", ".").rpartition(".")[2].removeprefix("x_")
    module = path.removeprefix("src/lorabook/").removesuffix(".py")
    return any(
        (e["module"], e["function"], e["mutant"]) == (module, function, added) for e in EQUIVALENT
    )


def is_message_text(name: str, path: str) -> bool:
    """The mutant changes only string constants, all inside an error or warning message."""
    try:
        orig, mutant = (ast.parse(code) for code in _functions(name, path))
    except SyntaxError:
        return False
    if _strings_blanked(ast.parse(ast.unparse(orig))) != _strings_blanked(
        ast.parse(ast.unparse(mutant))
    ):
        return False  # not only strings changed
    parents = {c: p for p in ast.walk(orig) for c in ast.iter_child_nodes(p)}
    changed = [
        a
        for a, b in zip(ast.walk(orig), ast.walk(mutant), strict=True)
        if isinstance(a, ast.Constant) and a.value != getattr(b, "value", None)
    ]
    return bool(changed) and all(_in_message(a, parents) for a in changed)


def main() -> int:
    if not Path("mutants").is_dir():
        print("No mutants/ folder: run `make mutate` (or `mutmut run`) first")
        return 1
    header = f"{'module':26} {'mutants':>7} {'killed':>6} {'survived':>8} {'message':>7} "
    print(header + f"{'equivalent':>10} {'other':>5} {'killed%':>7}")
    failing, details, ran = [], [], 0
    for path in MODULES:
        data = SourceFileMutationData(path=path)
        data.load()
        status = {k: status_by_exit_code[v] for k, v in data.exit_code_by_key.items()}
        if all(v == "not checked" for v in status.values()):  # e.g. a run of one module
            print(f"{path.removeprefix('src/'):26} {len(status):>7}  not run")
            continue
        ran += 1
        killed = sum(s in ("killed", "timeout") for s in status.values())
        survived = [k for k, s in status.items() if s not in ("killed", "timeout")]
        message = [k for k in survived if is_message_text(k, path)]
        equivalent = [k for k in survived if k not in message and is_equivalent(k, path)]
        other = [k for k in survived if k not in message and k not in equivalent]
        score = 100.0 * killed / len(status) if status else 0.0
        failing += [path] if score < TARGET else []
        details += [(k, status[k]) for k in other]
        module = path.removeprefix("src/")
        print(
            f"{module:26} {len(status):>7} {killed:>6} {len(survived):>8} {len(message):>7} "
            f"{len(equivalent):>10} {len(other):>5} {score:>6.1f}%"
        )
    print("\nOther survivors: neither message text nor listed (`mutmut show NAME`: the diff):")
    for name, state in details:
        print(f"  {name}  [{state}]")
    if not ran:
        print("\nNo mutant was checked yet: run `make mutate`")
        return 1
    print(f"\nTarget {TARGET:.0f}%: " + (f"below on {failing}" if failing else "met"))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
