"""Tests of improved_gan.losses against independent numpy oracles and the paper's closed forms."""

import numpy as np
import pytest
import scipy.optimize
import scipy.special
import torch

from improved_gan.losses import (
    class_probabilities_kplus1,
    d_real_probability,
    discriminator_loss,
    feature_matching_loss,
    generator_loss_nonsaturating,
    generator_loss_saturating,
    semi_supervised_generator_loss,
    semi_supervised_losses,
)


def _rng(seed=0):
    return np.random.default_rng(seed)


def _t(a, requires_grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad)


# ---------------------------------------------------------------- feature matching (section 3.1)


@pytest.mark.parametrize("distance", ["l2", "mse", "l1"])
def test_feature_matching_matches_numpy(distance):
    rng = _rng(1)
    real = rng.normal(size=(7, 3, 2, 2))
    fake = rng.normal(size=(5, 3, 2, 2)) + 0.5  # batch sizes differ
    d = real.reshape(7, -1).mean(axis=0) - fake.reshape(5, -1).mean(axis=0)
    expected = {"l2": np.sum(d**2), "mse": np.mean(d**2), "l1": np.mean(np.abs(d))}[distance]
    got = feature_matching_loss(_t(real), _t(fake), distance=distance)
    assert got.shape == ()
    torch.testing.assert_close(got, _t(expected))


def test_feature_matching_default_is_paper_l2():
    rng = _rng(2)
    real, fake = _t(rng.normal(size=(4, 6))), _t(rng.normal(size=(4, 6)))
    torch.testing.assert_close(feature_matching_loss(real, fake), ((real.mean(0) - fake.mean(0)) ** 2).sum())


def test_feature_matching_no_gradient_into_real_side_and_closed_form_gradient():
    rng = _rng(3)
    real = _t(rng.normal(size=(6, 4)), requires_grad=True)
    fake = _t(rng.normal(size=(3, 4)), requires_grad=True)
    feature_matching_loss(real, fake).backward()
    assert real.grad is None
    # d/d fake_i of ||mean real - mean fake||^2 = -2 (mean real - mean fake) / N_fake
    expected = (-2.0 * (real.detach().mean(0) - fake.detach().mean(0)) / 3).expand(3, 4)
    torch.testing.assert_close(fake.grad, expected)


def test_feature_matching_invariant_to_shuffling_fake_batch():
    rng = _rng(4)
    real, fake = _t(rng.normal(size=(8, 5))), _t(rng.normal(size=(9, 5)))
    perm = torch.from_numpy(rng.permutation(9))
    for distance in ("l2", "mse", "l1"):
        torch.testing.assert_close(
            feature_matching_loss(real, fake[perm], distance=distance),
            feature_matching_loss(real, fake, distance=distance),
        )


def test_feature_matching_bad_input():
    a = torch.zeros(4, 3)
    with pytest.raises(ValueError, match="differ"):
        feature_matching_loss(a, torch.zeros(4, 5))
    with pytest.raises(ValueError, match="distance"):
        feature_matching_loss(a, a, distance="l3")
    with pytest.raises(ValueError, match=r"\(N, \*\)"):
        feature_matching_loss(torch.zeros(3), a)


# ---------------------------------------------------------------- D loss and label smoothing (section 3.4)


def _np_bce(logits, target):
    log_d, log_1md = -np.logaddexp(0.0, -logits), -np.logaddexp(0.0, logits)
    return -np.mean(target * log_d + (1.0 - target) * log_1md)


@pytest.mark.parametrize(("a", "b"), [(1.0, 0.0), (0.9, 0.0), (0.9, 0.1)])
def test_discriminator_loss_matches_numpy_bce(a, b):
    rng = _rng(5)
    real, fake = rng.normal(size=6) * 3, rng.normal(size=4) * 3
    expected = _np_bce(real, a) + _np_bce(fake, b)
    got = discriminator_loss(_t(real), _t(fake), real_target=a, fake_target=b)
    torch.testing.assert_close(got, _t(expected))
    # (N, 1) logits are the same as (N,)
    got_col = discriminator_loss(_t(real)[:, None], _t(fake)[:, None], real_target=a, fake_target=b)
    torch.testing.assert_close(got_col, got)


@pytest.mark.parametrize(("a", "b"), [(0.9, 0.0), (1.0, 0.0), (0.9, 0.1)])
def test_smoothed_loss_optimum_is_paper_formula(a, b):
    # Two points x1, x2 with p_data = (0.7, 0.3), p_model = (0.2, 0.8); batches hold them in those
    # proportions, so discriminator_loss is the expected loss over x. Minimise over D's two logits.
    p_data, p_model = np.array([0.7, 0.3]), np.array([0.2, 0.8])
    real_idx = torch.tensor([0] * 7 + [1] * 3)
    fake_idx = torch.tensor([0] * 2 + [1] * 8)

    def objective(logits_np):
        logits = _t(logits_np, requires_grad=True)
        loss = discriminator_loss(logits[real_idx], logits[fake_idx], real_target=a, fake_target=b)
        loss.backward()
        return loss.item(), logits.grad.numpy()

    res = scipy.optimize.minimize(objective, np.zeros(2), jac=True, method="BFGS", options={"gtol": 1e-12})
    d_star = scipy.special.expit(res.x)
    np.testing.assert_allclose(d_star, (a * p_data + b * p_model) / (p_data + p_model), atol=1e-7)


def test_discriminator_loss_bad_input():
    with pytest.raises(ValueError, match="real_target"):
        discriminator_loss(torch.zeros(3), torch.zeros(3), real_target=1.5)
    with pytest.raises(ValueError, match=r"\(N,\) or \(N, 1\)"):
        discriminator_loss(torch.zeros(3, 2), torch.zeros(3))


