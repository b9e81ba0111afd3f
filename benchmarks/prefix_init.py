"""Benchmark: where PreLayer's prefix starts, measured as the untrained model's E2E dev loss.

    python benchmarks/prefix_init.py

peft starts a prefix at N(0, 1) vectors; Li & Liang start one they train directly at the
model's own keys and values of real words (:func:`lorabook.methods.real_word_prefix`). Before
any training, the dev loss (per reference token, no smoothing) of SmolLM2 on a fixed subset
of dev rows in the ``full`` preset's form: without a prefix, with peft's random prefix (seed
0), and with prefixes started from a few texts, the first of them
:data:`lorabook.e2e.presets.PREFIX_INIT`. fp32, one thread: about 5 minutes on this machine.
Writes ``results/bench/prefix-init-<device>.json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch
from accelerate import Accelerator
from transformers import AutoTokenizer

from lorabook.e2e.data import E2ETrainDataset, collate_causal, separator_id, subset_rows
from lorabook.e2e.experiment import load_causal_lm, load_rows, make_dev_loss, training_rows
from lorabook.e2e.presets import PREFIX_INIT, e2e_preset
from lorabook.methods import prefix_token_ids, prepare_causal_lm
from lorabook.models import resolve_model
from lorabook.profile import device_kind, write_record
from lorabook.quiet import quiet

TEXTS = (PREFIX_INIT, "table-to-text: describe the restaurant.", " ".join(["elephant"] * 8))


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and write the record; print one line per start."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dev-rows", type=int, default=64)
    parser.add_argument("--out", default=None, help="default: results/bench/prefix-init-<dev>.json")
    args = parser.parse_args(argv)
    settings = e2e_preset("full", "prefix")
    folder = resolve_model("smollm2")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = subset_rows(load_rows("validation", settings, None), args.dev_rows, 0)
    dataset = E2ETrainDataset(training_rows(rows, settings), tokenizer, settings.max_length)
    dev_loss = make_dev_loss(dataset, collate_causal(separator_id(tokenizer)), 16)
    accelerator = Accelerator(cpu=device_kind() == "cpu")

    def loss_with(init: str | None) -> float:
        torch.manual_seed(0)
        with quiet():
            model = load_causal_lm(folder, settings.backbone_dropout)
        if init is not None:
            ids = None if init == "random" else prefix_token_ids(tokenizer, init, 8)
            model, _ = prepare_causal_lm(model, "prefix", prefix_length=8, prefix_init_ids=ids)
        with torch.no_grad():
            return dev_loss(model.eval(), accelerator)["dev_loss"]

    starts = {"no prefix": None, "random": "random", **{f"words: {t}": t for t in TEXTS}}
    losses = {}
    for name, init in starts.items():
        losses[name] = loss_with(init)
        print(f"{name:55s} dev loss {losses[name]:.4f}", flush=True)
    out = args.out or f"results/bench/prefix-init-{device_kind()}.json"
    write_record(
        out,
        "prefix_init",
        {"model": "smollm2", "dev_rows": args.dev_rows, "prefix_length": 8, "precision": "fp32"},
        dev_loss=losses,
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
