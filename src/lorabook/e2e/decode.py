"""Beam-search decoding of the E2E test set: once per unique MR, batched, resumable.

The paper decodes with beam 10, length penalty 0.9 and no repeated 4-gram (Table 11), up to
64 new tokens, stopping at end-of-text, with its own beam search (``lorabook.e2e.beam``:
the n-gram ban covers the continuation only). ``DecodeConfig.algorithm`` chooses that or
``generate``; ``DecodeConfig.precision`` runs either under bf16 autocast. Each unique MR is
decoded exactly once (630 on the test set), never once per reference row. MRs are batched
by prompt length (fewer pad tokens) and the outputs are put back in the MRs' order. Finished
batches are appended to a JSONL file, so an interrupted decode resumes where it stopped; each
line keeps its share of its batch's seconds, so the clock of a decode that spanned sessions is
the whole decode's (:func:`decoded_so_far`).

Several processes (``torchrun``, ``accelerate launch``): the batches one process would decode
(:func:`length_batches`) are dealt out in turn, batch ``k`` to process ``k % processes``, so
every batch holds the same MRs, padded the same, as in one process; each process appends to
its own file (:func:`shard_file`) and resumes from it; the outputs are gathered, in the MRs'
order, on every process.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from lorabook.e2e.beam import ContinuationNoRepeatNGram, official_beam_search
from lorabook.e2e.data import encode_prompt, separator_id
from lorabook.e2e.presets import DecodeConfig
from lorabook.precision import autocast, cached_weight_casts
from lorabook.train import process_state


def clean_output(text: str) -> str:
    """One line per output: collapse every run of whitespace (newlines included) to a space."""
    return re.sub(r"\s+", " ", text).strip()


def _read_lines(path: Path | None) -> dict[int, dict]:
    items: dict[int, dict] = {}
    if path is None or not path.exists():
        return items
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:  # a line cut by an interruption: decode it again
            continue
        items[int(item["i"])] = item
    return items


def _read_partial(path: Path | None) -> dict[int, str]:
    return {i: item["text"] for i, item in _read_lines(path).items()}


def _own_file(partial: str | Path | None) -> Path | None:
    """This process's file of decoded MRs (its shard when there are several processes)."""
    if partial is None:
        return None
    state = process_state()
    if state.num_processes > 1:
        return shard_file(Path(partial), state.process_index, state.num_processes)
    return Path(partial)


def decoded_so_far(partial: str | Path | None) -> tuple[int, float | None]:
    """How many MRs ``partial`` (this process's file) holds already, and the seconds their
    decoding took: ``None`` when a line was written without its seconds (an older file)."""
    items = _read_lines(_own_file(partial))
    seconds = [item.get("seconds") for item in items.values()]
    return len(items), None if None in seconds else float(sum(seconds))


def stop_token_ids(tokenizer, stop_strings: tuple[str, ...]) -> list[int]:
    """The token of each stop string (``"\\n\\n"`` is GPT-2's 628).

    Raises:
        ValueError: a stop string is not exactly one token of this tokenizer.
    """
    ids = []
    for text in stop_strings:
        tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(tokens) != 1:
            raise ValueError(
                f"stop string {text!r} is {len(tokens)} tokens ({tokens}) in this tokenizer; "
                "a stop string must be one token (give stop_strings=() to stop at "
                "end-of-text only)"
            )
        ids.append(tokens[0])
    return ids


def decode_batch(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    config: DecodeConfig,
    eos: int,
    pad: int,
    stops: tuple[int, ...] = (),
) -> list[list[int]]:
    """Beam-search one left-padded batch of prompts; per prompt, the generated token ids up to
    (not including) the first end token: ``eos``, or one of ``stops`` (more end tokens, e.g.
    GPT-2's ``\\n\\n``).

    ``config.algorithm == "official"``: :func:`lorabook.e2e.beam.official_beam_search`.
    ``"transformers"``: ``generate``, with the n-gram ban on the continuation only
    (:class:`~lorabook.e2e.beam.ContinuationNoRepeatNGram`, renormalised, and
    ``early_stopping="never"``), or, for ``ngram_scope="prompt+continuation"``, exactly as
    records made before these settings were decoded (``no_repeat_ngram_size`` of
    ``generate``, ``early_stopping=False``).
    """
    if config.algorithm == "official":
        return official_beam_search(
            model,
            input_ids,
            attention_mask,
            num_beams=config.num_beams,
            length_penalty=config.length_penalty,
            no_repeat_ngram_size=config.no_repeat_ngram_size,
            max_new_tokens=config.max_new_tokens,
            eos_token_ids=[eos, *stops],
        )
    width = input_ids.shape[1]
    legacy = config.ngram_scope == "prompt+continuation"
    processors = LogitsProcessorList()
    if not legacy and config.no_repeat_ngram_size > 0:
        processors.append(ContinuationNoRepeatNGram(config.no_repeat_ngram_size, width))
    out = model.generate(
        input_ids=input_ids,
        attention_mask=attention_mask,
        num_beams=config.num_beams,
        length_penalty=config.length_penalty,
        no_repeat_ngram_size=config.no_repeat_ngram_size if legacy else 0,
        logits_processor=processors,
        max_new_tokens=config.max_new_tokens,
        early_stopping=False if legacy else "never",
        do_sample=False,
        eos_token_id=[eos, *stops] if stops else eos,
        pad_token_id=pad,
    )
    ends = {eos, *stops}
    generated = []
    for row in out[:, width:].tolist():
        cut = next((i for i, token in enumerate(row) if token in ends), len(row))
        generated.append(row[:cut])
    return generated


