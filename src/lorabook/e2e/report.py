"""Reading E2E result records for the book: which decoding made each, and which to show.

Records made before the decoding settings existed lack them (``LEGACY_DECODE`` fills them
in), so every record can say how it was decoded; the chapter shows the records decoded as the
preset decodes now and sets the same trained tensors decoded other ways beside them.
"""

from __future__ import annotations

from pathlib import Path

from lorabook.e2e.presets import LEGACY_DECODE, e2e_preset
from lorabook.runs import find_records

NO_TRAINING = "none"


def decoding(record: dict) -> dict:
    """The record's decoding settings, with those that records made before they existed
    used (``LEGACY_DECODE``) filled in."""
    return {**LEGACY_DECODE, **record["settings"]["decode"]}


def decoding_label(record: dict) -> str:
    """How a record was decoded, in words: beam search, n-gram scope, arithmetic."""
    d = decoding(record)
    algorithm = "the paper's beam search" if d["algorithm"] == "official" else "generate()"
    scope = (
        "n-gram ban on the continuation"
        if d["ngram_scope"] == "continuation"
        else ("n-gram ban on prompt + continuation")
    )
    return f"{algorithm}, {scope}, {'bf16' if d['precision'] == 'bf16' else 'fp32'}"


def _training(record: dict) -> dict:
    """What decides the trained weights: everything but the decoding."""
    return {k: v for k, v in record["settings"].items() if k != "decode"}


def preset_records(
    results_dir: str | Path, preset: str, model: str, methods: list[str], seed: int = 0
) -> dict[str, dict]:
    """Per method, the newest scored record decoded with the preset's beam search and n-gram
    scope (as ``run_e2e`` decodes now); methods without one are left out."""
    out = {}
    for method in methods:
        now = e2e_preset(preset, "lora" if method == NO_TRAINING else method).decode
        found = [
            r
            for r in find_records(results_dir, "e2e", preset=preset, model=model, method=method)
            if r.get("seed") == seed
            and r.get("scores")
            and decoding(r)["algorithm"] == now.algorithm
            and decoding(r)["ngram_scope"] == now.ngram_scope
        ]
        if found:
            out[method] = max(found, key=lambda r: r["finished_at"])
    return out


def decoded_other_ways(results_dir: str | Path, record: dict) -> list[dict]:
    """Every scored record with the same method, model, preset, seed and training settings as
    ``record`` (so the same trained weights, or an identical retraining) and any decoding,
    ``record`` included, oldest first."""
    same = [
        r
        for r in find_records(
            results_dir,
            "e2e",
            preset=record["preset"],
            model=record["model"],
            method=record["method"],
            seed=record["seed"],
        )
        if r.get("scores") and _training(r) == _training(record)
    ]
    return sorted(same, key=lambda r: r["finished_at"])
