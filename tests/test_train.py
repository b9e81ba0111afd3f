"""The training engine: it learns, resumes exactly, stops on NaN, refuses a changed config."""

from __future__ import annotations

import contextlib
import math
import time
from types import SimpleNamespace

import pytest
import torch
from conftest import tiny_model

from lorabook import apply_lora
from lorabook.runs import read_progress
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
    assert result.optimizer_steps == 3 * N // 8  # counted across the resume
    elapsed = [e["elapsed_seconds"] for e in result.history]
    assert elapsed == sorted(elapsed)  # time to accuracy, counted across the resume too
    assert any("Resuming" in line for line in lines)
    for name, value in trainable(straight).items():
        torch.testing.assert_close(trainable(resumed)[name], value, rtol=0, atol=0)


TIMES = ("train_seconds", "elapsed_seconds")  # clocks: the rest of an epoch's entry is exact


def untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k not in TIMES} for e in history]


def assert_same_run(result, net, straight_result, straight_net) -> None:
    """Bit-identical: every trained weight, and every epoch's losses, curve and metrics."""
    assert untimed(result.history) == untimed(straight_result.history)
    assert result.optimizer_steps == straight_result.optimizer_steps
    for name, value in trainable(straight_net).items():
        torch.testing.assert_close(trainable(net)[name], value, rtol=0, atol=0)


@pytest.mark.parametrize("grad_accum,every", [(1, 2), (2, 1)])
def test_resume_inside_an_epoch_is_bit_identical(tmp_path, grad_accum, every):
    """Killed at epoch 2's fifth batch, with a checkpoint every ``every`` optimizer steps: the
    last one holds 4 of the epoch's 6 batches. The resumed run skips those 4, draws the same
    dropout masks, keeps the 4 losses, and ends exactly where an uninterrupted run does."""
    data, cfg = dataset(), TrainConfig(**{**CFG.__dict__, "grad_accum": grad_accum})
    straight = model()
    straight_result = quiet_fit(straight, data, accuracy_on(data), cfg)

    seen: list[torch.Tensor] = []

    def killed_at_batch_11(net, batch):
        if len(seen) == N // 8 + 4:
            raise KeyboardInterrupt
        seen.append(batch["input_ids"])
        return net(**batch).loss

    with pytest.raises(KeyboardInterrupt):
        quiet_fit(
            model(),
            data,
            accuracy_on(data),
            cfg,
            checkpoint_dir=tmp_path,
            checkpoint_every=every,
            compute_loss=killed_at_batch_11,
        )
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert len(state["history"]) == 1 and state["in_epoch"]["batches"] == 4
    lines: list[str] = []
    resumed_batches: list[torch.Tensor] = []

    def loss(net, batch):
        resumed_batches.append(batch["input_ids"])
        return net(**batch).loss

    resumed = model()
    result = quiet_fit(
        resumed,
        data,
        accuracy_on(data),
        cfg,
        checkpoint_dir=tmp_path,
        checkpoint_every=every,
        compute_loss=loss,
        log=lines.append,
    )
    assert (result.resumed_from_epoch, result.resumed_from_batch) == (1, 4)
    assert "Resuming from" in lines[0] and "in epoch 2, after 4 batches" in lines[0]
    assert len(resumed_batches) == 2 + N // 8  # the rest of epoch 2, then epoch 3
    assert_same_run(result, resumed, straight_result, straight)


