"""Beam search as the paper's own code runs it (microsoft/LoRA, ``examples/NLG/src/gpt2_beam.py``).

Four details of the official decoder differ from ``transformers``' ``generate``:

1. **Repeated n-grams are banned within the continuation only.** The official n-gram history
   starts empty after the context (fairseq's rule); ``generate(no_repeat_ngram_size=4)`` also
   bans every 4-gram of the *prompt*, so a slot value of four or more tokens that the MR holds
   ("Rainbow Vegetarian Café", "5 out of 5") can never be copied into the text.
2. **The ban comes before the softmax**: the remaining tokens' probabilities are renormalised
   (``generate`` bans after its log-softmax).
3. **All ``max_new_tokens`` steps run**; a finished hypothesis is kept if it beats the best
   one so far for its MR, scored ``sum log p / length ** length_penalty`` (the length counts
   the generated tokens, end token included, as ``generate`` counts them too).
4. **A finished hypothesis keeps its slot** among the ``num_beams`` of its step (its score is
   set to −∞ afterwards); ``generate`` always continues ``num_beams`` live beams.

:class:`ContinuationNoRepeatNGram` gives ``generate`` details 1 and 2;
:func:`official_beam_search` is the official algorithm itself, batched over left-padded
prompts with a KV cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache, LogitsProcessor

_EARLY_EXIT = True  # stop once no live beam can win (tests turn it off to compare)


def banned_next_tokens(generated: list[int], n: int) -> list[int]:
    """The tokens that would complete an n-gram already in ``generated`` (the official rule).

    ``generated`` holds the continuation's tokens only (never the prompt). With fewer than
    ``n - 1`` tokens nothing is banned; otherwise the banned tokens are those that followed
    the last ``n - 1`` tokens somewhere earlier in ``generated``.
    """
    if n < 1 or len(generated) + 1 < n:
        return []
    prefix = tuple(generated[len(generated) - n + 1 :]) if n > 1 else ()
    return [
        generated[i + n - 1]
        for i in range(len(generated) - n + 1)
        if tuple(generated[i : i + n - 1]) == prefix
    ]


class ContinuationNoRepeatNGram(LogitsProcessor):
    """``generate``'s no-repeat-n-gram rule applied to the generated tokens only.

    Args:
        n: the n-gram size (the paper: 4).
        prompt_length: the width of the (left-padded) prompt batch; tokens from this column
            on are the continuation.
        renormalize: after the ban, renormalise the scores (``log_softmax`` again), as the
            official code's ban-then-softmax does; beam search passes log-probabilities to
            processors, so this equals banning the logits before the softmax.
    """

    def __init__(self, n: int, prompt_length: int, renormalize: bool = True) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self.n, self.prompt_length, self.renormalize = n, prompt_length, renormalize

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        history = input_ids[:, self.prompt_length :].tolist()
        for row, generated in enumerate(history):
            banned = banned_next_tokens(generated, self.n)
            if banned:
                scores[row, banned] = -float("inf")
        return scores.log_softmax(dim=-1) if self.renormalize else scores


def _prompt_learning(model: torch.nn.Module) -> tuple[torch.nn.Module, object | None, int]:
    """``(model to call, initial cache, virtual tokens)``: for a peft prefix-tuning model the
    base model with the learned prefix as its starting cache; for any other model itself."""
    config = getattr(model, "active_peft_config", None)
    if config is None or not getattr(config, "is_prompt_learning", False):
        return model, None, 0
    if type(config).__name__ != "PrefixTuningConfig":
        raise ValueError(
            f"official_beam_search supports prefix tuning among peft's prompt methods, not "
            f"{type(config).__name__}: use algorithm='transformers'"
        )
    return model.get_base_model(), model.get_prompt, config.num_virtual_tokens


@torch.no_grad()
def official_beam_search(
    model: torch.nn.Module,
    input_ids: torch.LongTensor,
    attention_mask: torch.LongTensor,
    *,
    num_beams: int,
    length_penalty: float,
    no_repeat_ngram_size: int,
    max_new_tokens: int,
    eos_token_ids: list[int],
) -> list[list[int]]:
    """The official ``gpt2_beam.py`` algorithm, on left-padded prompts; returns, per prompt,
    the best hypothesis's generated tokens without the end token.

    Per step: logits → ban the continuation's repeated n-grams → ``log(softmax)`` → add to the
    beam scores → top ``num_beams`` over beams × vocabulary (step 0: beam 0 only) → every
    chosen hypothesis that ends with an end token is a candidate, scored
    ``score / length ** length_penalty``, kept if strictly better than the best so far, and
    its beam score set to −∞. After the last step every live beam is a candidate too.

    The loop stops early only when the outcome can no longer change: a live beam's final
    score is at most ``score / max_new_tokens ** length_penalty`` (log-probabilities are
    ≤ 0 and ``length_penalty`` ≥ 0), so once that bound is no better than the best candidate
    for every prompt, the remaining steps are skipped (the result equals running all of
    them; a test checks it).
    """
    device = input_ids.device
    batch = input_ids.shape[0]
    model_to_call, prefix, virtual = _prompt_learning(model)
    cache = prefix(batch) if prefix is not None else DynamicCache(config=model_to_call.config)
    mask = torch.cat([attention_mask.new_ones(batch, virtual), attention_mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model_to_call(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=positions[:, virtual:],
        past_key_values=cache,
        use_cache=True,
    ).logits[:, -1, :]
    last_position = positions[:, -1].repeat_interleave(num_beams)
    mask = mask.repeat_interleave(num_beams, dim=0)
    offsets = torch.arange(batch, device=device).unsqueeze(-1) * num_beams

    beam_scores = torch.zeros(batch, num_beams, device=device)
    history = torch.empty(batch * num_beams, 0, dtype=torch.long, device=device)
    best_score: dict[int, float] = {}
    best_tokens: dict[int, list[int]] = {}
    eos = set(eos_token_ids)
    token_ids = input_ids[:, -1:]  # the next step's input: set by each step

    def add_candidates(ended: list[int] | None) -> None:
        flat = beam_scores.view(-1)
        length = history.shape[1]
        for row in range(batch * num_beams) if ended is None else ended:
            score = float(flat[row]) / length**length_penalty
            b = row // num_beams
            if b not in best_score or best_score[b] < score:
                best_score[b], best_tokens[b] = score, history[row].tolist()
            flat[row] = -float("inf")

    for step in range(max_new_tokens):
        if step > 0:
            mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
            logits = model_to_call(
                input_ids=token_ids,
                attention_mask=mask,
                position_ids=(last_position + step).unsqueeze(-1),
                past_key_values=cache,
                use_cache=True,
            ).logits[:, -1, :]
        logits = logits.float()
        if no_repeat_ngram_size > 0 and step > 0:
            for row, generated in enumerate(history.tolist()):
                banned = banned_next_tokens(generated, no_repeat_ngram_size)
                if banned:
                    logits[row, banned] = -float("inf")
        log_probs = torch.log(F.softmax(logits, dim=-1))
        vocab = log_probs.shape[-1]
        if step == 0:
            next_scores = log_probs  # batch × vocab: every beam starts from the same prompt
        else:
            next_scores = (
                beam_scores.unsqueeze(-1) + log_probs.view(batch, num_beams, vocab)
            ).view(batch, -1)
        beam_scores, next_tokens = torch.topk(next_scores, num_beams, dim=1, sorted=True)
        source = (
            torch.arange(batch, device=device).repeat_interleave(num_beams)
            if step == 0
            else (next_tokens // vocab + offsets).view(-1)
        )
        token_ids = (next_tokens % vocab).view(-1, 1)
        cache.reorder_cache(source)
        history = torch.cat([history[source] if step > 0 else history, token_ids], dim=1)
        add_candidates([r for r, t in enumerate(token_ids.view(-1).tolist()) if t in eos])
        if _EARLY_EXIT and length_penalty >= 0 and len(best_score) == batch:
            bound = beam_scores.max(dim=1).values / max_new_tokens**length_penalty
            if all(float(bound[b]) <= best_score[b] for b in range(batch)):
                break
    else:
        add_candidates(None)

    out = []
    for b in range(batch):
        tokens = best_tokens[b]
        cut = next((i for i, t in enumerate(tokens) if t in eos), len(tokens))
        out.append(tokens[:cut])
    return out
