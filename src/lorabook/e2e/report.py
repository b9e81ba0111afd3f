"""Reading E2E result records for the book: which decoding made each, and which to show.

Records made before the decoding settings existed lack them (``LEGACY_DECODE`` fills them
in), so every record can say how it was decoded; the chapter shows the records decoded as the
preset decodes now and sets the same trained tensors decoded other ways beside them.

Any preset's records are read the same way, ``full``'s (:mod:`lorabook.e2e.campaign`) too:
its sweep records decode no test set (no scores: never shown as a result), and where a seed
has a pilot record and a run of its own, the newer (the run) is shown.
The ``cpu`` preset's records, chapter 4's, were trained in fp32 before issue 17 made bf16
that preset's default (:data:`CPU_RECORDED_IN`): the chapter reads those, and a ``cpu`` run
made since in bf16 does not take their place.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

from lorabook.e2e.presets import LEGACY_DECODE, e2e_preset
from lorabook.runs import find_records

NO_TRAINING = "none"
NAMES = {
    NO_TRAINING: "untuned",
    "lora": "LoRA",
    "ft": "FT",
    "ft_top2": "FT-Top2",
    "adapter_l": "AdapterL",
    "adapter_h": "AdapterH",
    "prefix": "PreLayer",
}
"""Each method's name as Table 3 prints it (the package's method names are lower case)."""
CPU_RECORDED_IN = {"mixed_precision": "no"}
"""The arithmetic chapter 4's ``cpu`` records were trained in: fp32. The chapter's runs were
made before issue 17 made bf16 the ``cpu`` preset's default (where the CPU has it natively);
its commands pin that (``--mixed-precision no``, :func:`recorded_in`), so making them again
reproduces its records and the book finds them."""


def recorded_in(preset: str) -> dict:
    """The settings the chapter's records of ``preset`` pin beyond the preset's own (the
    ``cpu`` records' fp32, :data:`CPU_RECORDED_IN`; none for another preset)."""
    return dict(CPU_RECORDED_IN) if preset == "cpu" else {}


def trained_by_preset(record: dict) -> bool:
    """Whether the record was trained with its preset's settings (as the chapter's records
    were: :func:`recorded_in`), what a campaign job sets itself aside
    (:func:`campaign_overrides`) and the decoding aside: not a shorter check run made with
    the same preset (e.g. :data:`BF16_CHECK`'s 800 rows and 8 test MRs)."""
    method = "lora" if record["method"] == NO_TRAINING else record["method"]
    overrides = campaign_overrides(record)
    overrides.pop("lora_r", None)  # another rank (the E2E ranks stage) is not the preset's LoRA
    preset = e2e_preset(record["preset"], method).with_overrides(
        **recorded_in(record["preset"]), **overrides
    )
    return _training(record) == {k: v for k, v in preset.to_dict().items() if k != "decode"}


def decoding(record: dict) -> dict:
    """The record's decoding settings, with those that records made before they existed
    used (``LEGACY_DECODE``) filled in."""
    return {**LEGACY_DECODE, **record["settings"]["decode"]}


CAMPAIGN_SETTINGS = ("rounds", "stop_flat", "decode_test", "lora_r")


def campaign_overrides(record: dict) -> dict:
    """What a campaign job set itself (:meth:`lorabook.e2e.campaign.Job.overrides`), read
    back from its record: the learning rate, and the rounds, the pilot's rule, whether the
    test set was decoded and LoRA's rank (the ranks stage's) where the record has them. With
    the record's preset, this gives the record's settings (the learning rate is the preset's
    own in records made outside a campaign)."""
    settings = record["settings"]
    found = {k: settings[k] for k in CAMPAIGN_SETTINGS if k in settings}
    return {"lr": settings["train"]["lr"], **found}


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
    scope (as ``run_e2e`` decodes now), trained with the preset's settings as the chapter's
    records were (:func:`trained_by_preset`: the ``cpu`` records in fp32, no check runs);
    methods without one are left out."""
    out = {}
    for method in methods:
        now = e2e_preset(preset, "lora" if method == NO_TRAINING else method).decode
        found = [
            r
            for r in find_records(results_dir, "e2e", preset=preset, model=model, method=method)
            if r.get("seed") == seed
            and r.get("scores")
            and trained_by_preset(r)
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


def paper_scores(record: dict) -> dict | None:
    """The record's scores as the paper reports them (``measure_scores.py -p``), ×100 for
    BLEU, METEOR and ROUGE-L as in Table 3; ``None`` if the record has none yet
    (``lorabook.e2e.experiment.add_scores`` adds them)."""
    scores = record.get("scores_paper")
    return None if scores is None else as_table3(scores)


def as_table3(scores: dict) -> dict:
    """Scores in Table 3's units: BLEU, METEOR, ROUGE-L ×100; NIST and CIDEr as they are."""
    return {m: 100 * v if m in ("BLEU", "METEOR", "ROUGE_L") else v for m, v in scores.items()}


def rank_rows(results_dir: str | Path, model: str = "smollm2") -> list[dict]:
    """Table 18's analogue from the campaign's ranks stage
    (:func:`lorabook.e2e.campaign.ranks_jobs`): per finished and scored rank, ``r``, the
    trainable parameters, the dev loss after its round (Table 18's "val loss") and the five
    test metrics of the paper's scoring in Table 18's units (BLEU ×100, the others as the
    script prints them; Table 3 prints METEOR and ROUGE-L ×100 too). Ranks still to run are
    left out; before LoRA's rate is picked there are none."""
    from lorabook.cli import SettingsError
    from lorabook.e2e import campaign

    try:
        jobs = campaign.ranks_jobs()
    except SettingsError:
        return []
    rows = []
    for job in jobs:
        record = job.plan(results_dir, model).paths.finished()
        if record is None or not record.get("scores_paper"):
            continue
        rows.append(
            {
                "r": job.lora_r,
                "trainable": record["params"]["trainable"],
                "dev loss": record["epochs"][-1]["dev_loss"],
                **record["scores_paper"],
                "BLEU": 100 * record["scores_paper"]["BLEU"],
            }
        )
    return rows


def first_round_losses(results_dir: str | Path, model: str = "smollm2") -> dict[int, float]:
    """LoRA's dev loss after its first round in each seed of the campaign's runs stage, by
    seed: the ranks stage's settings at r = 4 (seed 0's first round is the ranks stage's
    r = 4 run, trained again there). How far the seed alone moves a one-round run is the
    scale a rank's dev loss in :func:`rank_rows` is read against (the ranks stage trains
    one seed). Seeds not finished are left out; before the picks and pilots there are none."""
    from lorabook.cli import SettingsError
    from lorabook.e2e import campaign

    try:
        jobs = campaign.runs_jobs(results_dir, model)
    except SettingsError:
        return {}
    losses = {}
    for job in jobs:
        record = job.plan(results_dir, model).paths.finished() if job.method == "lora" else None
        if record is not None:
            losses[job.seed] = record["epochs"][0]["dev_loss"]
    return losses


def outputs_of(record: dict, root: str | Path) -> list[str]:
    """The decoded outputs a record kept (one per test MR, in the MRs' order)."""
    from lorabook.e2e.metrics import read_outputs

    return read_outputs((Path(root) / record["_path"]).with_suffix("") / "outputs.txt")


def error_row(mrs: list[str], outputs: list[str]) -> dict:
    """One row of the chapter's error table: outputs with each kind of error (and how many
    slots were dropped), from :func:`lorabook.e2e.errors.error_counts`."""
    from lorabook.e2e.errors import error_counts

    counts = error_counts(mrs, outputs)
    return {
        "empty outputs": counts["empty"]["outputs"],
        "outputs with a glued word": counts["glued"]["outputs"],
        "outputs dropping a slot": counts["dropped"]["outputs"],
        "slots dropped": f"{counts['dropped']['count']} / {counts['slots']}",
        "outputs inventing a name": counts["invented"]["outputs"],
    }


def error_table(
    mrs: list[str], references: list[list[str]], outputs: dict[str, list[str]]
) -> dict[str, dict]:
    """The chapter's error table: per system (name -> its outputs, one per MR) an
    :func:`error_row`, its mean words and the share of its texts that are distinct (MRs that
    differ only in a slot the system drops get one text), and the human references counted
    by the same rules (each reference against its own MR: the calibration row)."""
    return {
        name: {
            **error_row(sources, texts),
            "mean words": sum(len(t.split()) for t in texts) / len(texts),
            "distinct texts (%)": 100 * len(set(texts)) / len(texts),
        }
        for name, (sources, texts) in _beside_references(mrs, references, outputs).items()
    }


def _beside_references(
    mrs: list[str], references: list[list[str]], outputs: dict[str, list[str]]
) -> dict[str, tuple[list[str], list[str]]]:
    """Each system's (MRs, texts), and the human references' (each against its own MR)."""
    ref_mrs = [mr for mr, refs in zip(mrs, references, strict=True) for _ in refs]
    ref_texts = [ref for refs in references for ref in refs]
    return {
        **{name: (mrs, texts) for name, texts in outputs.items()},
        "human references": (ref_mrs, ref_texts),
    }


def slot_drop_table(
    mrs: list[str], references: list[list[str]], outputs: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    """Per system and for the human references: the share (%) of the MRs holding each slot
    whose text drops it (:func:`lorabook.e2e.errors.error_counts`' ``dropped_by_slot``)."""
    from lorabook.e2e.errors import error_counts

    table = {}
    for name, (sources, texts) in _beside_references(mrs, references, outputs).items():
        by_slot = error_counts(sources, texts)["dropped_by_slot"]
        table[name] = {slot: 100 * dropped / held for slot, (dropped, held) in by_slot.items()}
    return table


def _corpora(
    mrs: list[str],
    references: list[list[str]],
    outputs: dict[str, list[str]],
    training: list[tuple[str, str]] = (),
) -> dict[str, tuple[list[str], list[str]]]:
    """:func:`_beside_references`, and the training references' (MRs, texts) when given."""
    corpora = _beside_references(mrs, references, outputs)
    if training:
        corpora["training references"] = ([m for m, _ in training], [r for _, r in training])
    return corpora


@lru_cache(maxsize=8)
def _frames_of(mrs: tuple[str, ...], texts: tuple[str, ...]) -> Counter[str]:
    """:func:`lorabook.e2e.errors.frame_counts` of one corpus, counted once a process
    (chapter 4.9's two tables both read the 42,061 training references)."""
    from lorabook.e2e.errors import frame_counts

    return frame_counts(list(mrs), list(texts))


def _frames(corpus: tuple[list[str], list[str]]) -> Counter[str]:
    """:func:`_frames_of` of a (MRs, texts) corpus, a copy the caller may change."""
    return Counter(_frames_of(tuple(corpus[0]), tuple(corpus[1])))


def _table_of(counts: dict[str, Counter[str]]) -> dict[str, dict]:
    """:func:`frame_table`'s rows from each corpus's opening counts."""
    table = {}
    for name, frames in counts.items():
        frame, n = frames.most_common(1)[0]
        table[name] = {
            "most frequent opening": frame,
            "texts": n,
            "share %": 100 * n / frames.total(),
        }
    return table


def frame_table(
    mrs: list[str],
    references: list[list[str]],
    outputs: dict[str, list[str]],
    training: list[tuple[str, str]] = (),
) -> dict[str, dict]:
    """Per system, for the human test references and (given ``training``: (MR, reference)
    pairs) the training references: the most frequent delexicalised first sentence
    (:func:`lorabook.e2e.errors.frame_counts`), how many texts open with it and their
    share (%)."""
    corpora = _corpora(mrs, references, outputs, training)
    return _table_of({name: _frames(corpus) for name, corpus in corpora.items()})


def generations(
    mrs: list[str],
    references: list[list[str]],
    outputs: dict[str, list[str]],
    indices: tuple[int, ...] = (0, 100, 250, 400, 600),
) -> str:
    """Markdown: for each MR of ``indices``, each system's output and the first two human
    references."""
    blocks = []
    for i in indices:
        lines = [f"**MR {i}**: `{mrs[i]}`", ""]
        lines += [f"- *{name}*: {outs[i] or '(empty)'}" for name, outs in outputs.items()]
        lines += [f"- *reference*: {ref}" for ref in references[i][:2]]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


BF16_CHECK = {"train_examples": 800, "test_mrs": 8}
"""The short E2E runs that check what bf16 costs: the ``cpu`` preset on 800 training rows
(100 steps), decoding only 8 test MRs, in fp32 (``--mixed-precision no``,
:data:`CPU_RECORDED_IN`) and in bf16 (``--mixed-precision bf16``: the preset's default where
the CPU has native bf16)."""


def bf16_dev_losses(
    results_dir: str | Path, method: str = "lora", model: str = "smollm2", preset: str = "cpu"
) -> dict[str, dict | None]:
    """The final dev loss and s/step of the two :data:`BF16_CHECK` runs, by precision
    (``"no"``, ``"bf16"``); ``None`` for a run not made yet (its command is in the chapter)."""
    from lorabook.e2e.experiment import run_config
    from lorabook.runs import config_key

    out: dict[str, dict | None] = {}
    sides = {"no": CPU_RECORDED_IN, "bf16": {"mixed_precision": "bf16"}}
    for precision, arithmetic in sides.items():
        settings = e2e_preset(preset, method).with_overrides(**BF16_CHECK, **arithmetic)
        key = config_key(run_config(method, model, preset, settings, 0))
        found = find_records(results_dir, "e2e", preset=preset, model=model, config_key=key)
        out[precision] = (
            {
                "dev_loss": found[0]["epochs"][-1]["dev_loss"],
                "seconds_per_step": found[0]["data"]["seconds_per_step"],
                "record": Path(found[0]["_path"]).name,
            }
            if found
            else None
        )
    return out


def unique_test_mrs(data_dir: str | Path | None = None) -> list[str]:
    """The 630 unique test MRs in the order the records' outputs follow."""
    from lorabook.e2e.data import group_references, load_e2e

    return group_references(load_e2e("test", data_dir))[0]


def bleu_in_both_forms(
    outputs: list[str],
    mrs: list[str],
    references: list[list[str]],
    data_dir: str | Path | None = None,
) -> dict:
    """BLEU (the paper's variant, ``measure_scores.py -p``) of the same outputs in the two data
    forms: as written, against the CSV's references (``csv``), and put in the paper's tokenised
    form (:func:`~lorabook.e2e.paper_format.to_paper_text`) against the paper's own test
    references (``paper``), matched to ``mrs`` (the CSV's test MRs, in the outputs' order)
    through :func:`~lorabook.e2e.paper_format.to_paper_mr`. ×100, as Table 3 prints it."""
    from lorabook.e2e.data import group_references
    from lorabook.e2e.metrics import pymteval_bleu_nist
    from lorabook.e2e.paper_format import load_paper_e2e, to_paper_mr, to_paper_text

    paper_mrs, paper_refs = group_references(load_paper_e2e("test", data_dir))
    by_mr = dict(zip(paper_mrs, paper_refs, strict=True))
    missing = [mr for mr in mrs if to_paper_mr(mr) not in by_mr]
    if missing:
        raise ValueError(
            f"{len(missing)} test MRs have no counterpart in the paper's test file, e.g. "
            f"{missing[0]!r}: pass the CSV's test MRs in the outputs' order"
        )
    csv_bleu, _ = pymteval_bleu_nist(outputs, references)
    paper_bleu, _ = pymteval_bleu_nist(
        [to_paper_text(o) for o in outputs], [by_mr[to_paper_mr(mr)] for mr in mrs]
    )
    return {"csv": 100 * csv_bleu, "paper": 100 * paper_bleu}


def most_uniform(
    mrs: list[str],
    references: list[list[str]],
    outputs: dict[str, list[str]],
    training: list[tuple[str, str]],
) -> dict:
    """The system whose most frequent opening (:func:`frame_table`) fills the largest share
    of its outputs: ``system``, that ``frame``, how many of its ``outputs`` open with it
    (``opening``), how many test references (``in_test`` of ``test_texts``) and training
    references (``in_training`` of ``training_texts``) do, the ``slot`` it drops most
    (``dropped`` outputs) and how many of those open with the frame
    (``dropped_when_opening``)."""
    from lorabook.e2e.errors import delexicalise, first_sentence, output_errors

    corpora = _corpora(mrs, references, outputs, training)
    openings = {  # each system's opening, output by output
        name: [first_sentence(delexicalise(m, t)) for m, t in zip(mrs, texts, strict=True)]
        for name, texts in outputs.items()
    }
    counts = {name: Counter(found) for name, found in openings.items()}
    counts["human references"] = _frames(corpora["human references"])
    counts["training references"] = _frames(corpora["training references"])
    frames = _table_of(counts)
    system = max(outputs, key=lambda name: frames[name]["share %"])
    frame, texts = frames[system]["most frequent opening"], outputs[system]
    opens = [found == frame for found in openings[system]]
    drops = [output_errors(m, t)["dropped"] for m, t in zip(mrs, texts, strict=True)]
    by_slot = Counter(slot for dropped in drops for slot in dropped)
    slot, dropped = by_slot.most_common(1)[0] if by_slot else (None, 0)
    return {
        "system": system,
        "frame": frame,
        "outputs": len(texts),
        "opening": sum(opens),
        "in_test": counts["human references"][frame],
        "test_texts": len(corpora["human references"][1]),
        "in_training": counts["training references"][frame],
        "training_texts": len(training),
        "slot": slot,
        "dropped": dropped,
        "dropped_when_opening": sum(slot in d for d, o in zip(drops, opens, strict=True) if o),
    }