def test_sigterm_writes_a_checkpoint_at_the_next_step_and_a_rerun_resumes(tmp_path):
    """SIGTERM in epoch 2's third batch (no interval checkpoints): fit finishes that step,
    writes the checkpoint, stops with exit status 143; the same call then resumes from it."""
    import os
    import signal

    from lorabook.train import TrainingStopped

    data = dataset()
    straight = model()
    straight_result = quiet_fit(straight, data, accuracy_on(data), CFG)
    calls = {"n": 0}

    def terminated(net, batch):
        calls["n"] += 1
        if calls["n"] == N // 8 + 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return net(**batch).loss

    before = signal.getsignal(signal.SIGTERM)
    lines: list[str] = []
    with pytest.raises(TrainingStopped) as stopped:
        quiet_fit(
            model(),
            data,
            accuracy_on(data),
            CFG,
            checkpoint_dir=tmp_path,
            checkpoint_every=None,
            compute_loss=terminated,
            log=lines.append,
        )
    assert stopped.value.code == 128 + signal.SIGTERM and calls["n"] == N // 8 + 3
    assert "in epoch 2 after 3 batches" in lines[-1] and "run again to resume" in lines[-1]
    assert signal.getsignal(signal.SIGTERM) == before  # fit's handler is gone again
    # beside the checkpoint, how far it got, for a campaign's plan to read without loading it
    held = read_progress(tmp_path)
    assert held["epochs_done"] == pytest.approx(1 + 3 / math.ceil(N / 8))
    assert held["elapsed_seconds"] > 0
    resumed = model()
    result = quiet_fit(resumed, data, accuracy_on(data), CFG, checkpoint_dir=tmp_path)
    assert (result.resumed_from_epoch, result.resumed_from_batch) == (1, 3)
    assert_same_run(result, resumed, straight_result, straight)
    assert read_progress(tmp_path)["epochs_done"] == CFG.epochs
    assert read_progress(tmp_path / "elsewhere") is None


