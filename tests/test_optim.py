"""Tests of improved_gan.optim: ReferenceAdam against a numpy transcription of the reference formula."""

import io

import numpy as np
import pytest
import torch

from improved_gan.optim import OPTIMIZERS, ReferenceAdam, make_optimizer

A = np.array([1.0, 10.0, 0.1, 3.0])  # curvatures of the quadratic 0.5 * sum A (x - C)^2
C = np.array([1.0, -2.0, 0.5, 0.0])


def _numpy_reference_adam(x0, steps, lr, beta1, beta2, eps, inside_from=1):
    """The reference code's adam_updates: t starts at 1, eps inside the square root of the corrected v; before
    step ``inside_from``, eps outside it (``sqrt(v_hat) + eps``, PyTorch's Adam)."""
    x, m, v = x0.copy(), np.zeros_like(x0), np.zeros_like(x0)
    for t in range(1, steps + 1):
        g = A * (x - C)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)
        denom = np.sqrt(v_hat + eps) if t >= inside_from else np.sqrt(v_hat) + eps
        x = x - lr * m_hat / denom
    return x


def _run(opt, x, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss = 0.5 * (torch.from_numpy(A) * (x - torch.from_numpy(C)) ** 2).sum()
        loss.backward()
        opt.step()


@pytest.mark.parametrize("eps", [1e-8, 1e-2])
def test_reference_adam_matches_numpy_formula(eps):
    x0 = np.array([3.0, 1.0, -4.0, 0.01])
    x = torch.nn.Parameter(torch.from_numpy(x0.copy()))
    opt = ReferenceAdam([x], lr=0.05, betas=(0.5, 0.999), eps=eps)
    _run(opt, x, 25)
    expected = _numpy_reference_adam(x0, 25, 0.05, 0.5, 0.999, eps)
    torch.testing.assert_close(x.detach(), torch.from_numpy(expected), rtol=1e-12, atol=1e-12)


def test_eps_outside_the_root_then_inside_matches_numpy_formula():
    # a large eps makes the two placements differ by far more than the tolerance
    x0 = np.array([3.0, 1.0, -4.0, 0.01])
    x = torch.nn.Parameter(torch.from_numpy(x0.copy()))
    opt = ReferenceAdam([x], lr=0.05, betas=(0.5, 0.999), eps=1e-2, eps_inside=False)
    _run(opt, x, 10)
    for group in opt.param_groups:
        group["eps_inside"] = True
    _run(opt, x, 15)
    expected = _numpy_reference_adam(x0, 25, 0.05, 0.5, 0.999, 1e-2, inside_from=11)
    torch.testing.assert_close(x.detach(), torch.from_numpy(expected), rtol=1e-12, atol=1e-12)
    assert not np.allclose(expected, _numpy_reference_adam(x0, 25, 0.05, 0.5, 0.999, 1e-2), atol=1e-4)


def test_eps_outside_the_root_is_torch_adam():
    x0 = torch.tensor([3.0, 1.0, -4.0, 0.5], dtype=torch.float64)
    x1, x2 = torch.nn.Parameter(x0.clone()), torch.nn.Parameter(x0.clone())
    _run(ReferenceAdam([x1], lr=0.01, betas=(0.5, 0.99), eps=1e-2, eps_inside=False), x1, 10)
    _run(torch.optim.Adam([x2], lr=0.01, betas=(0.5, 0.99), eps=1e-2), x2, 10)
    torch.testing.assert_close(x1.detach(), x2.detach(), rtol=1e-12, atol=1e-12)


def test_equals_torch_adam_when_eps_is_zero():
    # the two differ only in where eps goes
    x0 = torch.tensor([3.0, 1.0, -4.0, 0.5], dtype=torch.float64)
    x1, x2 = torch.nn.Parameter(x0.clone()), torch.nn.Parameter(x0.clone())
    _run(ReferenceAdam([x1], lr=0.01, betas=(0.5, 0.99), eps=0.0), x1, 10)
    _run(torch.optim.Adam([x2], lr=0.01, betas=(0.5, 0.99), eps=0.0), x2, 10)
    torch.testing.assert_close(x1.detach(), x2.detach(), rtol=1e-12, atol=1e-12)


def test_param_groups_use_their_own_lr_and_skip_params_without_grad():
    x0 = np.array([3.0, 1.0, -4.0, 0.01])
    x = torch.nn.Parameter(torch.from_numpy(x0.copy()))
    y = torch.nn.Parameter(torch.from_numpy(x0.copy()))
    unused = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = ReferenceAdam([{"params": [x]}, {"params": [y, unused], "lr": 0.2}], lr=0.05, betas=(0.5, 0.999))
    for _ in range(5):
        opt.zero_grad()
        sum(0.5 * (torch.from_numpy(A) * (p - torch.from_numpy(C)) ** 2).sum() for p in (x, y)).backward()
        opt.step()
    torch.testing.assert_close(
        x.detach(), torch.from_numpy(_numpy_reference_adam(x0, 5, 0.05, 0.5, 0.999, 1e-8))
    )
    torch.testing.assert_close(
        y.detach(), torch.from_numpy(_numpy_reference_adam(x0, 5, 0.2, 0.5, 0.999, 1e-8))
    )
    assert torch.equal(unused.detach(), torch.ones(3, dtype=torch.float64))
    assert unused not in opt.state


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    data, target = torch.randn(16, 3), torch.randn(16, 2)

    def train(m, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            torch.nn.functional.mse_loss(m(data), target).backward()
            opt.step()

    opt = ReferenceAdam(model.parameters(), lr=0.01, betas=(0.5, 0.999))
    train(model, opt, 5)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    train(model, opt, 5)

    twin = torch.nn.Linear(3, 2)
    twin.load_state_dict(saved["model"])
    twin_opt = ReferenceAdam(twin.parameters(), lr=0.5)  # hyper-parameters come from the state dict
    twin_opt.load_state_dict(saved["opt"])
    train(twin, twin_opt, 5)
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p, q)


def test_make_optimizer():
    p = [torch.nn.Parameter(torch.zeros(2))]
    adam = make_optimizer("adam", p, lr=0.003, betas=(0.5, 0.999), eps=1e-7)
    assert type(adam) is torch.optim.Adam
    ref = make_optimizer("reference_adam", p, lr=0.003, betas=(0.5, 0.999))
    assert type(ref) is ReferenceAdam
    for opt, eps in ((adam, 1e-7), (ref, 1e-8)):
        group = opt.param_groups[0]
        assert (group["lr"], tuple(group["betas"]), group["eps"]) == (0.003, (0.5, 0.999), eps)
    assert OPTIMIZERS == ("adam", "reference_adam")
    with pytest.raises(ValueError, match="unknown optimizer"):
        make_optimizer("sgd", p, lr=0.1)


@pytest.mark.parametrize("kwargs", [{"lr": -1.0}, {"betas": (1.0, 0.999)}, {"betas": (0.5,)}, {"eps": -1.0}])
def test_invalid_hyper_parameters(kwargs):
    with pytest.raises(ValueError, match="ReferenceAdam"):
        ReferenceAdam([torch.nn.Parameter(torch.zeros(1))], **kwargs)
