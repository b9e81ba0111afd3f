"""The paper's beam search (lorabook.e2e.beam): the n-gram ban on the continuation only, the
official algorithm, and generate() with the same ban."""

from __future__ import annotations

import random

import pytest
import torch
import transformers as T
from conftest import tiny_model

from lorabook.e2e import beam
from lorabook.e2e.beam import ContinuationNoRepeatNGram, banned_next_tokens, official_beam_search
from lorabook.e2e.decode import decode_batch
from lorabook.e2e.presets import DecodeConfig
from lorabook.methods import prepare_causal_lm


def fairseq_banned(generated: list[int], n: int) -> list[int]:
    """The official ``_calc_banned_ngram_tokens`` (copied from fairseq), for one hypothesis:
    a dict from every (n-1)-gram of the history to the tokens that followed it."""
    cur_len = len(generated)
    if cur_len + 1 < n:
        return []
    followers: dict[tuple[int, ...], list[int]] = {}
    for ngram in zip(*[generated[i:] for i in range(n)], strict=False):
        followers[tuple(ngram[:-1])] = followers.get(tuple(ngram[:-1]), []) + [ngram[-1]]
    return followers.get(tuple(generated[cur_len + 1 - n : cur_len]), [])


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_banned_tokens_equal_the_official_rule_on_random_histories(n):
    rng = random.Random(n)
    for _ in range(500):
        history = [rng.randrange(4) for _ in range(rng.randrange(12))]
        assert sorted(banned_next_tokens(history, n)) == sorted(fairseq_banned(history, n))


def test_the_processor_bans_only_n_grams_of_the_continuation_and_renormalises():
    prompt = [5, 6, 7, 8, 9]
    ids = torch.tensor([prompt + [4, 5, 6, 7, 8], prompt + [1, 2, 3, 1, 2]])
    scores = torch.log_softmax(torch.randn(2, 12, generator=torch.Generator().manual_seed(0)), -1)
    out = ContinuationNoRepeatNGram(3, prompt_length=len(prompt))(ids, scores.clone())
    # row 0: "6 7 8" then 9 is in the prompt only: nothing banned, scores unchanged
    assert torch.allclose(out[0], scores[0])
    # row 1: "1 2" was followed by 3 in the continuation: 3 is banned, the rest renormalised
    assert out[1, 3] == -float("inf")
    kept = torch.ones(12, dtype=torch.bool)
    kept[3] = False
    assert torch.allclose(out[1, kept], torch.log_softmax(scores[1, kept], -1))
    assert torch.isclose(out[1].exp().sum(), torch.tensor(1.0))


class ScriptedLM(torch.nn.Module):
    """A causal LM that wants to write ``script`` after any prompt: logit 10 on the script's
    next token, 0 elsewhere. It keeps the tokens it has seen in the KV cache (as layer 0's
    keys), so beam reordering reorders them as it would a real model's cache."""

    def __init__(self, script: list[int], vocab: int = 16) -> None:
        super().__init__()
        self.script, self.vocab = script, vocab
        self.config = T.LlamaConfig(num_hidden_layers=1, vocab_size=vocab)
        self.prompt_width = None

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache):
        seen = input_ids.float()[:, None, :, None]
        if self.prompt_width is None:
            self.prompt_width = input_ids.shape[1]
        keys, _ = past_key_values.update(seen, seen, 0)
        tokens = keys[:, 0, :, 0].long()
        done = tokens.shape[1] - self.prompt_width
        logits = torch.zeros(tokens.shape[0], 1, self.vocab)
        logits[:, 0, self.script[min(done, len(self.script) - 1)]] = 10.0
        return T.modeling_outputs.CausalLMOutputWithPast(logits=logits)


def scripted(script, prompt, **kw):
    model = ScriptedLM(script)
    ids = torch.tensor([prompt])
    settings = dict(num_beams=3, length_penalty=0.9, no_repeat_ngram_size=4, max_new_tokens=12)
    settings.update(kw)
    return official_beam_search(model, ids, torch.ones_like(ids), eos_token_ids=[0], **settings)