def test_sigterm_during_evaluation_stops_after_the_epoch_checkpoint(tmp_path):
    import os
    import signal

    from lorabook.train import TrainingStopped

    data = dataset()

    def evaluate(net, accelerator):
        os.kill(os.getpid(), signal.SIGTERM)
        return {"accuracy": 0.5}

    with pytest.raises(TrainingStopped, match="after epoch 1"):
        quiet_fit(model(), data, evaluate, CFG, checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert len(state["history"]) == 1 and state["in_epoch"] is None


def test_checkpoint_every_must_not_be_negative():
    with pytest.raises(ValueError, match="checkpoint_every must be a number of optimizer"):
        quiet_fit(model(), dataset(), accuracy_on(dataset()), CFG, checkpoint_every=-1)


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
    changed = r"other settings \(saved, now\): \{'lr': \(0\.0005, 0\.001\)\}\. Use the same"
    with pytest.raises(ValueError, match=changed):  # only what changed
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


# --- What fit promises (found by mutation testing, docs/mutation.md) -------------------------


def quiet_fit(net, data, evaluate, cfg, **kw):
    kw = {
        "collate_fn": collate,
        "select": "accuracy",
        "progress": False,
        "log": lambda s: None,
    } | kw
    return fit(net, data, evaluate, cfg, **kw)


@pytest.fixture
def optimizer_steps(monkeypatch):
    """Every optimizer step fit takes: each group's lr and weight decay, the parameters'
    shapes and the gradient norm the optimizer sees."""
    seen: list[dict] = []

    class Recording(torch.optim.AdamW):
        def step(self, closure=None):
            grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
            seen.append(
                {
                    "lr": [g["lr"] for g in self.param_groups],
                    "weight_decay": [g["weight_decay"] for g in self.param_groups],
                    "ndim": [{p.ndim for p in g["params"]} for g in self.param_groups],
                    "grad_norm": torch.linalg.vector_norm(
                        torch.stack([torch.linalg.vector_norm(g) for g in grads])
                    ).item(),
                }
            )
            return super().step(closure)

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    return seen


def linear_warmup_then_decay(lr: float, warmup: int, total: int, t: int) -> float:
    """The lr of optimizer step t (0-based): up from 0 over ``warmup`` steps, down to 0 at
    ``total``."""
    return lr * t / warmup if t < warmup else lr * max(0.0, (total - t) / (total - warmup))


@pytest.mark.parametrize(
    "settings,warmup,total",
    [
        ({"warmup_ratio": 0.25}, 3, 12),  # 2 epochs × 6 batches; ceil(0.25 · 12) = 3
        ({"warmup_ratio": 0.2}, 3, 12),  # ceil(2.4) = 3: warm-up rounds up
        ({"warmup_steps": 2, "grad_accum": 2}, 2, 6),  # 2 epochs × 3 optimizer steps
        ({"warmup_ratio": 0.25, "max_steps_per_epoch": 4}, 2, 8),  # 2 epochs × 4 batches
    ],
)
def test_learning_rate_at_step_t_follows_the_schedule(optimizer_steps, settings, warmup, total):
    data = dataset()
    cfg = TrainConfig(epochs=2, lr=2e-3, batch_size=8, **settings)
    result = quiet_fit(model(), data, accuracy_on(data), cfg)
    assert result.optimizer_steps == len(optimizer_steps) == total
    for t, step in enumerate(optimizer_steps):
        expected = linear_warmup_then_decay(2e-3, warmup, total, t)
        assert step["lr"] == pytest.approx([expected, expected], abs=1e-12), f"step {t}"


def test_weight_decay_on_matrices_only_and_gradients_clipped(optimizer_steps):
    data = dataset()
    cfg = TrainConfig(epochs=1, lr=1e-3, batch_size=8, weight_decay=0.05, max_grad_norm=0.01)
    quiet_fit(model("ft"), data, accuracy_on(data), cfg)
    for step in optimizer_steps:
        assert step["weight_decay"] == [0.05, 0.0]
        assert step["ndim"][0] == {2} and step["ndim"][1] == {1}  # biases and norm scales: no decay
        assert step["grad_norm"] <= 0.01 * (1 + 1e-4)


def test_without_max_grad_norm_gradients_are_not_clipped(optimizer_steps):
    data = dataset()
    cfg = TrainConfig(epochs=1, lr=1e-3, batch_size=8, max_grad_norm=None)
    quiet_fit(model("ft"), data, accuracy_on(data), cfg)
    assert max(step["grad_norm"] for step in optimizer_steps) > 0.1  # the clip above: 0.01


def test_the_best_epoch_is_the_best_not_the_last():
    scores = iter([0.5, 0.9, 0.7, 0.9])
    lines: list[str] = []
    started = time.perf_counter()
    result = quiet_fit(
        model(),
        dataset(),
        lambda net, acc: {"accuracy": next(scores), "f1": 0.25},
        TrainConfig(epochs=4, batch_size=8, max_steps_per_epoch=1),
        log=lines.append,
    )
    assert result.best_epoch == 2 and result.best["accuracy"] == 0.9  # ties: the earlier epoch
    assert result.select == "accuracy"  # the metric that chose it
    assert [e["epoch"] for e in result.history] == [1, 2, 3, 4]
    assert all(e["steps"] == 1 and e["f1"] == 0.25 for e in result.history)
    assert lines[1].startswith("epoch 2: loss ") and lines[1].endswith("accuracy 0.9000 f1 0.2500")
    elapsed = [e["elapsed_seconds"] for e in result.history]
    assert elapsed == sorted(elapsed) and 0 < elapsed[-1] <= result.seconds
    assert result.seconds <= time.perf_counter() - started  # the wall time of the call
    assert all(0 < e["train_seconds"] <= e["elapsed_seconds"] for e in result.history)


def test_select_must_be_an_evaluated_metric():
    with pytest.raises(KeyError, match=r"select='f1' is not among the evaluated metrics"):
        quiet_fit(
            model(),
            dataset(),
            accuracy_on(dataset()),
            TrainConfig(epochs=1, batch_size=8),
            select="f1",
        )


def test_fit_trains_on_the_given_order_with_the_given_loss():
    """compute_loss sees the batches order(epoch) lists, cut to max_steps_per_epoch; the
    epoch's train_loss is the mean of what it returned and its curve holds each batch."""
    data = dataset()
    seen, returned = [], []

    def compute_loss(net, batch):
        seen.append(batch["input_ids"])
        loss = net(**batch).loss
        returned.append(loss.item())
        return loss

    collated = []

    def collate_fn(rows):
        collated.append(len(rows))
        return collate(rows)

    result = quiet_fit(
        model(),
        data,
        accuracy_on(data),
        TrainConfig(epochs=2, batch_size=4, max_steps_per_epoch=3),
        collate_fn=collate_fn,
        compute_loss=compute_loss,
        order=lambda epoch: list(range(N))[::-1] if epoch == 0 else list(range(N)),
    )
    first = [
        torch.stack([data[i]["input_ids"] for i in range(N - 1 - 4 * b, N - 5 - 4 * b, -1)])
        for b in range(3)
    ]
    second = [
        torch.stack([data[i]["input_ids"] for i in range(4 * b, 4 * b + 4)]) for b in range(3)
    ]
    assert collated == [4] * 6  # the given collate_fn makes every batch
    assert len(seen) == 6 and all(
        torch.equal(s, e) for s, e in zip(seen, first + second, strict=True)
    )
    for epoch, entry in enumerate(result.history):
        losses = returned[3 * epoch : 3 * epoch + 3]
        assert entry["train_loss"] == pytest.approx(sum(losses) / 3)
        assert entry["loss_curve"] == pytest.approx(losses)


def test_default_order_is_epoch_order_of_the_seed():
    from lorabook.train import epoch_order

    data = dataset()
    seen = []

    def compute_loss(net, batch):
        seen.append(batch["input_ids"])
        return net(**batch).loss

    cfg = TrainConfig(epochs=2, batch_size=8, max_steps_per_epoch=1, seed=3)
    quiet_fit(model(), data, accuracy_on(data), cfg, compute_loss=compute_loss)
    for epoch in (0, 1):
        expected = torch.stack([data[i]["input_ids"] for i in epoch_order(N, 3, epoch)[:8]])
        assert torch.equal(seen[epoch], expected)


def test_epoch_order_is_a_permutation_fixed_by_seed_and_epoch():
    from lorabook.train import epoch_order

    order = epoch_order(50, seed=1, epoch=2)
    assert sorted(order) == list(range(50)) and order == epoch_order(50, seed=1, epoch=2)
    assert order != epoch_order(50, seed=1, epoch=3) and order != epoch_order(50, seed=2, epoch=2)
    assert epoch_order(50, seed=0, epoch=1) != epoch_order(50, seed=1, epoch=0)


def test_length_grouped_batches_hold_similar_lengths_and_the_short_one_is_last():
    from lorabook.train import length_grouped_order

    lengths = [(7 * i) % 23 for i in range(22)]
    order = length_grouped_order(lengths, batch_size=4, seed=0, epoch=0, chunk_batches=50)
    assert sorted(order) == list(range(22))
    batches = [order[k : k + 4] for k in range(0, 22, 4)]
    ranked = sorted(range(22), key=lambda i: -lengths[i])  # one chunk: batches cut this order
    runs = [sorted(lengths[i] for i in ranked[k : k + 4]) for k in range(0, 22, 4)]
    assert sorted(sorted(lengths[i] for i in b) for b in batches) == sorted(runs)
    assert [lengths[i] for i in batches[-1]] == [lengths[i] for i in ranked[20:]]
    assert order == length_grouped_order(lengths, 4, seed=0, epoch=0)  # default: 50 batches
    many = [(7 * i) % 23 for i in range(250)]
    assert (
        length_grouped_order(many, 2, seed=0, epoch=0)
        == length_grouped_order(many, 2, seed=0, epoch=0, chunk_batches=50)
        != length_grouped_order(many, 2, seed=0, epoch=0, chunk_batches=51)
    )
    assert order != length_grouped_order(lengths, 4, seed=0, epoch=1)
    assert order != length_grouped_order(lengths, 4, seed=1, epoch=0)
    # chunks of one batch: each batch is drawn from 4 consecutive examples of the epoch order
    from lorabook.train import epoch_order

    small = length_grouped_order(lengths, batch_size=4, seed=0, epoch=0, chunk_batches=1)
    epoch = epoch_order(22, seed=0, epoch=0)
    chunks = {frozenset(epoch[k : k + 4]) for k in range(0, 22, 4)}
    assert {frozenset(small[k : k + 4]) for k in range(0, 22, 4)} == chunks


def test_warmup_steps_from_ratio_or_fixed():
    assert TrainConfig(warmup_ratio=0.06).warmup(100) == 6
    assert TrainConfig(warmup_ratio=0.06).warmup(101) == 7  # rounded up
    assert TrainConfig(warmup_ratio=0.0).warmup(100) == 0
    assert TrainConfig(warmup_steps=5).warmup(100) == 5
    assert TrainConfig(warmup_steps=500).warmup(100) == 100
    assert TrainConfig(warmup_steps=0, warmup_ratio=0.5).warmup(100) == 0


@pytest.mark.parametrize(
    "bad,match",
    [
        ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
        ({"eval_batch_size": 0}, "eval_batch_size must be at least 1"),
        ({"grad_accum": 0}, "grad_accum must be at least 1"),
        ({"lr": -1e-3}, "lr must be positive"),
        ({"warmup_ratio": -0.1}, r"warmup_ratio must be in \[0, 1\)"),
        ({"warmup_steps": -1}, "warmup_steps must be at least 0, got -1"),
    ],
)
def test_more_config_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_config_accepts_its_edges():
    TrainConfig(epochs=1, batch_size=1, eval_batch_size=1, grad_accum=1, warmup_ratio=0.0)
    TrainConfig(warmup_steps=0, mixed_precision="bf16")


def no_dropout_model(method: str = "lora"):
    net = model(method)
    for module in net.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return net


def test_each_optimizer_step_sees_only_its_own_gradient(optimizer_steps):
    """Gradients are zeroed between steps: with identical batches and weights that barely move,
    every step sees the same gradient norm (with accumulation: the mean over its batches)."""
    row = dataset()[1]
    data = [row] * N
    for accum in (1, 2):
        optimizer_steps.clear()
        cfg = TrainConfig(epochs=1, lr=1e-12, batch_size=8, grad_accum=accum, max_grad_norm=None)
        quiet_fit(no_dropout_model(), data, accuracy_on(data), cfg)
        norms = [step["grad_norm"] for step in optimizer_steps]
        assert len(norms) == 6 // accum and norms == pytest.approx([norms[0]] * len(norms))
        if accum == 1:
            single = norms[0]
    assert norms[0] == pytest.approx(single)


def test_training_mode_for_batches_eval_mode_without_gradients_for_evaluation():
    data = dataset()
    modes = {"train": set(), "eval": set()}

    def compute_loss(net, batch):
        modes["train"].add((net.training, torch.is_grad_enabled()))
        return net(**batch).loss

    def evaluate(net, accelerator):
        modes["eval"].add((net.training, torch.is_grad_enabled()))
        return {"accuracy": 0.0}

    cfg = TrainConfig(epochs=2, batch_size=8, max_steps_per_epoch=2)
    quiet_fit(model(), data, evaluate, cfg, compute_loss=compute_loss)
    assert modes == {"train": {(True, True)}, "eval": {(False, False)}}


def test_checkpoint_holds_only_what_trains(tmp_path):
    data = dataset()
    net = model()
    cfg = TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=1)
    quiet_fit(net, data, accuracy_on(data), cfg, checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert set(state["trainable"]) == set(trainable(net))
    assert state["optimizer_steps"] == 1 and len(state["history"]) == 1


def test_progress_bar_and_epoch_lines_by_default(capfd):
    data = dataset()
    cfg = TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=1)
    quiet_fit(model(), data, accuracy_on(data), cfg, progress=False)
    assert "epoch 1/1" not in capfd.readouterr().err
    fit(model(), data, accuracy_on(data), cfg, collate_fn=collate, select="accuracy")
    out = capfd.readouterr()
    assert "epoch 1/1" in out.err and out.out.startswith("epoch 1: loss ")


