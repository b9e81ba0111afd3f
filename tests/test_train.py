"""The training engine: it learns, resumes exactly, stops on NaN, refuses a changed config."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model

from lorabook import apply_lora
from lorabook.train import CHECKPOINT, TrainConfig, TrainingDivergedError, fit

N, SEQ = 48, 8


def dataset() -> list[dict]:
    """A learnable toy task: the label says whether token 7 occurs in the sequence."""
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(N):
        ids = torch.randint(8, 99, (SEQ,), generator=g)
        label = int(torch.rand(1, generator=g) < 0.5)
        if label:
            ids[torch.randint(0, SEQ, (1,), generator=g)] = 7
        rows.append({"input_ids": ids, "labels": torch.tensor(label)})
    return rows


def collate(rows: list[dict]) -> dict:
    return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}


def model(method: str = "lora"):
    net = tiny_model("roberta", num_labels=2)
    if method == "lora":
        apply_lora(net, r=4, alpha=8, keep_trainable=["classifier"])
    return net


def accuracy_on(data):
    def evaluate(net, accelerator):
        batch = collate(data)
        pred = net(input_ids=batch["input_ids"]).logits.argmax(-1)
        return {"accuracy": (pred == batch["labels"]).float().mean().item()}

    return evaluate


CFG = TrainConfig(epochs=3, lr=5e-3, batch_size=8, warmup_ratio=0.1, seed=0)


def trainable(net) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}


def test_fit_learns_and_reports_best_epoch():
    data = dataset()
    net = model("ft")
    result = fit(
        net,
        data,
        accuracy_on(data),
        TrainConfig(epochs=4, lr=1e-3, batch_size=8),
        collate_fn=collate,
        select="accuracy",
        progress=False,
        log=lambda s: None,
    )
    losses = [e["train_loss"] for e in result.history]
    assert len(result.history) == 4 and losses[-1] < losses[0]
    scores = [e["accuracy"] for e in result.history]
    assert (
        result.best["accuracy"] == max(scores)
        and result.best_epoch == scores.index(max(scores)) + 1
    )
    assert result.optimizer_steps == 4 * N // 8


def test_gradient_accumulation_counts_optimizer_steps():
    data = dataset()
    cfg = TrainConfig(epochs=1, lr=1e-3, batch_size=8, grad_accum=3)
    result = fit(
        model(),
        data,
        accuracy_on(data),
        cfg,
        collate_fn=collate,
        select="accuracy",
        progress=False,
        log=lambda s: None,
    )
    assert result.history[0]["steps"] == N // 8 and result.optimizer_steps == 2


def test_resume_after_interruption_gives_the_same_weights(tmp_path):
    data = dataset()
    straight = model()
    fit(
        straight,
        data,
        accuracy_on(data),
        CFG,
        collate_fn=collate,
        select="accuracy",
        progress=False,
        log=lambda s: None,
    )

    calls = {"n": 0}

    def interrupted(net, accelerator):
        calls["n"] += 1
        if calls["n"] == 2:  # killed during epoch 2's evaluation: epoch 1 is checkpointed
            raise KeyboardInterrupt
        return accuracy_on(data)(net, accelerator)

    with pytest.raises(KeyboardInterrupt):
        fit(
            model(),
            data,
            interrupted,
            CFG,
            collate_fn=collate,
            select="accuracy",
            checkpoint_dir=tmp_path,
            progress=False,
            log=lambda s: None,
        )
    assert (tmp_path / CHECKPOINT).exists()
    lines: list[str] = []
    resumed = model()
    result = fit(
        resumed,
        data,
        accuracy_on(data),
        CFG,
        collate_fn=collate,
        select="accuracy",
        checkpoint_dir=tmp_path,
        progress=False,
        log=lines.append,
    )
    assert result.resumed_from_epoch == 1 and len(result.history) == 3
    assert any("Resuming" in line for line in lines)
    for name, value in trainable(straight).items():
        torch.testing.assert_close(trainable(resumed)[name], value, rtol=0, atol=0)


def test_resume_refuses_changed_settings(tmp_path):
    data = dataset()
    fit(
        model(),
        data,
        accuracy_on(data),
        TrainConfig(epochs=1, batch_size=8),
        collate_fn=collate,
        select="accuracy",
        checkpoint_dir=tmp_path,
        progress=False,
        log=lambda s: None,
    )
    with pytest.raises(ValueError, match=r"other settings.*'lr': \(0.0005, 0.001\)"):
        fit(
            model(),
            data,
            accuracy_on(data),
            TrainConfig(epochs=1, batch_size=8, lr=1e-3),
            collate_fn=collate,
            select="accuracy",
            checkpoint_dir=tmp_path,
            progress=False,
            log=lambda s: None,
        )


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    data = dataset()
    net = model()
    original_forward = net.forward
    calls = {"n": 0}

    def forward(*args, **kwargs):
        out = original_forward(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] > N // 8 + 2:  # epoch 2 (after epoch 1's 6 steps and its evaluation)
            out.loss = out.loss * float("nan")
        return out

    net.forward = forward
    with pytest.raises(TrainingDivergedError, match=r"Loss became nan at epoch 2.*holds epoch 1"):
        fit(
            net,
            data,
            accuracy_on(data),
            CFG,
            collate_fn=collate,
            select="accuracy",
            checkpoint_dir=tmp_path,
            progress=False,
            log=lambda s: None,
        )
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert len(state["history"]) == 1
    assert all(torch.isfinite(t).all() for t in state["trainable"].values())


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"mixed_precision": "fp8"}, "mixed_precision must be one of"),
        ({"epochs": 0}, "epochs must be at least 1"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"warmup_ratio": 1.0}, r"warmup_ratio must be in \[0, 1\)"),
    ],
)
def test_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_no_trainable_parameters_is_a_clear_error():
    net = model("ft")
    for p in net.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="No trainable parameters"):
        fit(
            net,
            dataset(),
            accuracy_on(dataset()),
            CFG,
            collate_fn=collate,
            select="accuracy",
            progress=False,
        )


def test_loss_curve_averages_consecutive_chunks():
    from lorabook.train import loss_curve

    assert loss_curve([3.0, 1.0]) == [3.0, 1.0]
    curve = loss_curve([float(i) for i in range(100)], points=4)
    assert curve == [12.0, 37.0, 62.0, 87.0]  # means of 0-24, 25-49, 50-74, 75-99
    assert len(loss_curve([1.0] * 501)) == 50
