"""E2E data: the official CSVs (or the hub), MR linearisation, training examples, references.

The files (``<data>/e2e/{trainset,devset,testset_w_refs}.csv``, columns ``mr,ref``) have one
row per (meaning representation, human reference) pair: an MR appears on several rows, one
per reference. Training uses every row; decoding and scoring use each *unique* MR once, with
all its references, in the order in which the MRs first appear (the order of the official
test vector and of the e2e-metrics layout).

The example format follows the paper's code (microsoft/LoRA ``examples/NLG``): the MR as the
context, a separator token, the reference, end-of-text::

    name : The Vaults | eatType : pub | near : Café Adriatic<sep> The Vaults pub near ...<eos>

GPT-2 has one special token, ``<|endoftext|>``, used there both as separator and as end; here
both are the tokenizer's ``eos_token`` (GPT-2: ``<|endoftext|>``; SmolLM2: ``<|im_end|>``).
The loss covers the reference tokens and the final end-of-text only (``labels = -100`` on the
context and the separator).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from lorabook.cli import UserError
from lorabook.paths import data_dir as default_data_dir

SPLITS = {"train": "trainset.csv", "validation": "devset.csv", "test": "testset_w_refs.csv"}
SPLIT_ALIASES = {"train": "train", "dev": "validation", "validation": "validation", "test": "test"}
# Rows (header excluded) of the official v1.0.0 files; a loader that disagrees has a bug.
EXPECTED_ROWS = {"train": 42_061, "validation": 4_672, "test": 4_693}
HUB_DATASET = "tuetschek/e2e_nlg"
IGNORE_INDEX = -100
T = TypeVar("T")

# The official measure_scores.py repairs these mis-encoded characters in references it reads
# from CSV files (none occurs in the v1.0.0 files; kept so any CSV scores as officially).
CSV_REPAIRS = (("Ł", "£"), ("Â£", "£"), ("Ã©", "é"), ("ã©", "é"))

_SLOT = re.compile(r"\s*([^\[\],]+?)\s*\[(.*?)\]\s*")


class E2EFormatError(UserError, ValueError):
    """An E2E CSV does not have the expected layout (message names the file and line)."""


@dataclass(frozen=True)
class E2ERow:
    """One row of an E2E CSV: a meaning representation and one human reference."""

    mr: str
    ref: str


def e2e_file(split: str, data_dir: str | Path | None = None) -> Path:
    """``<data>/e2e/<file>`` of ``split`` (train, validation/dev, test)."""
    if split not in SPLIT_ALIASES:
        raise ValueError(f"Unknown E2E split {split!r}: choose one of {', '.join(SPLIT_ALIASES)}")
    return Path(default_data_dir(data_dir)) / "e2e" / SPLITS[SPLIT_ALIASES[split]]


def read_csv(path: str | Path) -> list[E2ERow]:
    """Read an official E2E CSV (header ``mr,ref``, quoted fields) into rows.

    Raises ``E2EFormatError`` naming the file and line for a wrong header, a row without two
    fields, an empty MR, or bytes that are not UTF-8; ``FileNotFoundError`` with the path.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"E2E file not found: {path} (set LORABOOK_DATA or --data-dir)")
    rows: list[E2ERow] = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None or [h.strip().lower() for h in header[:2]] != ["mr", "ref"]:
                raise E2EFormatError(
                    f"{path}, line 1: needs columns 'mr' and 'ref' (header 'mr,ref'), got "
                    f"{header}; give an E2E CSV such as testset_w_refs.csv"
                )
            for fields in reader:
                line = reader.line_num
                if len(fields) != 2:
                    raise E2EFormatError(
                        f"{path}, line {line}: expected 2 fields (mr, ref), got {len(fields)}"
                    )
                if not fields[0].strip():
                    raise E2EFormatError(f"{path}, line {line}: empty MR")
                rows.append(E2ERow(fields[0], fields[1]))
        except UnicodeDecodeError as err:
            raise E2EFormatError(
                f"{path}, near line {reader.line_num + 1}: not UTF-8 ({err.reason} at byte "
                f"{err.start} of the chunk being read)"
            ) from err
    if not rows:
        raise E2EFormatError(f"{path}: header only, no rows")
    return rows


def load_e2e(split: str, data_dir: str | Path | None = None, source: str = "local") -> list[E2ERow]:
    """The rows of one split, from the offline CSVs (``source="local"``) or the hub.

    The hub copy (``datasets.load_dataset("tuetschek/e2e_nlg")``, columns
    ``meaning_representation``, ``human_reference``) is for users with internet access.
    """
    if source == "hub":
        import datasets

        ds = datasets.load_dataset(HUB_DATASET, split=SPLIT_ALIASES[split])
        cols = ds[:]
        return [
            E2ERow(m, r)
            for m, r in zip(cols["meaning_representation"], cols["human_reference"], strict=True)
        ]
    if source != "local":
        raise ValueError(f"source must be 'local' or 'hub', got {source!r}")
    return read_csv(e2e_file(split, data_dir))