class FakeMeter:
    """An energy meter that reads 10 J more at each reading."""

    def __init__(self, measurable: bool) -> None:
        self.measurable, self.readings = measurable, 0

    def start(self):
        return self

    def stop(self):
        return self

    def joules(self):
        self.readings += 1
        return 10.0 * self.readings if self.measurable else None


def test_energy_is_counted_across_resumes_only_if_every_epoch_measured(tmp_path, monkeypatch):
    from lorabook import train

    data = dataset()
    cfg = TrainConfig(epochs=2, batch_size=8, max_steps_per_epoch=1)

    def run(measurable: bool, folder, stop_in_epoch_2: bool):
        monkeypatch.setattr(train, "energy_meter", lambda device: FakeMeter(measurable))
        calls = {"n": 0}

        def evaluate(net, accelerator):
            calls["n"] += 1
            if stop_in_epoch_2 and calls["n"] == 2:
                raise KeyboardInterrupt
            return {"accuracy": 0.5}

        if stop_in_epoch_2:
            with pytest.raises(KeyboardInterrupt):
                quiet_fit(model(), data, evaluate, cfg, checkpoint_dir=folder)
            return None
        return quiet_fit(model(), data, evaluate, cfg, checkpoint_dir=folder)

    fresh = run(True, tmp_path / "fresh", False)
    assert [e["energy_joules"] for e in fresh.history] == [10.0, 20.0]
    run(True, tmp_path / "measured", True)
    resumed = run(True, tmp_path / "measured", False)
    assert [e["energy_joules"] for e in resumed.history] == [10.0, 20.0]  # 10 before + 10
    run(False, tmp_path / "unmeasured", True)
    resumed = run(True, tmp_path / "unmeasured", False)
    assert not any("energy_joules" in e for e in resumed.history)
    assert not any("energy_joules" in e for e in run(False, tmp_path / "none", False).history)


