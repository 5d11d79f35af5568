"""Tests of the networks: shapes, ranges, data-dependent init, VBN independence, parameter counts."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from improved_gan import models as M
from improved_gan.nn import (
    DataDependentInit,
    MinibatchDiscrimination,
    VirtualBatchNorm,
    data_dependent_init,
    virtual_batch_reference,
)

# (name, generator factory, discriminator factory, data shape, K, feature_dim, output range)
CASES = [
    ("mnist", lambda: M.MnistGenerator(), lambda: M.MnistDiscriminator(10), (1, 28, 28), 10, 250, (0, 1)),
    (
        "mnist-small-vbn-mbd",
        lambda: M.MnistGenerator(norm="virtual", hidden=(64, 64)),
        lambda: M.MnistDiscriminator(1, hidden=(64, 32), minibatch_kernels=20),
        (1, 28, 28),
        1,
        32,
        (0, 1),
    ),
    (
        "cifar-narrow",
        lambda: M.CifarGenerator(widths=(32, 16, 8)),
        lambda: M.CifarDiscriminator(10, widths=(8, 16)),
        (3, 32, 32),
        10,
        16,
        (-1, 1),
    ),
    (
        "cifar-narrow-vbn-mbd",
        lambda: M.CifarGenerator(norm="virtual", widths=(32, 16, 8)),
        lambda: M.CifarDiscriminator(10, widths=(8, 16), minibatch_kernels=100),
        (3, 32, 32),
        10,
        16,
        (-1, 1),
    ),
    (
        "dcgan28",
        lambda: M.DCGANGenerator(),
        lambda: M.DCGANDiscriminator(10, minibatch_kernels=50),
        (1, 28, 28),
        10,
        256,
        (0, 1),
    ),
    (
        "dcgan32",
        lambda: M.DCGANGenerator(image_shape=(3, 32, 32), norm="batch", out_activation="tanh"),
        lambda: M.DCGANDiscriminator(1, image_shape=(3, 32, 32), minibatch_kernels=0),
        (3, 32, 32),
        1,
        256,
        (-1, 1),
    ),
    ("toy", lambda: M.ToyGenerator(), lambda: M.ToyDiscriminator(1), (2,), 1, 128, None),
    (
        "toy-vbn-mbd",
        lambda: M.ToyGenerator(norm="virtual"),
        lambda: M.ToyDiscriminator(1, minibatch_kernels=5),
        (2,),
        1,
        128,
        None,
    ),
]
# The reference-size conv networks (a few seconds each on 2 cores); their layer sizes are checked by the
# parameter counts below in the fast suite.
SLOW = [
    ("cifar", lambda: M.CifarGenerator(), lambda: M.CifarDiscriminator(10), (3, 32, 32), 10, 192, (-1, 1)),
    (
        "cifar-mbd",
        lambda: M.CifarGenerator(norm="virtual"),
        lambda: M.CifarDiscriminator(10, minibatch_kernels=100),
        (3, 32, 32),
        10,
        192,
        (-1, 1),
    ),
    ("svhn", lambda: M.SvhnGenerator(), lambda: M.SvhnDiscriminator(10), (3, 32, 32), 10, 128, (-1, 1)),
    (
        "svhn-mbd",
        lambda: M.SvhnGenerator(),
        lambda: M.SvhnDiscriminator(10, minibatch_kernels=100),
        (3, 32, 32),
        10,
        192,
        (-1, 1),
    ),
]
ALL_CASES = [pytest.param(*c, id=c[0]) for c in CASES] + [
    pytest.param(*c, id=c[0], marks=pytest.mark.slow) for c in SLOW
]


def _init_generator(G, n=16, seed=0):
    """As the training loop: reference pass (VBN), data-dependent init, and a new reference pass, since the
    init changed the weights the recorded statistics depend on. Returns the init batch's samples."""
    gen = torch.Generator().manual_seed(seed)
    vbn = any(isinstance(m, VirtualBatchNorm) for m in G.modules())
    z_ref = G.sample_z(n, generator=gen)
    if vbn:
        with virtual_batch_reference(G):
            G(z_ref)
    x = data_dependent_init(G, G.sample_z(n, generator=gen))
    if vbn:
        with virtual_batch_reference(G):
            G(z_ref)
    return x


