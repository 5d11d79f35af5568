"""The evaluation EMA against a numpy recursion written here."""

import numpy as np
import torch
from torch import nn

from improved_gan.training.ema import EMA


def test_ema_matches_numpy_recursion_with_warmed_up_decay():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    ema = EMA(net, decay=0.99)
    avg = net.weight.detach().double().numpy().copy()  # the average starts at the initial parameters
    values = []
    for _ in range(30):
        with torch.no_grad():
            net.weight.add_(torch.randn_like(net.weight))
        values.append(net.weight.detach().double().numpy().copy())
        ema.update()
    for t, v in enumerate(values, start=1):
        d = min(0.99, (1 + t) / (10 + t))
        avg = d * avg + (1 - d) * v
    target = nn.Linear(3, 2)
    ema.copy_to(target)
    np.testing.assert_allclose(target.weight.detach().double().numpy(), avg, rtol=1e-6, atol=1e-6)


def test_first_update_copies_parameters_and_buffers_are_copied():
    net = nn.BatchNorm1d(4)
    with torch.no_grad():
        net.weight.fill_(3.0)
        net.running_mean.fill_(7.0)
    ema = EMA(net, decay=0.9999)
    ema.update()  # d = min(0.9999, 2/11): avg = 2/11 * init + 9/11 * current, and init == current here
    target = nn.BatchNorm1d(4)
    ema.copy_to(target)
    torch.testing.assert_close(target.weight, torch.full((4,), 3.0))
    torch.testing.assert_close(target.running_mean, torch.full((4,), 7.0))


def test_state_dict_round_trip():
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.9)
    for _ in range(5):
        ema.update()
    other = EMA(net, decay=0.9)
    other.load_state_dict(ema.state_dict())
    assert int(other.count) == 5
    for a, b in zip(ema.buffers(), other.buffers()):
        assert torch.equal(a, b)