def test_a_four_token_value_of_the_prompt_is_copied_verbatim():
    prompt = [9, 5, 6, 7, 8, 9]  # "name[5 6 7 8]": a four-token slot value
    assert scripted([5, 6, 7, 8, 0], prompt) == [[5, 6, 7, 8]]


def test_a_four_gram_repeated_inside_the_continuation_is_blocked():
    out = scripted([5, 6, 7, 8, 5, 6, 7, 8, 0], [9, 9])[0]
    assert out[:7] == [5, 6, 7, 8, 5, 6, 7] and out[7:8] != [8]
    assert scripted([5, 6, 7, 8, 5, 6, 7, 8, 0], [9, 9], no_repeat_ngram_size=0) == [
        [5, 6, 7, 8, 5, 6, 7, 8]
    ]


def test_the_official_search_ends_at_the_end_token_and_returns_what_precedes_it():
    assert scripted([3, 4, 0], [9]) == [[3, 4]]
    assert scripted([3, 4, 3, 4], [9], max_new_tokens=5) == [[3, 4, 3, 4, 4]]  # no end token


def decode(model, prompts, **kw):
    width = max(map(len, prompts))
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :], mask[row, width - len(p) :] = torch.tensor(p), 1
    cfg = DecodeConfig(**{"num_beams": 3, "max_new_tokens": 8, **kw})
    return decode_batch(model, ids, mask, cfg, eos=0, pad=0)


PROMPTS = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14], [3, 3, 3, 3, 3, 3]]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("algorithm", ["official", "transformers"])
def test_batched_left_padded_decoding_equals_one_prompt_at_a_time(arch, algorithm):
    model = tiny_model(arch, seed=2)
    batched = decode(model, PROMPTS, algorithm=algorithm)
    assert batched == [decode(model, [p], algorithm=algorithm)[0] for p in PROMPTS]
    assert any(batched)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_official_search_equals_its_greedy_self_at_one_beam(arch):
    """With one beam the official search is greedy decoding with the ban: compare with
    generate's greedy search given the same continuation-only ban."""
    model = tiny_model(arch, seed=4)
    for p in PROMPTS:
        ids = torch.tensor([p])
        ours = official_beam_search(
            model,
            ids,
            torch.ones_like(ids),
            num_beams=1,
            length_penalty=0.9,
            no_repeat_ngram_size=2,
            max_new_tokens=10,
            eos_token_ids=[0],
        )[0]
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=10,
            logits_processor=T.LogitsProcessorList([ContinuationNoRepeatNGram(2, len(p))]),
            eos_token_id=0,
            pad_token_id=0,
        )[0, len(p) :].tolist()
        assert ours == (out[: out.index(0)] if 0 in out else out)


def test_stopping_early_changes_nothing(monkeypatch):
    """The early exit (no live beam can still win) gives what all the steps give."""
    model = tiny_model("llama", seed=5)
    fast = decode(model, PROMPTS, algorithm="official", max_new_tokens=24)
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    monkeypatch.setattr(beam, "_EARLY_EXIT", False)
    slow = decode(model, PROMPTS, algorithm="official", max_new_tokens=24)
    assert len(calls) == 24  # every step ran
    assert slow == fast


def test_prefix_tuning_decodes_through_the_official_search():
    """peft's prefix is the official search's starting cache: batched equals one at a time,
    equals generate's greedy search at one beam, and the prefix changes the outputs."""
    model, _ = prepare_causal_lm(tiny_model("llama"), "prefix", prefix_length=3)
    with torch.no_grad():
        model.prompt_encoder.default.embedding.weight.normal_(std=2.0)
    model.eval()
    batched = decode(model, PROMPTS)
    assert batched == [decode(model, [p])[0] for p in PROMPTS]
    assert batched != decode(tiny_model("llama"), PROMPTS)
    one = decode(model, PROMPTS, num_beams=1, ngram_scope="continuation")
    greedy = decode(model, PROMPTS, num_beams=1, algorithm="transformers")
    assert one == greedy