def test_nan_without_a_checkpoint_says_so():
    data = dataset()

    def compute_loss(net, batch):
        return net(**batch).loss * float("nan")

    with pytest.raises(
        TrainingDivergedError,
        match=r"Loss became nan at epoch 1, step 1; training stopped and no checkpoint was "
        r"written yet. Try a lower learning rate \(now 0.0005\)",
    ):
        quiet_fit(
            model(), data, accuracy_on(data), TrainConfig(batch_size=8), compute_loss=compute_loss
        )


@pytest.fixture
def fresh_accelerator_state():
    """Accelerate keeps one state per process; a test of another precision resets it."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)
    yield
    AcceleratorState._reset_state(True)


@pytest.mark.parametrize("precision,dtype", [("no", torch.float32), ("bf16", torch.bfloat16)])
def test_mixed_precision_reaches_the_forward_pass(precision, dtype, fresh_accelerator_state):
    """With bf16 the layers compute in bf16 (under autocast); fit's outputs stay fp32."""
    data = dataset()
    net, seen = model(), set()
    net.roberta.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda module, args, out: seen.add(out.dtype)
    )
    cfg = TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=1, mixed_precision=precision)
    quiet_fit(net, data, lambda net, acc: {"accuracy": 0.0}, cfg)
    assert seen == {dtype}


