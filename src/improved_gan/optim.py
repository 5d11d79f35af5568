"""Optimizers: PyTorch's Adam and Adam as the paper's reference code computes it.

The reference code (openai/improved-gan, ``mnist_svhn_cifar10/nn.py``, ``adam_updates``) trains every
model with this variant, called with ``mom1=0.5`` (beta1) and its default ``mom2=0.999`` (beta2). At step
t = 1, 2, ... with gradient g:

    m = beta1 m + (1 - beta1) g
    v = beta2 v + (1 - beta2) g^2
    theta = theta - lr * (m / (1 - beta1^t)) / sqrt(v / (1 - beta2^t) + eps),   eps = 1e-8

It differs from :class:`torch.optim.Adam` only in where eps goes: INSIDE the square root, added to the
bias-corrected second moment, rather than added to ``sqrt(v_hat)``. The same number therefore means a
different thing: eps = 1e-8 inside the root acts like 1e-4 outside it, which damps the steps of parameters
whose gradients are tiny. The reference keeps one step counter per optimizer; here each parameter has its
own (as in PyTorch), which is the same whenever every parameter gets a gradient at every step. A parameter
whose ``.grad`` is None is skipped, as in PyTorch.

A parameter group's ``eps_inside`` (default True) chooses the placement per group and may be changed between
steps: False computes ``sqrt(v_hat) + eps``, the update of :class:`torch.optim.Adam`, from the same moment
estimates. Training switches it with ``optim.eps_inside_from`` (README, "Learning speed per step").
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import torch

OPTIMIZERS = ("adam", "reference_adam")


def _without_dynamo_import(name: str):
    """``torch.optim.Optimizer.<name>`` without its first-call ``import torch._dynamo``.

    PyTorch wraps a few Optimizer methods in ``torch._disable_dynamo``, which imports ``torch._dynamo`` (the
    compiler, about as long to import as torch itself: ~1.5 s of a training run's start-up on this project's
    machine) the first time one is called, only to mark the method as not to be traced. While ``torch._dynamo``
    is not loaded nothing can be tracing, so the undecorated method is called; once it is loaded (the user
    compiles something), PyTorch's decorated method is used, as for any optimizer.
    """
    decorated = getattr(torch.optim.Optimizer, name)
    plain = getattr(decorated, "__wrapped__", None)
    if plain is None:  # another PyTorch version: nothing to avoid
        return decorated

    def method(self, *args, **kwargs):
        return (decorated if "torch._dynamo" in sys.modules else plain)(self, *args, **kwargs)

    method.__name__, method.__qualname__, method.__doc__ = name, f"ReferenceAdam.{name}", decorated.__doc__
    return method


class ReferenceAdam(torch.optim.Optimizer):
    """Adam with eps inside the square root, as in the reference code's ``adam_updates`` (see the module doc).

    Args:
        params: parameters or parameter groups, as for any ``torch.optim.Optimizer``.
        lr: learning rate (read from the group at every step, so schedulers work).
        betas: ``(beta1, beta2)``; the reference code uses ``(0.5, 0.999)``.
        eps: added to the bias-corrected second moment inside the square root.
        eps_inside: False puts eps outside the root, ``sqrt(v_hat) + eps`` (:class:`torch.optim.Adam`'s
            update); a group option, so it can be switched during training.

    State per parameter: ``step`` (int), ``exp_avg`` (m) and ``exp_avg_sq`` (v), of the parameter's shape.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        eps_inside: bool = True,
    ) -> None:
        if not lr >= 0.0:
            raise ValueError(f"ReferenceAdam: lr must be >= 0, got {lr}")
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"ReferenceAdam: betas must be two numbers in [0, 1), got {betas}")
        if not eps >= 0.0:
            raise ValueError(f"ReferenceAdam: eps must be >= 0, got {eps}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "eps_inside": bool(eps_inside)}
        super().__init__(params, defaults)

    add_param_group = _without_dynamo_import("add_param_group")
    zero_grad = _without_dynamo_import("zero_grad")
    state_dict = _without_dynamo_import("state_dict")
    load_state_dict = _without_dynamo_import("load_state_dict")

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns the closure's loss if one is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            by_step: dict[int, list[torch.Tensor]] = {}  # parameters grouped by their step count
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("ReferenceAdam does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                by_step.setdefault(state["step"], []).append(p)
            for t, params in by_step.items():
                # the formula of the module doc, element for element, as multi-tensor (foreach) operations:
                # a few kernels for all parameters instead of a few per parameter
                grads = [p.grad for p in params]
                m = [self.state[p]["exp_avg"] for p in params]
                v = [self.state[p]["exp_avg_sq"] for p in params]
                torch._foreach_mul_(m, beta1)
                torch._foreach_add_(m, grads, alpha=1.0 - beta1)
                torch._foreach_mul_(v, beta2)
                torch._foreach_addcmul_(v, grads, grads, value=1.0 - beta2)
                denom = torch._foreach_div(v, 1.0 - beta2**t)
                if group.get("eps_inside", True):  # a group saved before the option existed: the reference
                    torch._foreach_add_(denom, eps)
                    torch._foreach_sqrt_(denom)  # sqrt(v_hat + eps)
                else:
                    torch._foreach_sqrt_(denom)
                    torch._foreach_add_(denom, eps)  # sqrt(v_hat) + eps, torch.optim.Adam's update
                torch._foreach_addcdiv_(params, m, denom, value=-lr / (1.0 - beta1**t))
        return loss


def make_optimizer(
    name: str,
    params: Iterable[Any],
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """Build an optimizer by name: ``"adam"`` (:class:`torch.optim.Adam`, eps outside the square root) or
    ``"reference_adam"`` (:class:`ReferenceAdam`, eps inside it, as the reference code).
    """
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps)
    if name == "reference_adam":
        return ReferenceAdam(params, lr=lr, betas=tuple(betas), eps=eps)
    raise ValueError(f"make_optimizer: unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
