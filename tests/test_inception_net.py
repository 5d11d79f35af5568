"""The 2015 Inception-v3 graph (random init), its TF1 resize, weight loading and the Inception adapter.

The real weights are never needed: names and shapes are checked against torch-fidelity's layout written out
here by hand, and weights files are written from randomly initialised networks.
"""

import math

import numpy as np
import pytest
import torch

from improved_gan.errors import UserError
from improved_gan.metrics import inception as inception_mod
from improved_gan.metrics.inception import (
    ENV_WEIGHTS,
    WEIGHTS_NAME,
    InceptionScorer,
    load_inception_weights,
    resolve_inception_weights,
    to_uint8,
)
from improved_gan.metrics.inception_net import InceptionV3TF2015, resize_bilinear_tf1

SMALL = 75  # the smallest input the graph accepts; 16x cheaper than 299


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Big convolutions on a busy 2-core machine run many times faster on one thread than on two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _expected_keys() -> set[str]:
    """torch-fidelity's FeatureExtractorInceptionV3 state_dict keys, from its block layout."""
    a = [
        "branch1x1",
        "branch5x5_1",
        "branch5x5_2",
        "branch3x3dbl_1",
        "branch3x3dbl_2",
        "branch3x3dbl_3",
        "branch_pool",
    ]
    b = ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]
    c = ["branch1x1", "branch_pool"] + [f"branch7x7_{i}" for i in (1, 2, 3)]
    c += [f"branch7x7dbl_{i}" for i in (1, 2, 3, 4, 5)]
    d = ["branch3x3_1", "branch3x3_2"] + [f"branch7x7x3_{i}" for i in (1, 2, 3, 4)]
    e = [
        "branch1x1",
        "branch3x3_1",
        "branch3x3_2a",
        "branch3x3_2b",
        "branch3x3dbl_1",
        "branch3x3dbl_2",
        "branch3x3dbl_3a",
        "branch3x3dbl_3b",
        "branch_pool",
    ]
    convs = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
    blocks = {
        "Mixed_5b": a,
        "Mixed_5c": a,
        "Mixed_5d": a,
        "Mixed_6a": b,
        "Mixed_6b": c,
        "Mixed_6c": c,
        "Mixed_6d": c,
        "Mixed_6e": c,
        "Mixed_7a": d,
        "Mixed_7b": e,
        "Mixed_7c": e,
    }
    convs += [f"{block}.{branch}" for block, branches in blocks.items() for branch in branches]
    leaves = ["conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"]
    return {f"{conv}.{leaf}" for conv in convs for leaf in leaves} | {"fc.weight", "fc.bias"}


def _weights_file(path, model: InceptionV3TF2015, seed: int = 0):
    """Write ``model``'s randomised state as torch-fidelity does: a plain dict, no num_batches_tracked."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        if k.endswith("running_var"):
            v = 0.5 + torch.rand(v.shape, generator=g)
        elif k.endswith(("running_mean", "bn.bias", "fc.bias")):
            v = 0.1 * torch.randn(v.shape, generator=g)
        elif k.endswith("weight") and v.dim() == 4:
            v = torch.randn(v.shape, generator=g) * math.sqrt(2.0 / v[0].numel())  # keeps activations O(1)
        state[k] = v.clone()
    torch.save(state, path)
    return state


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A weights file from a randomised small network, and that network (loaded with the same state)."""
    torch.manual_seed(0)
    net = InceptionV3TF2015(input_size=SMALL)
    path = tmp_path_factory.mktemp("inception") / WEIGHTS_NAME
    net.load_state_dict(_weights_file(path, net))
    return path, net


@pytest.fixture(scope="module")
def small_net(weights):
    return weights[1]