def test_one_process_trains_in_fp32_then_bf16_then_fp32():
    """Accelerate fixes a process's precision at its first Accelerator; fit resets it when a
    single process asks for another one (a notebook comparing fp32 and bf16)."""
    data, seen = dataset(), []
    for precision in ("no", "bf16", "no"):
        net = model()
        net.roberta.encoder.layer[0].attention.self.query.register_forward_hook(
            lambda module, args, out: seen.append(out.dtype)
        )
        cfg = TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=1, mixed_precision=precision)
        quiet_fit(net, data, lambda net, acc: {"accuracy": 0.0}, cfg)
    assert seen == [torch.float32, torch.bfloat16, torch.float32]


def test_elapsed_time_is_counted_across_a_resume(tmp_path, monkeypatch):
    """A run interrupted in epoch 2 and resumed reports the times of an uninterrupted run:
    its epoch 2 adds its own time to epoch 1's elapsed time (a clock that moves 1 s per batch
    and 0.5 s per evaluation)."""
    from lorabook import train

    clock = {"now": 100.0}
    monkeypatch.setattr(train, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))

    def compute_loss(net, batch):
        clock["now"] += 1.0
        return net(**batch).loss

    def evaluate(net, accelerator, stop_at=None):
        clock["now"] += 0.5
        if len(evaluated) + 1 == stop_at:
            raise KeyboardInterrupt
        evaluated.append(1)
        return {"accuracy": 0.5}

    data, cfg = dataset(), TrainConfig(epochs=2, batch_size=8, max_steps_per_epoch=1)
    evaluated: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        quiet_fit(
            model(),
            data,
            lambda net, acc: evaluate(net, acc, stop_at=2),
            cfg,
            compute_loss=compute_loss,
            checkpoint_dir=tmp_path,
        )
    result = quiet_fit(
        model(), data, evaluate, cfg, compute_loss=compute_loss, checkpoint_dir=tmp_path
    )
    assert result.resumed_from_epoch == 1
    assert [e["train_seconds"] for e in result.history] == [1.0, 1.0]
    assert [e["elapsed_seconds"] for e in result.history] == [1.5, 3.0]
    assert result.seconds == 1.5  # this call's own time


