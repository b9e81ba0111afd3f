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
# # 7. Verdict: the paper's claims, and what this book found
#
# The paper {cite}`hu2021lora` makes claims of three kinds: **arithmetic** on its models'
# shapes (how many parameters LoRA trains, how large a checkpoint is), **measurements** of
# cost (memory, throughput, latency) and **results** of training (GLUE, E2E, and the analysis
# of Section 7). This chapter sets its headline claims and the claims of the tables this
# book reproduces (Tables 1 to 7 and Section 7's figures) beside the book's evidence, in one
# table. The rest of the paper (WebNLG and DART among it) is not tested here, and chapter
# 6.5's look at Table 18 is a reading, not a verdict.
#
# Every row is computed by `lorabook.verdict` from the committed records when the book is
# built: the claim with the paper's number (read from the transcription of its tables), our
# number, the records it came from, and a verdict by a rule written in the package, one rule
# per claim. A record that changes changes its row; nothing below is typed from a result.
#
# | verdict | meaning |
# | --- | --- |
# | reproduced | our evidence meets the claim by its rule |
# | partly | part of the claim holds (the row says which) |
# | not reproduced | our evidence goes against the claim |
# | not testable here | beyond this machine (GPT-3 175B, GPUs), or beyond our runs' noise |
# | pending | the runs that decide it are planned and have not finished |
#
# The results are those of the stand-ins (MiniLM-L6 for RoBERTa, SmolLM2-135M for GPT-2)
# trained on a 2-core CPU, and "pending" rows name the campaign whose runs will decide them.
# A verdict against the paper on a stand-in says what happened on that model at that budget,
# not that the paper's number is wrong.

# %% tags=["parameters"]
# "quick": the committed records (the only mode: this chapter trains nothing)
mode = "quick"

# %% tags=["hide-input"]
import inspect

import pandas as pd
from IPython.display import Image, Markdown, display

from lorabook import verdict, verdict_plot
from lorabook.paths import REPO_ROOT

assert mode in ("quick", "paper"), f"mode must be 'quick' or 'paper', got {mode!r}"
pd.set_option("display.max_colwidth", None)
found = verdict.findings(REPO_ROOT / "results")

# %% [markdown]
# ## 7.1 The table
#
# One row per claim, named by a short key (7.2 states each claim in full): its verdict, and
# the paper's number beside ours. Why each verdict is what it is, with its scope, follows
# claim by claim (7.2).

# %% tags=["hide-input"]
table = pd.DataFrame(
    [
        {
            "claim": f.claim,
            "verdict": f.verdict,
            "the paper": f.paper,
            "this book": f.evidence,
        }
        for f in found
    ],
    index=[f.key for f in found],
)
counts = table["verdict"].value_counts()
display(
    Markdown(
        f"**{len(found)} claims**: "
        + ", ".join(f"{counts.get(v, 0)} {v}" for v in verdict.VERDICTS if counts.get(v, 0))
        + "."
    )
)
left = [{"selector": "th, td", "props": [("text-align", "left"), ("vertical-align", "top")]}]
display(table[["verdict", "the paper", "this book"]].style.set_table_styles(left))

# %% [markdown]
# The same verdicts at a glance, one row per claim in the table's order:

# %% tags=["hide-input"]
display(Image(verdict_plot.png(found)))

# %% [markdown]
# ## 7.2 Claim by claim

# %% tags=["hide-input"]
display(
    Markdown(
        "\n\n".join(
            f"**{f.key}**: *{f.verdict}*. {f.claim[0].upper()}{f.claim[1:]}.\n\n"
            f"- The paper: {f.paper}.\n- This book: {f.evidence}.\n"
            + (f"- Why, and scope: {f.why}.\n" if f.why else "")
            + (f"- Still to come: {f.pending}.\n" if f.pending else "")
            for f in found
        )
    )
)

# %% [markdown]
# ## 7.3 Where each number came from
#
# The records behind each row (arithmetic rows have none: their inputs are the paper's
# shapes and its transcribed tables): file, model, device, arithmetic precision, and the
# commit of the code that wrote them.

# %% tags=["hide-input"]
provenance = pd.DataFrame(
    [{"claim": f.key, **s} for f in found for s in f.sources],
    columns=["claim", "file", "model", "device", "precision", "commit"],
)
display(provenance.set_index("claim"))

# %% [markdown]
# ## 7.4 The rules, as the package states them
#
# Every row's rule is the docstring of its claim's function in `lorabook.verdict`, read here
# from the code that applies it:

# %% tags=["hide-input"]
assert len(verdict.CLAIMS) == len(found)  # findings() keeps CLAIMS' order
display(
    Markdown(
        "\n".join(
            f"- **{f.key}** (`verdict.{claim.__name__}`): {verdict.rule_markdown(claim)}"
            for claim, f in zip(verdict.CLAIMS, found, strict=True)
        )
    )
)

# %% [markdown]
# One of them in full, with its code: the E2E rule, for the paper's headline result. It reads
# the `full` campaign's runs and stays pending until every planned seed is scored, then
# `judge_above` decides. Its outcomes (above on all, below on any, the
# rest) were committed before any test score of the campaign; a change made after seed 0 was
# scored was withdrawn, as `judge_above`'s docstring says:

# %%
print(inspect.getsource(verdict.judge_above))
print(inspect.getsource(verdict.e2e_vs_ft))

# %% tags=["hide-input"]
# What the reading below was written for: if a record changes these, rewrite it.
by_key = {f.key: f.verdict for f in found}
assert by_key["trainable parameters"] == by_key["checkpoint size"] == "reproduced", by_key
assert by_key["parameter counts"] == "partly", by_key
at_scale = ("training memory", "training throughput", "quality at scale")
assert all(by_key[k] == "not testable here" for k in at_scale), by_key

# %% [markdown]
# ## 7.5 Reading the table
#
# - **The arithmetic holds, with one slip.** The parameter ratio and the checkpoint sizes
#   follow from GPT-3's shape; of the printed LoRA counts, the GPT-2 ones do not follow from
#   the paper's own formula, as chapter 1 shows.
# - **Claims about GPT-3 175B on GPUs are not testable here**: its memory, its throughput and
#   its quality (Table 4). The memory and throughput rows still show what the same
#   measurements give on the stand-ins on a CPU, unjudged: a CPU's balance of compute and
#   memory traffic is not a GPU's. Quality at that scale has no stand-in here; the GLUE and
#   E2E rows test the claim on the stand-ins.
# - **Latency is measured, on a CPU**: merged LoRA against the base, and the adapters that
#   Table 1 sets against it.
# - **The quality claims are the ones the campaigns exist for.** Where the `full` campaigns
#   (E2E on the whole training set with three seeds, GLUE with per-task budgets and
#   size-matched baselines, Section 7's ablations) have not finished, a row is either pending
#   or judged on chapter 3's `cpu` runs, and says which.
#
# ### Where our evidence goes against the paper, or only partly with it
#
# Computed from the table: every row that is not reproduced or only partly, with the reason
# its rule gives. These are results as much as the rows that agree; each holds for its
# stand-in at its budget, as its scope says.

# %% tags=["hide-input"]
against = [f for f in found if f.verdict in ("not reproduced", "partly")]
display(
    Markdown(
        "\n".join(
            f"- **{f.key}** (*{f.verdict}*): {f.evidence}. "
            + (f"Why: {f.why}." if f.why else "")
            + (f" To come: {f.pending}." if f.pending else "")
            for f in against
        )
        or "Every decided row agrees with the paper."
    )
)