def test_state_dict_keys_and_shapes_match_torch_fidelity(small_net):
    state = small_net.state_dict()
    keys = {k for k in state if not k.endswith("num_batches_tracked")}
    assert keys == _expected_keys()
    assert len(keys) == 94 * 5 + 2
    assert state["fc.weight"].shape == (1008, 2048) and state["fc.bias"].shape == (1008,)
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)
    assert state["Mixed_5b.branch_pool.conv.weight"].shape == (32, 192, 1, 1)
    assert state["Mixed_6e.branch7x7dbl_5.conv.weight"].shape == (192, 192, 1, 7)
    assert state["Mixed_7c.branch_pool.conv.weight"].shape == (192, 2048, 1, 1)
    assert all(m.eps == 0.001 for m in small_net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not any(m.bias is not None for m in small_net.modules() if isinstance(m, torch.nn.Conv2d))


def test_logits_are_unbiased_and_examples_independent(small_net):
    with torch.no_grad():
        x = torch.rand(3, 3, 32, 32) * 255  # (3, 3, 32, 32)
        out = small_net(x)  # (3, 1008)
        pool = small_net.pool_features(x)  # (3, 2048)
        biased = small_net.fc(pool)  # (3, 1008)
        single = small_net(x[1:2])
    assert out.shape == (3, 1008) and pool.shape == (3, 2048)
    torch.testing.assert_close(out, biased - small_net.fc.bias, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(single[0], out[1], rtol=1e-5, atol=1e-6)


def _resize_loop(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TensorFlow 1.x resize_bilinear (align_corners=False, no half-pixel centres), one pixel at a time."""
    h, w = img.shape
    out = np.zeros((out_h, out_w))
    for i in range(out_h):
        sy = float(np.float32(i) * np.float32(h / out_h))
        y0 = int(math.floor(sy))
        y1, dy = min(y0 + 1, h - 1), sy - y0
        for j in range(out_w):
            sx = float(np.float32(j) * np.float32(w / out_w))
            x0 = int(math.floor(sx))
            x1, dx = min(x0 + 1, w - 1), sx - x0
            top = img[y0, x0] + (img[y0, x1] - img[y0, x0]) * dx
            bottom = img[y1, x0] + (img[y1, x1] - img[y1, x0]) * dx
            out[i, j] = top + (bottom - top) * dy
    return out


@pytest.mark.parametrize("size_in,size_out", [((5, 7), (11, 4)), ((32, 32), (299, 299)), ((6, 6), (6, 6))])
def test_resize_matches_tf1_loop(size_in, size_out):
    img = torch.rand(2, 3, *size_in, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = resize_bilinear_tf1(img, size_out)
    assert got.shape == (2, 3, *size_out)
    for n, c in [(0, 0), (1, 2)]:
        want = torch.from_numpy(_resize_loop(img[n, c].numpy(), *size_out))
        torch.testing.assert_close(got[n, c], want, rtol=0, atol=1e-6)


def test_resize_doubling_keeps_even_pixels_and_clamps_the_edge():
    img = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 2, 4)  # columns 0, 1, 2, 3
    got = resize_bilinear_tf1(img, (2, 8))[0, 0, 0]
    assert got.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.0]


def test_weights_file_loads_strictly_with_weights_only(weights, tmp_path):
    path, source = weights
    loaded = load_inception_weights(InceptionV3TF2015(input_size=SMALL), path)
    x = torch.rand(2, 3, 32, 32) * 255
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), source(x), rtol=0, atol=0)

    state = torch.load(path, weights_only=True)
    del state["Mixed_7c.branch_pool.bn.running_var"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(UserError, match="does not match"):
        load_inception_weights(loaded, tmp_path / "bad.pth")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(UserError, match="not a state dict"):
        load_inception_weights(loaded, tmp_path / "list.pth")


@pytest.fixture
def no_weights_anywhere(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_WEIGHTS, raising=False)
    monkeypatch.setattr(inception_mod, "weights_search_path", lambda: [tmp_path / "nowhere" / WEIGHTS_NAME])
    return tmp_path


def test_missing_weights_say_where_to_put_them(no_weights_anywhere):
    with pytest.raises(UserError) as info:
        resolve_inception_weights()
    message = str(info.value)
    assert ENV_WEIGHTS in message and "--inception-weights" in message and WEIGHTS_NAME in message
    assert "\n" not in message
    with pytest.raises(UserError, match="does not exist"):
        resolve_inception_weights(no_weights_anywhere / "absent.pth")


def test_env_var_names_the_file(no_weights_anywhere, monkeypatch):
    monkeypatch.setenv(ENV_WEIGHTS, str(no_weights_anywhere / "absent.pth"))
    with pytest.raises(UserError, match=ENV_WEIGHTS):
        resolve_inception_weights()
    (no_weights_anywhere / "w.pth").write_bytes(b"")
    monkeypatch.setenv(ENV_WEIGHTS, str(no_weights_anywhere / "w.pth"))
    assert resolve_inception_weights() == no_weights_anywhere / "w.pth"


def test_scorer_builtin_backend_on_random_weights(weights, monkeypatch):
    monkeypatch.setattr(inception_mod, "InceptionV3TF2015", lambda: InceptionV3TF2015(input_size=SMALL))
    scorer = InceptionScorer(weights[0], backend="builtin")
    images = torch.rand(4, 3, 32, 32)
    probs = scorer.probabilities(images, batch_size=3)  # two batches
    assert probs.shape == (4, 1008) and probs.dtype == torch.float64
    torch.testing.assert_close(probs.sum(1), torch.ones(4, dtype=torch.float64))
    with torch.no_grad():  # the adapter feeds round(255 x) as uint8
        direct = scorer.net(torch.round(images * 255).to(torch.uint8))
    torch.testing.assert_close(scorer.logits(images), direct)
    with pytest.raises(ValueError, match="RGB"):
        scorer.logits(torch.rand(2, 1, 28, 28))
    with pytest.raises(UserError, match="backend"):
        InceptionScorer(weights[0], backend="torchvision")


def test_to_uint8_rounds_and_clips():
    x = torch.tensor([-0.1, 0.0, 0.5 / 255, 0.499, 1.0, 1.2])
    assert to_uint8(x).tolist() == [0, 0, 0, 127, 255, 255]  # round half to even at 0.5
    u = torch.tensor([3, 200], dtype=torch.uint8)
    assert to_uint8(u) is u


@pytest.mark.slow
def test_full_size_forward_shapes():
    net = InceptionV3TF2015()
    with torch.no_grad():
        assert net(torch.rand(1, 3, 32, 32) * 255).shape == (1, 1008)