def group_references(rows: list[E2ERow]) -> tuple[list[str], list[list[str]]]:
    """Unique MRs in order of first appearance, and the references of each (file order).

    MRs and references are stripped, and references get the official script's repairs of
    mis-encoded characters (``CSV_REPAIRS``), so they are what the official scorer compares.
    """
    refs: dict[str, list[str]] = {}
    for row in rows:
        refs.setdefault(row.mr.strip(), []).append(official_reference(row.ref))
    return list(refs), list(refs.values())


def official_reference(text: str) -> str:
    """A reference as the official scorer reads it from a CSV: stripped, encoding repaired."""
    text = text.strip()
    for bad, good in CSV_REPAIRS:
        text = text.replace(bad, good)
    return text


def parse_mr(mr: str) -> list[tuple[str, str]]:
    """``name[The Vaults], eatType[pub]`` → ``[("name", "The Vaults"), ("eatType", "pub")]``.

    Returns ``[]`` for a string that is not a comma-separated list of ``slot[value]``.
    """
    slots = _SLOT.findall(mr)
    if not slots or "".join(f"{k}[{v}]" for k, v in slots) != re.sub(r"\s*,\s*", "", mr.strip()):
        return []
    return slots


def linearise_mr(mr: str) -> str:
    """``name[The Vaults], eatType[pub]`` → ``name : The Vaults | eatType : pub``.

    The paper's code reads E2E in this ``slot : value | ...`` form. A string that is not a
    comma-separated list of ``slot[value]`` (such as an MR already in that form) is returned
    stripped, unchanged.
    """
    slots = parse_mr(mr)
    if not slots:
        return mr.strip()
    return " | ".join(f"{k} : {v}" for k, v in slots)


def encode_prompt(tokenizer, mr: str) -> list[int]:
    """Token ids of the context: the linearised MR, then the separator (``eos_token``)."""
    return tokenizer(linearise_mr(mr), add_special_tokens=False)["input_ids"] + [
        separator_id(tokenizer)
    ]


def separator_id(tokenizer) -> int:
    """The separator and end-of-text token: the tokenizer's ``eos_token_id``."""
    if tokenizer.eos_token_id is None:
        raise ValueError("This tokenizer has no eos_token: E2E needs one as separator and end")
    return tokenizer.eos_token_id


def encode_example(tokenizer, row: E2ERow, max_length: int) -> dict[str, list[int]]:
    """``input_ids`` = context + separator + " " + reference + eos; ``labels`` masks the context.

    Examples longer than ``max_length`` lose the end of their reference (never the context).
    """
    context = encode_prompt(tokenizer, row.mr)
    target = tokenizer(" " + row.ref.strip(), add_special_tokens=False)["input_ids"]
    target = target + [separator_id(tokenizer)]
    if len(context) >= max_length:
        raise ValueError(
            f"max_length={max_length} leaves no room for the reference: the MR alone takes "
            f"{len(context)} tokens ({row.mr!r}); raise max_length"
        )
    ids = (context + target)[:max_length]
    labels = ([IGNORE_INDEX] * len(context) + target)[:max_length]
    return {"input_ids": ids, "labels": labels}


class E2ETrainDataset(torch.utils.data.Dataset):
    """Tokenised training examples (a list of ``encode_example`` dicts)."""

    def __init__(self, rows: list[E2ERow], tokenizer, max_length: int) -> None:
        self.examples = [encode_example(tokenizer, r, max_length) for r in rows]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.examples[i]

    def lengths(self) -> list[int]:
        """Tokens (context + reference) of each example."""
        return [len(e["input_ids"]) for e in self.examples]

    def tokens(self) -> int:
        """Total tokens (context + reference) over the examples."""
        return sum(self.lengths())


def collate_causal(pad_id: int):
    """A collate function: right-pad ``input_ids`` (``pad_id``) and ``labels`` (-100) to the
    longest example of the batch, with the matching ``attention_mask``."""

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        n = max(len(e["input_ids"]) for e in batch)
        ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), n), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(batch), n), dtype=torch.long)
        for i, e in enumerate(batch):
            k = len(e["input_ids"])
            ids[i, :k] = torch.tensor(e["input_ids"])
            labels[i, :k] = torch.tensor(e["labels"])
            mask[i, :k] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}

    return collate


def subset_rows(rows: list[T], n: int | None, seed: int) -> list[T]:
    """A seeded random subset of ``n`` rows (all rows if ``n`` is None), in file order.

    Any list works the same way (e.g. the unique dev MRs with their references)."""
    if n is None or n >= len(rows):
        return list(rows)
    if n < 1:
        raise ValueError(f"a subset needs at least 1 row, got {n}")
    g = torch.Generator().manual_seed(seed)
    keep = sorted(torch.randperm(len(rows), generator=g)[:n].tolist())
    return [rows[i] for i in keep]
