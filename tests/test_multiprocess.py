"""Two real processes (``torchrun --nproc_per_node 2``, gloo on the CPU) on tiny models.

A GLUE run (tiny BERT) in two processes writes one record, from the main process, of a run
of its own (the effective batch is per-process batch × processes); it trains what one
process trains with the same global batch (to float tolerance), counts every dev example
once (21 of them, not a multiple of 2), and resumes after an interruption. An E2E smoke run
(tiny GPT-2) trains, decodes its test MRs shared out between the processes, and writes one
record whose outputs equal one process's line for line. Skipped, with the reason, where
torchrun cannot start two gloo processes. Each launch takes 15-70 s here (two imports of
torch and transformers on two busy cores), so the GLUE tests share one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import transformers as T
from safetensors.torch import load_file
from torchrun_cli import SIGTERM_AFTER, skip_unless_torchrun_starts, torchrun

from lorabook.e2e.experiment import run_e2e
from lorabook.glue.experiment import glue_config, plan_glue_run, record_config, run_glue
from lorabook.models import resolve_model
from lorabook.runs import config_key
from lorabook.train import CHECKPOINT, TrainConfig, fit

EVAL = 21  # dev examples: not a multiple of the 2 processes
ARGS = ["--task", "rte", "--method", "lora", "--preset", "quick", "--epochs", "2"]
ARGS += ["--train-examples", "32", "--eval-examples", str(EVAL), "--max-length", "32"]
ARGS += ["--group-by-length", "--no-progress"]  # steps of similar length, as the cpu preset


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT (hidden 32, dropout off) with MiniLM's tokenizer, saved to a folder."""
    folder = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = T.AutoTokenizer.from_pretrained(resolve_model("minilm"))
    torch.manual_seed(0)
    config = T.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    T.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def two_processes(results: Path, model: Path, *extra: str, env: dict | None = None):
    """``torchrun --nproc_per_node 2 -m lorabook.glue ARGS --batch-size 16`` (a global batch:
    8 a process)."""
    args = [*ARGS, "--batch-size", "16", "--model", str(model), "--results-dir", str(results)]
    return torchrun("glue", [*args, *extra], env=env)


@pytest.fixture(scope="module")
def two_process_run(tiny_bert, tmp_path_factory):
    """A two-process run stopped by SIGTERM after epoch 1 (of 2), then rerun: it resumes.
    (One run serves every test: each launch costs two imports of torch and transformers.)"""
    results = tmp_path_factory.mktemp("results-2p")
    stopped = two_processes(results, tiny_bert, env={SIGTERM_AFTER: "1"})
    if "checkpoint written after epoch 1" not in stopped.stdout:
        skip_unless_torchrun_starts()  # skips with the reason if torchrun cannot start
        pytest.fail(f"the two-process run did not stop as asked:\n{stopped.stdout[-3000:]}")
    after_stop = {
        "records": list((results / "glue").rglob("*.json")),
        "checkpoints": list((results / "_scratch").rglob(CHECKPOINT)),
        "returncode": stopped.returncode,
    }
    done = two_processes(results, tiny_bert)
    if done.returncode != 0:
        pytest.fail(f"the resumed two-process run failed:\n{done.stdout[-3000:]}")
    return results, done.stdout, after_stop


def only_record(results: Path) -> tuple[Path, dict]:
    records = sorted((results / "glue").rglob("*.json"))
    assert len(records) == 1, records
    return records[0], json.loads(records[0].read_text())


