"""The LoRA paper's own AdamW (microsoft/LoRA ``examples/NLG/src/optimizer.py``), for ``fit``.

``fit`` trains with PyTorch's ``torch.optim.AdamW`` unless given ``make_optimizer``; the
official E2E recipe (the README's ``gpt2_ft.py`` command: ``--weight_decay 0.01
--correct_bias --adam_beta2 0.999``, the defaults ``--adam_epislon 1e-6``, ``--adam_beta1
0.9``, no ``--no_decay_bias``) trains with this one instead. Three differences from PyTorch's:

1. **Where ε goes.** Official: ``denom = sqrt(v) + ε`` with the bias corrections folded into
   the step size, ``lr · sqrt(1 − β₂ᵗ) / (1 − β₁ᵗ)``. PyTorch: ``denom = sqrt(v) / sqrt(1 − β₂ᵗ)
   + ε``. The same update but for ε, which the official code adds to the *uncorrected*
   ``sqrt(v)`` (early on, ``sqrt(1 − β₂ᵗ)`` times PyTorch's), and is 1e-6, not 1e-8.
2. **When weight decay acts.** Official: after the Adam step, ``p ← p − lr · wd · p`` on the
   updated ``p``. PyTorch: before it, on the old ``p`` (``p ← p · (1 − lr · wd)``).
3. **Which parameters decay.** Official: every trainable parameter, in one group (biases
   and LayerNorm scales too). ``fit``'s default: matrices only
   (:func:`lorabook.train.param_groups`).

:class:`OfficialAdamW` is the official ``AdamW.step``, ported line for line (with today's
``addcdiv_(t1, t2, value=...)`` for the deprecated ``addcdiv_(value, t1, t2)``); the tests
compare it bit for bit with a verbatim copy on random tensors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from lorabook.train import TrainConfig

OPTIMIZERS = ("torch", "official")
"""``torch``: ``torch.optim.AdamW`` with ``fit``'s parameter groups (its default);
``official``: :class:`OfficialAdamW` as the paper's E2E command configures it."""

OFFICIAL_BETAS = (0.9, 0.999)  # --adam_beta1 0.9 (default), --adam_beta2 0.999 (README)
OFFICIAL_EPS = 1e-6  # --adam_epislon (default)


class OfficialAdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay applied after the step (microsoft/LoRA's ``AdamW``).

    Args:
        params: parameters or parameter groups.
        lr: learning rate (a scheduler may change each group's ``lr``).
        betas: (β₁, β₂); the official class defaults to (0.9, 0.98), its E2E command
            passes 0.999.
        eps: added to ``sqrt(v)`` before the bias correction (see the module docstring).
        weight_decay: ``p ← p − lr · weight_decay · p`` after each step.
        correct_bias: fold Adam's bias corrections into the step size (the command's
            ``--correct_bias``); ``False`` is BERT's uncorrected Adam.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.98),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        correct_bias: bool = True,
    ) -> None:
        if lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr} - should be >= 0.0")
        if not 0.0 <= betas[0] < 1.0:
            raise ValueError(f"Invalid beta parameter: {betas[0]} - should be in [0.0, 1.0[")
        if not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"Invalid beta parameter: {betas[1]} - should be in [0.0, 1.0[")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps} - should be >= 0.0")
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, correct_bias=correct_bias
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One optimization step (the official ``step``, statement for statement)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data
                if grad.is_sparse:
                    raise RuntimeError(
                        "Adam does not support sparse gradients, please consider SparseAdam"
                    )

                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p.data)
                    state["exp_avg_sq"] = torch.zeros_like(p.data)

                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                beta1, beta2 = group["betas"]

                state["step"] += 1

                exp_avg.mul_(beta1).add_(grad, alpha=1.0 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
                denom = exp_avg_sq.sqrt().add_(group["eps"])

                step_size = group["lr"]
                if "correct_bias" in group and group["correct_bias"]:
                    bias_correction1 = 1.0 - beta1 ** state["step"]
                    bias_correction2 = 1.0 - beta2 ** state["step"]
                    step_size = step_size * math.sqrt(bias_correction2) / bias_correction1

                p.data.addcdiv_(exp_avg, denom, value=-step_size)

                # decoupled weight decay, after the step, on the updated weights
                if group["weight_decay"] > 0.0:
                    p.data.add_(p.data, alpha=-group["lr"] * group["weight_decay"])

        return loss


def official_adamw(model: nn.Module, config: TrainConfig) -> OfficialAdamW:
    """``fit``'s ``make_optimizer`` for the official recipe: :class:`OfficialAdamW` over every
    trainable parameter of ``model`` in one group (weight decay on all of them, as the
    official ``create_grouped_parameters`` without ``--no_decay_bias``), β = (0.9, 0.999),
    ε = 1e-6, bias correction on, ``config``'s lr and weight decay.

    The official code passes the frozen parameters too; they have no gradient, and its step
    skips them, so leaving them out changes nothing.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("No trainable parameters: apply a method (e.g. lorabook.apply_lora) first")
    return OfficialAdamW(
        params,
        lr=config.lr,
        betas=OFFICIAL_BETAS,
        eps=OFFICIAL_EPS,
        weight_decay=config.weight_decay,
        correct_bias=True,
    )