def test_train_and_epoch_clocks_are_counted_across_a_resume_inside_an_epoch(tmp_path, monkeypatch):
    """A clock that moves 1 s per batch and 0.5 s per evaluation; killed at epoch 2's fifth
    batch with a checkpoint after its fourth: the resumed run reports the times of an
    uninterrupted one (the lost fifth batch is trained and counted once)."""
    from lorabook import train

    clock = {"now": 100.0}
    monkeypatch.setattr(train, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))
    calls = {"n": 0}

    def compute_loss(net, batch, kill_at=None):
        calls["n"] += 1
        clock["now"] += 1.0
        if calls["n"] == kill_at:
            raise KeyboardInterrupt
        return net(**batch).loss

    def evaluate(net, accelerator):
        clock["now"] += 0.5
        return {"accuracy": 0.5}

    data, cfg = dataset(), TrainConfig(epochs=2, batch_size=8)
    with pytest.raises(KeyboardInterrupt):
        quiet_fit(
            model(),
            data,
            evaluate,
            cfg,
            compute_loss=lambda n, b: compute_loss(n, b, kill_at=N // 8 + 5),
            checkpoint_dir=tmp_path,
            checkpoint_every=2,
        )
    result = quiet_fit(
        model(), data, evaluate, cfg, compute_loss=compute_loss, checkpoint_dir=tmp_path
    )
    assert [e["train_seconds"] for e in result.history] == [6.0, 6.0]
    assert [e["elapsed_seconds"] for e in result.history] == [6.5, 13.0]


def test_bf16_autocasts_training_and_evaluation_and_keeps_fp32_state(
    tmp_path, fresh_accelerator_state
):
    """bf16: the forward of training and evaluate's own matmuls run in bf16; the weights,
    their gradients' destination and AdamW's moments stay fp32; after fit the model computes
    in fp32 again (Accelerate's autocast wrapper of its forward is removed)."""
    data, net, seen = dataset(), model(), {"train": set(), "eval": set()}
    query = net.roberta.encoder.layer[0].attention.self.query
    query.register_forward_hook(
        lambda m, a, out: seen["eval" if not m.training else "train"].add(out.dtype)
    )

    def evaluate(net, accelerator):
        a, b = torch.randn(4, 8), torch.randn(8, 3)
        net(input_ids=collate(data[:4])["input_ids"])
        return {"accuracy": float((a @ b).dtype == torch.bfloat16)}

    cfg = TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=2, mixed_precision="bf16")
    result = quiet_fit(net, data, evaluate, cfg, checkpoint_dir=tmp_path)
    assert seen == {"train": {torch.bfloat16}, "eval": {torch.bfloat16}}
    assert result.history[0]["accuracy"] == 1.0  # evaluate ran under autocast
    assert all(p.dtype == torch.float32 for p in net.parameters())
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    moments = [t for s in state["optimizer"]["state"].values() for k, t in s.items() if k != "step"]
    assert moments and all(t.dtype == torch.float32 for t in moments)
    seen["eval"].clear()
    net.eval()(input_ids=collate(data[:4])["input_ids"])
    assert seen["eval"] == {torch.float32}


