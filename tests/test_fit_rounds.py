"""fit with rounds (several evaluations per pass), stop_early and keep_best."""

from __future__ import annotations

import pytest
import torch
from test_train import accuracy_on, collate, dataset, model, trainable

from lorabook import train
from lorabook.train import (
    BEST,
    CHECKPOINT,
    TrainConfig,
    epoch_order,
    fit,
    round_order,
    round_sizes,
)


def test_round_sizes_take_equal_batches_and_say_when_they_cannot():
    sizes = round_sizes(42_061, 4, 8)  # the E2E training set in quarters
    assert sizes == [10_516, 10_515, 10_515, 10_515] and sum(sizes) == 42_061
    assert {-(-s // 8) for s in sizes} == {1_315}
    assert round_sizes(48, 4, 8) == [12] * 4 and round_sizes(5, 1, 8) == [5]
    for n in range(1, 200):
        try:
            sizes = round_sizes(n, 4, 8)
        except ValueError as err:
            assert "cannot be cut into 4 rounds" in str(err) and "use at most" in str(err)
            continue
        assert sum(sizes) == n and len({-(-s // 8) for s in sizes}) == 1
    with pytest.raises(ValueError, match="33 examples cannot be cut into 4 rounds of 2 batches"):
        round_sizes(33, 4, 8)


def test_four_rounds_see_every_row_once_per_pass_in_the_pass_order():
    n, seed = 42_061, 3
    order, batches = round_order(n, 8, 4, seed)
    assert batches == 1_315
    for epoch in (0, 1):
        parts = [order(4 * epoch + k) for k in range(4)]
        assert sorted(i for part in parts for i in part) == list(range(n))
        assert [i for part in parts for i in part] == epoch_order(n, seed, epoch)
    assert order(0) != order(4)  # the second pass is shuffled again


def test_grouped_rounds_keep_each_rounds_rows_and_batches_and_pad_far_less():
    n, seed = 42_061, 3
    lengths = [20 + (i * 7919) % 100 for i in range(n)]  # 20..119 tokens, like E2E's spread
    plain, batches = round_order(n, 8, 4, seed)
    grouped, same = round_order(n, 8, 4, seed, lengths)
    assert same == batches == 1_315

    def padded(order: list[int]) -> float:  # tokens computed / real tokens
        steps = range(0, len(order), 8)
        return sum(8 * max(lengths[i] for i in order[k : k + 8]) for k in steps) / sum(
            lengths[i] for i in order
        )

    for r in (0, 3, 4):
        assert sorted(grouped(r)) == sorted(plain(r))  # the round's rows, regrouped
        assert -(-len(grouped(r)) // 8) == batches
        assert padded(grouped(r)) < 1.05 < 1.3 < padded(plain(r))
    assert grouped(0) == round_order(n, 8, 4, seed, lengths)[0](0)  # seeded: resumable
    assert grouped(0) != grouped(4)[: len(grouped(0))]
    with pytest.raises(ValueError, match="lengths has 3 entries for 42061 examples"):
        round_order(n, 8, 4, seed, [1, 2, 3])


class Indexed(torch.utils.data.Dataset):
    """The toy task of test_train, each example carrying its index (read by the loss)."""

    def __init__(self) -> None:
        self.rows = [{**row, "idx": torch.tensor(i)} for i, row in enumerate(dataset()[:45])]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def test_a_run_of_rounds_trains_each_row_once_a_pass_and_its_schedule_ends_at_zero():
    data, seen, lrs = Indexed(), [], []
    order, batches = round_order(len(data), 4, 4, seed=0)  # 45 rows: 12+11+11+11, 3 batches

    def loss(net, batch):
        seen.append(batch.pop("idx").tolist())
        return net(**batch).loss

    class Recording(torch.optim.AdamW):
        def step(self, closure=None):
            lrs.append(self.param_groups[0]["lr"])
            return super().step(closure)

    cfg = TrainConfig(epochs=8, lr=1e-3, batch_size=4, warmup_steps=3, max_steps_per_epoch=batches)
    result = fit(
        model(),
        data,
        accuracy_on(dataset()[:8]),
        cfg,
        collate_fn=collate,
        select="accuracy",
        progress=False,
        log=lambda s: None,
        compute_loss=loss,
        order=order,
        make_optimizer=lambda net, c: Recording(train.param_groups(net, c.weight_decay), lr=c.lr),
    )
    assert len(result.history) == 8 and {e["steps"] for e in result.history} == {3}
    for p in (0, 1):
        rows = [i for batch in seen[12 * p : 12 * (p + 1)] for i in batch]
        assert sorted(rows) == list(range(45))  # a pass: four rounds, each row once
    total = 8 * batches  # what get_linear_schedule_with_warmup was planned for
    assert result.optimizer_steps == len(lrs) == total
    assert lrs[3] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-3 / (total - 3))


def scripted(scores):
    """An evaluate that returns the given accuracies in turn (and counts its calls)."""
    calls = []

    def evaluate(net, accelerator):
        calls.append(1)
        return {"accuracy": scores[len(calls) - 1]}

    evaluate.calls = calls
    return evaluate


CFG = TrainConfig(epochs=5, lr=5e-3, batch_size=8, warmup_ratio=0.1, seed=0)


def test_stop_early_ends_before_the_next_epoch_and_a_resume_asks_it_again(tmp_path):
    data, asked = dataset(), []

    def flat(history):
        asked.append(len(history))
        return len(history) >= 2

    kw = {"collate_fn": collate, "select": "accuracy", "progress": False, "log": lambda s: None}
    evaluate = scripted([0.5, 0.6, 0.7, 0.8, 0.9])
    result = fit(model(), data, evaluate, CFG, stop_early=flat, checkpoint_dir=tmp_path, **kw)
    assert len(result.history) == 2 and result.stopped_early and asked == [1, 2]
    assert result.optimizer_steps == 2 * len(data) // 8  # the schedule stays planned for 5
    again = fit(model(), data, evaluate, CFG, stop_early=flat, checkpoint_dir=tmp_path, **kw)
    assert len(again.history) == 2 and again.stopped_early and len(evaluate.calls) == 2


def test_keep_best_keeps_the_weights_of_the_best_epoch_only(tmp_path):
    data = dataset()
    kw = {"collate_fn": collate, "select": "accuracy", "progress": False, "log": lambda s: None}
    net = model()
    states = []

    def evaluate(net_, accelerator):
        states.append(trainable(net_))
        return {"accuracy": [0.5, 0.8, 0.8, 0.6, 0.7][len(states) - 1]}

    result = fit(net, data, evaluate, CFG, checkpoint_dir=tmp_path, keep_best=True, **kw)
    assert result.best_epoch == 2 and result.best_state == tmp_path / BEST.format(epoch=2)
    assert [p.name for p in tmp_path.glob("best-*.pt")] == ["best-2.pt"]  # a tie keeps the first
    kept = torch.load(result.best_state, weights_only=False)
    assert kept["epoch"] == 2
    for name, value in states[1].items():
        assert torch.equal(kept["trainable"][name], value), name
    with pytest.raises(ValueError, match="keep_best keeps the best weights in checkpoint_dir"):
        fit(model(), data, evaluate, CFG, keep_best=True, **kw)


def test_killed_between_the_best_weights_and_the_checkpoint_the_rerun_ends_the_same(
    tmp_path, monkeypatch
):
    """Epoch 3 is best, then killed before its checkpoint; rerun: epoch 3 is trained again and
    (a different evaluation this time) no longer best: the file left by the killed epoch goes,
    epoch 2's stays, and the weights are those of an uninterrupted run."""
    data = dataset()
    kw = {"collate_fn": collate, "select": "accuracy", "progress": False, "log": lambda s: None}
    straight = fit(
        model(),
        data,
        scripted([0.5, 0.8, 0.7, 0.6, 0.6]),
        CFG,
        checkpoint_dir=tmp_path / "a",
        keep_best=True,
        **kw,
    )
    saves = []
    real_save = train.torch_save

    def save(path, obj):
        if path.name == CHECKPOINT and obj["in_epoch"] is None and len(obj["history"]) == 3:
            saves.append(path)
            raise KeyboardInterrupt  # after best-3.pt was written
        return real_save(path, obj)

    monkeypatch.setattr(train, "torch_save", save)
    with pytest.raises(KeyboardInterrupt):
        fit(
            model(),
            data,
            scripted([0.5, 0.8, 0.9]),
            CFG,
            checkpoint_dir=tmp_path / "b",
            keep_best=True,
            checkpoint_every=0,
            **kw,
        )
    assert sorted(p.name for p in (tmp_path / "b").glob("best-*.pt")) == ["best-2.pt", "best-3.pt"]
    monkeypatch.setattr(train, "torch_save", real_save)
    rerun = fit(
        model(),
        data,
        scripted([0.7, 0.6, 0.6]),  # epochs 3, 4, 5 of the rerun
        CFG,
        checkpoint_dir=tmp_path / "b",
        keep_best=True,
        **kw,
    )
    assert [p.name for p in (tmp_path / "b").glob("best-*.pt")] == ["best-2.pt"]
    assert rerun.best_epoch == straight.best_epoch == 2
    a, b = (torch.load(r.best_state, weights_only=False) for r in (straight, rerun))
    for name, value in a["trainable"].items():
        assert torch.equal(b["trainable"][name], value), name
