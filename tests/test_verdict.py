"""The verdict table (chapter 7): every claim computed from the records, and changed by them."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import pytest

from lorabook import verdict
from lorabook.e2e import report as e2e_report
from lorabook.e2e.metrics import METRICS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


@functools.cache
def todays() -> dict:
    """Every claim's finding on the committed records (claim function -> Finding), computed
    once for this module's tests that read them all (~40 s of CPU on 2 cores)."""
    return dict(zip(verdict.CLAIMS, verdict.findings(RESULTS), strict=True))


def copy_results(tmp_path: Path, *parts: str) -> Path:
    """A results folder holding copies of the committed ``results/<part>`` folders."""
    results = tmp_path / "results"
    for part in parts:
        shutil.copytree(RESULTS / part, results / part)
    return results


def edit(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def test_every_claim_the_issue_lists_has_one_row_with_a_known_verdict():
    found = list(todays().values())
    keys = [f.key for f in found]
    assert len(set(keys)) == len(keys)
    expected = {
        "trainable parameters",
        "training memory",
        "checkpoint size",
        "training throughput",
        "inference latency",
        "adapter latency",
        "parameter counts",
        "GLUE: LoRA vs FT",
        "GLUE: LoRA vs others",
        "E2E: LoRA vs FT",
        "E2E: LoRA vs others",
        "quality at scale",
        "Section 7: which weights, which rank",
        "subspaces across seeds",
        "ΔW against W",
    }
    assert expected == set(keys)
    for f in found:
        assert f.verdict in verdict.VERDICTS and f.claim and f.paper and f.evidence
        assert f.verdict != "pending" or f.pending, f.key  # pending says what would decide it
    with pytest.raises(ValueError, match="verdict must be one of"):
        verdict.Finding("k", "c", "p", "e", "confirmed", "w")


def test_arithmetic_claims_follow_the_paper_and_find_its_gpt2_slip():
    params = verdict.trainable_parameters(RESULTS)
    assert params.verdict == "reproduced" and "18,874,368" in params.evidence
    assert "9,285×" in params.evidence  # 175,255.8M / 18,874,368
    assert "93% of the claimed ratio" in params.why  # within the rule's 10%
    counts = verdict.parameter_counts(RESULTS)
    assert counts.verdict == "partly"
    assert "gpt2-medium r = 4: printed 0.35M, formula 393,216" in counts.evidence
    assert "gpt2-large" in counts.evidence and "roberta" not in counts.evidence.split("not:")[1]


def test_bench_claims_change_with_their_records(tmp_path):
    results = copy_results(tmp_path, "bench")
    assert verdict.inference_latency(results).verdict == "reproduced"
    throughput = verdict.throughput(results)
    assert throughput.verdict == "not testable here"  # GPT-3 on GPUs, like the memory row
    assert "(4 of 4 at or above 1.25×)" in throughput.evidence
    assert "; forward and backward alone: roberta-base 1.4" in throughput.evidence
    adapters = verdict.adapter_latency(results)
    assert adapters.verdict == "partly" and "at 5 of 6 (model, shape, adapter)" in adapters.evidence
    assert verdict.inference_latency(results).sources[0]["model"] == "gpt2-medium, smollm2"

    def slower_merged(record):
        next(r for r in record["rows"] if r["variant"] == "lora_merged")["overhead"][
            "within_noise"
        ] = False

    edit(results / "bench" / "latency-cpu.json", slower_merged)
    latency = verdict.inference_latency(results)
    assert latency.verdict == "partly" and "at 2 of 3 shapes" in latency.evidence

    def slow_lora(record):
        for row in record["rows"]:
            if row["method"] == "lora":  # every phase twice as long: half the tokens/s
                row["phases_seconds"] = {k: 2 * v for k, v in row["phases_seconds"].items()}

    edit(results / "bench" / "training-cpu.json", slow_lora)
    assert "(0 of 4 at or above 1.25×)" in verdict.throughput(results).evidence
    source = verdict.throughput(results).sources[0]
    assert source["file"] == "results/bench/training-cpu.json" and source["precision"] == "fp32"

    empty = tmp_path / "empty"
    (empty / "bench").mkdir(parents=True)
    assert verdict.throughput(empty).verdict == "pending"
    assert verdict.inference_latency(empty).verdict == "pending"
    assert verdict.adapter_latency(empty).verdict == "pending"


def test_the_memory_row_shows_growth_over_the_start_and_the_whole_process(tmp_path):
    results = copy_results(tmp_path, "bench")
    memory = verdict.training_memory(results)
    record = json.loads((results / "bench" / "training-cpu.json").read_text())
    peaks = {r["method"]: r["peak_memory"] for r in record["rows"] if r["model"] == "gpt2-medium"}
    over = peaks["ft"]["bytes_over_start"] / peaks["lora"]["bytes_over_start"]
    whole = peaks["ft"]["bytes"] / peaks["lora"]["bytes"]
    assert f"gpt2-medium {over:.2f}× ({whole:.2f}×)" in memory.evidence
    assert memory.verdict == "not testable here"


def test_the_glue_baselines_rule_holds_on_the_papers_own_numbers():
    from lorabook.glue import report

    rows = report.paper_rows()
    tasks = list(report.PAPER_COLUMNS)
    scores = {  # each method's Table 2 cells as two identical seeds: no spread
        f"{r['method']} {r['params']}": {t: [r[t], r[t]] for t in tasks} for r in rows
    }
    lora = next(k for k in scores if k.startswith("LoRA"))
    baselines = {k: v for k, v in scores.items() if not k.startswith(("LoRA", "FT"))}
    judged = verdict.judge_on_average({"lora": scores[lora], **baselines})
    assert verdict.judge_above({m: j["verdict"] for m, j in judged.items()})[0] == "reproduced"
    # ... though not task by task: Table 2's BitFit is above LoRA on MRPC
    bitfit = next(v for k, v in baselines.items() if k.startswith("BitFit"))
    assert bitfit["mrpc"][0] > scores[lora]["mrpc"][0]


def test_the_glue_average_rule_reads_the_seeds_spread():
    scores = {
        "lora": {"a": [80.0, 82.0, 81.0], "b": [70.0, 70.0, 70.0]},
        "bitfit": {"a": [78.0], "b": [69.0], "c": [50.0]},  # c: not every method has it
        "adapter_h": {"a": [81.5, 80.5, 81.0], "b": [70.5, 69.5, 70.0]},
    }
    judged = verdict.judge_on_average(scores)
    assert judged["bitfit"]["theirs"] == pytest.approx(73.5)  # the tasks all have: a, b
    assert judged["bitfit"]["verdict"] == "above"  # 75.5 vs 73.5, LoRA's sd 0.5
    assert judged["adapter_h"]["verdict"] == "within the spread"
    assert verdict.judge_above({m: j["verdict"] for m, j in judged.items()})[0] == "partly"
    assert judged["bitfit"]["tasks"] == ["a", "b"]
    assert verdict.judge_on_average({"lora": {"a": [1.0]}, "bitfit": {"b": [2.0]}}) == {}


def test_the_e2e_verdict_is_the_records_and_flips_with_them(tmp_path):
    results = copy_results(tmp_path, "e2e/cpu")
    found = verdict.e2e_vs_ft(results)
    records = e2e_report.preset_records(results, "cpu", "smollm2", ["lora", "ft"])
    lora, ft = (e2e_report.as_table3(records[m]["scores_paper"]) for m in ("lora", "ft"))
    above = sum(lora[m] >= ft[m] for m in METRICS)
    assert f"on {above} of 5 metrics" in found.evidence and above == 0  # the cpu runs
    assert found.verdict == "pending"  # one seed of a short run decides nothing
    assert "BLEU LoRA − FT -1.53" in found.evidence and found.pending
    assert [s["file"].rsplit("/", 1)[-1].split("-")[0] for s in found.sources] == ["lora", "ft"]
    assert "BLEU 70.4 vs 68.2" in found.paper  # Table 3, read from the transcription

    def as_ft(record):  # LoRA's record given FT's scores: at or above on every metric
        record["scores_paper"] = records["ft"]["scores_paper"]

    edit(Path(records["lora"]["_path"]), as_ft)
    assert "on 5 of 5 metrics" in verdict.e2e_vs_ft(results).evidence
    assert verdict.e2e_vs_ft(results).verdict == "pending"
    assert verdict.e2e_vs_others(results).verdict == "pending"
    assert verdict.e2e_vs_ft(tmp_path / "nothing").verdict == "pending"


def test_section7_verdicts_read_the_lora_records():
    subspaces = todays()[verdict.subspaces]
    assert subspaces.verdict in ("reproduced", "partly", "not reproduced")
    assert "of 60 (task, matrix, block) cells" in subspaces.evidence
    assert sum(int(s["file"].split("(")[1].split()[0]) for s in subspaces.sources) == 10
    amplification = todays()[verdict.amplification]
    assert "median over 30 task, seed, matrix cells" in amplification.evidence
    assert amplification.pending


@pytest.mark.parametrize(
    ("judged", "expected"),
    [
        ({"BLEU": "above", "NIST": "above"}, "reproduced"),
        ({"BLEU": "above", "NIST": "within the spread"}, "partly"),
        ({"BLEU": "below", "NIST": "above"}, "not reproduced"),
        ({"BLEU": "below", "NIST": "within the spread"}, "not reproduced"),
        ({"BLEU": "not separable", "NIST": "one seed each"}, "partly"),
    ],
)
def test_above_is_the_rule_as_first_committed(judged, expected):
    found, why = verdict.judge_above(judged)
    assert found == expected
    if "below" in judged.values():
        assert "below on BLEU" in why
    if "above" not in judged.values() and "below" not in judged.values():
        assert "on par on every comparison" in why  # the abstract's wording, not Table 3's


@pytest.mark.parametrize(
    ("judged", "expected"),
    [
        (["above"] * 5, "reproduced"),
        (["above", "within the spread", "above", "above", "above"], "partly"),
        (["below", "within the spread", "above", "above", "above"], "not reproduced"),
        (["not separable"] + ["within the spread"] * 4, "partly"),
    ],
)
def test_the_e2e_row_reads_the_full_campaign_and_waits_for_its_seeds(
    monkeypatch, tmp_path, judged, expected
):
    from lorabook.e2e import verdict as e2e_verdict

    record = RESULTS / "e2e" / "cpu" / "smollm2" / "lora-seed0-89d2e91b.json"
    found = {"lora": [{"_path": str(record)}], "ft": [{"_path": str(record)}]}
    monkeypatch.setattr(e2e_verdict, "runs_records", lambda results_dir: found)
    pairs = zip(METRICS, judged, strict=True)
    rows = [{"versus": "ft", "metric": m, "verdict": v} for m, v in pairs]
    monkeypatch.setattr(e2e_verdict, "verdicts", lambda found, root: rows)
    # one seed of three: pending, the comparisons so far shown and what is owed named
    row = verdict.e2e_vs_ft(tmp_path)
    assert row.verdict == "pending"
    so_far = "full campaign (1 seed of LoRA, 1 of FT), LoRA against FT so far"
    assert row.evidence.startswith(so_far)
    assert f"BLEU {judged[0]}" in row.evidence and "QLoRA" in row.why
    assert row.pending.endswith("(seeds scored so far: LoRA 1 of 3, FT 1 of 3)")
    found["lora"] *= 3
    assert verdict.e2e_vs_ft(tmp_path).verdict == "pending"  # FT's seeds still owed
    found["ft"] *= 3
    row = verdict.e2e_vs_ft(tmp_path)
    assert row.verdict == expected and row.pending == ""
    assert row.evidence.startswith("full campaign (3 seeds of LoRA, 3 of FT), LoRA against FT:")
    assert row.why.startswith(verdict.judge_above(dict(zip(METRICS, judged, strict=True)))[1])


def test_the_e2e_others_row_names_the_methods_still_to_come(monkeypatch, tmp_path):
    from lorabook.e2e import verdict as e2e_verdict

    record = {"_path": str(RESULTS / "e2e" / "cpu" / "smollm2" / "lora-seed0-89d2e91b.json")}
    found = {"lora": [record] * 3, "ft": [record] * 3, "adapter_l": [record]}
    monkeypatch.setattr(e2e_verdict, "runs_records", lambda results_dir: found)
    rows = [{"versus": "adapter_l", "metric": "BLEU", "verdict": "above"}]
    monkeypatch.setattr(e2e_verdict, "verdicts", lambda found, root: rows)
    row = verdict.e2e_vs_others(tmp_path)
    assert row.verdict == "pending" and "so far: vs AdapterL: above" in row.evidence
    assert "FT-Top2 0 of 1" in row.pending and "PreLayer 0 of 1" in row.pending
    assert "AdapterL" not in row.pending and "LoRA" not in row.pending
    found.update(ft_top2=[record], prefix=[record])
    for method in ("ft_top2", "prefix"):
        rows.append({"versus": method, "metric": "BLEU", "verdict": "not separable"})
    row = verdict.e2e_vs_others(tmp_path)
    assert (row.verdict, row.pending) == ("partly", "") and "above on AdapterL" in row.why
    assert "on par on FT-Top2, PreLayer" in row.why


def test_the_readme_figure_is_drawn_from_todays_records():
    from lorabook import verdict_plot

    readme = (ROOT / "README.md").read_text()
    relative = verdict_plot.README_FIGURE.relative_to(ROOT).as_posix()
    assert f"]({relative})" in readme, f"README.md does not show {relative}"
    now = verdict_plot.summary(list(todays().values()))
    assert verdict_plot.drawn() == now, (
        "book/figures/verdict.png shows other verdicts than today's records give: "
        "redraw it with `python -m lorabook.verdict_plot` and commit it"
    )


def test_the_verdict_figure_remembers_what_it_drew(tmp_path):
    from lorabook import verdict_plot

    found = [
        verdict.Finding("a", "c", "p", "e", "reproduced", "w"),
        verdict.Finding("b", "c", "p", "e", "pending", "w", pending="runs"),
    ]
    path = tmp_path / "f.png"
    path.write_bytes(verdict_plot.png(found))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert verdict_plot.drawn(path) == {"a": "reproduced", "b": "pending"}
    found[1] = verdict.Finding("b", "c", "p", "e", "not reproduced", "w")
    path.write_bytes(verdict_plot.png(found))  # a verdict changes: so does what it remembers
    assert verdict_plot.drawn(path)["b"] == "not reproduced"
    bare = tmp_path / "bare.png"
    verdict_plot.verdict_figure(found).savefig(bare)
    with pytest.raises(ValueError, match="no 'Description' metadata"):
        verdict_plot.drawn(bare)


def test_the_figure_command_draws_from_the_records_it_is_given(tmp_path, capsys):
    from lorabook import verdict_plot

    empty = tmp_path / "results"
    empty.mkdir()
    out = tmp_path / "figures" / "verdict.png"
    verdict_plot.main([str(out), "--results-dir", str(empty)])
    assert capsys.readouterr().out.strip() == str(out)
    drawn = verdict_plot.drawn(out)
    assert drawn == verdict_plot.summary(verdict.findings(empty))
    assert drawn["E2E: LoRA vs FT"] == "pending"  # no records: the results wait for their runs
    assert drawn["trainable parameters"] == "reproduced"  # arithmetic needs none


def test_every_rule_reads_as_markdown_from_its_docstring():
    """Chapter 7.4 lists each claim's rule from its function's docstring: one paragraph, the
    Sphinx roles and double backquotes turned into plain code spans."""

    def claim(results_dir: Path) -> verdict.Finding:
        """Above ``X``: by :func:`~lorabook.glue.full_report.judge`,
        then :mod:`lorabook.analysis`."""

    assert verdict.rule_markdown(claim) == (
        "Above `X`: by `lorabook.glue.full_report.judge`, then `lorabook.analysis`."
    )
    for claim in verdict.CLAIMS:
        text = verdict.rule_markdown(claim)
        assert text and "\n" not in text and "``" not in text, claim.__name__
        assert ":func:" not in text and ":mod:" not in text and ":data:" not in text, text
        assert text.count("`") % 2 == 0, text  # every code span closed