def length_batches(lengths: dict[int, int], batch_mrs: int) -> list[list[int]]:
    """The MR indices of ``lengths`` (index → prompt tokens) sorted by length (then index)
    and cut into batches of ``batch_mrs``: the order ``generate_outputs`` decodes in."""
    order = sorted(lengths, key=lambda i: (lengths[i], i))
    return [order[start : start + batch_mrs] for start in range(0, len(order), batch_mrs)]


def shard_file(partial: Path, rank: int, processes: int) -> Path:
    """Where process ``rank`` of ``processes`` keeps its decoded MRs (``decode.jsonl`` →
    ``decode.shard0of2.jsonl``): another process count reads other files, never a mix."""
    return partial.with_name(f"{partial.stem}.shard{rank}of{processes}{partial.suffix}")


@torch.no_grad()
def generate_outputs(
    model: torch.nn.Module,
    tokenizer,
    mrs: list[str],
    config: DecodeConfig,
    partial: str | Path | None = None,
    progress: bool = True,
) -> list[str]:
    """Decode one output per MR with beam search; returns them in the order of ``mrs``.

    Args:
        model: a causal LM (``generate`` of transformers).
        tokenizer: its tokenizer (``eos_token`` is the separator and the stop token).
        mrs: unique meaning representations (raw ``slot[value]`` strings).
        config: beam size, length penalty, no-repeat n-gram, max new tokens, MRs per batch,
            algorithm, n-gram scope, precision.
        partial: a JSONL file of already decoded MRs (``{"i": index, "text": ...,
            "seconds": its share of its batch's time}``), read to resume and appended to after
            each batch (several processes: one file each, :func:`shard_file`).
        progress: show a tqdm bar (on the main process).
    """
    if len(set(mrs)) != len(mrs):
        raise ValueError("generate_outputs takes unique MRs: group the references first")
    state = process_state()
    partial = _own_file(partial)
    done = _read_partial(partial)
    eos = separator_id(tokenizer)
    stops = tuple(stop_token_ids(tokenizer, config.stop_strings))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if state.num_processes == 1:
        prompts = {i: encode_prompt(tokenizer, mr) for i, mr in enumerate(mrs) if i not in done}
        batches = length_batches({i: len(p) for i, p in prompts.items()}, config.batch_mrs)
    else:  # this process's turns of the batches of one process, less what it decoded
        prompts = {i: encode_prompt(tokenizer, mr) for i, mr in enumerate(mrs)}
        every = length_batches({i: len(p) for i, p in prompts.items()}, config.batch_mrs)
        mine = [i for b in every[state.process_index :: state.num_processes] for i in b]
        done = {i: done[i] for i in mine if i in done}
        batches = [
            [i for i in b if i not in done]
            for b in every[state.process_index :: state.num_processes]
        ]
        batches = [b for b in batches if b]
        progress = progress and state.is_main_process
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    bar = tqdm(
        total=len(done) + sum(map(len, batches)),
        initial=len(done),
        desc="decode",
        unit="MR",
        mininterval=5,
        disable=not progress,
    )
    try:
        for batch in batches:
            started = time.perf_counter()
            width = max(len(prompts[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # left padding: every prompt ends at column -1
                ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                mask[row, width - len(prompts[i]) :] = 1
            with cached_weight_casts(model), autocast(device, config.precision):
                generated = decode_batch(
                    model, ids.to(device), mask.to(device), config, eos, pad, stops
                )
            lines = []
            for row, i in enumerate(batch):
                done[i] = clean_output(tokenizer.decode(generated[row], skip_special_tokens=True))
                lines.append({"i": i, "text": done[i]})
            share = (time.perf_counter() - started) / len(batch)
            lines = [json.dumps(line | {"seconds": share}, ensure_ascii=False) for line in lines]
            if partial is not None:
                partial.parent.mkdir(parents=True, exist_ok=True)
                with partial.open("a", encoding="utf-8") as f:
                    f.write("\n".join(lines) + "\n")
            bar.update(len(batch))
    finally:
        bar.close()
        model.train(was_training)
    if state.num_processes > 1:
        from accelerate.utils import gather_object

        for part in gather_object([done]):  # every process's outputs, on every process
            done.update(part)
    return [done[i] for i in range(len(mrs))]