@pytest.mark.parametrize("name, make_g, make_d, shape, k, fdim, out_range", ALL_CASES)
def test_shapes_ranges_init_and_gradients(name, make_g, make_d, shape, k, fdim, out_range):
    torch.manual_seed(0)
    G, D = make_g(), make_d()
    n = 6
    x = _init_generator(G, n)
    assert x.shape == (n, *shape)
    if out_range is not None:
        assert out_range[0] <= x.min().item() and x.max().item() <= out_range[1]
    logits, features = data_dependent_init(D, x)
    assert logits.shape == (n, k) and features.shape == (n, fdim)
    assert D.num_outputs == k and D.feature_dim == fdim
    for module in (G, D):
        for layer in module.modules():
            if isinstance(layer, DataDependentInit):
                assert bool(layer.initialized)
    # one training-style backward through both networks reaches every trainable parameter
    logits, features = D(G(G.sample_z(n)))
    (logits.logsumexp(dim=1).mean() + features.mean()).backward()
    for module in (G, D):
        for pname, p in module.named_parameters():
            if p.requires_grad:
                assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize(
    "make_d, init_std",
    [
        (lambda: M.MnistDiscriminator(10), 1.0),
        (lambda: M.CifarDiscriminator(10, widths=(8, 16)), 0.1),
        (lambda: M.DCGANDiscriminator(3, minibatch_kernels=0), 1.0),
        (lambda: M.ToyDiscriminator(2), 1.0),
    ],
)
def test_data_dependent_init_standardises_the_logits_on_the_init_batch(make_d, init_std):
    # Without noise, dropout or minibatch features (eval mode) D is deterministic, so on the init batch every
    # logit has batch mean 0 and standard deviation init_scale (the reference: 1 for MNIST, 0.1 for CIFAR).
    torch.manual_seed(1)
    D = make_d().eval()
    shape = {M.ToyDiscriminator: (2,), M.CifarDiscriminator: (3, 32, 32)}.get(type(D), (1, 28, 28))
    x = torch.rand(64, *shape)
    data_dependent_init(D, x)
    logits, _ = D(x)
    torch.testing.assert_close(logits.mean(dim=0), torch.zeros(logits.shape[1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        logits.std(dim=0, correction=0), torch.full((logits.shape[1],), init_std), atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize(
    "make_g",
    [
        lambda: M.MnistGenerator(norm="virtual"),
        lambda: M.CifarGenerator(norm="virtual", widths=(32, 16, 8)),
        lambda: M.DCGANGenerator(norm="virtual"),
        lambda: M.ToyGenerator(norm="virtual"),
    ],
)
def test_vbn_generator_output_depends_only_on_the_example_and_the_reference(make_g):
    torch.manual_seed(2)
    G = make_g()
    _init_generator(G, 16)
    z = G.sample_z(6)
    other = G.sample_z(6)
    other[2] = z[2]
    out_a, out_b = G(z), G(other)
    torch.testing.assert_close(out_a[2], out_b[2], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(G(z[2:3])[0], out_a[2], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(out_a[0], out_b[0])


def test_batch_norm_generator_output_depends_on_the_batch():
    # the control for the VBN test: with batch norm (training mode) an example's output changes with its batch
    torch.manual_seed(3)
    G = M.DCGANGenerator(norm="batch")
    z, other = G.sample_z(6), G.sample_z(6)
    other[2] = z[2]
    assert not torch.allclose(G(z)[2], G(other)[2])


def test_vbn_generator_samples_after_load_without_a_new_reference_pass():
    torch.manual_seed(4)
    G = M.DCGANGenerator(norm="virtual")
    _init_generator(G, 16)
    G2 = M.DCGANGenerator(norm="virtual")
    G2.load_state_dict(G.state_dict())
    z = G.sample_z(5)
    torch.testing.assert_close(G2.eval()(z), G.eval()(z))


@pytest.mark.parametrize(
    "make_d, has_mbd",
    [
        (lambda: M.MnistDiscriminator(10), False),
        (lambda: M.MnistDiscriminator(10, minibatch_kernels=10), True),
        (lambda: M.CifarDiscriminator(10, minibatch_kernels=100), True),
        (lambda: M.SvhnDiscriminator(10), False),
        (lambda: M.SvhnDiscriminator(10, minibatch_kernels=100), True),
        (lambda: M.DCGANDiscriminator(1), True),
        (lambda: M.DCGANDiscriminator(1, minibatch_kernels=0), False),
        (lambda: M.ToyDiscriminator(1, minibatch_kernels=5), True),
    ],
)
def test_minibatch_discrimination_module_present_iff_kernels(make_d, has_mbd):
    D = make_d()
    mbd = [m for m in D.modules() if isinstance(m, MinibatchDiscrimination)]
    assert len(mbd) == int(has_mbd)
    if has_mbd:
        assert mbd[0].in_features == D.feature_dim


def _wn(a, b):  # a weight-normalised dense layer: v (b x a), g (b), bias (b)
    return a * b + b + b


def test_mnist_parameter_counts_by_hand():
    D = M.MnistDiscriminator(10)
    total = (
        (784 * 1000 + 1000 + 1000)
        + (1000 * 500 + 500 + 500)
        + (500 * 250 + 250 + 250)
        + 2 * (250 * 250 + 250 + 250)
        + (250 * 10 + 10 + 10)
    )
    assert sum(p.numel() for p in D.parameters()) == total
    frozen_hidden_scales = 1000 + 500 + 250 + 250 + 250  # the reference keeps hidden g fixed
    assert sum(p.numel() for p in D.parameters() if p.requires_grad) == total - frozen_hidden_scales
    D_all = M.MnistDiscriminator(10, train_hidden_scale=True)
    assert sum(p.numel() for p in D_all.parameters() if p.requires_grad) == total

    D_mbd = M.MnistDiscriminator(10, minibatch_kernels=100, minibatch_kernel_dim=5)
    mbd = 250 * 100 * 5 + 100 * 5 + 100  # theta, log-scale per (b, c), bias per kernel
    head_growth = 100 * 10  # the output layer sees 250 + 100 inputs
    assert sum(p.numel() for p in D_mbd.parameters()) == total + mbd + head_growth

    G = M.MnistGenerator(100)
    # dense without bias + batch-norm shift (no scale: the reference's g=None), twice; weight-norm output
    expected_g = (100 * 500 + 500) + (500 * 500 + 500) + (500 * 784 + 784 + 784)
    assert sum(p.numel() for p in G.parameters()) == expected_g
    assert all(p.requires_grad for p in G.parameters())


def test_cifar_parameter_counts_by_hand():
    def conv(cin, cout, k):  # weight-normalised conv: v, g, bias
        return cin * cout * k * k + cout + cout

    expected_d = (
        conv(3, 96, 3)
        + 2 * conv(96, 96, 3)
        + conv(96, 192, 3)
        + 3 * conv(192, 192, 3)
        + 2 * conv(192, 192, 1)
        + _wn(192, 10)
    )
    assert sum(p.numel() for p in M.CifarDiscriminator(10).parameters()) == expected_d
    expected_svhn = conv(3, 64, 3) + 2 * conv(64, 64, 3) + conv(64, 128, 3) + 3 * conv(128, 128, 3)
    expected_svhn += 2 * conv(128, 128, 1) + _wn(128, 10)
    assert sum(p.numel() for p in M.SvhnDiscriminator(10).parameters()) == expected_svhn
    expected_g = (
        (100 * 4 * 4 * 512 + 4 * 4 * 512)  # dense (no bias) + per-unit batch-norm shift
        + (512 * 256 * 25 + 256)  # deconv 5x5 (no bias) + shift
        + (256 * 128 * 25 + 128)
        + (128 * 3 * 25 + 3 + 3)  # weight-norm deconv: v, g, bias
    )
    assert sum(p.numel() for p in M.CifarGenerator(100).parameters()) == expected_g


def test_cifar_and_svhn_discriminators_follow_the_reference_variants():
    fm, mbd = M.CifarDiscriminator(10), M.CifarDiscriminator(10, minibatch_kernels=100)
    assert (fm.input_dropout.p, fm.input_noise.sigma) == (0.2, 0.0)
    assert (mbd.input_dropout.p, mbd.input_noise.sigma) == (0.0, 0.2)
    assert fm.dropout1.p == fm.dropout2.p == 0.5
    # SVHN: 64/128 channels without minibatch discrimination, CIFAR's 96/192 with it
    svhn_fm, svhn_mbd = M.SvhnDiscriminator(10), M.SvhnDiscriminator(10, minibatch_kernels=100)
    assert svhn_fm.feature_dim == 128 and svhn_fm.stage1[0].out_channels == 64
    assert svhn_mbd.feature_dim == 192 and svhn_mbd.stage1[0].out_channels == 96
    assert (svhn_mbd.input_dropout.p, svhn_mbd.input_noise.sigma) == (0.0, 0.2)


def test_features_are_the_last_hidden_layer_before_the_head():
    torch.manual_seed(5)
    D = M.MnistDiscriminator(10).eval()  # noise off
    x = torch.rand(7, 1, 28, 28)
    logits, features = D(x)
    h = x.flatten(1)
    for layer in D.hidden:
        h = F.relu(layer(h))
    torch.testing.assert_close(features, h)
    torch.testing.assert_close(logits, D.out(h))


@pytest.mark.parametrize(
    "make_g, draw",
    [
        (lambda: M.MnistGenerator(), torch.rand),
        (lambda: M.CifarGenerator(widths=(8, 8, 8)), torch.rand),
        (lambda: M.DCGANGenerator(z_dim=64), torch.rand),
        (lambda: M.ToyGenerator(z_dim=16), torch.randn),
    ],
)
def test_sample_z_uses_the_reference_distribution_and_the_given_rng(make_g, draw):
    G = make_g()
    z = G.sample_z(9, generator=torch.Generator().manual_seed(7))
    expected = draw(9, G.z_dim, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(z, expected, atol=0, rtol=0)
    assert z.device == next(G.parameters()).device


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="MnistDiscriminator"):
        M.MnistDiscriminator(10)(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="z of shape"):
        M.MnistGenerator(100)(torch.zeros(2, 50))
    with pytest.raises(ValueError, match="norm"):
        M.CifarGenerator(norm="layer")
    with pytest.raises(ValueError, match="divisible by 4"):
        M.DCGANGenerator(image_shape=(1, 30, 30))
    with pytest.raises(ValueError, match="DCGANDiscriminator"):
        M.DCGANDiscriminator(1)(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="out_activation"):
        M.DCGANGenerator(out_activation="relu")
    with pytest.raises(ValueError, match="CifarDiscriminator"):
        M.CifarDiscriminator(10)(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="num_outputs"):
        M.ToyDiscriminator(0)


def test_hidden_scales_frozen_as_the_reference_unless_asked():
    D = M.CifarDiscriminator(10)
    frozen = [name for name, p in D.named_parameters() if name.endswith(".g") and not p.requires_grad]
    assert len(frozen) == 9 and D.out.g.requires_grad
    D2 = M.CifarDiscriminator(10, train_hidden_scale=True)
    assert all(p.requires_grad for p in D2.parameters())


def test_mnist_generator_output_is_l2normalize_not_data_initialised():
    """Reference: the output layer is l2normalize (scale 1, bias 0) and takes no part in the data init."""
    from improved_gan.nn import data_dependent_init

    torch.manual_seed(3)
    G = M.MnistGenerator(100)
    v_before = G.out.v.detach().clone()
    data_dependent_init(G, torch.rand(200, 100))
    assert bool(G.out.initialized)
    torch.testing.assert_close(G.out.g, torch.ones(784), rtol=0, atol=0)
    torch.testing.assert_close(G.out.bias, torch.zeros(784), rtol=0, atol=0)
    torch.testing.assert_close(G.out.v, v_before, rtol=0, atol=0)
    # so each output pre-activation is the projection of h on a unit vector: check on a batch by hand
    z = torch.rand(7, 100)
    with torch.no_grad():
        h = z
        for dense, norm in zip(G.dense, G.norms):
            h = F.softplus(norm(dense(h)))
        v = G.out.v.numpy().astype(np.float64)
        pre = h.numpy().astype(np.float64) @ (v / np.linalg.norm(v, axis=1, keepdims=True)).T
        expected = 1 / (1 + np.exp(-pre))
        np.testing.assert_allclose(G(z).reshape(7, 784).numpy(), expected, rtol=1e-5, atol=1e-6)
    # the discriminator's layers, in contrast, are set from the batch (mean 0, std 1 pre-activations)
    D = M.MnistDiscriminator(10)
    x = torch.rand(300, 1, 28, 28)
    data_dependent_init(D.eval(), x)
    with torch.no_grad():
        t = D.hidden[0](x.flatten(1))
    np.testing.assert_allclose(t.mean(0).numpy(), 0.0, atol=1e-4)
    np.testing.assert_allclose(t.std(0, unbiased=False).numpy(), 1.0, atol=1e-3)