@pytest.mark.slow  # `make check` (CI) runs it; `make test` leaves it out
def test_two_processes_write_one_record_of_a_run_of_their_own(two_process_run, tiny_bert):
    results, out, _ = two_process_run
    path, record = only_record(results)
    assert out.count("record written") == 1 and out.count("epoch 2:") == 1  # the main process
    assert not any((results / "_scratch").iterdir())  # scratch removed, by one process
    assert [p.name for p in path.with_suffix("").iterdir()] == ["trainable.safetensors"]
    assert record["processes"] == 2
    assert record["effective_batch"] == {
        "per_process": 8,
        "processes": 2,
        "grad_accum": 1,
        "examples": 16,
    }
    assert [e["steps"] for e in record["epochs"]] == [2, 2]  # 32 examples, 16 a step
    memory = record["peak_memory"]  # every process's peak, gathered
    assert len(memory["per_process"]) == 2 and memory["per_process"][0] == memory["bytes"]
    assert memory["bytes_all_processes"] == sum(memory["per_process"])
    assert path.name.endswith(f"-{config_key(record_config(record))}.json")
    overrides = {"epochs": 2, "train_examples": 32, "eval_examples": EVAL, "max_length": 32}
    one = plan_glue_run("rte", "lora", str(tiny_bert), "quick", 0, results, {**overrides})
    two = plan_glue_run("rte", "lora", str(tiny_bert), "quick", 0, results, overrides, 2)
    assert one.paths.key != two.paths.key  # 2 processes: another run, another name


def test_energy_of_one_process_is_its_own_and_none_when_not_measured():
    from lorabook.train import energy_of_processes

    assert energy_of_processes(5.0) == {"energy_joules": 5.0, "energy_joules_per_process": [5.0]}
    assert energy_of_processes(None) == {}  # a CPU: no power counter


def test_a_global_batch_is_shared_by_the_processes_and_a_process_batch_is_each_ones():
    from lorabook.cli import SettingsError
    from lorabook.train import effective_batch, per_process

    config = TrainConfig(batch_size=16)
    assert per_process(config, "global", 1) is config
    assert per_process(config, "global", 2).batch_size == 8
    assert per_process(config, "process", 2) is config
    assert effective_batch(per_process(config, "global", 4), 4)["examples"] == 16
    assert effective_batch(per_process(config, "process", 4), 4)["examples"] == 64
    with pytest.raises(ValueError, match="16 cannot be shared evenly by 3 processes"):
        per_process(config, "global", 3)
    with pytest.raises(ValueError, match="batch_scope must be one of global, process"):
        per_process(config, "device", 2)
    # planned before any data is read; the default scope stays out of a run's identity
    with pytest.raises(SettingsError, match="cannot be shared evenly by 3"):
        plan_glue_run("rte", "lora", "m", "quick", 0, "r", {"batch_size": 16}, 3)
    default = plan_glue_run("rte", "lora", "m", "quick", 0, "r")
    assert "batch_scope" not in default.config["settings"]
    process = plan_glue_run("rte", "lora", "m", "quick", 0, "r", {"batch_scope": "process"})
    assert process.config["settings"]["batch_scope"] == "process"
    assert process.paths.key != default.paths.key
    from lorabook.e2e.experiment import plan_e2e_run

    with pytest.raises(SettingsError, match="8 cannot be shared evenly by 3"):
        plan_e2e_run("lora", "m", "cpu", 0, "r", {"batch_size": 8}, 3)
    assert "batch_scope" not in plan_e2e_run("lora", "m", "cpu", 0, "r").config["settings"]


def test_processes_enter_the_identity_only_above_one():
    settings = {"train": {"batch_size": 16}}
    one = glue_config("rte", "lora", "m", "quick", 0, settings)
    assert (
        "processes" not in one and glue_config("rte", "lora", "m", "quick", 0, settings, 1) == one
    )
    assert glue_config("rte", "lora", "m", "quick", 0, settings, 2)["processes"] == 2


