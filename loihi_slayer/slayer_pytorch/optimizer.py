r"""Optimizers (``snn.optimizer``): slayerPytorch's ``Nadam``.

slayerPytorch's Nadam is Adam with a Nesterov look-ahead on the first moment
(no momentum-decay schedule, unlike :class:`torch.optim.NAdam`):

.. math::

    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
    \theta_t &= \theta_{t-1} - \eta\,\frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t}\,
               \frac{\beta_1 m_t + (1-\beta_1) g_t}{\sqrt{\hat v_t} + \epsilon}

with :math:`\hat v_t = v_t`, or :math:`\max_{s \le t} v_s` with ``amsgrad``,
and :math:`g_t` including the L2 term ``weight_decay * θ``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

from ..errors import ParameterError

__all__ = ["Nadam"]


class Nadam(torch.optim.Optimizer):
    """slayerPytorch's Nadam (default ``lr = 1e-3``; ``amsgrad`` supported).

    Parameters
    ----------
    params
        Parameters or parameter groups.
    lr
        Learning rate :math:`\\eta`.
    betas
        :math:`(\\beta_1, \\beta_2)`.
    eps
        :math:`\\epsilon`.
    weight_decay
        L2 penalty added to the gradient.
    amsgrad
        Use the running maximum of :math:`v_t`.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
    ) -> None:
        if not lr >= 0:
            raise ParameterError(f"Nadam: lr = {lr!r} must be >= 0")
        if not eps >= 0:
            raise ParameterError(f"Nadam: eps = {eps!r} must be >= 0")
        for i, b in enumerate(betas):
            if not 0 <= b < 1:
                raise ParameterError(f"Nadam: betas[{i}] = {b!r} is outside [0, 1)")
        defaults = {
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": bool(amsgrad),
        }
        super().__init__(params, defaults)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("amsgrad", False)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimization step; ``closure`` re-evaluates the loss (optional)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                if group["amsgrad"]:
                    torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                    denom = state["max_exp_avg_sq"].sqrt().add_(group["eps"])
                else:
                    denom = v.sqrt().add_(group["eps"])
                t = state["step"]
                step = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                p.addcdiv_(beta1 * m + (1 - beta1) * grad, denom, value=-step)
        return loss
