"""Run bookkeeping: a record's name is a hash of everything that decides the run."""

from __future__ import annotations

import json

from lorabook.runs import config_key, find_records, model_slug, run_paths


def test_config_key_is_stable_and_order_free():
    assert config_key({"a": 1, "b": {"x": 2, "y": 3}}) == config_key(
        {"b": {"y": 3, "x": 2}, "a": 1}
    )
    assert config_key({"epochs": 1}) != config_key({"epochs": 3})
    assert len(config_key({})) == 8


def test_run_paths_differ_by_config_and_share_a_folder(tmp_path):
    a = run_paths(tmp_path, "glue", "quick", "minilm", "rte-lora-seed0", {"epochs": 1})
    b = run_paths(tmp_path, "glue", "quick", "minilm", "rte-lora-seed0", {"epochs": 3})
    assert a.record != b.record and a.record.parent == b.record.parent
    assert a.record.name == f"rte-lora-seed0-{a.key}.json" and a.outputs.name == a.record.stem
    assert a.scratch.parent == tmp_path / "_scratch" and a.scratch != b.scratch


def test_finished_drop_scratch_and_find_records(tmp_path):
    paths = run_paths(tmp_path, "glue", "quick", "org/model", "sst2-ft-seed0", {"x": 1})
    assert paths.finished() is None
    paths.record.parent.mkdir(parents=True)
    paths.record.write_text(json.dumps({"task": "sst2", "method": "ft"}))
    assert paths.finished() == {"task": "sst2", "method": "ft"}
    (paths.scratch / "ckpt").mkdir(parents=True)
    paths.drop_scratch()
    assert not paths.scratch.exists()
    found = find_records(tmp_path, "glue", task="sst2")
    assert [r["_path"] for r in found] == [str(paths.record)]
    assert find_records(tmp_path, "glue", task="rte") == []
    assert model_slug("org/model") == "org--model"


def test_a_record_names_the_processor(tmp_path):
    from lorabook.records import cpu_model

    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512_bf16\n"
    )
    assert cpu_model(info) == "AMD EPYC"
    assert cpu_model(tmp_path / "missing")  # elsewhere: what platform says
