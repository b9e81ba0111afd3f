"""Tiny randomly initialised models of the paper's architectures (no weights needed), and
the E2E fixtures: a tokenizer trained in a second, a tiny GPT-2 folder, a small data folder."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
import transformers as T

from lorabook.e2e.data import E2ERow, group_references, linearise_mr, load_e2e

ARCHS = ("bert", "roberta", "gpt2", "llama")
VOCAB, SEQ = 99, 7
# Where the paper puts LoRA for each architecture, as apply_lora arguments (GPT-2: q and v
# thirds of the fused c_attn), and which module stays trainable beside it.
PAPER = {
    "bert": {"targets": ["query", "value"]},
    "roberta": {"targets": ["query", "value"]},
    "gpt2": {"targets": ["c_attn"], "fused": {"c_attn": (True, False, True)}},
    "llama": {"targets": ["q_proj", "v_proj"]},
}
HEAD = {"bert": "classifier", "roberta": "classifier", "gpt2": None, "llama": None}


def tiny_model(arch: str, hidden: int = 32, num_labels: int = 3, seed: int = 0) -> torch.nn.Module:
    """A 2-layer model of ``arch``; the same arguments always give the same weights."""
    torch.manual_seed(seed)
    common = {"vocab_size": VOCAB, "max_position_embeddings": 64}
    if arch == "bert":
        cfg = T.BertConfig(
            hidden_size=hidden,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            num_labels=num_labels,
            **common,
        )
        model = T.BertForSequenceClassification(cfg)
    elif arch == "roberta":
        cfg = T.RobertaConfig(
            hidden_size=hidden,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
            num_labels=num_labels,
            pad_token_id=1,
            **common,
        )
        model = T.RobertaForSequenceClassification(cfg)
    elif arch == "gpt2":
        cfg = T.GPT2Config(
            vocab_size=VOCAB,
            n_embd=hidden,
            n_layer=2,
            n_head=2,
            n_positions=64,
            bos_token_id=0,
            eos_token_id=0,
        )
        model = T.GPT2LMHeadModel(cfg)
    elif arch == "llama":
        cfg = T.LlamaConfig(
            hidden_size=hidden,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            bos_token_id=0,
            eos_token_id=0,
            **common,
        )
        model = T.LlamaForCausalLM(cfg)
    else:
        raise ValueError(arch)
    return model.eval()


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def randomize_lora(model: torch.nn.Module, seed: int = 1) -> None:
    """Give every B a non-zero value so that LoRA actually changes the output."""
    from lorabook import lora_layers

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(model).values():
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=g) * 0.1)


@pytest.fixture
def native_bf16(monkeypatch) -> None:
    """This process as on a CPU with native bf16, where the campaigns start (their runs are
    bf16: ``precision.require_native_bf16``); the tests that drive a campaign's command line
    use it, so that they run on any CPU."""
    from lorabook import precision

    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("amx_bf16",))


@pytest.fixture
def ids() -> torch.Tensor:
    return torch.randint(2, VOCAB, (2, SEQ), generator=torch.Generator().manual_seed(0))


def model_snapshot(model: torch.nn.Module) -> dict:
    """Everything a failed call must leave as it was: every parameter and buffer (values and
    requires_grad, tied names included), the type of every module, LoRA's merged flags and
    kept modules."""
    params = dict(model.named_parameters(remove_duplicate=False))
    return {
        "params": {n: p.detach().clone() for n, p in params.items()},
        "buffers": {n: b.detach().clone() for n, b in model.named_buffers(remove_duplicate=False)},
        "requires_grad": {n: p.requires_grad for n, p in params.items()},
        "types": {n: type(m) for n, m in model.named_modules()},
        "merged": {n: m.merged for n, m in model.named_modules() if hasattr(m, "merged")},
        "kept_modules": getattr(model, "lora_kept_modules", None),
    }


def assert_unchanged(before: dict, model: torch.nn.Module) -> None:
    """Assert that ``model`` is exactly as ``model_snapshot`` saw it."""
    after = model_snapshot(model)
    names = before["types"].keys() | after["types"].keys()
    changed_types = sorted(n for n in names if before["types"].get(n) is not after["types"].get(n))
    assert not changed_types, f"modules added, removed or replaced: {changed_types[:5]}"
    for what in ("params", "buffers"):
        assert after[what].keys() == before[what].keys(), f"{what} renamed, added or removed"
        moved = [n for n, t in before[what].items() if not torch.equal(t, after[what][n])]
        assert not moved, f"{what} changed: {moved[:5]}"
    flipped = [n for n, g in before["requires_grad"].items() if after["requires_grad"][n] != g]
    assert not flipped, f"requires_grad changed: {flipped[:5]}"
    assert after["merged"] == before["merged"]
    assert after["kept_modules"] == before["kept_modules"]


def glue_command_plan(argv: list[str]):
    """The run that ``python -m lorabook.glue <argv>`` plans (its first task, method, seed)."""
    from lorabook.glue.__main__ import build_parser, overrides_from
    from lorabook.glue.experiment import plan_glue_run

    args = build_parser().parse_args(argv)
    return plan_glue_run(
        args.task[0],
        args.method[0],
        args.model,
        args.preset,
        args.seed[0],
        args.results_dir,
        overrides_from(args),
    )


# --- E2E ------------------------------------------------------------------------------------

EOS = "<|endoftext|>"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    """A GPT-2-style byte-level BPE tokenizer trained in a second on E2E text (no download)."""
    from tokenizers import ByteLevelBPETokenizer

    rows = load_e2e("train")[:1000]
    bpe = ByteLevelBPETokenizer()
    text = [linearise_mr(r.mr) for r in rows] + [r.ref for r in rows]
    bpe.train_from_iterator(text, vocab_size=400, special_tokens=[EOS], show_progress=False)
    return T.PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, bos_token=EOS)


def tiny_gpt2(tokenizer, layers: int = 2, seed: int = 0) -> T.GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = T.GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=layers,
        n_head=2,
        n_positions=256,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return T.GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def model_folder(tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tiny_gpt2(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_csv(path: Path, rows: list[E2ERow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["mr", "ref"])
        w.writerows([r.mr, r.ref] for r in rows)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """A data folder with the first rows of each official E2E file (test: 6 unique MRs)."""
    root = tmp_path_factory.mktemp("data")
    test = load_e2e("test")
    mrs, _ = group_references(test)
    write_csv(root / "e2e" / "trainset.csv", load_e2e("train")[:40])
    write_csv(root / "e2e" / "devset.csv", load_e2e("validation")[:12])
    write_csv(root / "e2e" / "testset_w_refs.csv", [r for r in test if r.mr in set(mrs[:6])])
    return root


def peft_adapter(base: torch.nn.Module, directory, **config) -> torch.nn.Module:
    """peft adapts ``base``, every trainable tensor moves (B and kept heads too), peft saves."""
    import peft

    model = peft.get_peft_model(base, peft.LoraConfig(lora_dropout=0.0, **config))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=g) * 0.1)
    model.eval().save_pretrained(directory)
    return model