def test_only_prefix_tuning_among_prompt_methods():
    class FakePeft(torch.nn.Module):
        active_peft_config = type("PromptTuningConfig", (), {"is_prompt_learning": True})()

    with pytest.raises(ValueError, match="algorithm='transformers'"):
        beam._prompt_learning(FakePeft())
    assert beam._prompt_learning(tiny_model("gpt2"))[1:] == (None, 0)


def gpt2_beam_reference(model, prompt, num_beams, length_penalty, n, steps, eos):
    """A line-by-line port of the official ``beam()`` for one prompt, with no KV cache: every
    step runs the model on the whole sequence of every beam."""
    beam_scores = torch.zeros(1, num_beams)
    history = None
    best_score, best_sequence = None, None
    for i in range(steps):
        rows = [prompt] if history is None else [prompt + h for h in history.tolist()]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor(rows)).logits[:, -1, :].float()
        if history is not None:
            for row, h in enumerate(history.tolist()):
                logits[row, fairseq_banned(h, n)] = -float("inf")
        logprob = torch.log(torch.softmax(logits, dim=-1))
        vocab = logprob.shape[-1]
        if i == 0:
            next_scores = logprob[:1]
        else:
            next_scores = (beam_scores.unsqueeze(-1) + logprob.view(1, num_beams, -1)).view(1, -1)
        next_scores, next_tokens = torch.topk(next_scores, num_beams, dim=1, sorted=True)
        beam_id = (next_tokens // vocab).view(-1)
        token_id = (next_tokens % vocab).view(-1, 1)
        beam_scores = next_scores
        history = token_id if history is None else torch.cat((history[beam_id], token_id), 1)
        for k in range(num_beams):
            if history[k, -1] == eos or i == steps - 1:
                score = beam_scores.view(-1)[k] / history.shape[-1] ** length_penalty
                if best_score is None or best_score < score:
                    best_score, best_sequence = score, history[k].tolist()
                beam_scores.view(-1)[k] = -float("inf")
    return best_sequence[: best_sequence.index(eos)] if eos in best_sequence else best_sequence


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_the_official_search_equals_a_line_by_line_port_of_gpt2_beam(arch):
    model = tiny_model(arch, seed=6)
    with torch.no_grad():  # make the end token likely enough that beams finish early
        model.get_output_embeddings().weight[0].mul_(30.0)
    for prompt in PROMPTS:
        ours = decode(model, [prompt], num_beams=4, max_new_tokens=9, no_repeat_ngram_size=2)
        assert ours[0] == gpt2_beam_reference(model, prompt, 4, 0.9, 2, 9, eos=0)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_generate_divides_by_the_generated_length_as_the_official_code(arch):
    """transformers' beam score is sum log p / |y| ** length_penalty with |y| the generated
    tokens, end token included: the official ``_add_beam_candidate`` (``history.shape[-1]``)."""
    model = tiny_model(arch, seed=6)
    with torch.no_grad():
        model.get_output_embeddings().weight[0].mul_(30.0)  # beams end early
    prompt = torch.tensor([[5, 6, 7, 8, 9]])
    out = model.generate(
        input_ids=prompt,
        attention_mask=torch.ones_like(prompt),
        num_beams=3,
        length_penalty=0.9,
        max_new_tokens=9,
        early_stopping="never",
        do_sample=False,
        eos_token_id=0,
        pad_token_id=0,
        return_dict_in_generate=True,
        output_scores=True,
    )
    generated = out.sequences[0, prompt.shape[1] :].tolist()
    generated = generated[: generated.index(0) + 1] if 0 in generated else generated
    full = torch.tensor([prompt[0].tolist() + generated])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=full).logits[0].float(), -1)
    start = prompt.shape[1] - 1
    total = sum(float(log_probs[start + i, t]) for i, t in enumerate(generated))
    assert out.sequences_scores[0].item() == pytest.approx(total / len(generated) ** 0.9, abs=1e-4)