def test_generator_losses_match_numpy():
    l = _rng(6).normal(size=9) * 4
    # non-saturating: -E log D(G(z)); saturating (minimax): E log(1 - D(G(z)))
    torch.testing.assert_close(generator_loss_nonsaturating(_t(l)), _t(np.mean(np.logaddexp(0.0, -l))))
    torch.testing.assert_close(generator_loss_saturating(_t(l)[:, None]), _t(-np.mean(np.logaddexp(0.0, l))))
    s = scipy.special.expit(l)
    torch.testing.assert_close(generator_loss_saturating(_t(l)), _t(np.mean(np.log1p(-s))))


# ---------------------------------------------------------------- K+1-class semi-supervised (section 5)


def _kplus1_log_softmax(logits):
    """Explicit (K+1)-way log-softmax: append the generated class's logit 0 as the last column."""
    full = np.concatenate([logits, np.zeros((logits.shape[0], 1))], axis=1)
    return scipy.special.log_softmax(full, axis=1)


def _np_semi_supervised(lab, labels, unl, fake):
    supervised = -np.mean(scipy.special.log_softmax(lab, axis=1)[np.arange(len(labels)), labels])
    log_p_unl, log_p_fake = _kplus1_log_softmax(unl), _kplus1_log_softmax(fake)
    log_real_unl = scipy.special.logsumexp(log_p_unl[:, :-1], axis=1)  # log D(x) = log(1 - p_gen)
    unsupervised = -np.mean(log_real_unl) - np.mean(log_p_fake[:, -1])  # - log(1 - D(G(z))) = - log p_gen
    return supervised, unsupervised


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_semi_supervised_losses_match_explicit_kplus1_softmax(scale):
    rng = _rng(7)
    k = 10
    lab, unl, fake = (rng.normal(size=(n, k)) * scale for n in (5, 8, 6))
    labels = rng.integers(0, k, size=5)
    sup, unsup = semi_supervised_losses(_t(lab), torch.from_numpy(labels), _t(unl), _t(fake))
    exp_sup, exp_unsup = _np_semi_supervised(lab, labels, unl, fake)
    torch.testing.assert_close(sup, _t(exp_sup))
    torch.testing.assert_close(unsup, _t(exp_unsup))


def test_semi_supervised_unsupervised_equals_contract_formula():
    rng = _rng(8)
    unl, fake = _t(rng.normal(size=(7, 4)) * 2), _t(rng.normal(size=(3, 4)) * 2)
    lse_u, lse_f = torch.logsumexp(unl, 1), torch.logsumexp(fake, 1)
    sp = torch.nn.functional.softplus
    expected = -lse_u.mean() + sp(lse_u).mean() + sp(lse_f).mean()
    _, unsup = semi_supervised_losses(unl[:2], torch.tensor([0, 3]), unl, fake)
    torch.testing.assert_close(unsup, expected)


def test_semi_supervised_losses_finite_with_huge_logits_float32():
    k = 10
    big = torch.full((4, k), 1e4, requires_grad=True)
    neg = torch.full((4, k), -1e4, requires_grad=True)
    mixed = (torch.arange(4 * k, dtype=torch.float32).reshape(4, k) * 1e3 - 2e4).requires_grad_()
    for unl, fake in ((big, neg), (neg, big), (mixed, mixed)):
        sup, unsup = semi_supervised_losses(mixed, torch.tensor([0, 1, 2, 3]), unl, fake)
        assert torch.isfinite(sup) and torch.isfinite(unsup)
        grads = torch.autograd.grad(sup + unsup, [mixed, unl, fake], allow_unused=True)
        assert all(torch.isfinite(g).all() for g in grads if g is not None)
        exp_sup, exp_unsup = _np_semi_supervised(
            mixed.detach().double().numpy(),
            np.arange(4),
            unl.detach().double().numpy(),
            fake.detach().double().numpy(),
        )
        torch.testing.assert_close(unsup.double(), _t(exp_unsup), rtol=1e-5, atol=1e-3)
        torch.testing.assert_close(sup.double(), _t(exp_sup), rtol=1e-5, atol=1e-3)


def test_semi_supervised_losses_bad_shapes():
    z = torch.zeros(3, 4)
    labels = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match="class counts"):
        semi_supervised_losses(z, labels, torch.zeros(3, 5), z)
    with pytest.raises(ValueError, match="labels"):
        semi_supervised_losses(z, labels.float(), z, z)
    with pytest.raises(ValueError, match="labels"):
        semi_supervised_losses(z, labels[:2], z, z)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        semi_supervised_losses(z, labels, torch.zeros(3), z)


def test_kplus1_probabilities_and_d_real():
    rng = _rng(9)
    l = rng.normal(size=(6, 5)) * 3
    probs = class_probabilities_kplus1(_t(l))
    torch.testing.assert_close(probs, _t(np.exp(_kplus1_log_softmax(l))))
    z = np.exp(l).sum(axis=1)
    torch.testing.assert_close(d_real_probability(_t(l)), _t(z / (z + 1.0)))
    torch.testing.assert_close(d_real_probability(_t(l)), 1.0 - probs[:, -1])


def test_semi_supervised_generator_loss_is_minus_log_d():
    rng = _rng(10)
    l = rng.normal(size=(7, 10)) * 5
    log_d = scipy.special.logsumexp(_kplus1_log_softmax(l)[:, :-1], axis=1)
    torch.testing.assert_close(semi_supervised_generator_loss(_t(l)), _t(-np.mean(log_d)))
    huge = torch.full((3, 10), -1e4)
    assert torch.isfinite(semi_supervised_generator_loss(huge))