@pytest.mark.slow  # `make check` (CI) runs it; `make test` leaves it out
def test_two_processes_train_what_one_trains_with_the_same_global_batch(
    two_process_run, tiny_bert, tmp_path
):
    results, _, _ = two_process_run
    path, two = only_record(results)
    one = run_glue(
        "rte",
        "lora",
        str(tiny_bert),
        "quick",
        overrides={
            "epochs": 2,
            "train_examples": 32,
            "eval_examples": EVAL,
            "max_length": 32,
            "batch_size": 16,
            "group_by_length": True,
        },
        results_dir=tmp_path,
        progress=False,
        log=lambda _: None,
    )
    assert one["effective_batch"]["examples"] == two["effective_batch"]["examples"] == 16
    assert one["settings"] == two["settings"]  # a global batch: the same settings, 8 a process
    a = load_file(path.with_suffix("") / "trainable.safetensors")
    b = load_file(next(tmp_path.rglob("trainable.safetensors")))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)
    for e1, e2 in zip(one["epochs"], two["epochs"], strict=True):
        assert e1["train_loss"] == pytest.approx(e2["train_loss"], rel=1e-6)
    # every dev example once, in the dev set's order (gather_for_metrics drops the repeat)
    assert len(two["dev_predictions"]["predictions"]) == EVAL
    assert two["dev_predictions"] == one["dev_predictions"]
    assert two["best"]["accuracy"] == one["best"]["accuracy"]


@pytest.mark.slow  # `make check` (CI) runs it; `make test` leaves it out
def test_a_two_process_run_interrupted_after_an_epoch_resumes(two_process_run):
    """Stopped after epoch 1: a checkpoint, no record; rerun: epoch 2 only, then the record
    (whose tensors equal an uninterrupted one-process run's: the test above)."""
    results, out, after_stop = two_process_run
    assert after_stop["returncode"] != 0
    assert after_stop["records"] == [] and len(after_stop["checkpoints"]) == 1
    _, record = only_record(results)
    assert record["resumed_from_epoch"] == 1 and len(record["epochs"]) == 2
    assert "epoch 1:" not in out and out.count("epoch 2:") == 1


def test_resuming_with_another_process_count_is_refused(tmp_path):
    """A checkpoint names the process count that wrote it (here edited to 2)."""
    from torch.utils.data import TensorDataset

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    data = TensorDataset(torch.randn(8, 3), torch.randn(8, 1))

    def loss(model, batch):
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    config = TrainConfig(epochs=1, batch_size=4)
    run = {
        "select": "score",
        "checkpoint_dir": tmp_path,
        "compute_loss": loss,
        "progress": False,
        "log": lambda _: None,
    }
    fit(net, data, lambda m, a: {"score": 0.0}, config, **run)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert state["processes"] == 1
    torch.save({**state, "processes": 2}, tmp_path / CHECKPOINT)
    with pytest.raises(ValueError, match="2 process.*this run has 1"):
        fit(net, data, lambda m, a: {"score": 0.0}, config, **run)


# --- E2E: training, decoding sharded across the processes, one record ----------------------

E2E_ARGS = ["--method", "lora", "--preset", "smoke", "--no-score", "--no-progress"]
E2E_ARGS += ["--dropout", "0", "--backbone-dropout", "0", "--rounds-per-epoch", "2"]
E2E_SAME = {"dropout": 0.0, "backbone_dropout": 0.0, "rounds_per_epoch": 2}  # the full preset's


@pytest.mark.slow  # `make check` (CI) runs it; `make test` leaves it out
def test_a_two_process_e2e_run_writes_one_record_whose_outputs_equal_one_process(
    model_folder, small_data, tmp_path
):
    two_dir, one_dir = tmp_path / "two", tmp_path / "one"
    args = [*E2E_ARGS, "--model", str(model_folder), "--data-dir", str(small_data)]
    done = torchrun("e2e", [*args, "--results-dir", str(two_dir), "--batch-size", "4"])
    if done.returncode != 0:
        skip_unless_torchrun_starts()
        pytest.fail(f"the two-process E2E run failed:\n{done.stdout[-3000:]}")
    (path,) = (two_dir / "e2e").rglob("*.json")
    two = json.loads(path.read_text())
    assert two["processes"] == 2 and two["effective_batch"]["examples"] == 4
    assert len(two["epochs"]) == 2  # two rounds (16 rows: 2 steps of 4 each), one evaluation each
    assert len(two["peak_memory"]["per_process"]) == 2
    assert done.stdout.count("Record:") == 1
    assert not any((two_dir / "_scratch").iterdir())
    one = run_e2e(
        "lora",
        str(model_folder),
        "smoke",
        data_dir=small_data,
        results_dir=one_dir,
        overrides={**E2E_SAME, "batch_size": 4},
        progress=False,
        score=False,
        log=lambda _: None,
    )
    assert one["effective_batch"]["examples"] == 4
    (one_path,) = (one_dir / "e2e").rglob("*.json")
    lines = {
        name: (p.with_suffix("") / "outputs.txt").read_text(encoding="utf-8").splitlines()
        for name, p in (("two", path), ("one", one_path))
    }
    assert len(lines["two"]) == two["data"]["test_mrs"] == 6
    assert lines["two"] == lines["one"]  # line for line, in the MRs' order
    # The trained tensors are close, not equal to float tolerance: E2E's loss is a mean over
    # reference tokens, and two shards of unequal token counts weigh their tokens unlike one
    # batch does (DDP averages the shards' means); GLUE's per-example mean has no such gap.


