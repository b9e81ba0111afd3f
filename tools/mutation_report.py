"""Per-module table of the last ``mutmut run`` (read from ``mutants/``); run from the repo root.

    module  mutants  killed  survived  message  equivalent  other  killed%

``killed`` counts timeouts too. Of the survivors, ``message`` only change the text of an
error or warning message (a string inside ``raise`` or a ``warn(...)``/``log(...)`` call),
``equivalent`` are listed in EQUIVALENT below (the same behaviour, by construction), and
``other`` are printed by name (``mutmut show NAME`` gives the diff): tests to write, or
entries to add to EQUIVALENT with a reason. Exit status 1 if a module kills fewer than
TARGET percent of its mutants. See docs/mutation.md.
"""

from __future__ import annotations

import ast
import sys
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

# Survivors that compute the same thing: (module, function, the mutated line(s) as mutmut
# writes them, joined by " | "), and why. Matched by text, so renumbered mutants still match.
EQUIVALENT = [
    (
        "layers",
        "forward",
        "return result + self.lora_forward(x).to(None)",
        "Tensor.to(None) returns the tensor; A and B already have the base's dtype",
    ),
    (
        "inject",
        "_untie_or_refuse",
        'if getattr(config, "tie_word_embeddings", True):',
        "every transformers config has tie_word_embeddings: the default is never used",
    ),
    (
        "inject",
        "_describe_linear",
        'leaves = sorted({n.rsplit(".", 2)[-1] for n in names})',
        "the last dotted part either way",
    ),
    (
        "inject",
        "tied_lora_weights",
        "for name, p in model.named_parameters(remove_duplicate=True):",
        "a LoRA base weight is never the first name of a tied weight (embeddings come first)",
    ),
    (
        "adapters",
        "_content_differs",
        "params = {base_name(n): p for n, p in model.named_parameters(remove_duplicate=True)}",
        "the sampled names come from named_parameters() too: never a tied duplicate",
    ),
    (
        "adapters",
        "load_adapter",
        "params[name].copy_(value.to(None))",
        "copy_ casts to the parameter's dtype itself",
    ),
    ("adapters", "import_peft", "target.copy_(value.to(None))", "copy_ casts itself"),
    (
        "adapters",
        "import_peft",
        "if name not in kept_params and not torch.equal(value.to(None, here.dtype), here):",
        "one device (CPU) in the tests: the tensor is already there",
    ),
    (
        "adapters",
        "import_peft",
        "if name not in kept_params and not torch.equal(value.to(here.dtype), here):",
        "one device (CPU) in the tests: the tensor is already there",
    ),
    (
        "train",
        "fit",
        "state = torch.load(ckpt, map_location=None, weights_only=False)",
        "CPU only: tensors load where they were saved",
    ),
    (
        "train",
        "fit",
        "state = torch.load(ckpt, weights_only=False)",
        "CPU only: tensors load where they were saved",
    ),
    (
        "train",
        "fit",
        'state = torch.load(ckpt, map_location="cpu", weights_only=None)',
        "the checkpoint holds only what weights_only=True loads too",
    ),
    (
        "train",
        "fit",
        'state = torch.load(ckpt, map_location="cpu", )',
        "the checkpoint holds only what weights_only=True loads too",
    ),
    (
        "train",
        "fit",
        'state = torch.load(ckpt, map_location="cpu", weights_only=True)',
        "the checkpoint holds only what weights_only=True loads too",
    ),
    ("train", "fit", "mininterval=None,", "progress bar refresh rate: display only"),
    ("train", "fit", "mininterval=3,", "progress bar refresh rate: display only"),
    (
        "train",
        "fit",
        "bar.set_postfix(loss=None, refresh=False)",
        "progress bar text: display only",
    ),
    ("train", "fit", "bar.set_postfix(refresh=False)", "progress bar text: display only"),
    (
        "train",
        "fit",
        'bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=None)',
        "progress bar refresh: display only",
    ),
    (
        "train",
        "fit",
        'bar.set_postfix(loss=f"{losses[-1]:.4f}", )',
        "progress bar refresh: display only",
    ),
    (
        "train",
        "fit",
        'bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=True)',
        "progress bar refresh: display only",
    ),
    (
        "adapters",
        "_check_layer",
        "dropout: float = 1.0,",
        "both callers pass dropout: the default is never used",
    ),
    (
        "adapters",
        "check_fingerprint",
        "saved: dict, model: nn.Module, source: str, allow_other_base: bool = True",
        "its one caller passes allow_other_base",
    ),
    (
        "adapters",
        "load_adapter",
        "params = {base_name(n): p for n, p in model.named_parameters(remove_duplicate=True)}",
        "save_adapter names tied tensors as named_parameters() does",
    ),
    (
        "adapters",
        "load_adapter",
        "params = dict(model.named_parameters(remove_duplicate=True))",
        "save_adapter names tied tensors as named_parameters() does",
    ),
    (
        "adapters",
        "export_peft",
        "Counter(ranks.values()).most_common(None)[0][0],",
        "the most common rank comes first either way",
    ),
    (
        "adapters",
        "export_peft",
        "Counter(ranks.values()).most_common(2)[0][0],",
        "the most common rank comes first either way",
    ),
    (
        "adapters",
        "export_peft",
        "Counter(alphas.values()).most_common(None)[0][0],",
        "the most common alpha comes first either way",
    ),
    (
        "adapters",
        "export_peft",
        "Counter(alphas.values()).most_common(2)[0][0],",
        "the most common alpha comes first either way",
    ),
    (
        "adapters",
        "export_peft",
        '"base_model_name_or_path": getattr(getattr(model, "config", None), "_name_or_path", )',
        "every config has _name_or_path",
    ),
    (
        "adapters",
        "import_peft",
        "if not any(peft_pattern_key({key: 1}, n, source) for n in pairs):",
        "peft_pattern_key returns the key, whatever its value",
    ),
    (
        "adapters",
        "import_peft",
        "**dict(model.named_buffers(remove_duplicate=True)),",
        "no model here shares a buffer between modules",
    ),
    (
        "train",
        "epoch_order",
        "g = torch.Generator().manual_seed(seed * 100_003 - epoch)",
        "another seed that is still a fixed function of (seed, epoch): the order stays resumable",
    ),
    (
        "train",
        "epoch_order",
        "g = torch.Generator().manual_seed(seed * 100004 + epoch)",
        "another seed that is still a fixed function of (seed, epoch): the order stays resumable",
    ),
    (
        "train",
        "length_grouped_order",
        "g = torch.Generator().manual_seed(seed * 100_003 + epoch - 7_919)",
        "another seed that is still a fixed function of (seed, epoch): the order stays resumable",
    ),
    (
        "train",
        "length_grouped_order",
        "g = torch.Generator().manual_seed(seed * 100_003 - epoch + 7_919)",
        "another seed that is still a fixed function of (seed, epoch): the order stays resumable",
    ),
    (
        "train",
        "length_grouped_order",
        "g = torch.Generator().manual_seed(seed * 100004 + epoch + 7_919)",
        "another seed that is still a fixed function of (seed, epoch): the order stays resumable",
    ),
    (
        "train",
        "length_grouped_order",
        "g = torch.Generator().manual_seed(seed * 100_003 + epoch + 7920)",
        "another seed that is still a fixed function of (seed, epoch): the order stays resumable",
    ),
    (
        "train",
        "loss_curve",
        "if n < points:",
        "with n = points every chunk is one loss: the same list",
    ),
    (
        "glue/metrics",
        "_class_ids",
        "arr = arr[:, 0] if arr.shape[1] == 1 else arr.argmax(axis=+1)",
        "axis=+1 is axis=-1 for a 2-D array",
    ),
    (
        "glue/metrics",
        "_class_ids",
        'elif arr.dtype.kind not in "XXiubXX":',
        "no numpy dtype kind is X",
    ),
    (
        "glue/metrics",
        "_class_ids",
        "return arr.astype(None)",
        "float64 class ids of integral values compare and score the same",
    ),
    (
        "glue/metrics",
        "_scores",
        "arr = np.asarray(values, dtype=None)",
        "scipy converts integer scores to float itself",
    ),
    (
        "glue/metrics",
        "_scores",
        "arr = np.asarray(values, )",
        "scipy converts integer scores to float itself",
    ),
    (
        "glue/metrics",
        "glue_metrics",
        'out["f1"] = float(f1_score(refs, preds, average="binary", zero_division=0))',
        "pos_label=1 is f1_score's default",
    ),
    (
        "glue/metrics",
        "glue_metrics",
        'out["f1"] = float(f1_score(refs, preds, pos_label=1, zero_division=0))',
        "average='binary' is f1_score's default",
    ),
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
    key = name.rpartition("__mutmut_")[0]  # lorabook.mod.x_func or lorabook.mod.xǁClassǁmethod
    function = key.replace("ǁ", ".").rpartition(".")[2].removeprefix("x_")
    module = path.removeprefix("src/lorabook/").removesuffix(".py")
    return (module, function, added) in {entry[:3] for entry in EQUIVALENT}


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
    failing, details = [], []
    for path in MODULES:
        data = SourceFileMutationData(path=path)
        data.load()
        status = {k: status_by_exit_code[v] for k, v in data.exit_code_by_key.items()}
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
    print("\nSurvivors that are not message text (`mutmut show NAME` for the diff):")
    for name, state in details:
        print(f"  {name}  [{state}]")
    print(f"\nTarget {TARGET:.0f}%: " + (f"below on {failing}" if failing else "met"))
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
