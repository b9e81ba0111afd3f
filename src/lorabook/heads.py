"""Sequence-classification read-outs: the [CLS] token (the models' own) or the masked mean.

    net = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    use_mean_pooling(net)        # in place: the classifier now reads the mean of the tokens

BERT's and RoBERTa's sequence classifiers read the first token: BERT through its pooler
(``dense`` + tanh on [CLS], pretrained on next-sentence prediction), RoBERTa through its new
``classifier`` (``features[:, 0]``, then ``dense`` + tanh + ``out_proj``). all-MiniLM-L6-v2 was
trained by sentence-transformers for the *mean* of its token vectors (its
``1_Pooling/config.json``: ``pooling_mode_mean_tokens``), and its pooler was never trained:
its bias is exactly zero and its weight is i.i.d. Gaussian (std 0.0091, kurtosis 2.98, row
norms varying 3.5% as 1/√(2·384) predicts), where the encoder's weights have std 0.04–0.06
and heavy tails.

``use_mean_pooling`` swaps what reads the first token for :class:`MeanPooling`, the mean of
the last hidden states over the tokens the attention mask keeps (padding changes nothing):
BERT: ``bert.pooler`` becomes the mean (no dense, no tanh), then the model's dropout and
``classifier``; RoBERTa: ``classifier`` becomes the mean followed by the original head, which
reads it where it read ``<s>``. The mask reaches the pooling through a forward pre-hook on the
encoder (``model.base_model``, which runs first and is given the mask; ``BertPooler`` and
RoBERTa's head are not).
"""

from __future__ import annotations

import torch
from torch import nn

POOLING = ("cls", "mean")  # the models' own first-token read-out; the masked mean
# What reads the first token, by model type: replaced by MeanPooling (RoBERTa: wrapped)
FIRST_TOKEN_READER: dict[str, str] = {"bert": "bert.pooler", "roberta": "classifier"}


class MeanPooling(nn.Module):
    """The mean of ``hidden_states`` (batch, tokens, d) over the tokens ``mask`` keeps, then
    ``head`` if given (it gets the mean as a one-token sequence, so a head that reads token 0,
    like RoBERTa's, reads the mean).

    ``mask`` (batch, tokens) is set at each call of the encoder by the pre-hook that
    :func:`use_mean_pooling` registers on it; ``None`` means every token counts.
    """

    def __init__(self, head: nn.Module | None = None) -> None:
        super().__init__()
        self.head = head
        self.mask: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor, **kwargs: object) -> torch.Tensor:
        """``sum(mask · h) / sum(mask)`` over the tokens, then ``head`` (if any)."""
        if self.mask is None:
            pooled = hidden_states.mean(dim=1)
        else:
            keep = self.mask.to(hidden_states.dtype).unsqueeze(-1)
            pooled = (hidden_states * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1)
        return pooled if self.head is None else self.head(pooled.unsqueeze(1), **kwargs)


def _set_mask(pooling: MeanPooling):
    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        pooling.mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)

    return hook


def use_mean_pooling(model: nn.Module) -> MeanPooling:
    """Make a BERT/RoBERTa sequence classifier read the masked mean of its tokens (in place).

    Returns the :class:`MeanPooling` module (at ``bert.pooler`` or ``classifier``).

    Raises:
        ValueError: a model type without a known first-token read-out, or a model that
            already mean-pools.
    """
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in FIRST_TOKEN_READER:
        raise ValueError(
            f"Mean pooling knows where BERT and RoBERTa read their first token "
            f"({', '.join(FIRST_TOKEN_READER)}), not model_type={model_type!r}; add its "
            f"pooler or classifier to FIRST_TOKEN_READER in lorabook.heads"
        )
    name = FIRST_TOKEN_READER[model_type]
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    reader = getattr(parent, child, None)
    if isinstance(reader, MeanPooling):
        raise ValueError(f"This model already mean-pools ({name} is a MeanPooling)")
    if reader is None:
        raise ValueError(f"This {type(model).__name__} has no {name} to replace")
    pooling = MeanPooling(head=reader if model_type == "roberta" else None)
    setattr(parent, child, pooling)
    model.base_model.register_forward_pre_hook(_set_mask(pooling), with_kwargs=True)
    return pooling