def test_evaluate_and_the_energy_meter_get_the_training_device(monkeypatch):
    """evaluate(model, accelerator) gets fit's accelerator (its device, its gather), and the
    energy is measured on the device the model trains on."""
    from accelerate import Accelerator

    from lorabook import train

    data, asked = dataset(), {}

    def meter(device):
        asked["meter"] = device
        return FakeMeter(False)

    monkeypatch.setattr(train, "energy_meter", meter)

    def evaluate(net, accelerator):
        assert isinstance(accelerator, Accelerator)
        asked["evaluate"] = accelerator.device
        batch = {k: v.to(accelerator.device) for k, v in collate(data).items()}
        right = net(input_ids=batch["input_ids"]).logits.argmax(-1) == batch["labels"]
        return {"accuracy": accelerator.gather_for_metrics(right).float().mean().item()}

    net = model()
    cfg = TrainConfig(epochs=1, batch_size=8, max_steps_per_epoch=1)
    result = quiet_fit(net, data, evaluate, cfg)
    where = next(net.parameters()).device
    for device in (asked["meter"], asked["evaluate"]):
        assert isinstance(device, torch.device) and device.type == where.type
    assert 0 <= result.history[0]["accuracy"] <= 1


def test_accumulated_micro_steps_skip_the_gradient_sync_of_the_model(monkeypatch):
    """With grad_accum=2, the batches that end no optimizer step run under the trained
    model's no_sync (on several GPUs: no all-reduce until the step); the others do not."""
    from accelerate import Accelerator

    original, inside, unsynced = Accelerator.no_sync, {"on": False}, []

    @contextlib.contextmanager
    def no_sync(self, net):
        unsynced.append(net)
        with original(self, net):
            inside["on"] = True
            try:
                yield
            finally:
                inside["on"] = False

    monkeypatch.setattr(Accelerator, "no_sync", no_sync)
    trained, under_no_sync = [], []

    def compute_loss(net, batch):
        trained.append(net)
        under_no_sync.append(inside["on"])
        return net(**batch).loss

    data = dataset()
    cfg = TrainConfig(epochs=1, batch_size=8, grad_accum=2)
    result = quiet_fit(model(), data, accuracy_on(data), cfg, compute_loss=compute_loss)
    assert result.optimizer_steps == 3 and under_no_sync == [True, False] * 3
    assert len(unsynced) == 3 and all(net is trained[0] for net in unsynced + trained)


def test_on_evaluated_follows_each_evaluation_and_precedes_its_checkpoint(tmp_path):
    data = dataset()
    seen: list[tuple[int, bool]] = []
    ckpt = tmp_path / CHECKPOINT

    def on_evaluated(epoch: int) -> None:
        saved = torch.load(ckpt, weights_only=False)["history"] if ckpt.exists() else []
        seen.append((epoch, len(saved)))  # the checkpoint still holds the epochs before
        if epoch == 2 and len(seen) == 2:
            raise KeyboardInterrupt  # dies before epoch 2's checkpoint: epoch 2 is redone

    with pytest.raises(KeyboardInterrupt):
        quiet_fit(
            model(),
            data,
            accuracy_on(data),
            CFG,
            checkpoint_dir=tmp_path,
            on_evaluated=on_evaluated,
        )
    quiet_fit(
        model(), data, accuracy_on(data), CFG, checkpoint_dir=tmp_path, on_evaluated=on_evaluated
    )
    assert seen == [(1, 0), (2, 1), (2, 1), (3, 2)]
