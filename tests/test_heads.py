"""The mean-pooling read-out: the masked mean of the tokens, then the classifier; padding
changes nothing; the method's parameter counts and the head's stay apart."""

from __future__ import annotations

import pytest
import torch
from conftest import SEQ, VOCAB, tiny_model
from torch import nn

from lorabook.heads import MeanPooling, use_mean_pooling
from lorabook.methods import prepare_model

ENCODERS = ("bert", "roberta")
SHORT = 4  # real tokens of the padded example


def padded_batch(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Two examples, SHORT and SEQ tokens, padded with the model's pad id, and their mask."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, VOCAB, (2, SEQ), generator=g)
    ids[0, SHORT:] = model.config.pad_token_id
    mask = (torch.arange(SEQ) < torch.tensor([[SHORT], [SEQ]])).long()
    return ids, mask


@pytest.mark.parametrize("arch", ENCODERS)
def test_padding_does_not_change_the_mean_pooled_logits(arch):
    model = tiny_model(arch)
    use_mean_pooling(model)
    ids, mask = padded_batch(model)
    with torch.no_grad():
        together = model(input_ids=ids, attention_mask=mask).logits
        alone = torch.cat(
            [model(input_ids=ids[:1, :SHORT]).logits, model(input_ids=ids[1:]).logits]
        )
        unmasked = model(input_ids=ids).logits  # pads attended to and averaged in
    torch.testing.assert_close(together, alone)
    assert not torch.allclose(unmasked[0], together[0], atol=1e-4)


@pytest.mark.parametrize("arch", ENCODERS)
def test_mean_pooled_logits_are_the_classifier_of_the_masked_mean(arch):
    model = tiny_model(arch)
    pooling = use_mean_pooling(model)
    ids, mask = padded_batch(model)
    with torch.no_grad():
        got = model(input_ids=ids, attention_mask=mask).logits
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        mean = torch.stack([hidden[0, :SHORT].mean(0), hidden[1].mean(0)])  # by hand
        if arch == "bert":  # the pooler's dense and tanh are gone: dropout (eval) + classifier
            assert model.bert.pooler is pooling and pooling.head is None
            expected = model.classifier(mean)
        else:  # RoBERTa's own head, reading the mean where it read <s>
            head = pooling.head
            expected = head.out_proj(torch.tanh(head.dense(mean)))
    torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("arch", ENCODERS)
def test_methods_apply_on_top_and_the_head_is_what_reads_the_mean(arch):
    model = tiny_model(arch)
    use_mean_pooling(model)
    report = prepare_model(model, "lora", lora_r=4)
    assert report.trainable == 2 * 2 * (2 * 32 * 4)  # LoRA's count does not move
    classifier = sum(p.numel() for p in model.classifier.parameters())
    assert report.head == classifier  # BERT: the pooler's dense is gone (32·32 + 32 fewer)
    if arch == "bert":
        assert classifier == 32 * 3 + 3
    assert all(p.requires_grad for p in model.classifier.parameters())


def test_mean_pooling_refuses_unknown_models_and_a_second_application():
    model = tiny_model("bert")
    use_mean_pooling(model)
    with pytest.raises(ValueError, match="already mean-pools"):
        use_mean_pooling(model)
    with pytest.raises(ValueError, match="model_type='gpt2'.*FIRST_TOKEN_READER"):
        use_mean_pooling(tiny_model("gpt2"))
    assert isinstance(model.bert.pooler, MeanPooling)
