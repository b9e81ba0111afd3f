"""The paper's AdamW, ported: bit for bit the official step, and what fit does with it."""

from __future__ import annotations

import math

import pytest
import torch
from torch.optim import Optimizer

from lorabook.optimizers import OFFICIAL_BETAS, OFFICIAL_EPS, OfficialAdamW, official_adamw
from lorabook.train import TrainConfig


# fmt: off
class VerbatimAdamW(Optimizer):
    """microsoft/LoRA examples/NLG/src/optimizer.py ``AdamW`` as written there (its
    ``addcdiv_(-step_size, exp_avg, denom)`` in today's spelling, which that form is
    deprecated in favour of; nothing else changed)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.0, correct_bias=True):  # noqa: E501
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, correct_bias=correct_bias)  # noqa: E501
        super().__init__(params, defaults)

    def step(self, closure=None):
        loss = None
        if closure is not None:
            loss = closure()

        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data
                if grad.is_sparse:
                    raise RuntimeError("Adam does not support sparse gradients, please consider SparseAdam instead")  # noqa: E501

                state = self.state[p]

                # State initialization
                if len(state) == 0:
                    state["step"] = 0
                    # Exponential moving average of gradient values
                    state["exp_avg"] = torch.zeros_like(p.data)
                    # Exponential moving average of squared gradient values
                    state["exp_avg_sq"] = torch.zeros_like(p.data)

                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                beta1, beta2 = group["betas"]

                state["step"] += 1

                # Decay the first and second moment running average coefficient
                # In-place operations to update the averages at the same time
                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])

                step_size = group["lr"]
                if 'correct_bias' in group and group["correct_bias"]:  # No bias correction for Bert
                    bias_correction1 = 1.0 - beta1 ** state["step"]
                    bias_correction2 = 1.0 - beta2 ** state["step"]
                    step_size = step_size * math.sqrt(bias_correction2) / bias_correction1

                p.data.addcdiv_(exp_avg, denom, value=-step_size)

                # Add weight decay at the end (fixed version)
                if group["weight_decay"] > 0.0:
                    p.data.add_(p.data, alpha=-group["lr"] * group["weight_decay"])

        return loss
# fmt: on


def _params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 4, 2), (1,)]
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]


@pytest.mark.parametrize("correct_bias", [True, False])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_the_port_takes_the_official_steps_bit_for_bit(correct_bias, weight_decay):
    ours, theirs = _params(0), _params(0)
    kw = dict(lr=2e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=weight_decay)
    opt_ours = OfficialAdamW(ours, correct_bias=correct_bias, **kw)
    opt_theirs = VerbatimAdamW(theirs, correct_bias=correct_bias, **kw)
    g = torch.Generator().manual_seed(1)
    for step in range(12):
        for group in (*opt_ours.param_groups, *opt_theirs.param_groups):
            group["lr"] = 2e-3 * (step + 1) / 12  # as a scheduler changes it
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            if step % 3 == 2 and i == 1:  # a parameter without a gradient this step
                a.grad = b.grad = None
                continue
            grad = torch.randn(a.shape, generator=g) * 10 ** (i - 2)
            a.grad, b.grad = grad.clone(), grad.clone()
        opt_ours.step()
        opt_theirs.step()
    for a, b in zip(ours, theirs, strict=True):
        assert torch.equal(a, b)
        sa, sb = opt_ours.state[a], opt_theirs.state[b]
        assert sa["step"] == sb["step"] and sa["step"] in (8, 12)
        assert torch.equal(sa["exp_avg"], sb["exp_avg"])
        assert torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])


def test_it_differs_from_torch_adamw_where_the_module_docstring_says():
    """Same lr, betas and decay: the first step differs (ε on the uncorrected sqrt(v), decay
    after the step); with ε = 0 and no decay, the two updates agree."""
    ours, theirs = _params(2), _params(2)
    for p in (*ours, *theirs):
        p.grad = torch.full_like(p, 1e-4)
    OfficialAdamW(ours, lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.1).step()
    torch.optim.AdamW(theirs, lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.1).step()
    assert not torch.allclose(ours[0], theirs[0], rtol=0, atol=1e-7)
    ours, theirs = _params(2), _params(2)
    for p in (*ours, *theirs):
        p.grad = torch.full_like(p, 1e-4)
    OfficialAdamW(ours, lr=1e-2, betas=(0.9, 0.999), eps=0.0).step()
    torch.optim.AdamW(theirs, lr=1e-2, betas=(0.9, 0.999), eps=0.0, weight_decay=0.0).step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b)


def test_official_adamw_is_the_readme_command_on_every_trainable_parameter():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    net[1].weight.requires_grad_(False)
    opt = official_adamw(net, TrainConfig(lr=2e-4, weight_decay=0.01))
    [group] = opt.param_groups  # one group: the biases and LayerNorm's β decay too
    assert group["params"] == [net[0].weight, net[0].bias, net[1].bias]
    assert (group["lr"], group["weight_decay"], group["correct_bias"]) == (2e-4, 0.01, True)
    assert (group["betas"], group["eps"]) == (OFFICIAL_BETAS, OFFICIAL_EPS) == ((0.9, 0.999), 1e-6)
    for p in net.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="No trainable parameters"):
        official_adamw(net, TrainConfig())


def test_fit_trains_with_the_optimizer_it_is_given_and_resumes_its_state(tmp_path):
    from test_train import CFG, accuracy_on, dataset, model, quiet_fit, trainable

    made: list[Optimizer] = []

    def make(net, config):
        made.append(official_adamw(net, config))
        return made[-1]

    data = dataset()
    straight = model()
    quiet_fit(straight, data, accuracy_on(data), CFG, make_optimizer=make)
    assert isinstance(made[0], OfficialAdamW)
    assert {s["step"] for s in made[0].state.values()} == {CFG.epochs * len(data) // 8}

    def killed(net, batch, calls=[]):  # noqa: B006 (a counter across calls)
        calls.append(1)
        if len(calls) == 9:
            raise KeyboardInterrupt
        return net(**batch).loss

    with pytest.raises(KeyboardInterrupt):
        quiet_fit(
            model(),
            data,
            accuracy_on(data),
            CFG,
            make_optimizer=make,
            checkpoint_dir=tmp_path,
            checkpoint_every=1,
            compute_loss=killed,
        )
    resumed = model()
    quiet_fit(resumed, data, accuracy_on(data), CFG, make_optimizer=make, checkpoint_dir=tmp_path)
    for name, value in trainable(straight).items():
        assert torch.equal(trainable(resumed)[name], value), name


def test_fits_default_adamw_is_the_fused_kernel_and_the_for_loop_update_to_rounding():
    from lorabook.train import adamw, param_groups

    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5))
    twin = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.LayerNorm(5))
    twin.load_state_dict(net.state_dict())
    fused = adamw(net, TrainConfig(lr=1e-2, weight_decay=0.1))
    loop = torch.optim.AdamW(param_groups(twin, 0.1), lr=1e-2, foreach=False)
    assert [g["fused"] for g in fused.param_groups] == [True, True]
    assert [g["weight_decay"] for g in fused.param_groups] == [0.1, 0.0]
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        for a, b in zip(net.parameters(), twin.parameters(), strict=True):
            a.grad = torch.randn(a.shape, generator=g)
            b.grad = a.grad.clone()
        fused.step()
        loop.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    # a run resumed from a checkpoint keeps the implementation it started with
    resumed = adamw(twin, TrainConfig(lr=1e-2, weight_decay=0.1))
    resumed.load_state_dict(loop.state_dict())
    assert not any(group["fused"] for group in resumed.param_groups)