def test_sharded_decoding_deals_out_the_one_process_batches_and_keeps_a_file_per_shard(tmp_path):
    from lorabook.e2e.decode import length_batches, shard_file

    batches = length_batches({0: 5, 1: 3, 2: 5, 3: 1, 4: 3}, 2)
    assert batches == [[3, 1], [4, 0], [2]]
    assert shard_file(tmp_path / "decode.jsonl", 1, 2) == tmp_path / "decode.shard1of2.jsonl"


def test_each_shard_decodes_its_turns_of_the_batches_resumes_from_its_file_and_gathers(
    tokenizer, tmp_path, monkeypatch
):
    """Two processes played in turn in this one (their state and the gather stood in for):
    shard r decodes batches r, r + 2, ... of the one-process order into its own file, a
    rerun decodes nothing more, and the gathered outputs are the one-process outputs."""
    from types import SimpleNamespace

    import accelerate.utils
    from conftest import tiny_gpt2

    from lorabook.e2e import decode
    from lorabook.e2e.data import encode_prompt, group_references, load_e2e
    from lorabook.e2e.decode import generate_outputs, length_batches, shard_file
    from lorabook.e2e.presets import DecodeConfig

    mrs, _ = group_references(load_e2e("test")[:40])
    model = tiny_gpt2(tokenizer, seed=3)
    cfg = DecodeConfig(num_beams=2, max_new_tokens=5, batch_mrs=2)
    alone = generate_outputs(model, tokenizer, mrs, cfg, progress=False)
    every = length_batches(
        {i: len(encode_prompt(tokenizer, m)) for i, m in enumerate(mrs)}, cfg.batch_mrs
    )
    decoded: list[int] = []
    real_batch = decode.decode_batch

    def counting(model, ids, *args, **kwargs):
        decoded.append(len(ids))
        return real_batch(model, ids, *args, **kwargs)

    monkeypatch.setattr(decode, "decode_batch", counting)
    partial = tmp_path / "decode.jsonl"
    shards: dict[int, dict[int, str]] = {}
    for rank in (0, 1):
        state = SimpleNamespace(num_processes=2, process_index=rank, is_main_process=rank == 0)
        monkeypatch.setattr(decode, "process_state", lambda state=state: state)
        # the gather: this shard's outputs, and the other's from the one-process run
        monkeypatch.setattr(
            accelerate.utils,
            "gather_object",
            lambda objects: [*objects, dict(enumerate(alone))],
        )
        for attempt in (0, 1):  # a rerun reads the shard's file and decodes nothing more
            decoded.clear()
            assert generate_outputs(model, tokenizer, mrs, cfg, partial, False) == alone
            mine = [i for batch in every[rank::2] for i in batch]
            assert sum(decoded) == (len(mine) if attempt == 0 else 0)
        lines = shard_file(partial, rank, 2).read_text().splitlines()
        shards[rank] = {json.loads(x)["i"]: json.loads(x)["text"] for x in lines}
        assert sorted(shards[rank]) == sorted(mine)
    assert not partial.exists()  # several processes: only the shard files
    assert {**shards[0], **shards[1]} == dict(enumerate(alone))
